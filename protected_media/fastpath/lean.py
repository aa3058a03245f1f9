"""The lean path: a file granted to its owner, answered without building
Django's request.

Most media requests are a signed-in user fetching a file of their own (a
gallery's thumbnails, an avatar). For those, Django's request, the middleware
hooks, the view and the model instances cost several times the reads
themselves (docs/performance.md). So before any of that, the entry point
reads the rows the check needs as stored values (the session, the user,
the record and, for a thumbnail, its original, and the row holding the
file), through the SQL the ORM compiles for the usual path (``compiled``),
in steps (``stored_grant``): in one read transaction on SQLite, one
statement a step on PostgreSQL (``joined``). When they show the default
policy granting the file to its owner (or to staff, where
``PROTECTED_MEDIA_ALLOW_STAFF`` says so), it answers at once: the audit
line, the decision counters, the handoff to nginx.

It answers that case alone, and only where nothing listens to
``file_served`` (a receiver is sent Django's request and user). Anything else
(no session, a hash to rotate, an inactive user, someone else's file, a
setting or class it does not know) it declines before it changes anything,
and the request takes the entry point's usual path from the start. So every
refusal runs the usual path, whose work does not depend on whether the file
exists.

The answer's other headers are the middleware's (Vary, X-Frame-Options, the
security headers). They depend on the settings and on whether the request
came over HTTPS, not on the file. The lean path does not copy that code: for
each kind of request (its scheme and the proxy's HTTPS header, where
``SECURE_PROXY_SSL_HEADER`` names one) the first grant goes through the usual
path, and the lean path checks that its answer is the lean path's own headers
followed by the middleware's, then answers that kind itself with those. If
the usual path ever answers otherwise, the lean path says so in the log and
declines from then on.
"""

from __future__ import annotations

import functools
import logging
import time
from types import ModuleType
from typing import Any, NamedTuple

from asgiref.typing import ASGISendCallable, ASGISendEvent, HTTPScope
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.http.cookie import parse_cookie
from django.http.request import split_domain_port, validate_host

from ..keys import is_key
from ..signals import file_served
from . import lean_plan
from .guesses import Guesses
from .lean_plan import Plan
from .loop_reads import LoopReads
from .media_routes import media_key

logger = logging.getLogger("protected_media")

# Kinds of request remembered at most: a client choosing the proxy header's
# value must not grow them without bound.
MAX_KINDS = 8
# Allowed Host headers remembered at most (a wildcard in ALLOWED_HOSTS
# allows names without bound).
MAX_HOSTS = 64
# Usual-path answers that taught a kind of request nothing (a redirect to
# HTTPS, a cookie set) before the lean path leaves that kind to it for good.
MAX_LESSONS = 3

Header = tuple[bytes, bytes]
# The scheme of the ASGI scope, and the proxy's HTTPS header as sent.
Kind = tuple[str, str | None]


class Answer(NamedTuple):
    """A grant the lean path can answer."""

    kind: Kind
    user_id: Any
    key: str
    reason: str
    # The response's own headers, in the order the view sets them.
    headers: list[Header]
    # Whether the redirect is a URL signed for this moment (object storage):
    # then the usual path's answer to the same request names another.
    signed_target: bool
    started: float


class Lean:
    """One entry point's lean path."""

    def __init__(self) -> None:
        # The middleware's headers for each kind of request, once learned.
        self._middleware_headers: dict[Kind, list[Header]] = {}
        self._lessons: dict[Kind, int] = {}
        # The plan they were learned under: a settings change makes another.
        self._plan: Plan | None = None
        self._off = False
        # What earlier requests' rows showed, to read in fewer steps.
        self._guesses = Guesses()

    async def decide(self, scope: HTTPScope, loop_reads: LoopReads) -> Answer | None:
        """The answer for ``scope`` if the lean path may give it; None for the
        usual path. Reads, never writes."""
        started = time.perf_counter()
        plan = lean_plan.plan() if not self._off and not file_served.receivers else None
        if plan is None:
            return None
        if plan is not self._plan:
            # What the middleware adds depends on the settings.
            self._middleware_headers.clear()
            self._lessons.clear()
            self._plan = plan
            self._guesses = Guesses()
        try:
            request = _plain_request(scope, plan)
            if request is None:
                return None
            key, kind, store = request
            if self._lessons.get(kind, 0) >= MAX_LESSONS:
                return None
            # Refused before (or granted by the site's policy): the lean
            # path's reads would only come before the usual path's again.
            if (store.session_key, key) in self._guesses.declined:
                return None
            if kind not in self._middleware_headers and len(self._lessons) >= MAX_KINDS:
                return None
            granting = _granting()
            grantee = await loop_reads.aread_stored(
                granting.grantee(key, store, plan, self._guesses)
            )
            if grantee is None:
                return None
            headers = granting.answer_headers(grantee, plan, head=scope["method"] == "HEAD")
        except Exception:
            self._off = True
            logger.warning(
                "protected_media: the lean path failed; media requests take the usual path",
                exc_info=True,
            )
            return None
        if headers is None:
            return None
        signed = plan.store_internal_url is not None
        return Answer(kind, grantee.user_id, key, grantee.reason, headers, signed, started)

    def middleware_headers(self, answer: Answer) -> list[Header] | None:
        """What the middleware adds to ``answer``'s kind of request, once learned."""
        return self._middleware_headers.get(answer.kind)

    def learning(self, answer: Answer, send: ASGISendCallable) -> ASGISendCallable:
        """``send`` for the usual path's answer to the request ``answer`` is
        for: it learns the middleware's headers from that answer."""
        self._lessons.setdefault(answer.kind, 0)

        async def learn_and_send(message: ASGISendEvent) -> None:
            if message["type"] == "http.response.start":
                self._learn(answer, message["status"], list(message.get("headers", ())))
            await send(message)

        return learn_and_send

    def _learn(self, answer: Answer, status: int, headers: list[Header]) -> None:
        own = answer.headers
        added = headers[len(own) :]
        own_names = {name.lower() for name, _ in own}
        if status != 200 or any(name.lower() == b"set-cookie" for name, _ in added):
            # Not the grant the lean path read (the settings redirect this
            # kind of request, or the session changed meanwhile).
            self._lessons[answer.kind] = self._lessons.get(answer.kind, 0) + 1
            return
        if _comparable(headers[: len(own)], answer) != _comparable(own, answer) or any(
            name.lower() in own_names for name, _ in added
        ):
            self._off = True
            logger.warning(
                "protected_media: the lean path's headers differ from the view's "
                "(%r against %r); media requests take the usual path",
                own,
                headers,
            )
            return
        self._middleware_headers[answer.kind] = added


async def send_answer(
    answer: Answer, middleware_headers: list[Header], send: ASGISendCallable
) -> None:
    """The audit line, the counters and the answer, as the view gives them."""
    _granting().record_served(answer.reason, answer.user_id, answer.key, answer.started)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": answer.headers + middleware_headers,
            "trailers": False,
        }
    )
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def _plain_request(scope: HTTPScope, plan: Plan) -> tuple[str, Kind, DatabaseSessionStore] | None:
    """The media key, the kind of request and the session's store, where the
    request is as plain as the lean path takes; else None."""
    key = media_key(scope["path"])
    if key is None or not is_key(key):
        return None
    proxy_header = plan.proxy_header
    host = cookie = proxy_value = None
    for name, value in scope["headers"]:
        if name == b"host":
            if host is not None:
                return None
            host = value.decode("latin-1")
        elif name == b"cookie":
            if cookie is not None:
                return None
            cookie = value.decode("latin-1")
        elif proxy_header is not None and name.upper().replace(b"-", b"_") == proxy_header:
            if proxy_value is not None:
                return None
            proxy_value = value.decode("latin-1")
    if host is None or cookie is None:
        return None
    if not _allowed_host(host, plan):
        return None
    # As Django's request parses the header, and its store validates the key.
    session_key = parse_cookie(cookie.rstrip("; ")).get(plan.session_cookie)
    store = DatabaseSessionStore(session_key)
    if store.session_key is None:
        return None
    return key, (str(scope.get("scheme", "http")), proxy_value), store


def _allowed_host(host: str, plan: Plan) -> bool:
    """Whether Django's request would take ``host`` (the Host header) as one
    of ALLOWED_HOSTS. Those found allowed are remembered: a client cannot
    add to them beyond the site's own names."""
    if host in plan.allowed_seen:
        return True
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, plan.allowed_hosts):
        return False
    if len(plan.allowed_seen) < MAX_HOSTS:
        plan.allowed_seen.add(host)
    return True


@functools.cache
def _granting() -> ModuleType:
    # Imported on first use, once: it imports the models, and the entry point
    # is imported before Django's app registry is ready.
    from . import stored_grant

    return stored_grant


def _comparable(headers: list[Header], answer: Answer) -> list[Header]:
    # A signed redirect is made afresh for each answer: its name and place
    # must agree, its value cannot.
    if not answer.signed_target:
        return headers
    return [
        (name, b"" if name.lower() == b"x-accel-redirect" else value) for name, value in headers
    ]
