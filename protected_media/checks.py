"""System checks: misconfigurations caught before a request finds them.

Each id is stable and documented in docs/settings.md; each has a test.
"""

from __future__ import annotations

import inspect
import re
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning
from django.core.checks import register as register_check
from django.urls import NoReverseMatch, Resolver404, get_script_prefix, resolve, reverse
from django.utils.module_loading import import_string

from .conf import NGINX_BACKEND, STREAMING_BACKEND, SUPPORTED_BACKENDS, conf
from .header_checks import check_cache_control
from .limit_checks import (
    check_fast_path_busy,
    check_fast_path_postgres_connections,
    check_image_limits,
    check_rate_limits,
    check_thumbnails,
)
from .nginx.from_settings import LIMIT_KINDS, STORE_SETTINGS, settings_problems
from .nginx.rules import is_writable, prefixes_overlap
from .storage.checks import check_field_storages, check_object_storage
from .too_large import check_refusal_middleware

# A URL prefix that is safe to paste into an nginx location: slashes at both
# ends, nothing nginx would read as syntax.
_PREFIX_RE = re.compile(r"/(?:[A-Za-z0-9._~-]+/)*")
# The command that starts Django's development server, as sys.argv names it.
DEVELOPMENT_SERVER = "runserver"
# The nginx config's settings that another check already names, by a rule at
# least as strict as the renderer's: E030 leaves them to it.
NGINX_SETTINGS_CHECKED_ELSEWHERE = frozenset(
    {
        "SENDFILE_ROOT",  # E001, E002
        "SENDFILE_URL",  # E005
        "PROTECTED_MEDIA_URL",  # E004
        "PROTECTED_MEDIA_METRICS_URL",  # E016
        # E014
        *(f"PROTECTED_MEDIA_{zone}_{kind}" for zone in ("MEDIA", "UPLOAD") for kind in LIMIT_KINDS),
        *STORE_SETTINGS,  # E022
    }
)


def register() -> None:
    for check in (
        check_storage,
        check_urls,
        check_public_prefixes,
        check_access,
        check_cache_control,
        check_fallback,
        check_development_server,
        check_nginx_settings,
        check_rate_limits,
        check_metrics,
        check_thumbnails,
        check_image_limits,
        check_fast_path_busy,
        check_fast_path_postgres_connections,
        check_object_storage,
        check_field_storages,
        check_refusal_middleware,
    ):
        register_check(check, Tags.security)


def check_storage(**kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    root = conf.root
    if root is None:
        return [
            Error(
                "SENDFILE_ROOT is not set.",
                hint="Set SENDFILE_ROOT to a folder outside STATIC_ROOT and MEDIA_ROOT "
                "that only the app and nginx can read.",
                id="protected_media.E001",
            )
        ]
    # The nginx config holds the resolved root: a symlink may lead elsewhere.
    if not root.is_absolute() or not all(map(is_writable, (str(root), str(root.resolve())))):
        errors.append(
            Error(
                "SENDFILE_ROOT must be an absolute path without spaces or quotes.",
                hint="It is written into the nginx config as an alias.",
                id="protected_media.E002",
            )
        )
    for setting in ("STATIC_ROOT", "MEDIA_ROOT"):
        public = getattr(settings, setting, None)
        if public and _overlaps(root, Path(public)):
            errors.append(
                Error(
                    f"SENDFILE_ROOT and {setting} overlap: private files would be public.",
                    hint=f"Move SENDFILE_ROOT out of {setting} (and {setting} out of it).",
                    id="protected_media.E003",
                )
            )
    return errors


def check_urls(**kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    media_url, internal_url = conf.url, conf.internal_url
    if not _is_gateway_prefix(media_url):
        errors.append(
            Error(
                f"PROTECTED_MEDIA_URL {media_url!r} must be a path with a slash at both ends.",
                id="protected_media.E004",
            )
        )
    if internal_url is None or not _PREFIX_RE.fullmatch(internal_url) or internal_url == "/":
        errors.append(
            Error(
                "SENDFILE_URL must be the internal nginx prefix, with a slash at both ends.",
                hint="For example '/_protected/'. A missing trailing slash lets "
                "'/_protected../' escape the alias in nginx.",
                id="protected_media.E005",
            )
        )
    else:
        public_prefixes = {"PROTECTED_MEDIA_URL": media_url}
        if getattr(settings, "STATIC_URL", None):
            public_prefixes["STATIC_URL"] = str(settings.STATIC_URL)
        for setting, prefix in public_prefixes.items():
            if prefixes_overlap(prefix, internal_url):
                errors.append(
                    Error(
                        f"SENDFILE_URL and {setting} overlap.",
                        hint="The internal prefix must be a location of its own.",
                        id="protected_media.E006",
                    )
                )
    try:
        mounted = reverse("protected_media:serve", kwargs={"key": "k"})
    except NoReverseMatch:
        errors.append(
            Error(
                "The gateway view is not in the URLconf.",
                hint=f"Add path({media_url.lstrip('/')!r}, include('protected_media.urls')).",
                id="protected_media.E007",
            )
        )
    else:
        if mounted != f"{media_url}k":
            errors.append(
                Error(
                    f"protected_media.urls is mounted at {mounted[:-1]!r}, "
                    f"not at PROTECTED_MEDIA_URL {media_url!r}.",
                    hint="File URLs and the nginx config use PROTECTED_MEDIA_URL.",
                    id="protected_media.E008",
                )
            )
    return errors


def check_public_prefixes(**kwargs: Any) -> list[CheckMessage]:
    """The gateway answers every URL under PROTECTED_MEDIA_URL: public media
    or static files under it get the gateway's 404, which names neither."""
    media_url = conf.url
    if not _is_gateway_prefix(media_url):
        return []  # E004 names it
    # Django reads an empty MEDIA_URL (its default) as the script prefix
    # alone: no public media at all.
    unset = _as_prefix(get_script_prefix())
    errors: list[CheckMessage] = []
    for setting, fix in (
        ("MEDIA_URL", 'MEDIA_URL = "/public-media/"'),
        ("STATIC_URL", 'STATIC_URL = "/static/"'),
    ):
        prefix = getattr(settings, setting, None)
        public = _as_prefix(prefix) if prefix else None
        if public is None or public == unset or not prefixes_overlap(public, media_url):
            continue
        errors.append(
            Error(
                f"{setting} {prefix!r} and PROTECTED_MEDIA_URL {media_url!r} overlap: "
                f"the gateway answers there, so the files of {setting} would be a 404.",
                hint=f"Give them a prefix of their own, such as {fix}, or mount the "
                "gateway elsewhere (PROTECTED_MEDIA_URL and its path() in the URLconf).",
                id="protected_media.E027",
            )
        )
    return errors


def _is_gateway_prefix(url: str) -> bool:
    return _PREFIX_RE.fullmatch(url) is not None and url != "/"


def _as_prefix(url: object) -> str | None:
    """The path a URL setting takes on this site, with a slash at both ends:
    "/media", "media/" and "/media/" are one location, "/media-files/" is
    another. None for a URL on another host (a CDN), which takes none."""
    parts = urlsplit(str(url))
    if parts.scheme or parts.netloc:
        return None
    path = parts.path.strip("/")
    return f"/{path}/" if path else "/"


def check_access(**kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    if conf.anonymous not in ("login", "not_found"):
        errors.append(
            Error(
                "PROTECTED_MEDIA_ANONYMOUS must be 'login' or 'not_found'.",
                id="protected_media.E009",
            )
        )
    if conf.policy:
        try:
            policy = import_string(conf.policy)
        except ImportError:
            policy = None
        if policy is None or not inspect.iscoroutinefunction(policy):
            errors.append(
                Error(
                    f"PROTECTED_MEDIA_POLICY {conf.policy!r} is not an importable async function.",
                    hint="It is called as `await policy(user, obj, record)` and returns a bool.",
                    id="protected_media.E011",
                )
            )
    return errors


def check_fallback(**kwargs: Any) -> list[CheckMessage]:
    backend = conf.backend
    if backend not in SUPPORTED_BACKENDS:
        return [
            Error(
                f"SENDFILE_BACKEND {backend!r} is not supported by protected_media.",
                hint=f"Use {NGINX_BACKEND!r} in production or {STREAMING_BACKEND!r} "
                "without nginx. sendfile2's simple and development backends read the "
                "whole file into memory under ASGI.",
                id="protected_media.E012",
            )
        ]
    if backend == STREAMING_BACKEND and not settings.DEBUG:
        return [
            Warning(
                "Private files are streamed by Python with DEBUG off.",
                hint=f"Put nginx in front and set SENDFILE_BACKEND = {NGINX_BACKEND!r}.",
                id="protected_media.W001",
            )
        ]
    return []


def check_development_server(**kwargs: Any) -> list[CheckMessage]:
    """The nginx backend answers with an empty body and X-Accel-Redirect for
    nginx to fill: under runserver, with no nginx in front, every file is a
    200 with nothing in it. The counterpart of W001.

    Read from sys.argv, which Django's command line dispatches on (the
    subcommand is always its first argument), so it holds with --noreload and
    in the autoreloader's child, which is started with the same arguments.
    RUN_MAIN would miss --noreload, and DEBUG alone would also warn under
    uvicorn behind nginx, or in `manage.py check`."""
    if not (
        settings.DEBUG and conf.backend == NGINX_BACKEND and sys.argv[1:2] == [DEVELOPMENT_SERVER]
    ):
        return []
    return [
        Warning(
            f"SENDFILE_BACKEND is {NGINX_BACKEND!r} under runserver: with no nginx in "
            "front, every private file is a 200 with an empty body.",
            hint=f"For runserver, set SENDFILE_BACKEND = {STREAMING_BACKEND!r} "
            "(Python streams the files); keep the nginx backend where nginx serves the site.",
            id="protected_media.W002",
        )
    ]


def check_nginx_settings(**kwargs: Any) -> list[CheckMessage]:
    """With the nginx backend, nginx needs the config protected_media_nginx
    renders: everything that command would refuse in the settings, found by
    the very function it uses."""
    if conf.backend != NGINX_BACKEND:
        return []
    return [
        Error(
            f"protected_media_nginx cannot render the nginx config: {problem.message}",
            hint="SENDFILE_BACKEND is the nginx backend, which needs that config: fix the "
            "setting named, then render it with `manage.py protected_media_nginx`.",
            id="protected_media.E030",
        )
        for problem in settings_problems()
        if not problem.settings or not NGINX_SETTINGS_CHECKED_ELSEWHERE.issuperset(problem.settings)
    ]


def _overlaps(first: Path, second: Path) -> bool:
    first, second = first.resolve(), second.resolve()
    return first == second or first.is_relative_to(second) or second.is_relative_to(first)


def check_metrics(**kwargs: Any) -> list[CheckMessage]:
    """The metrics URL must be one exact path, where the metrics view is
    mounted: the nginx config opens that path to loopback only. Counting
    needs prometheus-client, an optional dependency."""
    url = conf.metrics_url
    if url is None:
        return []
    problem = None
    hint = (
        'Mount it, e.g. path("metrics", protected_media.ops.metrics.view), and set '
        'PROTECTED_MEDIA_METRICS_URL = "/metrics".'
    )
    if not isinstance(url, str) or not url.startswith("/") or not is_writable(url):
        problem = "must be a path starting with a slash, with nothing nginx would misread"
    elif find_spec("prometheus_client") is None:
        problem = "is set, but prometheus-client is not installed"
        hint = 'Install the metrics extra: pip install "django-protected-media-gateway[metrics]".'
    else:
        from .ops import metrics  # an optional dependency (the metrics extra)

        try:
            mounted = resolve(url).func is metrics.view
        except Resolver404:
            mounted = False
        if not mounted:
            problem = "does not resolve to protected_media.ops.metrics.view"
    if problem is None:
        return []
    return [
        Error(
            f"PROTECTED_MEDIA_METRICS_URL {url!r} {problem}.",
            hint=hint,
            id="protected_media.E016",
        )
    ]
