"""The gateway view: a thin adapter from a request to the decision core and back."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseNotAllowed
from django.views.decorators.csrf import csrf_exempt
from django_sendfile.backends import nginx as sendfile_nginx

from .backends import streaming
from .conf import NGINX_BACKEND, STREAMING_BACKEND, conf
from .decision import Found, Grant, Refusal, adecide
from .headers import CACHE_CONTROL
from .responses import database_answered, database_unavailable, not_found

ALLOWED_METHODS = ("GET", "HEAD")
# Where the ASGI entry point leaves what it already looked up for this request
# (protected_media.asgi), so that the view does not ask the database again.
PREFETCHED_ATTRIBUTE = "_protected_media_found"


# Exempt from CSRF so that a POST gets our 405 rather than the CSRF 403: nginx
# turns any method into GET on the redirect, so no method but GET and HEAD may
# ever reach the handoff, and this view changes nothing. Exempt from
# LoginRequiredMiddleware too: the view answers anonymous requests itself, as
# PROTECTED_MEDIA_ANONYMOUS says.
@csrf_exempt
@login_not_required
async def serve(request: HttpRequest, key: str) -> HttpResponseBase:
    if request.method not in ALLOWED_METHODS:
        # Not cacheable either: a shared cache may keep a 405 by heuristics.
        not_allowed = HttpResponseNotAllowed(ALLOWED_METHODS)
        not_allowed[CACHE_CONTROL] = conf.cache_control
        return not_allowed
    prefetched: Found | None = getattr(request, PREFETCHED_ATTRIBUTE, None)
    try:
        user = await request.auser()
        decision = await adecide(key=key, user=user, prefetched=prefetched)
    except DatabaseError as error:
        return database_unavailable(error)
    database_answered()
    if decision is Refusal.LOGIN:
        response: HttpResponseBase = redirect_to_login(request.get_full_path())
        response[CACHE_CONTROL] = conf.cache_control
        return response
    if isinstance(decision, Refusal):
        return not_found()
    return await ahandoff(request, decision)


async def ahandoff(request: HttpRequest, grant: Grant) -> HttpResponseBase:
    root = conf.root
    if root is None:
        raise ImproperlyConfigured("SENDFILE_ROOT must name the private media folder.")
    backend = conf.backend
    if backend == NGINX_BACKEND:
        # nginx serves the bytes: the view touches no file, and a missing one
        # is nginx's 404. The body is empty, so Content-Length must say 0.
        response: HttpResponse = sendfile_nginx.sendfile(request, root / grant.record.name)
        for name, value in grant.headers.items():
            response[name] = value
        response["Content-Length"] = "0"
        return response
    if backend == STREAMING_BACKEND:
        streamed = await streaming.asendfile(
            request, root, grant.record.name, headers=grant.headers
        )
        return streamed or not_found()
    raise ImproperlyConfigured(f"SENDFILE_BACKEND {backend!r} is not supported.")
