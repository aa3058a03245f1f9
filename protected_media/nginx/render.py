"""Render the nginx config from Django's settings: one source of truth (pure).

``render_site`` gives the part that goes in ``/etc/nginx/sites-enabled/``
(http context); ``render_standalone`` wraps it in a complete nginx.conf that
keeps every file it writes under one folder, for a local stack.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Limits is re-exported: it is the type of two SiteConfig fields.
from .limits import Limits as Limits
from .limits import render_limits

# Hashed names written by ManifestStaticFilesStorage: "app.3f2a9c1b7e4d.css".
HASHED_STATIC_RE = r"\.[0-9a-f]{12}\.[^/.]+$"
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
# Connections per nginx worker in the standalone config.
WORKER_CONNECTIONS = 4096
_UNSAFE = re.compile(r"[\s;{}\"'$\\#]")
# The access log's format, "combined" with the media paths masked.
LOG_FORMAT = "protected_media"
# Share URLs, below the media URL (shares.py serves them here), and what the
# logs show for a masked path: nginx's access log and the views' lines alike.
SHARE_PREFIX = "s/"
MASKED_PATH = "<redacted>"


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


def render_site(site: SiteConfig) -> str:
    for name, value in vars(site).items():
        if isinstance(value, str) and (not value or _UNSAFE.search(value)):
            raise ValueError(f"{name} {value!r} cannot be written into an nginx config")
    # Trailing slash on both the location and the alias: "/_protected" with
    # "/srv/private/" would let "/_protected../x" read the folder above.
    static_root = site.static_root.rstrip("/") + "/"
    private_root = site.private_root.rstrip("/") + "/"
    media_headers = "\n".join(
        f'        add_header {name} "{value}" always;' for name, value in MEDIA_SECURITY_HEADERS
    )
    ignore_accel = " ".join(ACCEL_HEADERS)
    limits = render_limits(site.media_limits, site.upload_limits)
    log_dir = site.log_dir.rstrip("/")
    share_url = f"{site.media_url}{SHARE_PREFIX}"
    return f"""\
# Rendered by `manage.py protected_media_nginx` from the Django settings; do not edit.
upstream protected_media_app {{
    server {site.upstream};
    keepalive 32;
}}

map $uri $protected_media_static_cache {{
    "~{HASHED_STATIC_RE}" "public, max-age=31536000, immutable";
    default "public, max-age=3600";
}}

{_render_log_format(site.media_url)}
server {{
    listen {site.listen};
    server_name {site.server_name};
    server_tokens off;
    access_log {log_dir}/access.log {LOG_FORMAT};

    # The upload limit (PROTECTED_MEDIA_MAX_UPLOAD_SIZE) plus room for the
    # multipart framing; Django checks the exact limit again.
    client_max_body_size {site.max_body_size + 64 * 1024};
    client_body_timeout 15s;
    client_header_timeout 15s;

    proxy_http_version 1.1;
    proxy_set_header Connection "";
    # $http_host keeps the port: Django compares a POST's Origin header
    # ("http://host:8000") with it, and $host would drop ":8000".
    proxy_set_header Host $http_host;
    proxy_set_header X-Forwarded-For $remote_addr;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_redirect off;

    # Static files: straight from disk, no Python.
    location ^~ {site.static_url} {{
        alias {static_root};
        add_header Cache-Control $protected_media_static_cache always;
        add_header X-Content-Type-Options "nosniff" always;
    }}

    # Every media request goes through the permission check; only this
    # location may answer with X-Accel-Redirect.
    location ^~ {site.media_url} {{
{limits.media}        client_max_body_size 1k;
        proxy_pass http://protected_media_app;

        # A share link's token is in its path, and nginx's error lines copy
        # the request line: only critical errors are written for these.
        location ^~ {share_url} {{
            error_log {log_dir}/error.log crit;
            proxy_pass http://protected_media_app;
        }}
    }}

    # The private files. `internal`: a client asking for it directly gets 404.
    location ^~ {site.internal_url} {{
        internal;
        alias {private_root};
        disable_symlinks on from={site.private_root.rstrip("/")};
        max_ranges 1;
        # Reached by share links too, so its error lines may hold a token.
        error_log {log_dir}/error.log crit;
{media_headers}
        error_page 404 @protected_media_not_found;
    }}

{_render_metrics(site.metrics_url, ignore_accel)}    location / {{
{limits.upload}        proxy_ignore_headers {ignore_accel};
        proxy_pass http://protected_media_app;
    }}

    # nginx's own answers in the app's words, not its default HTML pages: a
    # record whose file is gone from disk gets the app's one 404, and an app
    # that does not answer (stopped, restarting) a short 502 or 504.
    error_page 502 @protected_media_bad_gateway;
    error_page 504 @protected_media_gateway_timeout;
{limits.server}
    location @protected_media_not_found {{
        default_type "text/plain; charset=utf-8";
        add_header Cache-Control "private, no-store" always;
        add_header X-Content-Type-Options "nosniff" always;
        return 404 "Not Found\\n";
    }}

    location @protected_media_bad_gateway {{
        default_type "text/plain; charset=utf-8";
        add_header Cache-Control "no-store" always;
        add_header Retry-After "5" always;
        return 502 "Bad Gateway: the application is not answering; try again shortly.\\n";
    }}

    location @protected_media_gateway_timeout {{
        default_type "text/plain; charset=utf-8";
        add_header Cache-Control "no-store" always;
        add_header Retry-After "5" always;
        return 504 "Gateway Timeout: the application took too long; try again shortly.\\n";
    }}
{limits.named_location}}}
{limits.http}"""


def _render_log_format(media_url: str) -> str:
    # nginx's access log would keep a share link's token (in the request line
    # and in a Referer): both are logged with the token masked. A media key is
    # logged as it is, as the gateway's audit log does; any other path under
    # the media prefix (a share link, or an odd spelling of one) is masked.
    media = re.escape(media_url)
    masked = f"{media_url}{MASKED_PATH}"
    return f"""\
map $request_uri $protected_media_log_uri {{
    "~^{media}[A-Za-z0-9_-]*$" $request_uri;
    "~^{media}{SHARE_PREFIX}" "{media_url}{SHARE_PREFIX}{MASKED_PATH}";
    "~^/*{media.lstrip("/")}" "{masked}";
    default $request_uri;
}}

map $http_referer $protected_media_log_referer {{
    "~{media}" "{masked}";
    default $http_referer;
}}

log_format {LOG_FORMAT} '$remote_addr - $remote_user [$time_local] '
    '"$request_method $protected_media_log_uri $server_protocol" $status $body_bytes_sent '
    '"$protected_media_log_referer" "$http_user_agent"';
"""


def _render_metrics(url: str | None, ignore_accel: str) -> str:
    if url is None:
        return ""
    return f"""\
    # Metrics, for a scraper on this machine only: anyone else gets the one
    # 404, as if there were nothing here.
    location = {url} {{
        allow 127.0.0.1;
        allow ::1;
        deny all;
        error_page 403 =404 @protected_media_not_found;
        proxy_ignore_headers {ignore_accel};
        proxy_pass http://protected_media_app;
    }}

"""


def render_standalone(site_config: str, *, state_dir: str, user: str | None) -> str:
    """A complete nginx.conf for a stack that keeps its files under ``state_dir``."""
    for name, value in (("state_dir", state_dir), ("user", user or "nobody")):
        if not value or _UNSAFE.search(value):
            raise ValueError(f"{name} {value!r} cannot be written into an nginx config")
    user_line = f"user {user};\n" if user else ""
    temp = "\n".join(
        f"    {kind}_temp_path {state_dir}/tmp/{kind};"  # noqa: S108 - under state_dir
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""\
# Rendered by `manage.py protected_media_nginx --standalone`; do not edit.
{user_line}worker_processes auto;
# Every proxied connection holds two descriptors (client and upstream): without
# this, the shell's limit (often 1024) runs out long before worker_connections.
worker_rlimit_nofile {WORKER_CONNECTIONS * 2};
daemon off;
pid {state_dir}/nginx.pid;
error_log {state_dir}/error.log warn;

events {{
    worker_connections {WORKER_CONNECTIONS};
}}

http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {state_dir}/access.log;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
{temp}

{site_config}}}
"""
