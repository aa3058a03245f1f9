"""Invariants of the pure core, for any input Hypothesis can find.

The redirect target is built exactly as the view builds it (``ahandoff`` with
the nginx backend), the names come from the sanitiser, and Content-Disposition
is read back by a real header parser (the ``email`` package), never compared
as a string.
"""

from __future__ import annotations

import base64
import email.policy
import mimetypes
import unicodedata
import uuid
from datetime import timedelta
from email.message import EmailMessage
from urllib.parse import unquote, unquote_to_bytes

import filetype
from asgiref.sync import async_to_sync
from django.core import signing
from django.test import RequestFactory
from django.utils import timezone
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from protected_media import shares
from protected_media.conf import DEFAULT_INLINE_TYPES, conf
from protected_media.decision import Grant, Reason
from protected_media.headers import CONTENT_DISPOSITION, media_headers
from protected_media.models import ShareLink, StoredFile
from protected_media.names import (
    MAX_SERVED_NAME_BYTES,
    UNSAFE_EXTENSIONS,
    extensions_for,
    is_safe_stored_name,
    sanitize_original_name,
    served_name,
)
from protected_media.views import ahandoff

# Characters that split, end or escape a path or a header: the ones an
# attacker would put in a name. Surrogates are left out: a database column
# holds UTF-8 text, and no stored name can contain one.
HOSTILE = "?#%&;+=/\\.\r\n\x00\t \"'<>`$@:~\u202e\u2215\uff0e\uff0f"
CHARACTERS = st.one_of(
    st.sampled_from(HOSTILE),
    st.characters(exclude_categories=("Cs",)),
)
SEGMENTS = st.one_of(
    st.sampled_from(["..", ".", "...", "@named", "%2e%2e", "%2F", "a?b", "#x", "\x00"]),
    st.text(CHARACTERS, min_size=1, max_size=20),
)
STORED_NAMES = st.lists(SEGMENTS, min_size=1, max_size=5).map("/".join)
CONTENT_TYPES = st.sampled_from(
    [*DEFAULT_INLINE_TYPES, "application/pdf", "image/svg+xml", "text/html", "application/zip"]
)
# Names that the sanitiser must clean, beside whatever Hypothesis invents.
ORIGINAL_NAMES = st.one_of(
    st.text(CHARACTERS, max_size=300),
    st.text(max_size=300),
)
SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def redirect_target(name: str) -> str:
    record = StoredFile(key="k" * 22, name=name, original_name="f", size=1, content_type="x/y")
    grant = Grant(record=record, obj=record, headers={"Cache-Control": "private, no-store"})
    response = async_to_sync(ahandoff)(RequestFactory().get("/media/x"), grant)
    assert response["Content-Length"] == "0"
    return str(response["X-Accel-Redirect"])


def parse_disposition(value: str) -> tuple[str, list[tuple[str, object]], str | None, list[str]]:
    """(disposition, filename parameters, filename, defects) as a client's parser reads them."""
    parsed = email.policy.HTTP.header_factory(CONTENT_DISPOSITION, value)
    message = EmailMessage(policy=email.policy.HTTP)
    message[CONTENT_DISPOSITION] = value
    params = message.get_params(header=CONTENT_DISPOSITION) or []
    filenames = [(key, item) for key, item in params[1:] if key.lower().startswith("filename")]
    defects = [type(defect).__name__ for defect in parsed.defects]
    return params[0][0], filenames, message.get_filename(), defects


# -- the X-Accel-Redirect target -----------------------------------------------------


@SETTINGS
@given(name=STORED_NAMES)
@example(name="files/100%.txt")
@example(name="files/a?b.pdf")
@example(name="files/#frag.txt")
@example(name="odd/..%2F..%2Fsecret")
@example(name="@named/x")
@example(name="files/\u00e9t\u00e9 \u65e5\u672c.txt")
def test_redirect_target_stays_under_the_internal_prefix(name: str) -> None:
    # Names the decision refuses never reach the handoff.
    assume(is_safe_stored_name(name))
    target = redirect_target(name)
    prefix = conf.internal_url
    assert prefix is not None and prefix.endswith("/")
    assert target.startswith(prefix)
    assert not target.startswith("@")
    for forbidden in ("?", "#", "\r", "\n", "\x00"):
        assert forbidden not in target
    assert target.isascii()
    assert ".." not in target.split("/")
    assert ".." not in unquote(target).split("/")
    # nginx percent-decodes the value exactly once: that gives the stored name back.
    assert unquote_to_bytes(target) == (prefix + name).encode()
    assert unquote(target, errors="strict") == prefix + name


@SETTINGS
@given(name=STORED_NAMES)
@example(name="../secret_key")
@example(name="files/../../x")
@example(name="/etc/passwd")
@example(name="files//x")
@example(name="a\\..\\b")
@example(name="x\r\nX-Accel-Redirect: /_protected/y")
def test_names_that_could_leave_the_root_are_not_safe(name: str) -> None:
    parts = name.split("/")
    leaves = name.startswith("/") or any(part in ("", ".", "..") for part in parts)
    splits = any(ch in name for ch in "\x00\r\n\\")
    if leaves or splits:
        assert not is_safe_stored_name(name)


# -- the original name -----------------------------------------------------------------


@SETTINGS
@given(name=ORIGINAL_NAMES)
@example(name="")
@example(name=".")
@example(name="..")
@example(name=" . ")
@example(name="e\u0301te\u0301.txt")
@example(name="new\r\nline.txt")
@example(name="C:\\Users\\me\\..")
@example(name="x" * 300 + ".pdf")
@example(name="." * 300 + "x")
def test_sanitiser_is_idempotent_and_never_yields_a_path(name: str) -> None:
    cleaned = sanitize_original_name(name)
    assert sanitize_original_name(cleaned) == cleaned
    assert cleaned not in ("", ".", "..")
    assert cleaned.strip(".") != ""
    assert "/" not in cleaned and "\\" not in cleaned
    assert not any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in cleaned)
    assert unicodedata.normalize("NFC", cleaned) == cleaned
    assert len(cleaned) <= 200


@SETTINGS
@given(name=ORIGINAL_NAMES, content_type=CONTENT_TYPES)
@example(name='"quoted".txt', content_type="text/plain")
@example(name="a;b.txt", content_type="text/plain")
@example(name='x; filename="evil.html"', content_type="application/pdf")
@example(name="back\\slash.txt", content_type="text/plain")
@example(name="=?utf-8?q?evil=2Ehtml?=", content_type="application/pdf")
@example(name="=?utf-8?b?ZXZpbC5odG1s?=.txt", content_type="text/plain")
@example(name="100% (final) [v2].pdf", content_type="application/pdf")
@example(name="e\u0301te\u0301.txt", content_type="text/plain")
@example(name="x" * 300 + ".txt", content_type="text/plain")
def test_content_disposition_parses_to_the_served_name(name: str, content_type: str) -> None:
    cleaned = sanitize_original_name(name)
    headers = media_headers(
        content_type=content_type,
        original_name=cleaned,
        inline_types=DEFAULT_INLINE_TYPES,
        cache_control="private, no-store",
    )
    value = headers[CONTENT_DISPOSITION]
    assert value.isascii() and "\r" not in value and "\n" not in value
    disposition, filenames, filename, defects = parse_disposition(value)
    assert disposition == ("inline" if content_type in DEFAULT_INLINE_TYPES else "attachment")
    assert len(filenames) == 1
    assert filename == served_name(cleaned, content_type=content_type)
    assert defects == []


# Every type an operator may allowlist (the detector's whole table), types
# nobody detects, and the ones that would run if their own extension came back.
SERVED_TYPES = st.sampled_from(
    sorted(
        {kind.mime for kind in filetype.types}
        | {*DEFAULT_INLINE_TYPES, "application/pdf", "text/html", "image/svg+xml", "x/y", ""}
    )
)
# What the standard library's own table says each served extension holds
# (Python 3.11's lacks WebP, which 3.13's has).
MIME_TABLE = mimetypes.MimeTypes()
MIME_TABLE.add_type("image/webp", ".webp")


@SETTINGS
@given(name=ORIGINAL_NAMES, content_type=SERVED_TYPES)
@example(name="doc.html", content_type="application/pdf")
@example(name="doc.html.", content_type="text/plain")
@example(name="doc.html%00.pdf", content_type="text/plain")
@example(name="fdp\u202e.html", content_type="application/pdf")
@example(name="doc.HTML", content_type="text/plain")
@example(name="doc.html::$DATA", content_type="application/pdf")
@example(name="\u65e5" * 190 + ".html", content_type="text/plain")
@example(name="setup.exe", content_type="application/x-msdownload")
def test_the_served_name_carries_the_served_types_extension(name: str, content_type: str) -> None:
    served = served_name(name, content_type=content_type)
    extension = "." + served.rpartition(".")[2].lower()
    assert served.rpartition(".")[0].strip(". ")
    assert extension in extensions_for(content_type)
    assert extension not in UNSAFE_EXTENSIONS
    assert len(served.encode()) <= MAX_SERVED_NAME_BYTES
    assert served == sanitize_original_name(served)
    assert served_name(served, content_type=content_type) == served
    if content_type in conf.allowed_types:
        # By the extension alone: guess_type reads "0:.pdf" as a URL.
        assert MIME_TABLE.guess_type("file" + extension) == (content_type, None)


# -- share tokens ---------------------------------------------------------------

KEYS = st.binary(min_size=16, max_size=16).map(
    lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
)
FUTURE = st.integers(min_value=60, max_value=30 * 86400).map(
    lambda seconds: (timezone.now() + timedelta(seconds=seconds)).replace(microsecond=0)
)


def signed_share(share_id: uuid.UUID, key: str, expires, audience: str) -> str:
    share = ShareLink(id=share_id, record_id=key, expires=expires, audience=audience)
    return shares._sign(share)


@SETTINGS
@given(
    share_id=st.uuids(),
    key=KEYS,
    expires=FUTURE,
    audience=st.sampled_from(ShareLink.Audience.values),
    position=st.integers(min_value=0),
    replacement=st.sampled_from("AZaz09-_:."),
)
def test_a_share_token_verifies_only_for_what_it_was_signed_for(
    share_id, key, expires, audience, position, replacement
) -> None:
    token = signed_share(share_id, key, expires, audience)
    assert shares.read_claim(token) == shares.Claim(share_id, expires, audience)
    # Any one character changed: refused, whatever it was.
    index = position % len(token)
    assume(token[index] != replacement)
    changed = token[:index] + replacement + token[index + 1 :]
    assert shares.read_claim(changed) == Reason.SHARE_INVALID
    # The same claim signed for another purpose is not a share link.
    payload = signing.loads(token, salt=shares.SALT)
    assert shares.read_claim(signing.dumps(payload, salt="another.salt")) == Reason.SHARE_INVALID
    # Past its expiry the token alone refuses it.
    assert shares.read_claim(token, now=expires) == Reason.SHARE_EXPIRED
