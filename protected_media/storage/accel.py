"""The X-Accel-Redirect values that send nginx to a presigned URL or to a
file under the private root (pure)."""

from __future__ import annotations

from functools import lru_cache
from os.path import normpath
from pathlib import PurePosixPath
from urllib.parse import quote, urlsplit

from ..names import is_safe_stored_name

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


def local_accel_target(internal_url: str, name: str) -> str | None:
    """django-sendfile2's ``X-Accel-Redirect`` for the stored file ``name``
    (``_convert_file_to_url`` of SENDFILE_ROOT/name), without building the
    four paths it builds per request; None for a name that is not a plain
    relative one (``names.is_safe_stored_name``), which django-sendfile2 must
    convert itself. The same string: ``tests/test_store_accel.py`` holds the
    two equal over generated names and internal URLs."""
    if not is_safe_stored_name(name):
        return None
    return quote(_internal_prefix(internal_url) + name)


@lru_cache(maxsize=8)
def _internal_prefix(internal_url: str) -> str:
    # What the internal URL joined with one plain segment normalizes to, less
    # that segment: normpath leaves a plain name's segments as they are.
    return normpath(str(PurePosixPath(internal_url) / "x"))[:-1]
