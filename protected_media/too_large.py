"""Uploads nginx refused for their size, answered in the site's words.

nginx refuses a body over ``client_max_body_size`` from its headers alone,
before the app reads a byte, and would answer with its own bare "413 Request
Entity Too Large" page. The config ``protected_media_nginx`` renders hands that
refusal to the app instead (``error_page 413``): a GET of the same URL with no
body and ``REFUSAL_HEADER`` set by nginx, which clears that header on every
other request, so a client cannot send it. ``refusal_middleware`` answers such
a request with the URLconf's ``handler413`` if it has one, as Django answers a
404 with ``handler404``, else with ``too_large``: JSON for a client that
prefers it, the site's ``413.html`` template, else one line of text. Whatever
the view's status, nginx sends 413.
"""

from __future__ import annotations

from collections.abc import Callable
from inspect import iscoroutinefunction
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.checks import CheckMessage, Warning
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import TemplateDoesNotExist, loader
from django.urls import get_resolver, get_urlconf
from django.utils.cache import patch_cache_control
from django.utils.decorators import sync_and_async_middleware
from django.utils.module_loading import import_string

from .conf import NGINX_BACKEND, conf
from .inspection import human_size
from .nginx.render import REFUSAL_HEADER

REFUSAL_META = "HTTP_" + REFUSAL_HEADER.upper().replace("-", "_")
TOO_LARGE = "too-large"
TEMPLATE = "413.html"
MIDDLEWARE = "protected_media.too_large.refusal_middleware"

View = Callable[[HttpRequest], HttpResponse]
# Django's next handler: a view's answer, or an awaitable of it.
GetResponse = Callable[[HttpRequest], Any]


def message() -> str:
    return (
        f"The upload is larger than the limit of {human_size(conf.max_upload_size)}; "
        "nothing was saved."
    )


def too_large(request: HttpRequest) -> HttpResponse:
    """The default answer: JSON for a client that prefers it, the site's
    ``413.html`` (given ``message`` and ``limit``), else plain text."""
    if request.get_preferred_type(["text/html", "application/json"]) == "application/json":
        response: HttpResponse = JsonResponse({"error": message()}, status=413)
    else:
        try:
            template = loader.get_template(TEMPLATE)
        except TemplateDoesNotExist:
            response = HttpResponse(
                f"{message()}\n", status=413, content_type="text/plain; charset=utf-8"
            )
        else:
            context = {"message": message(), "limit": human_size(conf.max_upload_size)}
            response = HttpResponse(template.render(context, request), status=413)
    patch_cache_control(response, private=True, no_store=True)
    return response


def refusal_view() -> View:
    """The URLconf's ``handler413`` (a view or its dotted path), else ``too_large``."""
    handler = getattr(get_resolver(get_urlconf()).urlconf_module, "handler413", too_large)
    return import_string(handler) if isinstance(handler, str) else handler


def refused_as_too_large(request: HttpRequest) -> bool:
    return request.META.get(REFUSAL_META) == TOO_LARGE


@sync_and_async_middleware
def refusal_middleware(get_response: GetResponse) -> GetResponse:
    """Answers nginx's hand-over of a refused upload; every other request
    passes untouched. Put it last in MIDDLEWARE: the others then see the
    request (the session, the user) and add their headers to the answer."""
    if iscoroutinefunction(get_response):

        async def answer_async(request: HttpRequest) -> HttpResponse:
            if refused_as_too_large(request):
                # A page's context may read the session and the user: a thread.
                return await sync_to_async(refusal_view())(request)
            response: HttpResponse = await get_response(request)
            return response

        return answer_async

    def answer(request: HttpRequest) -> HttpResponse:
        if refused_as_too_large(request):
            return refusal_view()(request)
        response: HttpResponse = get_response(request)
        return response

    return answer


# Media requests never carry the hand-over (nginx answers a body sent to a
# media URL itself): ProtectedMediaASGI may skip this without a warning.
refusal_middleware.protected_media_neutral = True  # type: ignore[attr-defined]


def check_refusal_middleware(**kwargs: Any) -> list[CheckMessage]:
    """With the nginx backend, the rendered config hands uploads it refused
    for their size to the app: without the middleware, each gets the page at
    its URL (a form, a listing) with status 413."""
    if conf.backend != NGINX_BACKEND or MIDDLEWARE in settings.MIDDLEWARE:
        return []
    return [
        Warning(
            "An upload nginx refuses for its size would be answered by the page at its "
            "URL, with status 413.",
            hint=f"Add {MIDDLEWARE!r} at the end of MIDDLEWARE; it answers in the site's "
            "words (handler413 in the root URLconf, a 413.html template, or JSON).",
            id="protected_media.W004",
        )
    ]
