"""System checks of the store: PROTECTED_MEDIA_STORAGE with what "s3" needs,
and the storage of every protected field. Registered by ``checks.register``."""

from __future__ import annotations

from importlib.util import find_spec
from typing import Any

from django.apps import AppConfig, apps
from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.db.models import FileField

from ..conf import NGINX_BACKEND, S3_STORAGE, STREAMING_BACKEND, SUPPORTED_STORAGES, conf
from ..fields import ProtectedFieldMixin
from ..nginx.rules import internal_prefix_problem, prefixes_overlap
from . import S3_INSTALL_HINT, is_protected_storage
from .s3_rules import S3_SETTING_RULES

# The modules the S3 storage imports, and the distributions that bring them.
S3_MODULES = {"storages": "django-storages", "boto3": "boto3"}


def check_object_storage(**kwargs: Any) -> list[CheckMessage]:
    storage = conf.storage
    if storage not in SUPPORTED_STORAGES:
        return [
            Error(
                f"PROTECTED_MEDIA_STORAGE {storage!r} must be 'local' or 's3'.",
                hint="'local' keeps the files under SENDFILE_ROOT; 's3' in a bucket.",
                id="protected_media.E021",
            )
        ]
    if storage != S3_STORAGE:
        return []
    values = {
        "PROTECTED_MEDIA_S3_ENDPOINT_URL": conf.s3_endpoint_url,
        "PROTECTED_MEDIA_S3_BUCKET": conf.s3_bucket,
        "PROTECTED_MEDIA_S3_ACCESS_KEY_ID": conf.s3_access_key_id,
        "PROTECTED_MEDIA_S3_SECRET_ACCESS_KEY": conf.s3_secret_access_key,
        "PROTECTED_MEDIA_S3_REGION": conf.s3_region,
        "PROTECTED_MEDIA_S3_URL_LIFETIME": conf.s3_url_lifetime,
    }
    errors: list[CheckMessage] = []
    for setting, value in values.items():
        rule = S3_SETTING_RULES[setting]
        if not rule.valid(value):
            shown = "" if rule.secret else f" {value!r}"
            errors.append(
                Error(
                    f"{setting}{shown} is missing or invalid, and PROTECTED_MEDIA_STORAGE is 's3'.",
                    hint=rule.hint,
                    id="protected_media.E022",
                )
            )
    internal_url = conf.s3_internal_url
    problem = internal_prefix_problem(internal_url)
    taken = [conf.url, conf.internal_url, getattr(settings, "STATIC_URL", None)]
    if problem is None and any(
        prefix and prefixes_overlap(internal_url, str(prefix)) for prefix in taken
    ):
        problem = f"{internal_url!r} overlaps SENDFILE_URL, STATIC_URL or PROTECTED_MEDIA_URL"
    if problem is not None:
        errors.append(
            Error(
                f"PROTECTED_MEDIA_S3_INTERNAL_URL: {problem}.",
                hint="The internal location that proxies to the store, a prefix of its own "
                "such as '/_protected_store/'.",
                id="protected_media.E022",
            )
        )
    missing = [package for module, package in S3_MODULES.items() if find_spec(module) is None]
    if missing:
        errors.append(
            Error(
                f"PROTECTED_MEDIA_STORAGE is 's3', but {' and '.join(missing)} is not installed.",
                hint=S3_INSTALL_HINT,
                id="protected_media.E023",
            )
        )
    if conf.backend == STREAMING_BACKEND:
        errors.append(
            Error(
                "The streaming fallback reads files from the local disk: it cannot "
                "serve PROTECTED_MEDIA_STORAGE = 's3'.",
                hint=f"Put nginx in front and set SENDFILE_BACKEND = {NGINX_BACKEND!r}.",
                id="protected_media.E025",
            )
        )
    return errors


def check_field_storages(**kwargs: Any) -> list[CheckMessage]:
    """A protected field keeps its files in the storage the gateway serves:
    any other (``storage=S3Storage(...)``) would hand out URLs that skip the
    check, and the gateway would never find its files."""
    app_configs: list[AppConfig] | None = kwargs.get("app_configs")
    models = (
        apps.get_models()
        if app_configs is None
        else [model for config in app_configs for model in config.get_models()]
    )
    errors: list[CheckMessage] = []
    for model in models:
        for field in model._meta.local_fields:
            if not isinstance(field, ProtectedFieldMixin) or not isinstance(field, FileField):
                continue
            if not is_protected_storage(field.storage):
                errors.append(
                    Error(
                        f"{model._meta.label}.{field.name} keeps its files in "
                        f"{type(field.storage).__name__}, which protected_media does not serve.",
                        hint="Leave out storage=: protected fields use the storage "
                        "PROTECTED_MEDIA_STORAGE selects, whose URLs are the gateway's.",
                        obj=field,
                        id="protected_media.E024",
                    )
                )
    return errors
