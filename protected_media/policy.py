"""Who may read a file. The default is strict: the owner, and nobody else
unless a setting or an object-permission backend says so."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.contrib.auth import get_backends
from django.core.exceptions import PermissionDenied
from django.utils.module_loading import import_string

from .conf import conf

if TYPE_CHECKING:
    from django.db.models import Model

    from .models import StoredFile

Policy = Callable[[Any, "Model", "StoredFile"], Awaitable[bool]]


async def default_policy(user: Any, obj: Model, record: StoredFile) -> bool:
    """The owner; staff if ``PROTECTED_MEDIA_ALLOW_STAFF``; anyone an
    authentication backend grants ``<app>.view_<model>`` on this object."""
    if not user.is_active:
        return False
    owner_attname = _owner_attname(obj, record)
    if owner_attname is not None and getattr(obj, owner_attname) == user.pk:
        return True
    if conf.allow_staff and user.is_staff:
        return True
    permission = f"{obj._meta.app_label}.view_{obj._meta.model_name}"
    return await aobject_permission(user, permission, obj)


async def aobject_permission(user: Any, permission: str, obj: Model) -> bool:
    """``user.has_perm(permission, obj)`` without two of its shortcuts.

    Django's ``has_perm`` grants an active superuser everything, which would
    make every private file theirs (staff access is the setting's call), and
    its async twin skips backends that have no ``ahas_perm``, which object
    permission backends such as django-guardian often lack.
    """
    for backend in get_backends():
        try:
            if hasattr(backend, "ahas_perm"):
                granted = await backend.ahas_perm(user, permission, obj)
            elif hasattr(backend, "has_perm"):
                granted = await sync_to_async(backend.has_perm)(user, permission, obj)
            else:
                continue
        except PermissionDenied:
            return False
        if granted:
            return True
    return False


def get_policy() -> Policy:
    path = conf.policy
    if not path:
        return default_policy
    return import_string(path)  # type: ignore[no-any-return]


def _owner_attname(obj: Model, record: StoredFile) -> str | None:
    field = obj._meta.get_field(record.source.rsplit(".", 1)[-1])
    return getattr(field, "owner_attname", None)
