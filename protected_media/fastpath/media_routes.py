"""The URLconf as a media path sees it: Django's resolver without the patterns
that provably cannot match a path under ``PROTECTED_MEDIA_URL``.

Django's ``resolve`` tries a site's patterns one by one, and a site mounts the
gateway last as often as not; most of what it tries for a media path is
``admin/``, ``accounts/`` and the like. ``media_view_match`` resolves a
media path through ``media_resolver``, which gives the same URLconf with
those dropped, once per URLconf and prefix: the patterns kept
are Django's own objects, in Django's order, and Django's ``URLResolver``
walks them, so a media path gets the very match ``resolve`` would give
(``tried``, the list for the debug 404 page, names fewer patterns).

A pattern is dropped only when it is plain text up to its first variable part
and that text can never begin a media path: a ``path()`` route whose
characters before the first ``<`` neither start the prefix nor are started
by it; a ``re_path()`` anchored with ``^`` whose literal characters work the
same way; an endpoint ``path()`` without converters that is not under the
prefix at all. An ``include()`` whose route is plain text the prefix starts
with is kept as a copy holding only its own patterns that may match. Anything
else (a route that is translated, a ``re_path()`` with alternatives or without
``^``, ``i18n_patterns``, a pattern or resolver class of a site's own) is kept
as it is.

Where the pruned URLconf is nothing but the gateway's include on the prefix
(the gateway's own, and most sites'), ``media_key`` reads the key from the
path for the lean path: what the include's two patterns would give.

The cost of a lookup depends on the path's shape alone, never on which paths
were asked before (a memo of resolved paths told an outsider which keys
exist: docs/performance.md), and a new URLconf (``ROOT_URLCONF`` changed,
``clear_url_caches``) gets its own pruned copy. A site that appends to its
``urlpatterns`` list while serving is not seen by this copy.
"""

from __future__ import annotations

from typing import Any

from django.urls import (
    ResolverMatch,
    URLPattern,
    URLResolver,
    get_resolver,
    resolve,
)
from django.urls.exceptions import Resolver404
from django.urls.resolvers import RegexPattern, RoutePattern

from ..conf import conf

# Characters that end the literal start of a regular expression.
_REGEX_SYNTAX = frozenset(".^$*+?{}[]\\|()")
# Those that make the character before them optional or repeated.
_QUANTIFIERS = frozenset("*?{")

# (the URLconf's resolver, the media prefix, the pruned resolver, and where
# that is the gateway's include alone, the share links' prefix): one slot,
# refilled when either of the first two changes. Two threads that refill it
# at once make equal copies, and either may stay: no lock is needed.
_pruned: tuple[URLResolver, str, URLResolver, str | None] | None = None


def media_view_match(path: str) -> ResolverMatch | None:
    """The URLconf's match for ``path`` (a request's ``path_info``) if it
    sends the path to the media view, else None.

    Walked for every request, as Django's handler walks it, so that a site's
    own pattern before the gateway's still wins. Not remembered per path: a
    path someone asked before would then be answered faster than a new one,
    and that would tell an outsider which keys other users fetch, that is,
    which exist (docs/performance.md, "Does a refusal's time tell that a file
    exists?")."""
    # Imported on use: the view imports the models.
    from ..views import serve

    try:
        # Under FORCE_SCRIPT_NAME, the prefix may not begin path_info.
        match = (
            media_resolver(conf.url).resolve(path) if path.startswith(conf.url) else resolve(path)
        )
    except Resolver404:
        return None
    return match if match.func is serve else None


def media_resolver(media_url: str) -> URLResolver:
    """The resolver Django's handler resolves a request with, pruned for paths
    that start with ``media_url`` (``PROTECTED_MEDIA_URL``, starting with ``/``)."""
    return _pruned_slot(media_url)[2]


def media_key(path: str) -> str | None:
    """The ``key`` the media view gets for ``path`` (a request's ``path_info``
    under ``PROTECTED_MEDIA_URL``), or None where the URLconf sends the path
    elsewhere. Where the pruned URLconf is the gateway's include alone,
    mounted on the prefix, that is the rest of the path unless it is a share
    link's; elsewhere, ``media_view_match`` tells."""
    media_url = conf.url
    share_prefix = _pruned_slot(media_url)[3] if path.startswith(media_url) else None
    if share_prefix is not None:
        rest = path[len(media_url) :]
        return None if rest.startswith(share_prefix) else rest
    match = media_view_match(path)
    return match.kwargs["key"] if match is not None else None


def _pruned_slot(media_url: str) -> tuple[URLResolver, str, URLResolver, str | None]:
    global _pruned
    # The root URLconf's resolver, as Django's handler resolves a request no
    # middleware gave a URLconf of its own (the entry point runs none that
    # could): a context's set_urlconf() does not reach it either.
    resolver = get_resolver()
    pruned = _pruned
    if pruned is not None and pruned[0] is resolver and pruned[1] == media_url:
        return pruned
    copy = prune(resolver, media_url.removeprefix("/"))
    share_prefix = None
    if _is_media_include_alone(copy, media_url):
        # Imported on use: the share links' module imports the models.
        from ..shares import URL_PREFIX

        share_prefix = URL_PREFIX
    pruned = (resolver, media_url, copy, share_prefix)
    _pruned = pruned
    return pruned


def _is_media_include_alone(pruned: URLResolver, media_url: str) -> bool:
    """Whether ``pruned`` (the root, pruned for ``media_url``) holds only
    ``include("protected_media.urls")`` on a plain route that is the prefix,
    with no extra arguments: then the include's own two patterns decide (a
    share link under ``s/``, the media view for any other rest of the path)."""
    from .. import urls

    if len(pruned.url_patterns) != 1:
        return False
    (include,) = pruned.url_patterns
    return (
        type(include) is URLResolver
        and type(include.pattern) is RoutePattern
        and getattr(include.pattern, "_route", None) == media_url.removeprefix("/")
        and not include.pattern.converters
        and not include.default_kwargs
        and len(include.url_patterns) == len(urls.urlpatterns)
        and all(
            kept is ours for kept, ours in zip(include.url_patterns, urls.urlpatterns, strict=True)
        )
    )


def prune(resolver: URLResolver, prefix: str) -> URLResolver:
    """A copy of ``resolver`` keeping the patterns that may match a path
    starting with ``prefix`` (what is left of the media prefix once the
    resolver's own route has matched; the root's ``^/`` is the prefix's ``/``)."""
    kept: list[Any] = []
    for pattern in resolver.url_patterns:
        # Django's own classes only: a subclass may resolve as it likes.
        if type(pattern) is URLResolver:
            rest = _consumed(pattern.pattern, prefix)
            if rest is not None:
                kept.append(prune(pattern, rest))
            elif _may_match(pattern.pattern, prefix):
                kept.append(pattern)
        elif type(pattern) is not URLPattern or _may_match(pattern.pattern, prefix):
            kept.append(pattern)
    return URLResolver(
        resolver.pattern, kept, resolver.default_kwargs, resolver.app_name, resolver.namespace
    )


def _consumed(pattern: Any, prefix: str) -> str | None:
    """What is left of ``prefix`` after an include's plain-text route that the
    prefix starts with; None if the route is not such a one."""
    if type(pattern) is not RoutePattern:
        return None
    route = getattr(pattern, "_route", None)
    if type(route) is not str or "<" in route or not prefix.startswith(route):
        return None
    return prefix[len(route) :]


def _may_match(pattern: Any, prefix: str) -> bool:
    """False only if no path starting with ``prefix`` can match ``pattern``.
    Django's private attributes are read with a default: should one change
    its name, the pattern is kept."""
    if type(pattern) is RoutePattern:
        route = getattr(pattern, "_route", None)
        if type(route) is not str:
            return True
        if getattr(pattern, "_is_endpoint", False) and not pattern.converters:
            # Matched as the whole path: only a route under the prefix can.
            return route.startswith(prefix)
        literal = route.split("<", 1)[0]
    elif type(pattern) is RegexPattern:
        regex = getattr(pattern, "_regex", None)
        start = _regex_literal_start(regex) if type(regex) is str else None
        if start is None:
            return True
        literal = start
    else:
        return True
    # A path starting with both the literal and the prefix exists only if one
    # starts with the other.
    return literal.startswith(prefix) or prefix.startswith(literal)


def _regex_literal_start(regex: str) -> str | None:
    """The text every match of ``regex`` (searched, as Django does) starts
    with; None where that cannot be told simply."""
    if not regex.startswith("^") or "|" in regex:
        return None
    literal: list[str] = []
    for character in regex[1:]:
        if character in _REGEX_SYNTAX:
            if character in _QUANTIFIERS and literal:
                literal.pop()
            break
        literal.append(character)
    return "".join(literal)
