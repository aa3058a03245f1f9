"""The gateway view: a thin adapter from a request to the decision core and back."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseNotAllowed
from django.views.decorators.csrf import csrf_exempt
from django_sendfile.backends import nginx as sendfile_nginx

from . import audit
from .backends import streaming
from .conf import NGINX_BACKEND, S3_STORAGE, STREAMING_BACKEND, conf
from .decision import Found, Grant, Reason, Refusal, adecide
from .headers import CACHE_CONTROL, REFERRER_POLICY
from .responses import database_answered, database_unavailable, not_found
from .shares import MASKED_TOKEN, SHARE, URL_PREFIX, adecide_share
from .storage import protected_storage
from .storage.accel import local_accel_target, store_accel_target

if TYPE_CHECKING:
    from .records import ShareLink

ALLOWED_METHODS = ("GET", "HEAD")
X_ACCEL_REDIRECT = "X-Accel-Redirect"
# The audit trail's name for a request by media key (shares.SHARE for links).
KEY = "key"
# Where the ASGI entry point leaves what it already looked up for this request
# (protected_media.asgi), so that the view does not ask the database again.
PREFETCHED_ATTRIBUTE = "_protected_media_found"
request_logger = logging.getLogger("django.request")


# Exempt from CSRF so that a POST gets our 405 rather than the CSRF 403: nginx
# turns any method into GET on the redirect, so no method but GET and HEAD may
# ever reach the handoff, and this view changes nothing. Exempt from
# LoginRequiredMiddleware too: the view answers anonymous requests itself, as
# PROTECTED_MEDIA_ANONYMOUS says.
@csrf_exempt
@login_not_required
async def serve(request: HttpRequest, key: str) -> HttpResponseBase:
    """A media URL: the file if the policy lets the user read it."""
    audit.started(request)
    if request.method not in ALLOWED_METHODS:
        return _method_not_allowed()
    prefetched: Found | None = getattr(request, PREFETCHED_ATTRIBUTE, None)
    user: Any = None
    try:
        user = await request.auser()
        decision = await adecide(key=key, user=user, prefetched=prefetched)
    except DatabaseError as error:
        return await database_refusal(request, error, kind=KEY, key=key, user=user)
    database_answered()
    return await _answer(request, decision, kind=KEY, key=key, user=user)


@csrf_exempt
@login_not_required
async def serve_shared(request: HttpRequest, token: str) -> HttpResponseBase:
    """A share link: the file if the link holds (``protected_media.shares``)."""
    audit.started(request)
    if request.method not in ALLOWED_METHODS:
        return _logged_without_token(_method_not_allowed())
    user: Any = None
    try:
        user = await request.auser()
        decision = await adecide_share(token=token, user=user)
    except DatabaseError as error:
        refusal = await database_refusal(request, error, kind=SHARE, key=None, user=user)
        return _logged_without_token(refusal)
    database_answered()
    outcome = decision.outcome
    response = await _answer(
        request,
        outcome,
        kind=SHARE,
        key=outcome.record.key if outcome.record is not None else None,
        user=user,
        share=decision.share,
    )
    if isinstance(outcome, Grant):
        # A page opened from the file must not carry the link on (nginx adds
        # it to the file too; this covers the fallback). Refusals stay the
        # same bytes as every other refusal.
        response[REFERRER_POLICY] = "no-referrer"
    return response


async def database_refusal(
    request: HttpRequest, error: DatabaseError, *, kind: str, key: str | None, user: Any
) -> HttpResponseBase:
    """The 503 while the database cannot answer, recorded like any refusal."""
    await audit.arecord(
        request, Refusal(Reason.DATABASE_UNAVAILABLE), kind=kind, key=key, user=user
    )
    return database_unavailable(error)


async def _answer(
    request: HttpRequest,
    decision: Grant | Refusal,
    *,
    kind: str,
    key: str | None,
    user: Any,
    share: ShareLink | None = None,
) -> HttpResponseBase:
    if isinstance(decision, Grant):
        served = await ahandoff(request, decision)
        if served is not None:
            await audit.arecord(request, decision, kind=kind, key=key, user=user, share=share)
            return served
        # The fallback found no file on disk for the record.
        decision = Refusal(Reason.FILE_MISSING, record=decision.record)
    await audit.arecord(request, decision, kind=kind, key=key, user=user, share=share)
    response: HttpResponseBase
    if decision.login:
        response = redirect_to_login(request.get_full_path())
        response[CACHE_CONTROL] = conf.cache_control
    else:
        response = not_found()
    # The audit line above stands for Django's "Not Found: <path>" warning,
    # which would copy a share link's token into the log.
    response._has_been_logged = True  # type: ignore[union-attr]
    return response


def _logged_without_token(response: HttpResponseBase) -> HttpResponseBase:
    # Django would log "Method Not Allowed: /media/s/<token>": the same line
    # with the token masked, as nginx's access log masks it. No request in
    # `extra`: a mailing handler would copy its path into the message.
    request_logger.log(
        logging.ERROR if response.status_code >= 500 else logging.WARNING,
        "%s: %s",
        response.reason_phrase,
        f"{conf.url}{URL_PREFIX}{MASKED_TOKEN}",
        extra={"status_code": response.status_code},
    )
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def _method_not_allowed() -> HttpResponseBase:
    # Not cacheable either: a shared cache may keep a 405 by heuristics.
    not_allowed = HttpResponseNotAllowed(ALLOWED_METHODS)
    not_allowed[CACHE_CONTROL] = conf.cache_control
    return not_allowed


async def ahandoff(request: HttpRequest, grant: Grant) -> HttpResponseBase | None:
    """The granted file's answer; None if the fallback finds no file on disk."""
    backend = conf.backend
    if conf.storage == S3_STORAGE:
        if backend != NGINX_BACKEND:
            # The fallback streams local files only (check E025).
            raise ImproperlyConfigured(
                "PROTECTED_MEDIA_STORAGE = 's3' is served by nginx only: "
                f"set SENDFILE_BACKEND = {NGINX_BACKEND!r}."
            )
        # nginx fetches the object from the store through its internal
        # location, with a URL signed for this request's method.
        method = "HEAD" if request.method == "HEAD" else "GET"
        presigned = protected_storage.presign(grant.record.name, method)
        response = HttpResponse()
        response[X_ACCEL_REDIRECT] = store_accel_target(presigned, conf.s3_internal_url)
        return _handed_off(response, grant)
    root = conf.root
    if root is None:
        raise ImproperlyConfigured("SENDFILE_ROOT must name the private media folder.")
    if backend == NGINX_BACKEND:
        internal_url = conf.internal_url
        target = local_accel_target(internal_url, grant.record.name) if internal_url else None
        if target is None:
            return _handed_off(sendfile_nginx.sendfile(request, root / grant.record.name), grant)
        response = HttpResponse()
        response[X_ACCEL_REDIRECT] = target
        return _handed_off(response, grant)
    if backend == STREAMING_BACKEND:
        streamed = await streaming.asendfile(
            request, root, grant.record.name, headers=grant.headers
        )
        return streamed
    raise ImproperlyConfigured(f"SENDFILE_BACKEND {backend!r} is not supported.")


def _handed_off(response: HttpResponse, grant: Grant) -> HttpResponse:
    # nginx serves the bytes: the view touches no file, and a missing one is
    # nginx's 404. The body is empty, so Content-Length must say 0.
    for name, value in grant.headers.items():
        response[name] = value
    response["Content-Length"] = "0"
    return response
