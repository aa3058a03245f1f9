"""Render the nginx config from Django's settings: one source of truth (pure).

``render_site`` gives the part that goes in ``/etc/nginx/sites-enabled/``
(http context); ``render_site_parts`` gives the same site as two files, for a
server block of the site's own; ``render_standalone`` wraps it in a complete
nginx.conf that keeps every file it writes under one folder, for a local stack. The text is in
``templates/``, rendered by Django's template engine as ``startproject``
renders a project: an engine of its own, no settings, no autoescaping (this
is nginx syntax, not HTML). Every value is checked against ``rules`` first.

Each file records on its second line, as JSON, the options it was rendered
with: ``protected_media_doctor`` renders again with them and compares.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from django.template import Context, Engine

# Limits and StoreConfig are re-exported: they are the types of SiteConfig fields.
from .limits import Limits as Limits
from .limits import limits_context
from .rules import require_writable
from .store import StoreConfig as StoreConfig
from .store import store_context

# Hashed names written by ManifestStaticFilesStorage: "app.3f2a9c1b7e4d.css".
HASHED_STATIC_RE = r"\.[0-9a-f]{12}\.[^/.]+$"
# The Cache-Control of a static file: a hashed name's content never changes,
# a plain name's may.
STATIC_CACHE_HASHED = "public, max-age=31536000, immutable"
STATIC_CACHE_DEFAULT = "public, max-age=3600"
# Headers nginx adds to every private file (security rule 5). nginx keeps only
# six upstream headers on the redirect, so these must come from nginx itself.
MEDIA_SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; sandbox"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)
# What an upstream other than the gateway location may not make nginx do.
ACCEL_HEADERS = (
    "X-Accel-Redirect",
    "X-Accel-Expires",
    "X-Accel-Limit-Rate",
    "X-Accel-Buffering",
    "X-Accel-Charset",
)
# Set by nginx alone, on the request that hands an upload it refused for its
# size to the app (protected_media.too_large answers it).
REFUSAL_HEADER = "X-Protected-Media-Refused"
# Room for the multipart framing above the upload limit: Django checks the
# exact limit again.
MULTIPART_ROOM = 64 * 1024
# Connections per nginx worker in the standalone config.
WORKER_CONNECTIONS = 4096
# The temp folders a standalone nginx keeps under its state folder.
TEMP_KINDS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
TEMP_FOLDER = "tmp"
# What the two files of a split site record as their part.
HTTP_PART = "http"
LOCATIONS_PART = "locations"
# The access log's format, "combined" with the media paths masked.
LOG_FORMAT = "protected_media"
# Share URLs, below the media URL (shares.py serves them here), and what the
# logs show for a masked path: nginx's access log and the views' lines alike.
SHARE_PREFIX = "s/"
MASKED_PATH = "<redacted>"
# The comment that records the options a file was rendered with.
OPTIONS_COMMENT = "# Rendered with: "
TEMPLATES = Path(__file__).with_name("templates")


@dataclass(frozen=True)
class SiteConfig:
    listen: str
    upstream: str
    server_name: str
    static_url: str
    static_root: str
    media_url: str
    internal_url: str
    private_root: str
    max_body_size: int
    media_limits: Limits = field(default_factory=Limits)
    upload_limits: Limits = field(default_factory=Limits)
    # The Prometheus endpoint (PROTECTED_MEDIA_METRICS_URL), or None.
    metrics_url: str | None = None
    # Where the site's access log and the share and file locations' error
    # log go: Debian's folder, or a standalone stack's state folder.
    log_dir: str = "/var/log/nginx"
    # The object store the files live in (PROTECTED_MEDIA_STORAGE = "s3"),
    # or None: the local disk only.
    store: StoreConfig | None = None


@dataclass(frozen=True)
class RenderOptions:
    """What ``protected_media_nginx`` was given: the operator's choice, where
    everything else in the file follows from the settings."""

    listen: str
    upstream: str
    server_name: str
    standalone: str | None = None  # the state folder of a complete nginx.conf
    user: str | None = None  # its ``user`` line
    # HTTP_PART or LOCATIONS_PART for one file of a split site, else None.
    part: str | None = None


def render_site(site: SiteConfig) -> str:
    """The whole site: its http-level lines around one server block."""
    context = _site_context(site)
    context["options_comment"] = _options_comment(
        listen=site.listen, upstream=site.upstream, server_name=site.server_name
    )
    return _render("site.conf", context)


@dataclass(frozen=True)
class SiteParts:
    """The site for a server block of the site's own: ``http`` goes in nginx's
    http block, ``locations`` inside that server block."""

    http: str
    locations: str


def render_site_parts(site: SiteConfig) -> SiteParts:
    """The site as two files, from the same pieces as ``render_site``. Each
    location carries what it would inherit from the rendered server block,
    so what the including server sets at its own level cannot change it;
    ``listen`` and ``server_name`` are not used."""
    context = _site_context(site)
    http = _render(
        "site_http.conf",
        {**context, "options_comment": _options_comment(part=HTTP_PART, upstream=site.upstream)},
    )
    locations = _render(
        "site_locations.conf",
        {**context, "split": True, "options_comment": _options_comment(part=LOCATIONS_PART)},
    )
    return SiteParts(http=http, locations=locations)


def _site_context(site: SiteConfig) -> dict[str, object]:
    for name, value in vars(site).items():
        if isinstance(value, str):
            require_writable(name, value)
    media_re = re.escape(site.media_url)
    return {
        "site": site,
        # Trailing slash on both the location and the alias: "/_protected"
        # with "/srv/private/" would let "/_protected../x" read the folder above.
        "static_root": site.static_root.rstrip("/") + "/",
        "private_root": site.private_root.rstrip("/") + "/",
        "symlinks_from": site.private_root.rstrip("/"),
        "client_max_body_size": site.max_body_size + MULTIPART_ROOM,
        "log_dir": site.log_dir.rstrip("/"),
        "log_format": LOG_FORMAT,
        "hashed_static_re": HASHED_STATIC_RE,
        "static_cache_hashed": STATIC_CACHE_HASHED,
        "static_cache_default": STATIC_CACHE_DEFAULT,
        "media_security_headers": MEDIA_SECURITY_HEADERS,
        "accel_headers": ACCEL_HEADERS,
        "refusal_header": REFUSAL_HEADER,
        # nginx's access log would keep a share link's token (in the
        # request line and in a Referer): both are logged with the token
        # masked. A media key is logged as it is, as the gateway's audit
        # log does; any other path under the media prefix (a share link,
        # or an odd spelling of one) is masked.
        "media_re": media_re,
        "media_re_unrooted": media_re.lstrip("/"),
        "share_prefix": SHARE_PREFIX,
        "masked_path": MASKED_PATH,
        **limits_context(site.media_limits, site.upload_limits),
        **store_context(
            site.store,
            taken={
                "media_url": site.media_url,
                "static_url": site.static_url,
                "internal_url": site.internal_url,
            },
        ),
    }


def render_standalone(site_config: str, *, state_dir: str, user: str | None) -> str:
    """A complete nginx.conf for a stack that keeps its files under ``state_dir``."""
    require_writable("state_dir", state_dir)
    if user:
        require_writable("user", user)
    return _render(
        "standalone.conf",
        {
            "options_comment": _options_comment(standalone=state_dir, user=user),
            "user": user,
            "state_dir": state_dir,
            # Every proxied connection holds two descriptors: client and upstream.
            "worker_rlimit_nofile": WORKER_CONNECTIONS * 2,
            "worker_connections": WORKER_CONNECTIONS,
            "temp_folder": TEMP_FOLDER,
            "temp_kinds": TEMP_KINDS,
            "site_config": site_config,
        },
    )


def standalone_folders(state_dir: str) -> tuple[str, ...]:
    """The folders a standalone config writes into, parents first: nginx
    refuses to start without them (it makes a temp folder's last level only)."""
    temp = f"{state_dir.rstrip('/')}/{TEMP_FOLDER}"
    return (state_dir, temp, *(f"{temp}/{kind}" for kind in TEMP_KINDS))


def recorded_options(text: str) -> RenderOptions | None:
    """The options a rendered file records, or None if it records none (or
    they were edited into something else)."""
    recorded: dict[str, object] = {}
    for line in text.splitlines():
        if line.startswith(OPTIONS_COMMENT):
            try:
                found = json.loads(line.removeprefix(OPTIONS_COMMENT))
            except ValueError:
                return None
            if not isinstance(found, dict):
                return None
            # A standalone file holds two: its own, then the site's inside http.
            recorded.update(found)
    listen, upstream, server_name, standalone, user, part = (
        value if isinstance(value := recorded.get(name), str) else None
        for name in ("listen", "upstream", "server_name", "standalone", "user", "part")
    )
    if part == HTTP_PART and upstream is not None:
        return RenderOptions("", upstream, "", part=part)
    if part == LOCATIONS_PART:
        # The locations name the upstream block, never its address.
        return RenderOptions("", "", "", part=part)
    if part is not None or listen is None or upstream is None or server_name is None:
        return None
    return RenderOptions(listen, upstream, server_name, standalone=standalone, user=user)


def _options_comment(**options: str | None) -> str:
    # The values are checked plain words, so the JSON stays on its one line.
    return OPTIONS_COMMENT + json.dumps(options)


@functools.cache
def _engine() -> Engine:
    return Engine(dirs=[str(TEMPLATES)])


def _render(template: str, context: dict[str, object]) -> str:
    # use_l10n=False: numbers as Python writes them, with no settings to read
    # and no thousands separator.
    values = Context(context, autoescape=False, use_l10n=False)
    return _engine().get_template(template).render(values)
