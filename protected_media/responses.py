"""The answers that are not a file: the one refusal every client sees,
whatever the reason (security rule 2), and the one for a database that
cannot answer."""

from __future__ import annotations

import logging

from django.http import HttpResponse, HttpResponseNotFound

from .conf import conf
from .headers import CACHE_CONTROL

NOT_FOUND_BODY = b"Not Found\n"
UNAVAILABLE_BODY = b"Service Unavailable\n"
# Seconds a client should wait before asking again while the database is down.
RETRY_AFTER = "5"

logger = logging.getLogger("protected_media")
_database_down = False


def not_found() -> HttpResponseNotFound:
    # A fresh response each time: it must never carry X-Accel-Redirect, and
    # nginx would serve the file whatever our status if it did.
    response = HttpResponseNotFound(NOT_FOUND_BODY, content_type="text/plain; charset=utf-8")
    response[CACHE_CONTROL] = conf.cache_control
    return response


def database_unavailable(error: Exception) -> HttpResponse:
    """503 while the database cannot answer: no file, no traceback, and one
    log line per outage rather than one per request."""
    global _database_down
    if not _database_down:
        _database_down = True
        logger.error("protected_media: the database cannot answer (%s); media answers 503", error)
    response = HttpResponse(UNAVAILABLE_BODY, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = RETRY_AFTER
    response[CACHE_CONTROL] = conf.cache_control
    return response


def database_answered() -> None:
    global _database_down
    if _database_down:
        _database_down = False
        logger.warning("protected_media: the database answers again")
