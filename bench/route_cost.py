"""What finding the media view costs a media request. A probe, not a test.

    python -m bench.route_cost [--before N] [--rounds N] [--calls N]

Times, in one process, Django's ``resolve`` of a media path and the fast
entry point's ``media_routes.media_view_match`` of the same path, in rounds
that alternate between the two so that drift in the machine's load falls on
both alike, on two URLconfs:

- ``gateway``: the gateway project's own (``gateway.urls``: 14 patterns
  before the media include);
- ``site``: a site's larger one, made here: N patterns before the media
  include (``--before``, 100 by default; two thirds views with a converter,
  one third includes of three views each), as an existing site with an
  admin and a few apps has.

Prints the median microseconds per lookup of each and their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import types
from collections.abc import Callable

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import include, path, resolve, set_urlconf  # noqa: E402

from protected_media.fastpath.media_routes import media_view_match  # noqa: E402

MEDIA_PATH = "/media/9Hz8q_s6Uo1AbCdEfGhIjKl"


def view(request: HttpRequest, **kwargs: object) -> HttpResponse:
    return HttpResponse()


def site_urlconf(before: int) -> types.ModuleType:
    """A URLconf module with ``before`` patterns ahead of the media include."""
    includes = before // 3
    app = [path("", view), path("<slug:s>/", view), path("<slug:s>/edit/", view)]
    patterns = [path(f"section{i}/<int:pk>/", view) for i in range(before - includes)]
    patterns += [path(f"app{i}/", include(app)) for i in range(includes)]
    module = types.ModuleType("bench_site_urls")
    module.urlpatterns = [*patterns, path("media/", include("protected_media.urls"))]  # type: ignore[attr-defined]
    return module


def per_call(function: Callable[[], object], calls: int) -> float:
    begin = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - begin) / calls


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--before", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args(argv)
    lookups: dict[str, Callable[[], object]] = {
        "django resolve": lambda: resolve(MEDIA_PATH),
        "media_view_match": lambda: media_view_match(MEDIA_PATH),
    }
    for name, urlconf in (("gateway", "gateway.urls"), ("site", site_urlconf(args.before))):
        set_urlconf(urlconf)
        try:
            if media_view_match(MEDIA_PATH) is None:
                raise SystemExit(f"{name}: the media path does not reach the media view")
            times: dict[str, list[float]] = {lookup: [] for lookup in lookups}
            for _ in range(args.rounds):
                for lookup, function in lookups.items():
                    times[lookup].append(per_call(function, args.calls))
        finally:
            set_urlconf(None)
        medians = {lookup: statistics.median(values) * 1e6 for lookup, values in times.items()}
        django_us, ours_us = medians["django resolve"], medians["media_view_match"]
        print(
            f"{name:8} django resolve {django_us:6.2f} µs   "
            f"media_view_match {ours_us:6.2f} µs   ratio {django_us / ours_us:4.2f}"
        )


if __name__ == "__main__":
    main()
