"""The settings the lean path (``lean``) reads for each request, worked out
once, where they leave media requests in the case it answers; again after a
setting changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.core.signals import setting_changed
from django.db import connections

from ..conf import NGINX_BACKEND, S3_STORAGE, conf
from .loop_reads import common_case, reads_on_loop, session_alias

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
SESSION_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"


@dataclass(frozen=True)
class Plan:
    """The settings the lean path reads for each request, read once."""

    # The request header Django reads for SECURE_PROXY_SSL_HEADER, as
    # Django's request names it (upper case, "_" for "-"), if one is named.
    proxy_header: bytes | None
    allowed_hosts: list[str]
    session_model: type[Any]
    user_model: type[Any]
    session_cookie: str
    allow_staff: bool
    secret_key: str
    internal_url: str
    # PROTECTED_MEDIA_S3_INTERNAL_URL, where the files are in object storage.
    store_internal_url: str | None
    # Host headers found allowed (``lean._allowed_host``), at most
    # ``lean.MAX_HOSTS``.
    allowed_seen: set[str] = field(default_factory=set, compare=False)
    # The encoded headers of files on disk (``stored_grant.answer_headers``).
    local_headers: dict[tuple[str, str, str], list[tuple[bytes, bytes]]] = field(
        default_factory=dict, compare=False
    )


# (the plan, or None where the settings leave media to the usual path), once
# worked out; emptied when a setting changes (tests, mostly).
_plan_slot: tuple[Plan | None] | None = None


def plan() -> Plan | None:
    """The settings the lean path reads, where they leave media requests in
    the case it answers; worked out once, again after a setting changes."""
    global _plan_slot
    if _plan_slot is None:
        _plan_slot = (_worked_out(),)
    return _plan_slot[0]


def _forget(**kwargs: Any) -> None:
    global _plan_slot
    _plan_slot = None


setting_changed.connect(_forget)


def _worked_out() -> Plan | None:
    if not conf.fast_path_lean or not common_case():
        return None
    # Through the loop's own reads (``LoopReads.aread_stored``).
    if not reads_on_loop(connections.settings[session_alias()].get("ENGINE")):
        return None
    if conf.backend != NGINX_BACKEND:
        return None
    # Object storage hands off to the store's internal location; the disk,
    # to SENDFILE_URL's, where django-sendfile2 would not build the redirect.
    store_internal_url = conf.s3_internal_url if conf.storage == S3_STORAGE else None
    internal_url = conf.internal_url or ""
    if store_internal_url is None and (not internal_url or conf.root is None):
        return None
    if settings.FORCE_SCRIPT_NAME or settings.USE_X_FORWARDED_HOST:
        return None
    # CommonMiddleware's request hook answers or refuses on these.
    if settings.DISALLOWED_USER_AGENTS or settings.PREPEND_WWW:
        return None
    if settings.SESSION_SAVE_EVERY_REQUEST or SESSION_MIDDLEWARE not in settings.MIDDLEWARE:
        return None
    if MODEL_BACKEND not in settings.AUTHENTICATION_BACKENDS:
        return None
    proxy_header = settings.SECURE_PROXY_SSL_HEADER
    if proxy_header and not str(proxy_header[0]).startswith("HTTP_"):
        return None
    user_model = get_user_model()
    # Imported on use: it imports the models.
    from .stored_grant import user_model_allows

    if not user_model_allows(user_model):
        return None
    allowed_hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed_hosts:
        # What HttpRequest.get_host allows then.
        allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]
    return Plan(
        proxy_header=proxy_header[0][5:].encode("latin-1") if proxy_header else None,
        allowed_hosts=allowed_hosts,
        session_model=DatabaseSessionStore.get_model_class(),
        user_model=user_model,
        session_cookie=settings.SESSION_COOKIE_NAME,
        allow_staff=conf.allow_staff,
        secret_key=settings.SECRET_KEY,
        internal_url=internal_url,
        store_internal_url=store_internal_url,
    )
