"""The X-Accel-Redirect value that sends nginx to a presigned URL (pure)."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

# The characters a presigned path leaves unescaped in a key, as botocore
# does: RFC 3986's unreserved ones are never escaped, "~" among them, and "/"
# between segments.
KEY_SAFE = "/~"
# A presigned URL is handed to nginx again while at least three quarters of
# its lifetime is left (storage.presign): how much of it may be gone.
PRESIGNED_REUSE_FRACTION = 0.25


def store_accel_target(presigned_url: str, internal_url: str) -> str:
    """``internal_url``, the URL's path escaped a second time, "?", its query.

    nginx percent-decodes the redirect's path once before the internal
    location proxies it to the store, which checks the signature against the
    path exactly as signed (already escaped once): escaped twice, a key with a
    space, "%" or "?" arrives as signed. "/" is kept; the query (the
    signature) goes after the first "?", where nginx splits, untouched. The
    store's host is nginx's upstream, from the settings: only the path and
    query of the URL are used.
    """
    parts = urlsplit(presigned_url)
    path = quote(parts.path.removeprefix("/"), safe="/")
    return f"{internal_url}{path}?{parts.query}"
