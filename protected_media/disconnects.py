"""Stop an upload's work when its client hangs up.

Since Django 5.0 the ASGI handler cancels a view's task on
``http.disconnect``; a sync view runs in a thread that a cancellation cannot
stop, so an upload whose client gave up would still be inspected and stored.
``stop_on_disconnect`` runs a sync view in that thread with a flag in its
context; the cancellation sets the flag, and the inspection checks it between
frames and once more before anything is written (``inspection.raise_if_client_gone``).
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse

# The status nginx logs for a client that closed its request; nobody reads it.
CLIENT_GONE_STATUS = 499

_GONE: ContextVar[threading.Event | None] = ContextVar("protected_media_client_gone", default=None)


def client_gone() -> bool:
    event = _GONE.get()
    return event is not None and event.is_set()


def stop_on_disconnect(
    view: Callable[..., HttpResponse],
) -> Callable[..., Any]:
    """Wrap a sync view that accepts uploads: under ASGI, a client that hangs
    up stops its inspection and nothing is stored. Under WSGI nothing tells a
    view its client left; the view runs as before."""

    @functools.wraps(view)
    async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        gone = threading.Event()
        token = _GONE.set(gone)  # copied into the thread's context below
        try:
            return await sync_to_async(view)(request, *args, **kwargs)
        except asyncio.CancelledError:
            gone.set()
            raise
        finally:
            _GONE.reset(token)

    return wrapper
