"""The headers of a served file, decided from the record alone (pure)."""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import quote

from django.utils.http import content_disposition_header

from .names import served_name

CONTENT_TYPE = "Content-Type"
CONTENT_DISPOSITION = "Content-Disposition"
CACHE_CONTROL = "Cache-Control"
REFERRER_POLICY = "Referrer-Policy"
# Text that a browser decodes inside a quoted filename: the start of an RFC
# 2047 encoded word ("=?utf-8?q?...?="), and percent-escapes, which Chromium
# decodes there ("doc.html%00.pdf" would reach the disk as "doc.html\0.pdf").
DECODED_IN_QUOTED_NAMES = ("=?", "%")


def media_headers(
    *,
    content_type: str,
    original_name: str,
    inline_types: tuple[str, ...],
    cache_control: str,
) -> dict[str, str]:
    """Content-Type, Content-Disposition and Cache-Control for a granted file.

    Remembered for the last files served (the same thumbnail is asked for
    again and again); each call gets a dict of its own.
    """
    return dict(_media_headers(content_type, original_name, inline_types, cache_control))


@lru_cache(maxsize=1024)
def _media_headers(
    content_type: str,
    original_name: str,
    inline_types: tuple[str, ...],
    cache_control: str,
) -> tuple[tuple[str, str], ...]:
    """The headers of ``media_headers``, as a tuple that no caller can change.

    nginx keeps these three from the upstream response on the redirect and
    would otherwise keep Django's default ``text/html`` (see the nginx notes).
    The file is named with the extension of ``content_type``, whatever the
    client called it (``served_name``), so a saved copy never opens as
    something that runs.
    """
    inline = content_type in inline_types
    filename = served_name(original_name, content_type=content_type)
    if content_type.startswith("text/"):
        # Text is accepted only as validated UTF-8.
        content_type = f"{content_type}; charset=utf-8"
    disposition = content_disposition_header(as_attachment=not inline, filename=filename)
    decoded = any(marker in filename for marker in DECODED_IN_QUOTED_NAMES)
    if disposition and decoded and "filename*=" not in disposition:
        # Browsers (and Python's email parser) decode RFC 2047 encoded words
        # even inside a quoted filename, so "=?utf-8?q?a=2Ehtml?=" would be
        # saved as "a.html". The percent-encoded form is decoded exactly once.
        kind = "inline" if inline else "attachment"
        disposition = f"{kind}; filename*=utf-8''{quote(filename, safe='')}"
    headers = {CONTENT_TYPE: content_type, CACHE_CONTROL: cache_control}
    if disposition:
        headers[CONTENT_DISPOSITION] = disposition
    return tuple(headers.items())
