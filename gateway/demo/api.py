"""A small JSON API for the caller's own files, with session auth and CSRF."""

from __future__ import annotations

from uuid import UUID

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.defaults import bad_request as django_bad_request

from protected_media.conf import conf
from protected_media.inspection import UploadRefused
from protected_media.models import ProtectedFile, prefetch_records

UNREADABLE_UPLOAD = "The request could not be read as a file upload."


def error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def describe(item: ProtectedFile) -> dict[str, object]:
    return {
        "id": str(item.pk),
        "name": item.original_name,
        "size": item.size,
        "content_type": item.content_type,
        "url": item.file.url,
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
