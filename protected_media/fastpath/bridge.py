"""Blocking code whose I/O is awaited on the event loop, through greenlet.

The check's reads are plain functions (``auth.load_user``, ``decision.find``,
the compiled lookups under them), proven against Django's own answers. On
PostgreSQL their statements go over a socket, which must not block the loop.
``run`` calls such a function in a greenlet of its own; when the function
reaches a statement, ``await_`` hands the statement's coroutine to ``run``,
which awaits it on the loop (other requests go on meanwhile) and switches
back with the rows. The functions run unchanged, and the loop never waits
on the database. SQLAlchemy's asyncio support works the same way.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import greenlet

T = TypeVar("T")


class _Bridged(greenlet.greenlet):  # type: ignore[misc]  # untyped base
    """A greenlet ``run`` started: the one ``await_`` may switch out of."""


async def run(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)``, awaiting on this loop whatever it ``await_``s."""
    child = _Bridged(function)
    # The caller's context variables (the request's), as a thread hop with
    # asgiref would carry them; a new greenlet would start with none.
    child.gr_context = contextvars.copy_context()
    asked = child.switch(*args)
    while not child.dead:
        try:
            answer = await asked
        except BaseException as error:  # cancelled, or the statement failed
            asked = child.throw(error)
        else:
            asked = child.switch(answer)
    return asked  # type: ignore[no-any-return]


def await_(awaitable: Awaitable[T]) -> T:
    """The result of ``awaitable``, from code ``run`` called."""
    current = greenlet.getcurrent()
    if not isinstance(current, _Bridged):
        raise RuntimeError("await_ is for code that bridge.run called")
    return current.parent.switch(awaitable)  # type: ignore[no-any-return]
