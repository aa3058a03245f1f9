"""The headers of a served file, decided from the record alone (pure)."""

from __future__ import annotations

from django.utils.http import content_disposition_header

CONTENT_TYPE = "Content-Type"
CONTENT_DISPOSITION = "Content-Disposition"
CACHE_CONTROL = "Cache-Control"


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
    headers = {CONTENT_TYPE: content_type, CACHE_CONTROL: cache_control}
    if disposition:
        headers[CONTENT_DISPOSITION] = disposition
    return headers
