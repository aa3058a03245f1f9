"""System checks of the headers every media answer carries. Registered with
the others by ``checks.register``; each id is documented in docs/settings.md.
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error

from .conf import conf

# Cache-Control directives that let a shared cache (a CDN, a proxy) keep an
# answer: it would serve one user's private file to the next.
SHARED_CACHE_DIRECTIVES = frozenset({"public", "s-maxage"})
# One of these keeps a file out of shared caches, in every answer nginx sends
# with it (the header survives the redirect).
PRIVATE_DIRECTIVES = frozenset({"private", "no-store"})


def check_cache_control(**kwargs: Any) -> list[CheckMessage]:
    value: object = conf.cache_control
    setting = f"PROTECTED_MEDIA_CACHE_CONTROL {value!r}"
    if not isinstance(value, str) or not value.isascii() or not value.isprintable():
        # Django refuses a newline in a header (every answer would be a 500);
        # no cache reads directives in anything but printable ASCII.
        return [Error(f"{setting} is not a header value.", id="protected_media.E031")]
    directives = {part.split("=", 1)[0].strip().lower() for part in value.split(",")}
    if directives & PRIVATE_DIRECTIVES and not directives & SHARED_CACHE_DIRECTIVES:
        return []
    return [
        Error(
            f"{setting} would let a shared cache keep private files.",
            hint='Say "private" or "no-store", and neither "public" nor "s-maxage": '
            'such as "private, no-store" (the default) or "private, max-age=60".',
            id="protected_media.E031",
        )
    ]
