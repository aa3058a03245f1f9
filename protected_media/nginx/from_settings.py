"""The nginx config for the current Django settings: the adapter between
``conf`` and the pure renderer in ``nginx``. ``protected_media_nginx`` writes it and
``protected_media_doctor`` compares a deployed file with it.

Raises ``ImproperlyConfigured`` for settings it cannot render
(``settings_problems`` lists them, for system check E030 too) and
``ValueError`` for an option that cannot be written into an nginx config.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ..conf import S3_STORAGE, conf
from .render import (
    Limits,
    SiteConfig,
    SiteParts,
    StoreConfig,
    render_site,
    render_site_parts,
    render_standalone,
)
from .rules import require_writable
from .store import store_context

# listen and server_name of a site whose server block is the site's own:
# nothing of them is written.
UNUSED = "_"
# The setting behind each value of the site that is written into the config
# as it is: what the operator changes when the renderer refuses one.
WRITTEN_SETTINGS = {
    "static_url": "STATIC_URL",
    "static_root": "STATIC_ROOT",
    "media_url": "PROTECTED_MEDIA_URL",
    "internal_url": "SENDFILE_URL",
    "private_root": "SENDFILE_ROOT",
    "metrics_url": "PROTECTED_MEDIA_METRICS_URL",
}
# The three settings of each zone's limits (PROTECTED_MEDIA_MEDIA_RATE, ...).
LIMIT_KINDS = ("RATE", "BURST", "CONNECTIONS")
# The settings the object store's location is rendered from.
STORE_SETTINGS = ("PROTECTED_MEDIA_S3_ENDPOINT_URL", "PROTECTED_MEDIA_S3_INTERNAL_URL")


def standalone_user() -> str | None:
    # nginx started by root hands its workers to "nobody", who could read
    # neither the private files nor its own temp folders in the state folder.
    return pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() == 0 else None


def render_from_settings(
    *,
    listen: str,
    upstream: str,
    server_name: str,
    standalone: str | None = None,
    user: str | None = None,
) -> str:
    """The config for the current settings: protected_media_nginx writes it,
    protected_media_doctor compares.

    ``standalone`` is the state folder of a complete nginx.conf (None: the site
    only); ``user`` is its ``user`` line.
    """
    site = site_from_settings(
        listen=listen,
        upstream=upstream,
        server_name=server_name,
        # A standalone stack keeps its logs in its state folder.
        log_dir=standalone,
    )
    text = render_site(site)
    if standalone is not None:
        text = render_standalone(text, state_dir=standalone, user=user)
    return text


def render_parts_from_settings(*, upstream: str) -> SiteParts:
    """The site for a server block of the site's own: the http file and the
    locations file. That server has its own listen and server name."""
    return render_site_parts(
        site_from_settings(listen=UNUSED, upstream=upstream, server_name=UNUSED)
    )


def site_from_settings(
    *, listen: str, upstream: str, server_name: str, log_dir: str | None = None
) -> SiteConfig:
    site, problems = _site_and_problems(
        listen=listen, upstream=upstream, server_name=server_name, log_dir=log_dir
    )
    if site is None or problems:
        raise ImproperlyConfigured(" ".join(problem.message for problem in problems))
    return site


@dataclass(frozen=True)
class SettingsProblem:
    """Why the nginx config cannot be rendered, and the settings to change
    (none: the renderer refused a value this module does not trace back)."""

    settings: tuple[str, ...]
    message: str


def settings_problems() -> list[SettingsProblem]:
    """Everything in the settings that keeps the nginx config from being
    rendered; empty when it can be. System check E030 reports these, and
    ``site_from_settings`` refuses with the same list, so ``check`` and
    ``protected_media_nginx`` cannot disagree. The command's own options
    (listen, upstream, server name, state folder) are not settings: it
    checks them when it is run."""
    return _site_and_problems(listen=UNUSED, upstream=UNUSED, server_name=UNUSED)[1]


def _site_and_problems(
    *, listen: str, upstream: str, server_name: str, log_dir: str | None = None
) -> tuple[SiteConfig | None, list[SettingsProblem]]:
    site, problems = _read_site(
        listen=listen, upstream=upstream, server_name=server_name, log_dir=log_dir
    )
    if site is None:
        return None, problems
    # Each value the renderer refuses, by the setting it came from, through
    # the renderer's own rules; it would stop at the first.
    for name, setting in WRITTEN_SETTINGS.items():
        value = getattr(site, name)
        if value is not None:
            problems += _refusal((setting,), require_writable, name, value)
    for zone, limits in (("media", site.media_limits), ("upload", site.upload_limits)):
        zone_settings = tuple(f"PROTECTED_MEDIA_{zone.upper()}_{kind}" for kind in LIMIT_KINDS)
        problems += _refusal(zone_settings, limits.validate, zone)
    taken = {
        "media_url": site.media_url,
        "static_url": site.static_url,
        "internal_url": site.internal_url,
    }
    problems += _refusal(STORE_SETTINGS, store_context, site.store, taken=taken)
    if not problems:
        # Whatever else the renderer refuses, in its own words.
        problems += _refusal((), render_site, site)
    return site, problems


def _read_site(
    *, listen: str, upstream: str, server_name: str, log_dir: str | None
) -> tuple[SiteConfig | None, list[SettingsProblem]]:
    """The site the settings describe, or None and every setting it lacks."""
    problems: list[SettingsProblem] = []
    root, internal_url, endpoint_url = conf.root, conf.internal_url, conf.s3_endpoint_url
    for setting, value in (
        ("SENDFILE_ROOT", root),
        ("SENDFILE_URL", internal_url),
        ("STATIC_URL", settings.STATIC_URL),
        ("STATIC_ROOT", settings.STATIC_ROOT),
    ):
        if not value:
            problems.append(SettingsProblem((setting,), f"{setting} must be set."))
    if conf.storage == S3_STORAGE and endpoint_url is None:
        problems.append(
            SettingsProblem(
                ("PROTECTED_MEDIA_S3_ENDPOINT_URL",),
                "PROTECTED_MEDIA_S3_ENDPOINT_URL must be set when PROTECTED_MEDIA_STORAGE is 's3'.",
            )
        )
    try:
        max_body_size = conf.max_upload_size
    except (TypeError, ValueError):
        value = getattr(settings, "PROTECTED_MEDIA_MAX_UPLOAD_SIZE", None)
        problems.append(
            SettingsProblem(
                ("PROTECTED_MEDIA_MAX_UPLOAD_SIZE",),
                f"PROTECTED_MEDIA_MAX_UPLOAD_SIZE {value!r} must be a number of bytes, "
                "such as 10485760.",
            )
        )
    if problems or root is None or internal_url is None:
        return None, problems
    store = None
    if conf.storage == S3_STORAGE and endpoint_url is not None:
        store = StoreConfig(endpoint_url=endpoint_url, internal_url=conf.s3_internal_url)
    site = SiteConfig(
        listen=listen,
        upstream=upstream,
        server_name=server_name,
        static_url=str(settings.STATIC_URL),
        static_root=str(Path(settings.STATIC_ROOT).resolve()),
        media_url=conf.url,
        internal_url=internal_url,
        private_root=str(root.resolve()),
        max_body_size=max_body_size,
        media_limits=Limits(
            rate=conf.media_rate, burst=conf.media_burst, connections=conf.media_connections
        ),
        upload_limits=Limits(
            rate=conf.upload_rate, burst=conf.upload_burst, connections=conf.upload_connections
        ),
        metrics_url=conf.metrics_url,
        store=store,
        **({"log_dir": log_dir} if log_dir is not None else {}),
    )
    return site, problems


def _refusal(
    names: tuple[str, ...], validate: Callable[..., object], *args: Any, **kwargs: Any
) -> list[SettingsProblem]:
    """The renderer's refusal (a ValueError) of what ``names`` give it, if any."""
    try:
        validate(*args, **kwargs)
    except ValueError as error:
        prefix = f"{names[0]}: " if len(names) == 1 else ""
        return [SettingsProblem(names, f"{prefix}{error}.")]
    return []
