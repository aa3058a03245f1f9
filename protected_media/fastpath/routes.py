"""Which paths the site's URLconf sends to the media view, remembered.

Django's handler resolves every request by walking the URLconf, and so does
the entry point, so that a site's own pattern placed before the gateway's
still wins. For a media path that walk costs about as much as reading the
session row (a gallery page asks the same paths again and again), and its
answer cannot change while the URLconf stays the same: a path's match is
remembered, for the paths that resolve to the media view only, against the
resolver it came from. When the URLconf changes (``ROOT_URLCONF`` overridden,
``clear_url_caches``), Django builds a new resolver and what was remembered is
dropped.

The paths come from clients, so the memory is bounded: past
``MAX_REMEMBERED`` paths, the oldest is forgotten first. A flood of distinct
paths costs the walk it would have cost anyway.
"""

from __future__ import annotations

from typing import Any

from django.urls import Resolver404, ResolverMatch, get_resolver, get_urlconf

MAX_REMEMBERED = 2048


class MediaRoutes:
    def __init__(self, view: Any, *, size: int = MAX_REMEMBERED) -> None:
        self._view = view
        self._size = size
        self._resolver: Any = None
        self._matches: dict[str, ResolverMatch] = {}

    def match(self, path_info: str) -> ResolverMatch | None:
        """The URLconf's match for ``path_info`` if it is the media view; None
        for any other view and for no match, as ``django.urls.resolve`` finds."""
        resolver = get_resolver(get_urlconf())
        if resolver is not self._resolver:
            self._resolver, self._matches = resolver, {}
        match = self._matches.get(path_info)
        if match is not None:
            return match
        try:
            match = resolver.resolve(path_info)
        except Resolver404:
            return None
        if match.func is not self._view:
            return None
        if len(self._matches) >= self._size:
            # Dicts keep their insertion order: the first key is the oldest.
            del self._matches[next(iter(self._matches))]
        self._matches[path_info] = match
        return match

    def __len__(self) -> int:
        return len(self._matches)
