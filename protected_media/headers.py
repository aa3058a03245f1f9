"""The headers of a served file, decided from the record alone (pure)."""

from __future__ import annotations

from urllib.parse import quote

from django.utils.http import content_disposition_header

CONTENT_TYPE = "Content-Type"
CONTENT_DISPOSITION = "Content-Disposition"
CACHE_CONTROL = "Cache-Control"
REFERRER_POLICY = "Referrer-Policy"
# The start of an RFC 2047 encoded word ("=?utf-8?q?...?=").
ENCODED_WORD_START = "=?"


def media_headers(
    *,
    content_type: str,
    original_name: str,
    inline_types: tuple[str, ...],
    cache_control: str,
) -> dict[str, str]:
    """Content-Type, Content-Disposition and Cache-Control for a granted file.

    nginx keeps these three from the upstream response on the redirect and
    would otherwise keep Django's default ``text/html`` (see the nginx notes).
    """
    inline = content_type in inline_types
    if content_type.startswith("text/"):
        # Text is accepted only as validated UTF-8.
        content_type = f"{content_type}; charset=utf-8"
    disposition = content_disposition_header(as_attachment=not inline, filename=original_name)
    if disposition and ENCODED_WORD_START in original_name and "filename*=" not in disposition:
        # Browsers (and Python's email parser) decode RFC 2047 encoded words
        # even inside a quoted filename, so "=?utf-8?q?a=2Ehtml?=" would be
        # saved as "a.html". The percent-encoded form is never decoded that way.
        kind = "inline" if inline else "attachment"
        disposition = f"{kind}; filename*=utf-8''{quote(original_name, safe='')}"
    headers = {CONTENT_TYPE: content_type, CACHE_CONTROL: cache_control}
    if disposition:
        headers[CONTENT_DISPOSITION] = disposition
    return headers
