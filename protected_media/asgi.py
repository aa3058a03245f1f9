"""The fast entry point: an ASGI application in front of Django that answers
media requests itself and passes every other request to Django untouched.

    from django.core.asgi import get_asgi_application
    from protected_media.asgi import ProtectedMediaASGI

    application = ProtectedMediaASGI(get_asgi_application())

A media request still goes through the async view (``views.serve``), the very
function Django would call, with Django's own request class, session engine
and ``auth.get_user``. What it skips is Django's generic per-request
machinery, which costs more than the check itself:

- the thread-sensitive context Django opens per request, whose first
  blocking call starts a new thread with a new database connection and joins
  it at the end of the request (so ``CONN_MAX_AGE`` never helps);
- the ``request_started``/``request_finished`` signals;
- the middleware chain, where each old-style middleware is a thread hop.

Instead, all blocking work (session, user, file record, owning row) runs in
one hop to a small pool of threads that keep their database connections (as
long as ``CONN_MAX_AGE`` allows), with SQL compiled once (``compiled``). On
SQLite and PostgreSQL, the common case makes no hop at all: the same SQL
runs on the event loop, through a read-only connection with a busy timeout
of milliseconds (``fastpath.sqlite_reads``) or psycopg's async pool
(``fastpath.postgres_reads``), and anything else goes to the threads. That
SQL and the user loading copy parts of Django, so before the first media
request the entry point proves them against Django's own answers on a probe
(``fastpath.probe``) and, should they disagree, takes the ORM path for good.

The response hooks of Django's built-in security, session, common and
clickjacking middleware run as Django would run them, so both paths answer
with the same headers; any other middleware is skipped on media requests,
and the entry point names each one in the log when it starts.

Anything the entry point is not sure of (another method, a body, a host not
in ``ALLOWED_HOSTS``, a path that does not resolve to the media view, an
error while building the request) goes to Django, which answers as usual.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from asgiref.typing import (
    ASGI3Application,
    ASGIReceiveCallable,
    ASGISendCallable,
    HTTPScope,
    Scope,
)
from django.conf import settings
from django.contrib.sessions.middleware import SessionMiddleware
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest, get_script_prefix
from django.core.handlers.exception import response_for_exception
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponseBase
from django.urls import set_script_prefix
from django.utils.module_loading import import_string

from .conf import conf
from .fastpath import lean, loop_reads, probe
from .fastpath.lean_plan import SESSION_MIDDLEWARE
from .fastpath.media_routes import media_view_match
from .fastpath.sending import send_response
from .fastpath.threads import ConnectionThreads, refresh_connections, using_pool
from .keys import is_key

if TYPE_CHECKING:
    from .decision import Found

logger = logging.getLogger("protected_media")

# Importable before Django is set up (an asgi.py imports it before calling
# get_asgi_application()), so the view and the models are imported on use.
MEDIA_METHODS = ("GET", "HEAD")
# Run on media requests exactly as Django's chain would run them: their hooks
# are pure, but for the session's save, which runs in the pool.
APPLIED_MIDDLEWARE = (
    "django.middleware.security.SecurityMiddleware",
    SESSION_MIDDLEWARE,
    "django.middleware.common.CommonMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
)
# Known to change nothing on a media request: the view is CSRF-exempt and
# login-exempt, sends no messages, and the pool loads the user as
# AuthenticationMiddleware would.
NEUTRAL_MIDDLEWARE = (
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
)


def skipped_middleware() -> list[str]:
    """Middleware in ``settings.MIDDLEWARE`` that media requests skip, but for
    those whose class says it leaves them alone (``protected_media_neutral``)."""
    known = {*APPLIED_MIDDLEWARE, *NEUTRAL_MIDDLEWARE}
    return [
        path
        for path in settings.MIDDLEWARE
        if path not in known and not getattr(import_string(path), "protected_media_neutral", False)
    ]


class ProtectedMediaASGI:
    def __init__(self, application: ASGI3Application, *, threads: int | None = None) -> None:
        self.application = application
        self._threads = threads
        self._pool: ConnectionThreads | None = None
        self._middleware: list[Any] | None = None
        self._loop_reads = loop_reads.LoopReads()
        self._lean = lean.Lean()
        # Chosen by the probe, before the first media request.
        self._load_user: probe.UserLoader | None = None
        if settings.configured:
            _warn_about_configuration()

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http" or not conf.fast_path or not _is_plain_media_request(scope):
            await self.application(scope, receive, send)
            return
        if self._load_user is not None:
            answer = await self._lean.decide(scope, self._loop_reads)
            if answer is not None:
                middleware_headers = self._lean.middleware_headers(answer)
                if middleware_headers is not None:
                    await lean.send_answer(answer, middleware_headers, send)
                    return
                send = self._lean.learning(answer, send)
        request = _build_request(scope)
        match = media_view_match(request.path_info) if request is not None else None
        load_user = self._load_user or (await self._proven() if match is not None else None)
        if request is None or match is None or load_user is None:
            await self.application(scope, receive, send)
            return
        set_script_prefix(get_script_prefix(scope))
        request.resolver_match = match
        response = await self._respond(request, match.kwargs["key"], load_user)
        await send_response(response, send, receive)

    async def _respond(
        self, request: HttpRequest, key: str, load_user: probe.UserLoader
    ) -> HttpResponseBase:
        middleware = self._loaded_middleware()
        # As Django's chain: request hooks in order until one answers; then the
        # response hooks of those that ran, in reverse.
        response: HttpResponseBase | None = None
        ran: list[Any] = []
        for instance in middleware:
            process_request = getattr(instance, "process_request", None)
            try:
                response = process_request(request) if process_request else None
            except Exception as exc:
                # Django turns it into a response at this middleware's edge,
                # so its own response hook does not run.
                response = await sync_to_async(response_for_exception)(request, exc)
                break
            ran.append(instance)
            if response is not None:
                break
        if response is None:
            response = await self._view(request, key, load_user)
        for instance in reversed(ran):
            response = await self._process_response(instance, request, response)
        return response

    async def _view(
        self, request: HttpRequest, key: str, load_user: probe.UserLoader
    ) -> HttpResponseBase:
        from . import audit, views

        audit.started(request)
        try:
            loaded = await self._loop_reads.aload(request, key, self._in_pool)
            if loaded is None:
                try:
                    loaded = await self._in_pool(_load, request, key, load_user)
                except DatabaseError as error:
                    return await views.database_refusal(
                        request, error, kind=views.KEY, key=key, user=None
                    )
            user, found = loaded
            _attach_user(request, user)
            setattr(request, views.PREFETCHED_ATTRIBUTE, found)
            # What the policy reads beyond the prefetched rows (groups, object
            # permissions) goes to the same threads.
            with using_pool(self._loaded_pool(), conf.fast_path_conn_max_age):
                return await views.serve(request, key=key)
        except Exception as exc:
            # What Django's handler does with an exception from a view: the
            # project's handler500 (or 404/403/400 for those exceptions).
            return await sync_to_async(response_for_exception)(request, exc)

    async def _process_response(
        self, instance: Any, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        process_response = getattr(instance, "process_response", None)
        if process_response is None:
            return response
        session = getattr(request, "session", None)
        if isinstance(instance, SessionMiddleware) and (
            settings.SESSION_SAVE_EVERY_REQUEST or (session is not None and session.modified)
        ):
            # Saving the session (a flushed or cycled one, after a password
            # change) touches the database: in the pool.
            return await self._in_pool(process_response, request, response)  # type: ignore[no-any-return]
        return process_response(request, response)  # type: ignore[no-any-return]

    def _loaded_middleware(self) -> list[Any]:
        if self._middleware is None:

            def unused(request: HttpRequest) -> HttpResponseBase:
                raise AssertionError("the entry point calls the view itself")

            self._middleware = [
                import_string(path)(unused)
                for path in settings.MIDDLEWARE
                if path in APPLIED_MIDDLEWARE
            ]
        return self._middleware

    async def _proven(self) -> probe.UserLoader | None:
        # The probe runs once per process, on its first media request (not at
        # the server's startup, which must not wait on the database: it may be
        # down, or a table locked by a migration). Until it has run, media
        # requests that find it running, or the database failing it, go to
        # Django.
        load_user = probe.user_loader()
        if load_user is None and not probe.running():
            try:
                load_user = await self._in_pool(_settle)
            except DatabaseError:
                return None
        self._load_user = load_user
        return load_user

    async def _in_pool(self, function: Callable[..., Any], *args: Any) -> Any:
        return await self._loaded_pool().run(function, *args)

    def _loaded_pool(self) -> ConnectionThreads:
        if self._pool is None:
            self._pool = ConnectionThreads(
                self._threads or conf.fast_path_threads, name="protected-media"
            )
        return self._pool

    async def aclose(self) -> None:
        """Stop the threads; each closes its database connections first."""
        await self._loop_reads.aclose()
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.get_running_loop().run_in_executor(None, pool.stop)

    async def _lifespan(self, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        # Django speaks no lifespan protocol, so the entry point answers it: the
        # server's shutdown closes the threads' connections cleanly.
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _warn_about_configuration() -> None:
    # Said once at startup, where an operator reads the log: not an error,
    # but it changes what a media request runs.
    if not conf.fast_path:
        return
    for path in skipped_middleware():
        logger.warning(
            "protected_media: media requests answered by ProtectedMediaASGI skip %s "
            "(set PROTECTED_MEDIA_FAST_PATH = False to run every middleware)",
            path,
        )


def _is_plain_media_request(scope: HTTPScope) -> bool:
    if scope.get("method") not in MEDIA_METHODS or scope.get("root_path"):
        return False
    if not scope.get("path", "").startswith(conf.url):
        return False
    # A request with a body goes to Django, which reads it as usual.
    for name, value in scope.get("headers", ()):
        if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            return False
    return True


def _build_request(scope: HTTPScope) -> HttpRequest | None:
    try:
        request = ASGIRequest(scope, io.BytesIO())
        request.get_host()
    except (UnicodeDecodeError, DisallowedHost, ValueError):
        return None
    return request


def _settle() -> probe.UserLoader | None:
    refresh_connections(conf.fast_path_conn_max_age)
    return probe.settle()


def _load(request: HttpRequest, key: str, load_user: probe.UserLoader) -> tuple[Any, Found | None]:
    """Everything the view needs from the database, in one call (blocking)."""
    from django.contrib.auth.models import AnonymousUser

    from .decision import find

    refresh_connections(conf.fast_path_conn_max_age)
    if hasattr(request, "session"):
        user = load_user(request)
    else:
        # No SessionMiddleware: nobody can be signed in.
        user = AnonymousUser()
    found = find(key) if user.is_authenticated and is_key(key) else None
    return user, found


def _attach_user(request: HttpRequest, user: Any) -> None:
    # What AuthenticationMiddleware provides, already loaded.
    async def auser() -> Any:
        return user

    request.user = user
    request.auser = auser
