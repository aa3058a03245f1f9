"""A few long-lived threads for the entry point's blocking work.

Django's database connections belong to the thread that opened them. These
threads live as long as the process, so each keeps its connection between
requests, for ``PROTECTED_MEDIA_FAST_PATH_CONN_MAX_AGE`` seconds rather than
``CONN_MAX_AGE``: under ASGI that one must stay 0, because Django's own
per-request threads end with their request and would leave a kept connection
to the garbage collector. Each thread closes its own connections when the
pool stops, which a ``ThreadPoolExecutor`` cannot do.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connections

_STOP = None
_opened = threading.local()


class ConnectionThreads:
    def __init__(self, size: int, name: str) -> None:
        if size < 1:
            raise ValueError("the pool needs at least one thread")
        self.size = size
        self.name = name
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)`` on one of the threads, with the caller's context."""
        self._start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._jobs.put((loop, future, contextvars.copy_context(), function, args))
        return await future

    def stop(self) -> None:
        """Each thread closes its connections and ends; waits for them."""
        with self._lock:
            threads, self._threads = self._threads, []
        for _ in threads:
            self._jobs.put(_STOP)
        for thread in threads:
            thread.join()

    def _start(self) -> None:
        if self._threads:
            return
        with self._lock:
            while len(self._threads) < self.size:
                thread = threading.Thread(
                    target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _work(self) -> None:
        try:
            while (job := self._jobs.get()) is not _STOP:
                loop, future, context, function, args = job
                result, error = None, None
                try:
                    result = context.run(function, *args)
                except BaseException as raised:  # handed to the awaiting task
                    error = raised
                try:
                    loop.call_soon_threadsafe(_settle, future, result, error)
                except RuntimeError:
                    pass  # the loop has closed: nobody is waiting any more
        finally:
            connections.close_all()


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def refresh_connections(max_age: float) -> None:
    """What ``request_started`` does for Django's connections, for a thread
    that keeps them: close one that has failed and no longer answers, or one
    older than ``max_age`` seconds; re-arm the health check of the others
    (``CONN_HEALTH_CHECKS``) for this request."""
    now = time.monotonic()
    opened: dict[str, float] = _opened.__dict__
    for connection in connections.all(initialized_only=True):
        if connection.connection is None:
            opened.pop(connection.alias, None)
            continue
        since = opened.setdefault(connection.alias, now)
        broken = connection.errors_occurred and not connection.is_usable()
        if broken or now - since >= max_age:
            connection.close()
            opened.pop(connection.alias, None)
        else:
            connection.errors_occurred = False
            connection.health_check_done = False  # type: ignore[attr-defined]


# The pool of the entry point that took the current request, if one did.
_current_pool: contextvars.ContextVar[tuple[ConnectionThreads, float] | None] = (
    contextvars.ContextVar("protected_media_pool", default=None)
)


@contextlib.contextmanager
def using_pool(pool: ConnectionThreads, conn_max_age: float) -> Iterator[None]:
    """Within it, ``run_blocking`` calls go to ``pool`` (the entry point's)."""
    token = _current_pool.set((pool, conn_max_age))
    try:
        yield
    finally:
        _current_pool.reset(token)


async def run_blocking(function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` where this request's database work belongs.

    Under Django's handler, that is its per-request thread (``sync_to_async``).
    Under the entry point it is the pool, whose threads refresh their
    connections first: asgiref's shared thread, where ``sync_to_async`` would
    go outside a request, keeps a connection nothing ever checks or closes, so
    a database restart would break it for good.
    """
    current = _current_pool.get()
    if current is None:
        return await sync_to_async(function)(*args)
    pool, conn_max_age = current
    return await pool.run(_refreshed, conn_max_age, function, args)


def _refreshed(conn_max_age: float, function: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    refresh_connections(conn_max_age)
    return function(*args)
