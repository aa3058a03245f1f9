"""The one refusal every client sees, whatever the reason (security rule 2)."""

from __future__ import annotations

from django.http import HttpResponseNotFound

from .conf import conf
from .headers import CACHE_CONTROL

NOT_FOUND_BODY = b"Not Found\n"


def not_found() -> HttpResponseNotFound:
    # A fresh response each time: it must never carry X-Accel-Redirect, and
    # nginx would serve the file whatever our status if it did.
    response = HttpResponseNotFound(NOT_FOUND_BODY, content_type="text/plain; charset=utf-8")
    response[CACHE_CONTROL] = conf.cache_control
    return response
