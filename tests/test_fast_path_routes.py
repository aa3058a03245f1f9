"""The entry point remembers which paths resolve to the media view
(``fastpath.routes``): never a path Django would send elsewhere, never more
paths than its bound, and nothing from a URLconf that has since changed."""

from __future__ import annotations

import pytest
from django.urls import resolve

from protected_media import views
from protected_media.fastpath.routes import MediaRoutes

KEYS = ["k" * 43, "a" * 43, "b" * 43, "c" * 43]


def test_a_media_path_resolves_as_django_resolves_it() -> None:
    routes = MediaRoutes(views.serve)
    path = f"/media/{KEYS[0]}"
    match = routes.match(path)
    assert match is not None
    expected = resolve(path)
    assert (match.func, match.kwargs, match.route) == (
        expected.func,
        expected.kwargs,
        expected.route,
    )
    assert routes.match(path) is match  # the second time, remembered


def test_paths_of_other_views_or_none_are_not_media() -> None:
    routes = MediaRoutes(views.serve)
    assert routes.match("/metrics") is None
    assert routes.match("/no/such/page") is None
    assert routes.match(f"/media/s/{KEYS[0]}") is None  # the share view
    assert len(routes) == 0


def test_the_oldest_path_is_forgotten_past_the_bound() -> None:
    routes = MediaRoutes(views.serve, size=3)
    first = routes.match(f"/media/{KEYS[0]}")
    for key in KEYS[1:]:
        routes.match(f"/media/{key}")
    assert len(routes) == 3
    again = routes.match(f"/media/{KEYS[0]}")
    assert again is not None and again is not first  # resolved afresh
    assert routes.match(f"/media/{KEYS[3]}") is not None
    assert len(routes) == 3


def test_a_new_urlconf_drops_what_was_remembered(settings) -> None:
    routes = MediaRoutes(views.serve)
    assert routes.match(f"/media/{KEYS[0]}") is not None
    settings.ROOT_URLCONF = "tests.urlconfs.site_media_first"
    assert routes.match(f"/media/{KEYS[0]}") is None  # the site's view now
    assert routes.match(f"/media/{KEYS[1]}/extra") is not None  # still the gateway's
    settings.ROOT_URLCONF = "tests.urls"
    assert routes.match(f"/media/{KEYS[0]}") is not None


@pytest.mark.parametrize("path", ["/media/", "/media/%00", "/media/a\nb", "/media/" + "x" * 5000])
def test_hostile_paths_resolve_to_the_view_and_are_bounded(path: str) -> None:
    routes = MediaRoutes(views.serve, size=2)
    match = routes.match(path)
    assert match is not None and match.func is views.serve
    assert len(routes) == 1
