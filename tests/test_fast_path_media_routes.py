"""The media routes: the URLconf without the patterns that cannot match a
media path resolves every media path exactly as Django's ``resolve`` does,
and leaves out what the gateway's own URLconf puts before its media view."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import URLResolver, get_resolver, resolve
from django.urls.exceptions import Resolver404

from protected_media import views
from protected_media.fastpath.media_routes import (
    _pruned_slot,
    _regex_literal_start,
    media_key,
    media_resolver,
    media_view_match,
)

MEDIA_PATHS = [
    "/media/",
    "/media/exact",
    "/media/exactly",
    "/media/9Hz8q_s6Uo1",
    "/media/a/b/c.jpg",
    "/media/s/some-token",
    "/media/nested/x",
    "/media/optional/x",
    "/media/alternative",
    "/media/unanchored/x",
    "/media/translated/x",
    "/media/line\nbreak",
    "/media/%2e%2e/secret",
    "/media/ü",
    "/media/claimed",
]


def answer(match_or_error: Any) -> Any:
    if isinstance(match_or_error, Resolver404):
        return "404"
    match = match_or_error
    return (
        match.func,
        match.args,
        match.kwargs,
        match.url_name,
        match.route,
        match.app_names,
        match.namespaces,
        match.captured_kwargs,
        match.extra_kwargs,
    )


def resolved(resolve_path: Any, path: str) -> Any:
    try:
        return answer(resolve_path(path))
    except Resolver404 as error:
        return answer(error)


@pytest.mark.parametrize("urlconf", ["tests.urlconfs.media_among_others", "gateway.urls"])
@pytest.mark.parametrize("path", MEDIA_PATHS)
def test_a_media_path_resolves_as_django_resolves_it(settings, urlconf, path) -> None:
    settings.ROOT_URLCONF = urlconf
    assert resolved(media_resolver("/media/").resolve, path) == resolved(resolve, path)


def test_the_gateway_keeps_only_its_media_include(settings) -> None:
    settings.ROOT_URLCONF = "gateway.urls"
    pruned = media_resolver("/media/")
    (media,) = pruned.url_patterns
    assert isinstance(media, URLResolver) and str(media.pattern) == "media/"
    # Its own patterns: the share links' and the files'.
    assert [pattern.name for pattern in media.url_patterns] == ["share", "serve"]
    assert len(get_resolver().url_patterns) > 10


def names(resolver: URLResolver) -> list[str]:
    found = []
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            found.append(f"{pattern.pattern}[{', '.join(names(pattern))}]")
        else:
            found.append(pattern.callback.__name__)
    return found


def test_what_cannot_be_told_simply_is_kept(settings) -> None:
    settings.ROOT_URLCONF = "tests.urlconfs.media_among_others"
    assert names(media_resolver("/media/")) == [
        "site_pattern_class",
        "endpoint_under_the_prefix",
        "converter_inside_the_prefix",
        "regex_optional_letter",
        "regex_alternative",
        "regex_unanchored",
        "translated_route",
        "converter_first",
        "media/[nested, [serve_shared, serve]]",
    ]


def test_a_new_urlconf_or_prefix_gets_its_own_copy(settings) -> None:
    settings.ROOT_URLCONF = "gateway.urls"
    first = media_resolver("/media/")
    assert media_resolver("/media/") is first
    assert media_resolver("/files/") is not first
    settings.ROOT_URLCONF = "tests.urlconfs.site_media_first"
    assert names(media_resolver("/media/"))[0] == "site_view"


@pytest.mark.parametrize(
    ("regex", "literal"),
    [
        (r"^media/(?P<key>.+)$", "media/"),
        (r"^medi?a/", "med"),
        (r"^media*", "medi"),
        (r"^media{1}", "medi"),
        (r"^media/+x", "media/"),
        (r"^media\.json$", "media"),
        (r"^(?i)media", ""),
        (r"media/", None),
        (r"^admin/|media/", None),
    ],
)
def test_the_literal_start_of_a_regex(regex, literal) -> None:
    assert _regex_literal_start(regex) == literal


def test_only_a_path_django_sends_to_the_media_view_is_matched(settings) -> None:
    settings.ROOT_URLCONF = "gateway.urls"
    match = media_view_match("/media/9Hz8q_s6Uo1")
    assert match is not None and match.kwargs == {"key": "9Hz8q_s6Uo1"}
    assert media_view_match("/media/s/some-token") is None  # a share link's view
    assert media_view_match("/files/") is None
    settings.ROOT_URLCONF = "tests.urlconfs.site_media_first"
    assert media_view_match("/media/9Hz8q_s6Uo1") is None  # the site's own view


@pytest.mark.parametrize("urlconf", ["tests.urlconfs.media_among_others", "gateway.urls"])
@pytest.mark.parametrize("path", MEDIA_PATHS)
def test_the_media_key_is_the_one_django_gives_the_view(settings, urlconf, path) -> None:
    settings.ROOT_URLCONF = urlconf
    try:
        match = resolve(path)
    except Resolver404:
        match = None
    expected = match.kwargs["key"] if match is not None and match.func is views.serve else None
    assert media_key(path) == expected


@pytest.mark.parametrize(
    ("urlconf", "alone"),
    [
        ("gateway.urls", True),
        # Patterns of the site's that may match a media path come first.
        ("tests.urlconfs.media_among_others", False),
        # The include with extra arguments for the view.
        ("tests.urlconfs.media_with_kwargs", False),
    ],
)
def test_the_key_is_read_from_the_path_only_under_the_gateways_include_alone(
    settings, urlconf, alone
) -> None:
    settings.ROOT_URLCONF = urlconf
    assert (_pruned_slot("/media/")[3] == "s/") is alone
