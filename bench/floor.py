"""Django's bare floor: one async view answering ``ok``, nothing else.

No middleware, no installed app, no database (and so no host check either):
what uvicorn and Django's ASGI handler cost per request at the least. The
benchmark serves it with uvicorn alone (``bench.floor_case``) and sets the
gateway's media requests beside it (gateway/floor).

Only uvicorn imports this module (``bench.floor:application``): it
configures Django's settings in code when imported.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.asgi import get_asgi_application
from django.http import HttpRequest, HttpResponse
from django.urls import path

BODY = b"ok\n"


async def ok(request: HttpRequest) -> HttpResponse:
    # With no CommonMiddleware to set it, the answer would go out chunked;
    # every answer the gateway's cases time carries its length.
    return HttpResponse(BODY, content_type="text/plain", headers={"Content-Length": str(len(BODY))})


urlpatterns = [path("", ok)]

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["127.0.0.1"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    # Never read by this view; set so that nothing fails on an empty one.
    SECRET_KEY=secrets.token_urlsafe(32),
)
application = get_asgi_application()
