"""A small JSON API for the caller's own files and their share links, with session auth and CSRF."""

from __future__ import annotations

import json
import re
import sys
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.core.exceptions import (
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFilesSent,
    ValidationError,
)
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.defaults import bad_request as django_bad_request
from django.views.defaults import server_error as django_server_error

from protected_media.conf import conf
from protected_media.inspection import UploadRefused
from protected_media.models import ProtectedFile, ShareLink, StoredFile, prefetch_records
from protected_media.responses import database_unavailable
from protected_media.shares import create_share, revoke, share_url

from .sharing import AUDIENCES, owned_shares

UNREADABLE_UPLOAD = "The request could not be read as a file upload."
UNREADABLE_FIELDS = "Send the fields as a form or as a JSON object."
SECONDS = re.compile(r"[0-9]{1,12}")


def error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def describe(item: ProtectedFile) -> dict[str, object]:
    return {
        "id": str(item.pk),
        "name": item.original_name,
        "size": item.size,
        "content_type": item.content_type,
        "url": item.file.url,
        # The smallest thumbnail, for images larger than it; else null.
        "thumbnail_url": item.file.thumbnail_url(),
    }


def files(request: HttpRequest) -> HttpResponse:
    if request.method not in ("GET", "HEAD", "POST"):
        response = error("Method not allowed.", 405)
        response["Allow"] = "GET, HEAD, POST"
        return response
    if not request.user.is_authenticated:
        return error("Sign in first.", 403)
    if request.method == "POST":
        return upload(request)
    owned = prefetch_records(list(ProtectedFile.objects.filter(owner=request.user)))
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
        return error(refusal.message, refusal.status)
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
    fields = share_fields(request)
    if fields is None:
        return error(UNREADABLE_FIELDS, 400)
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
    audience = fields.get("audience") or ShareLink.Audience.ANYONE
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


def share_fields(request: HttpRequest) -> dict[str, Any] | None:
    """The fields of a form or a JSON object; None when the body is neither."""
    if request.content_type == "application/json":
        try:
            fields = json.loads(request.body or b"{}")
        except (RequestDataTooBig, ValueError):
            return None
        return fields if isinstance(fields, dict) else None
    try:
        return {name: request.POST.get(name) for name in ("lifetime", "audience")}
    except (RequestDataTooBig, TooManyFilesSent, MultiPartParserError, SuspiciousOperation):
        return None


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


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: a database that cannot answer now (down, or its connection
    pool exhausted under load) is a 503 with Retry-After, logged once per
    outage, not a 500 with a traceback per request; JSON for the API."""
    raised = sys.exc_info()[1]
    if not isinstance(raised, DatabaseError):
        return django_server_error(request)
    response = database_unavailable(raised)
    if request.path.startswith("/api/"):
        busy = error("The database cannot answer right now; try again in a few seconds.", 503)
        for header in ("Retry-After", "Cache-Control"):
            busy[header] = response[header]
        response = busy
    # database_unavailable() logged it, once for the whole outage.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    # CsrfViewMiddleware reads request.POST on every POST, so a malformed or
    # oversized form fails there, before the view: answer the API in JSON.
    if request.path.startswith("/api/"):
        return error(UNREADABLE_UPLOAD, 400)
    return django_bad_request(request, exception)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if request.path.startswith("/api/"):
        return error(
            "CSRF verification failed: send the csrftoken cookie's value "
            "in the X-CSRFToken header.",
            403,
        )
    return django_csrf_failure(request, reason)
