"""The nginx config for the current Django settings: the adapter between
``conf`` and the pure renderer in ``nginx``. ``protected_media_nginx`` writes it and
``protected_media_doctor`` compares a deployed file with it.

Raises ``ImproperlyConfigured`` for a missing setting and ``ValueError`` for
a value that cannot be written into an nginx config.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ..conf import S3_STORAGE, conf
from .render import Limits, SiteConfig, StoreConfig, render_site, render_standalone


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
    if conf.root is None or conf.internal_url is None:
        raise ImproperlyConfigured("SENDFILE_ROOT and SENDFILE_URL must be set.")
    if not settings.STATIC_ROOT:
        raise ImproperlyConfigured("STATIC_ROOT must be set.")
    store = None
    if conf.storage == S3_STORAGE:
        if conf.s3_endpoint_url is None:
            raise ImproperlyConfigured(
                "PROTECTED_MEDIA_S3_ENDPOINT_URL must be set when PROTECTED_MEDIA_STORAGE is 's3'."
            )
        store = StoreConfig(endpoint_url=conf.s3_endpoint_url, internal_url=conf.s3_internal_url)
    site = SiteConfig(
        listen=listen,
        upstream=upstream,
        server_name=server_name,
        static_url=str(settings.STATIC_URL),
        static_root=str(Path(settings.STATIC_ROOT).resolve()),
        media_url=conf.url,
        internal_url=conf.internal_url,
        private_root=str(conf.root.resolve()),
        max_body_size=conf.max_upload_size,
        media_limits=Limits(
            rate=conf.media_rate, burst=conf.media_burst, connections=conf.media_connections
        ),
        upload_limits=Limits(
            rate=conf.upload_rate, burst=conf.upload_burst, connections=conf.upload_connections
        ),
        metrics_url=conf.metrics_url,
        store=store,
        # A standalone stack keeps its logs in its state folder.
        **({"log_dir": standalone} if standalone is not None else {}),
    )
    text = render_site(site)
    if standalone is not None:
        text = render_standalone(text, state_dir=standalone, user=user)
    return text
