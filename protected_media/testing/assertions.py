"""Assertions for the gateway's response contract, for a site's own tests.

They take a response from Django's test ``Client`` or ``AsyncClient``, or an
httpx response, and raise ``AssertionError`` listing every broken part of the
contract. In an async test, await the ``a``-prefixed twins: a streamed body
and a record lookup need the running event loop there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from email.headerregistry import BaseHeader
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol
from urllib.parse import parse_qs, quote, urlsplit

from django.conf import settings
from django.shortcuts import resolve_url

from ..conf import NGINX_BACKEND, S3_STORAGE, conf
from ..field_files import ProtectedFieldFileMixin
from ..headers import CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE
from ..names import served_name
from ..records import StoredFile
from ..responses import NOT_FOUND_BODY
from ..storage import protected_storage
from ..storage.accel import KEY_SAFE as PRESIGN_KEY_SAFE
from .bodies import abody, body, method

if TYPE_CHECKING:
    from django.db.models.fields.files import FieldFile

X_ACCEL_REDIRECT = "X-Accel-Redirect"
X_ACCEL_PREFIX = "x-accel-"
CONTENT_LENGTH = "Content-Length"
LOCATION = "Location"
# What a presigned query must carry for the store to accept it.
PRESIGNED_PARAMETERS = ("X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-Signature")

Disposition = Literal["inline", "attachment"]


class Response(Protocol):
    """What the assertions read: Django's test responses and httpx's have it."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


# -- served ---------------------------------------------------------------------


def assert_served(
    response: Response,
    file: StoredFile | FieldFile,
    *,
    disposition: Disposition | None = None,
    handoff: bool | None = None,
    content: bytes | None = None,
) -> None:
    """Assert that ``response`` serves ``file`` (a ``StoredFile`` record or a
    protected field's file) as the gateway must.

    ``handoff`` says which answer to expect: ``True`` for the empty response
    carrying ``X-Accel-Redirect`` that Django gives nginx, ``False`` for the
    bytes themselves (the streaming fallback, or any response that came through
    nginx); by default, what ``SENDFILE_BACKEND`` says. ``disposition``
    defaults to what ``PROTECTED_MEDIA_INLINE_TYPES`` decides for the file's
    type. The bytes are compared with ``content`` when given, else with the
    stored file under ``SENDFILE_ROOT``.
    """
    record = _record(file)
    expects_handoff = _expects_handoff(handoff)
    expected = None if expects_handoff else _expected_bytes(record, content)
    _check_served(response, record, body=body(response), expected=expected, disposition=disposition)


async def aassert_served(
    response: Response,
    file: StoredFile | FieldFile,
    *,
    disposition: Disposition | None = None,
    handoff: bool | None = None,
    content: bytes | None = None,
) -> None:
    """``assert_served`` for async tests."""
    record = await _arecord(file)
    expects_handoff = _expects_handoff(handoff)
    expected = (
        None
        if expects_handoff
        else await asyncio.to_thread(_expected_bytes, record, content, conf.root)
    )
    _check_served(
        response, record, body=await abody(response), expected=expected, disposition=disposition
    )


def redirect_target(record: StoredFile) -> str:
    """The ``X-Accel-Redirect`` value for a record: the internal prefix and the
    stored name, percent-encoded exactly once, as nginx decodes it once.

    With ``PROTECTED_MEDIA_STORAGE = "s3"``, the value's path: the store's
    internal prefix, the bucket and the name escaped twice (nginx decodes
    once, the store checks the signature against the escaped path); the
    value goes on with "?" and the presigned query, which changes with time.
    """
    if conf.storage == S3_STORAGE:
        signed_path = quote(f"{conf.s3_bucket}/{record.name}", safe=PRESIGN_KEY_SAFE)
        return f"{conf.s3_internal_url}{quote(signed_path, safe='/')}"
    internal = conf.internal_url
    if not internal:
        raise AssertionError("SENDFILE_URL is not set: there is no internal location.")
    return quote(f"{internal.rstrip('/')}/{record.name}", safe="/")


def _target_problems(value: str | None, record: StoredFile) -> list[str]:
    target = redirect_target(record)
    if conf.storage != S3_STORAGE:
        return [] if value == target else [f"X-Accel-Redirect {value!r}, expected {target!r}"]
    path, _, query = (value or "").partition("?")
    signed = parse_qs(query)
    missing = [name for name in PRESIGNED_PARAMETERS if name not in signed]
    if path != target or missing:
        # The signature is a secret for a minute: never in a test's output.
        return [f"X-Accel-Redirect to {path!r}, expected {target!r} with a presigned query"]
    return []


def _check_served(
    response: Response,
    record: StoredFile,
    *,
    body: bytes,
    expected: bytes | None,
    disposition: Disposition | None,
) -> None:
    # expected is None for the handoff: Django sends no byte of the file.
    headers = response.headers
    problems: list[str] = []
    if response.status_code != 200:
        problems.append(f"status {response.status_code}, expected 200")
    problems += _content_type_problems(headers.get(CONTENT_TYPE), record.content_type)
    problems += _private_problems(headers.get(CACHE_CONTROL))
    wanted = disposition or ("inline" if record.content_type in conf.inline_types else "attachment")
    problems += _disposition_problems(
        headers.get(CONTENT_DISPOSITION),
        wanted,
        served_name(record.original_name, content_type=record.content_type),
    )
    if expected is None:
        problems += _target_problems(headers.get(X_ACCEL_REDIRECT), record)
        if headers.get(CONTENT_LENGTH) != "0":
            problems.append(f"Content-Length {headers.get(CONTENT_LENGTH)!r}, expected '0'")
        if body:
            problems.append(f"a body of {len(body)} bytes on the handoff, expected none")
        if "X-Accel-Expires" in headers:
            # It would override Cache-Control: private in nginx's own cache.
            problems.append("X-Accel-Expires is set")
    else:
        problems += _accel_problems(headers)
        head = method(response) == "HEAD"
        if body != (b"" if head else expected):
            problems.append(
                f"a body of {len(body)} bytes that is not the stored file's {len(expected)}"
            )
        length = headers.get(CONTENT_LENGTH)
        if length is not None and length != str(len(expected)):
            problems.append(f"Content-Length {length!r}, expected '{len(expected)}'")
    _raise(problems, "served")


# -- refused --------------------------------------------------------------------


def assert_refused(response: Response, *, login: bool = False, next_url: str | None = None) -> None:
    """Assert that ``response`` is the gateway's one refusal: the 404 that
    missing, forbidden and malformed requests share, or with ``login=True``
    the redirect to ``LOGIN_URL`` that anonymous requests get (its ``next``
    must equal ``next_url`` when given)."""
    _check_refused(response, body(response), login=login, next_url=next_url)


async def aassert_refused(
    response: Response, *, login: bool = False, next_url: str | None = None
) -> None:
    """``assert_refused`` for async tests."""
    _check_refused(response, await abody(response), login=login, next_url=next_url)


def _check_refused(response: Response, body: bytes, *, login: bool, next_url: str | None) -> None:
    headers = response.headers
    problems = _accel_problems(headers)
    if CONTENT_DISPOSITION in headers:
        problems.append("a Content-Disposition header on a refusal")
    problems += _private_problems(headers.get(CACHE_CONTROL))
    if login:
        if response.status_code != 302:
            problems.append(f"status {response.status_code}, expected 302 to the login page")
        problems += _login_problems(headers.get(LOCATION), next_url)
        if body:
            problems.append(f"a body of {len(body)} bytes on the redirect, expected none")
    else:
        if response.status_code != 404:
            problems.append(f"status {response.status_code}, expected 404")
        wanted = b"" if method(response) == "HEAD" else NOT_FOUND_BODY
        if body != wanted:
            problems.append(f"body {body[:80]!r}, expected {wanted!r}")
        problems += _content_type_problems(headers.get(CONTENT_TYPE), "text/plain")
    _raise(problems, "refused")


def _login_problems(location: str | None, next_url: str | None) -> list[str]:
    if location is None:
        return ["no Location header"]
    login_url = urlsplit(resolve_url(settings.LOGIN_URL))
    got = urlsplit(location)
    if got[:3] != login_url[:3]:
        return [f"Location {location!r} is not the login page {login_url.geturl()!r}"]
    nexts = parse_qs(got.query).get("next", [])
    if len(nexts) != 1:
        return [f"Location {location!r} carries no single next parameter"]
    if next_url is not None and nexts[0] != next_url:
        return [f"next={nexts[0]!r}, expected {next_url!r}"]
    return []


# -- the parts ------------------------------------------------------------------


def _parsed(name: str, value: str) -> tuple[EmailMessage, BaseHeader | None]:
    message = EmailMessage()
    try:
        message[name] = value
    except ValueError:
        return message, None
    header = message[name]
    return message, header if isinstance(header, BaseHeader) else None


def _content_type_problems(value: str | None, expected: str) -> list[str]:
    if value is None:
        return ["no Content-Type header"]
    message, header = _parsed(CONTENT_TYPE, value)
    if header is None or header.defects:
        return [f"Content-Type {value!r} does not parse"]
    # Text goes out as validated UTF-8 and says so; nothing else has parameters.
    wanted_params = {"charset": "utf-8"} if expected.startswith("text/") else {}
    params = dict((message.get_params() or [])[1:])
    if message.get_content_type() != expected or params != wanted_params:
        return [f"Content-Type {value!r}, expected {expected!r} with parameters {wanted_params}"]
    return []


def _disposition_problems(value: str | None, disposition: str, filename: str) -> list[str]:
    if value is None:
        return ["no Content-Disposition header"]
    message, header = _parsed(CONTENT_DISPOSITION, value)
    if header is None or header.defects:
        return [f"Content-Disposition {value!r} does not parse"]
    problems = []
    if message.get_content_disposition() != disposition:
        problems.append(f"Content-Disposition {value!r} is not {disposition}")
    if message.get_filename() != filename:
        problems.append(
            f"Content-Disposition filename {message.get_filename()!r}, expected {filename!r}"
        )
    return problems


def _private_problems(value: str | None) -> list[str]:
    directives = {part.split("=")[0].strip().lower() for part in (value or "").split(",")}
    if "private" not in directives or "public" in directives:
        # A shared cache would otherwise keep one user's file for the next.
        return [f"Cache-Control {value!r} is not private"]
    return []


def _accel_problems(headers: Mapping[str, str]) -> list[str]:
    found = sorted(name for name in headers if name.lower().startswith(X_ACCEL_PREFIX))
    return [f"X-Accel headers present: {', '.join(found)}"] if found else []


def _raise(problems: list[str], what: str) -> None:
    if problems:
        raise AssertionError(
            f"the response is not the gateway's {what} answer:\n- " + "\n- ".join(problems)
        )


# -- inputs ---------------------------------------------------------------------


def _expects_handoff(handoff: bool | None) -> bool:
    return conf.backend == NGINX_BACKEND if handoff is None else handoff


def _record(file: StoredFile | FieldFile) -> StoredFile:
    if isinstance(file, StoredFile):
        return file
    if isinstance(file, ProtectedFieldFileMixin):
        record = file.record
    else:
        record = StoredFile.objects.filter(name=file.name).first()
    return _found(record, file)


async def _arecord(file: StoredFile | FieldFile) -> StoredFile:
    if isinstance(file, StoredFile):
        return file
    record = file.__dict__.get("record")
    if record is None:
        record = await StoredFile.objects.filter(name=file.name).afirst()
    return _found(record, file)


def _found(record: StoredFile | None, file: FieldFile) -> StoredFile:
    if record is None:
        raise AssertionError(f"{file.name!r} has no StoredFile record: not a protected file")
    return record


def _expected_bytes(record: StoredFile, content: bytes | None, root: Path | None = None) -> bytes:
    if content is not None:
        return content
    if conf.storage == S3_STORAGE:
        with protected_storage.open(record.name) as stored:
            return bytes(stored.read())
    root = root or conf.root
    if root is None:
        raise AssertionError("SENDFILE_ROOT is not set: pass content= to compare the bytes")
    return (root / record.name).read_bytes()
