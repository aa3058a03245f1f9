"""A small JSON API for the caller's own files and their share links, with session auth and CSRF."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable
from datetime import timedelta
from http import HTTPStatus
from typing import Any
from uuid import UUID

from django.core.exceptions import (
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFilesSent,
    ValidationError,
)
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.middleware.csrf import REASON_NO_CSRF_COOKIE
from django.template import loader
from django.views.defaults import bad_request as django_bad_request
from django.views.defaults import page_not_found as django_page_not_found
from django.views.defaults import permission_denied as django_permission_denied
from django.views.defaults import server_error as django_server_error

from protected_media.audit_grants import acting
from protected_media.conf import conf
from protected_media.disconnects import stop_on_disconnect
from protected_media.grants import grants_of, prefetch_grants
from protected_media.inspection import UploadRefused
from protected_media.models import ProtectedFile, ShareLink, StoredFile, prefetch_records
from protected_media.names import served_name
from protected_media.responses import database_unavailable, not_found
from protected_media.shares import create_share, revoke, share_url
from protected_media.too_large import message as too_large_message

from .sharing import AUDIENCES, owned_shares

logger = logging.getLogger("django.request")
UNREADABLE_UPLOAD = "The request could not be read as a file upload."
UNREADABLE_FIELDS = "Send the fields as a form or as a JSON object."
SECONDS = re.compile(r"[0-9]{1,12}")
# A share's fields fit in a few dozen bytes. A JSON body is read whole and
# parsed recursively, so its size and its nesting are bounded before parsing:
# "[" repeated 100,000 times would otherwise end in a RecursionError (a 500).
MAX_JSON_BODY = 16 * 1024
MAX_JSON_DEPTH = 8
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# A JSON string, escapes included: brackets inside one do not nest.
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")


def error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def upload_refusal(refusal: UploadRefused) -> JsonResponse:
    response = error(refusal.message, refusal.status)
    if refusal.retry_after is not None:
        # The store is out of reach for now: when to send the file again.
        response["Retry-After"] = str(refusal.retry_after)
    return response


def describe(item: ProtectedFile) -> dict[str, object]:
    return {
        "id": str(item.pk),
        # The name the file is served under, with its type's extension.
        "name": served_name(item.original_name, content_type=item.content_type),
        "size": item.size,
        "content_type": item.content_type,
        "url": item.file.url,
        # The smallest thumbnail, for images larger than it; else null.
        "thumbnail_url": item.file.thumbnail_url(),
        # Everyone else who may read it, whoever granted it.
        "shared_with": grants_of(item).as_json(),
    }


@stop_on_disconnect  # a client that hangs up mid-upload gets nothing stored
def files(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD", "POST"):
        response = error("Method not allowed.", 405)
        response["Allow"] = "GET, HEAD, POST"
        return response
    if not request.user.is_authenticated:
        return error("Sign in first.", 403)
    if request.method == "POST":
        return upload(request)
    owned = prefetch_grants(
        prefetch_records(list(ProtectedFile.objects.filter(owner=request.user)))
    )
    return JsonResponse({"files": [describe(item) for item in owned]})


def upload(request: HttpRequest) -> HttpResponse:
    limit = conf.max_upload_size
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return error("Bad Content-Length.", 400)
    # Multipart framing adds a few hundred bytes; anything far past the limit
    # is refused without reading the file. (nginx refuses it first in a
    # deployment; CsrfViewMiddleware has already parsed the form by now.)
    if declared > limit + 64 * 1024:
        return error(f"The file is larger than the limit of {limit} bytes.", 413)
    try:
        sent = request.FILES.getlist("file")
    except (RequestDataTooBig, TooManyFilesSent, MultiPartParserError, SuspiciousOperation):
        return error(UNREADABLE_UPLOAD, 400)
    if len(sent) != 1:
        return error("Send exactly one file in the multipart field 'file'.", 400)
    item = ProtectedFile(owner=request.user)
    try:
        item.file.save(sent[0].name or "", sent[0], save=False)
    except UploadRefused as refusal:
        return upload_refusal(refusal)
    item.save()
    return JsonResponse(describe(item), status=201)


def file_detail(request: HttpRequest, file_id: UUID) -> HttpResponse:
    if not request.user.is_authenticated:
        return error("Sign in first.", 403)
    item = ProtectedFile.objects.filter(pk=file_id, owner=request.user).first()
    if item is None:
        return error("Not found.", 404)
    if request.method == "DELETE":
        item.delete()
        return HttpResponse(status=204)
    if request.method in ("GET", "HEAD"):
        return JsonResponse(describe(item))
    response = error("Method not allowed.", 405)
    response["Allow"] = "GET, HEAD, DELETE"
    return response


def file_shares(request: HttpRequest, file_id: UUID) -> HttpResponse:
    if request.method not in ("GET", "HEAD", "POST"):
        response = error("Method not allowed.", 405)
        response["Allow"] = "GET, HEAD, POST"
        return response
    if not request.user.is_authenticated:
        return error("Sign in first.", 403)
    item = ProtectedFile.objects.filter(pk=file_id, owner=request.user).first()
    record = item.record if item is not None else None
    if record is None:
        return error("Not found.", 404)
    if request.method == "POST":
        return share(request, record)
    active = owned_shares(request.user).filter(record=record)
    return JsonResponse({"shares": [describe_share(link) for link in active]})


def share(request: HttpRequest, record: StoredFile) -> HttpResponse:
    try:
        fields = share_fields(request)
    except BadBody as refusal:
        return error(refusal.message, refusal.status)
    try:
        lifetime = parse_lifetime(fields.get("lifetime"))
    except ValueError:
        maximum = int(conf.share_max_lifetime.total_seconds())
        default = int(conf.share_lifetime.total_seconds())
        return error(
            f"'lifetime' must be a whole number of seconds from 1 to {maximum} "
            f"(leave it out for {default}).",
            400,
        )
    audience = fields.get("audience")
    if audience is None or audience == "":
        audience = ShareLink.Audience.ANYONE
    # Any other value that is not one of the names, a JSON 0, [] or {} included.
    if not isinstance(audience, str) or audience not in AUDIENCES:
        return error(f"'audience' must be one of: {', '.join(AUDIENCES)}.", 400)
    try:
        link, token = create_share(
            record, created_by=request.user, lifetime=lifetime, audience=audience
        )
    except ValidationError as refusal:
        # The configured default lifetime over the maximum.
        return error(" ".join(refusal.messages), 400)
    return JsonResponse(
        {"url": request.build_absolute_uri(share_url(token)), **describe_share(link)}, status=201
    )


def share_detail(request: HttpRequest, share_id: UUID) -> HttpResponse:
    if not request.user.is_authenticated:
        return error("Sign in first.", 403)
    link = owned_shares(request.user).filter(pk=share_id).first()
    if link is None:
        return error("Not found.", 404)
    if request.method == "DELETE":
        with acting(request.user):
            revoke(link)
        return HttpResponse(status=204)
    response = error("Method not allowed.", 405)
    response["Allow"] = "DELETE"
    return response


def describe_share(link: ShareLink) -> dict[str, object]:
    # JsonResponse's encoder writes datetimes in ISO 8601, UTC as "Z".
    return {
        "id": str(link.pk),
        "created": link.created,
        "expires": link.expires,
        "audience": link.audience,
    }


class BadBody(Exception):
    """A request body the API cannot read; ``status`` is the answer for it."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def share_fields(request: HttpRequest) -> dict[str, Any]:
    """The fields of a form or a JSON object (an empty body has none);
    BadBody when the body is neither, or too large to read."""
    try:
        if request.content_type in FORM_TYPES:
            return {name: request.POST.get(name) for name in ("lifetime", "audience")}
        body = request.body
    except RequestDataTooBig as error:
        raise BadBody(f"The body is larger than {MAX_JSON_BODY} bytes.", 413) from error
    except (TooManyFilesSent, MultiPartParserError, SuspiciousOperation) as error:
        raise BadBody(UNREADABLE_FIELDS) from error
    if request.content_type == "application/json":
        return parse_json_object(body)
    if body:
        raise BadBody(UNREADABLE_FIELDS)
    return {}


def parse_json_object(body: bytes) -> dict[str, Any]:
    """A JSON object from a body of bounded size, nesting and encoding; BadBody
    with what is wrong otherwise."""
    # The nesting first, in as much as is ever parsed: "[" repeated 100,000
    # times is too deep in its first bytes, whatever its length.
    head = body[:MAX_JSON_BODY].decode("utf-8", errors="replace")
    if json_depth(head) > MAX_JSON_DEPTH:
        raise BadBody(f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels.")
    if len(body) > MAX_JSON_BODY:
        raise BadBody(f"The body is larger than {MAX_JSON_BODY} bytes.", 413)
    try:
        # RFC 8259: JSON between systems is UTF-8. json.loads would guess
        # UTF-16 or UTF-32 from the bytes.
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadBody("The body is not valid UTF-8.") from error
    try:
        value = json.loads(text or "{}", parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:
        raise BadBody("The body is not valid JSON.") from error
    if not isinstance(value, dict):
        raise BadBody("Send the fields as a JSON object.")
    return value


def json_depth(text: str) -> int:
    """How deep the arrays and objects of ``text`` nest, counted without
    parsing (an upper bound for text that is not JSON)."""
    depth = deepest = 0
    for char in _NOT_A_BRACKET.sub("", _JSON_STRING.sub("", text)):
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _no_constant(name: str) -> object:
    # NaN and Infinity are Python's extensions, not JSON.
    raise ValueError(name)


def parse_lifetime(value: object) -> timedelta | None:
    """The lifetime asked for, or None for the default; ValueError unless it
    is a whole number of seconds within the maximum."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and SECONDS.fullmatch(value):
        value = int(value)
    # A JSON true is an int to Python, not to the client who sent it.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(value)
    if not 0 < value <= conf.share_max_lifetime.total_seconds():
        raise ValueError(value)
    return timedelta(seconds=value)


def site_page(render: Callable[[], HttpResponse], status: int) -> HttpResponse:
    """One of the site's error pages, or the status's plain reason if the page
    itself cannot render (a static manifest not collected yet, a broken
    template): an error page must never turn into a second error."""
    try:
        return render()
    except Exception:
        logger.exception("The %d page could not be rendered", status)
        return HttpResponse(
            f"{HTTPStatus(status).phrase}\n",
            status=status,
            content_type="text/plain; charset=utf-8",
        )


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a database that cannot answer now (down, or its connection
    pool exhausted under load) is a 503 with Retry-After, logged once per
    outage, not a 500 with a traceback per request; JSON for the API."""
    raised = sys.exc_info()[1]
    if not isinstance(raised, DatabaseError):
        return site_page(lambda: django_server_error(request, "demo/500.html"), 500)
    response = database_unavailable(raised)
    if request.path.startswith("/api/"):
        busy = error("The database cannot answer right now; try again in a few seconds.", 503)
        for header in ("Retry-After", "Cache-Control"):
            busy[header] = response[header]
        response = busy
    elif not request.path.startswith(conf.url):
        # The site's page, rendered without the request: its user and
        # session are in the database that cannot answer.
        page = site_page(
            lambda: HttpResponse(loader.render_to_string("demo/503.html"), status=503), 503
        )
        for header in ("Retry-After", "Cache-Control"):
            page[header] = response[header]
        response = page
    # database_unavailable() logged it, once for the whole outage.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    # CsrfViewMiddleware reads request.POST on every POST, so a malformed or
    # oversized form fails there, before the view: answer the API in JSON.
    if request.path.startswith("/api/"):
        response: HttpResponse = error(UNREADABLE_UPLOAD, 400)
    else:
        response = site_page(lambda: django_bad_request(request, exception, "demo/400.html"), 400)
    if not isinstance(exception, SuspiciousOperation):
        # Django would log a traceback and the path for every garbled body a
        # client sends (and a share link's path holds its token): one line,
        # naming neither. Suspicious operations keep django.security's record.
        logger.warning("Bad request: %s", type(exception).__name__)
        response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: JSON for the API, the media's one plain 404 under its
    prefix (the same bytes whether or not a file exists), the site's page
    elsewhere."""
    if request.path.startswith("/api/"):
        return error("Not found.", 404)
    if request.path.startswith(conf.url):
        return not_found()
    return site_page(lambda: django_page_not_found(request, exception, "demo/404.html"), 404)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith("/api/"):
        return error("Not allowed.", 403)
    return site_page(lambda: django_permission_denied(request, exception, "demo/403.html"), 403)


def too_large(request: HttpRequest) -> HttpResponse:
    """handler413 (protected_media.too_large): an upload nginx refused for its
    size, in JSON for the API and on the site's page elsewhere."""
    if request.path.startswith("/api/"):
        return error(too_large_message(), 413)
    return site_page(
        lambda: HttpResponse(
            loader.render_to_string("demo/413.html", {"message": too_large_message()}, request),
            status=413,
        ),
        413,
    )


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if request.path.startswith("/api/"):
        return error(
            "CSRF verification failed: send the csrftoken cookie's value "
            "in the X-CSRFToken header.",
            403,
        )
    # Django gives a site's own CSRF template no context: say which case it is.
    context = {"no_cookie": reason == REASON_NO_CSRF_COOKIE}
    return site_page(
        lambda: HttpResponseForbidden(
            loader.render_to_string("demo/403_csrf.html", context, request)
        ),
        403,
    )
