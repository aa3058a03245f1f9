"""Who may read a file. The default is strict: the owner, and nobody else
unless a setting, the file's groups or an object-permission backend say so.

``PROTECTED_MEDIA_POLICY`` names an async function ``(user, obj, record) ->
bool`` that replaces the default; it may call ``default_policy`` itself. Only
``True`` grants, and an exception denies (``decision``).
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_backends
from django.core.exceptions import PermissionDenied
from django.utils.module_loading import import_string

from .conf import conf
from .fastpath.threads import run_blocking

if TYPE_CHECKING:
    from django.db.models import Model

    from .records import StoredFile

Policy = Callable[[Any, "Model", "StoredFile"], Awaitable[bool]]


# Why the default policy granted, as the audit trail names it.
OWNER = "owner"
STAFF = "staff"
GROUP = "group"
PERMISSION = "permission"


async def default_policy(user: Any, obj: Model, record: StoredFile) -> bool:
    """The owner; staff if ``PROTECTED_MEDIA_ALLOW_STAFF``; members of the
    file's groups (the field's ``groups_field``); anyone an authentication
    backend grants ``<app>.view_<model>`` on this object."""
    return await default_grant(user, obj, record) is not None


async def default_grant(user: Any, obj: Model, record: StoredFile) -> str | None:
    """Why the default policy lets ``user`` read the file, or None."""
    if not user.is_active:
        return None
    field = _field(obj, record)
    owner_attname = getattr(field, "owner_attname", None)
    if owner_attname is not None and getattr(obj, owner_attname) == user.pk:
        return OWNER
    if conf.allow_staff and user.is_staff:
        return STAFF
    groups_field = getattr(field, "groups_field", None)
    if groups_field is not None and await _in_groups(user, obj, groups_field):
        return GROUP
    permission = f"{obj._meta.app_label}.view_{obj._meta.model_name}"
    if await aobject_permission(user, permission, obj):
        return PERMISSION
    return None


async def _in_groups(user: Any, obj: Model, groups_field: str) -> bool:
    # One query, only when the user is not the owner.
    return await run_blocking(_member_of_groups, user, obj, groups_field)  # type: ignore[no-any-return]


def _member_of_groups(user: Any, obj: Model, groups_field: str) -> bool:
    return getattr(obj, groups_field).filter(user=user).exists()  # type: ignore[no-any-return]


async def aobject_permission(user: Any, permission: str, obj: Model) -> bool:
    """``user.has_perm(permission, obj)`` without two of its shortcuts.

    Django's ``has_perm`` grants an active superuser everything, which would
    make every private file theirs (staff access is the setting's call); so
    does django-guardian's backend, so the backends are asked about the user
    as if they were not a superuser. And Django's async twin skips backends
    that have no ``ahas_perm``, which object permission backends such as
    django-guardian often lack: those run where the request's blocking work
    runs (``threads.run_blocking``).
    """
    if getattr(user, "is_superuser", False):
        user = copy.copy(user)
        user.is_superuser = False
    for backend in get_backends():
        try:
            if hasattr(backend, "ahas_perm"):
                granted = await backend.ahas_perm(user, permission, obj)
            elif hasattr(backend, "has_perm"):
                granted = await run_blocking(backend.has_perm, user, permission, obj)
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


def _field(obj: Model, record: StoredFile) -> Any:
    return obj._meta.get_field(record.source.rsplit(".", 1)[-1])
