"""The audit trail of grants: for every grant and revocation on a protected
file, one signal (``signals.grant_changed``) and one log line on the
``protected_media.audit`` logger, whoever made it (the admin, the shell, the
site, the API):

    media grant=added kind=group key=9Hz8q_s6Uo… group=3 user=- share=- permission=- by=1

- ``kind=group``: a group added to or removed from the file's
  ``groups_field`` (``m2m_changed``, from either side of the relation);
- ``kind=share``: a share link created, or revoked (``shares.revoke``);
- ``kind=permission``: a django-guardian object permission assigned or
  removed on the file's row (its permission models' ``post_save`` and
  ``post_delete``; guardian's bulk helpers skip those signals);
- ``kind=owner``: the row's owner changed (its ``owner_field``, compared
  with the value it was loaded with): one line for the owner who lost the
  file, one for the owner who got it.

``by`` is the user who made the change when it is known: a link's creator,
and whoever ``acting`` names (the admin sets it around its views); else
``unknown``. Names are never logged, only ids (a name is text someone typed).
Both are sent once the change commits: a rolled-back grant leaves no line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache, partial
from typing import Any

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Model
from django.db.models.signals import m2m_changed, post_delete, post_init, post_save

from .fields import ProtectedFieldMixin
from .records import ShareLink
from .signals import grant_changed

logger = logging.getLogger("protected_media.audit")
ADDED = "added"
REMOVED = "removed"
GROUP = "group"
SHARE = "share"
PERMISSION = "permission"
OWNER = "owner"
UNKNOWN = "unknown"
# A permission's codename is stored text: only a plain one is copied to the log.
_CODENAME = re.compile(r"[A-Za-z0-9_.\-]{1,100}")
_actor: ContextVar[Any] = ContextVar("protected_media_grant_actor", default=None)
# Each groups relation's through model -> (the model holding the files, the field).
_throughs: dict[type[Model], tuple[type[Model], str]] = {}
_CLEARED = "_protected_media_cleared"
_LOADED_OWNER = "_protected_media_loaded_owner"
_DEFERRED = object()


@contextmanager
def acting(user: Any) -> Iterator[None]:
    """Name ``user`` as the author of the grants made inside the block (a
    context variable: safe across threads and tasks)."""
    token = _actor.set(user)
    try:
        yield
    finally:
        _actor.reset(token)


def record(
    *,
    action: str,
    kind: str,
    key: str | None,
    holder: Model | None = None,
    group: Any = None,
    user: Any = None,
    share: ShareLink | None = None,
    permission: str | None = None,
    actor: Any = None,
) -> None:
    """Send the signal and write the line once the current transaction commits."""
    actor_id = _pk(actor if actor is not None else _actor.get())
    transaction.on_commit(
        partial(
            _emit,
            action=action,
            kind=kind,
            key=key,
            holder=holder,
            group_id=_pk(group),
            user_id=_pk(user),
            share=share,
            permission=permission if permission and _CODENAME.fullmatch(permission) else None,
            actor_id=actor_id,
        ),
        robust=True,
    )


def share_revoked(share: ShareLink) -> None:
    record(action=REMOVED, kind=SHARE, key=share.record_id, share=share)


def connect() -> None:
    """Connect the receivers for every model that holds protected files."""
    holders = [model for model in apps.get_models() if _protected_fields(model)]
    for model in holders:
        if any(getattr(f, "owner_field", None) for f in _protected_fields(model)):
            uid = f"pm-owner-{model._meta.label}"
            post_init.connect(_owner_loaded, sender=model, dispatch_uid=uid)
            post_save.connect(_owner_saved, sender=model, dispatch_uid=uid)
        for field in _protected_fields(model):
            groups_field = getattr(field, "groups_field", None)
            if groups_field is None:
                continue
            through = model._meta.get_field(groups_field).remote_field.through  # type: ignore[union-attr]
            _throughs[through] = (model, groups_field)
            m2m_changed.connect(_groups_changed, sender=through, dispatch_uid=f"pm-{through}")
    post_save.connect(_share_saved, sender=ShareLink, dispatch_uid="pm-share-saved")
    if apps.is_installed("guardian"):
        for permission_model in _guardian_models():
            uid = f"pm-{permission_model._meta.label}"
            post_save.connect(_permission_saved, sender=permission_model, dispatch_uid=uid)
            post_delete.connect(_permission_deleted, sender=permission_model, dispatch_uid=uid)


def _emit(
    *,
    action: str,
    kind: str,
    key: str | None,
    holder: Model | None,
    group_id: Any,
    user_id: Any,
    share: ShareLink | None,
    permission: str | None,
    actor_id: Any,
) -> None:
    share_id = str(share.pk) if share is not None else None
    logger.info(
        "media grant=%s kind=%s key=%s group=%s user=%s share=%s permission=%s by=%s",
        action,
        kind,
        key or "-",
        group_id if group_id is not None else "-",
        user_id if user_id is not None else "-",
        share_id or "-",
        permission or "-",
        actor_id if actor_id is not None else UNKNOWN,
        extra={
            "grant": action,
            "kind": kind,
            "key": key,
            "group_id": group_id,
            "grantee_id": user_id,
            "share_id": share_id,
            "permission": permission,
            "actor_id": actor_id,
        },
    )
    results = grant_changed.send_robust(
        sender=kind,
        action=action,
        key=key,
        holder=holder,
        group_id=group_id,
        user_id=user_id,
        share=share,
        permission=permission,
        actor_id=actor_id,
    )
    for receiver, result in results:
        if isinstance(result, Exception):
            logger.error("protected_media grant receiver %r raised", receiver, exc_info=result)


def _pk(value: Any) -> Any:
    return getattr(value, "pk", value) if value is not None else None


def _protected_fields(model: type[Model]) -> list[Any]:
    return [f for f in model._meta.get_fields() if isinstance(f, ProtectedFieldMixin)]


def _keys(holder: Model | None) -> list[str | None]:
    """The keys of the row's files (one None when it holds none)."""
    if holder is None:
        return [None]
    keys = []
    for field in _protected_fields(type(holder)):
        found = getattr(holder, field.attname).record
        if found is not None:
            keys.append(found.key)
    return keys or [None]


def _groups_changed(
    sender: type[Model], instance: Model, action: str, reverse: bool, pk_set: Any, **kwargs: Any
) -> None:
    model, groups_field = _throughs[sender]
    relation: Any = model._meta.get_field(groups_field)
    source, target = relation.m2m_field_name(), relation.m2m_reverse_field_name()
    if action == "pre_clear":
        # clear() says nothing of what it removes: note it first.
        mine, theirs = (target, source) if reverse else (source, target)
        rows = sender._default_manager.filter(**{mine: instance.pk})
        instance.__dict__[_CLEARED] = set(rows.values_list(f"{theirs}_id", flat=True))
        return
    if action == "post_clear":
        pk_set = instance.__dict__.pop(_CLEARED, set())
    elif action not in ("post_add", "post_remove"):
        return
    change = ADDED if action == "post_add" else REMOVED
    if reverse:  # group.<related name>.add(file, ...)
        pairs = [(holder, instance.pk) for holder in model._default_manager.filter(pk__in=pk_set)]
    else:
        pairs = [(instance, group_id) for group_id in sorted(pk_set or ())]
    for holder, group_id in pairs:
        for key in _keys(holder):
            record(action=change, kind=GROUP, key=key, holder=holder, group=group_id)


@cache  # post_init runs for every row loaded, on the media path too
def _owner_attnames(model: type[Model]) -> list[str]:
    return sorted({f.owner_attname for f in _protected_fields(model) if f.owner_field})


def _owner_loaded(sender: type[Model], instance: Model, **kwargs: Any) -> None:
    # What the row held when it was loaded (or made): no query.
    instance.__dict__[_LOADED_OWNER] = [
        instance.__dict__.get(attname, _DEFERRED) for attname in _owner_attnames(sender)
    ]


def _owner_saved(sender: type[Model], instance: Model, created: bool, **kwargs: Any) -> None:
    now = [getattr(instance, attname) for attname in _owner_attnames(sender)]
    before = instance.__dict__.get(_LOADED_OWNER, now)
    instance.__dict__[_LOADED_OWNER] = now
    if created:
        return
    for old, new in zip(before, now, strict=True):
        if old == new or old is _DEFERRED:  # loaded without it: nothing to compare
            continue
        for key in _keys(instance):
            if old is not None:
                record(action=REMOVED, kind=OWNER, key=key, holder=instance, user=old)
            if new is not None:
                record(action=ADDED, kind=OWNER, key=key, holder=instance, user=new)


def _share_saved(sender: type[Model], instance: ShareLink, created: bool, **kwargs: Any) -> None:
    if created:
        record(
            action=ADDED,
            kind=SHARE,
            key=instance.record_id,
            share=instance,
            actor=instance.created_by_id,
        )


def _permission_saved(sender: type[Model], instance: Model, created: bool, **kwargs: Any) -> None:
    if created:
        _permission_changed(instance, ADDED)


def _permission_deleted(sender: type[Model], instance: Model, **kwargs: Any) -> None:
    _permission_changed(instance, REMOVED)


def _permission_changed(instance: Any, action: str) -> None:
    if hasattr(instance, "object_pk"):
        model = ContentType.objects.get_for_id(instance.content_type_id).model_class()
        object_pk = instance.object_pk
    else:
        model = instance._meta.get_field("content_object").related_model
        object_pk = instance.content_object_id
    if model is None or not _protected_fields(model):
        return
    try:
        holder = model._default_manager.filter(pk=object_pk).first()
    except (TypeError, ValueError):  # a generic key that is not this model's
        holder = None
    codename = instance.permission.codename
    for key in _keys(holder):
        record(
            action=action,
            kind=PERMISSION,
            key=key,
            holder=holder,
            group=getattr(instance, "group_id", None),
            user=getattr(instance, "user_id", None),
            permission=codename,
        )


def _guardian_models() -> list[type[Model]]:
    # guardian is optional: imported only when it is installed.
    from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase
    from guardian.utils import (
        get_direct_obj_perms_models,
        get_group_obj_perms_model,
        get_user_obj_perms_model,
    )

    return [
        get_user_obj_perms_model(),
        get_group_obj_perms_model(),
        *get_direct_obj_perms_models(UserObjectPermissionBase, get_user_obj_perms_model()),
        *get_direct_obj_perms_models(GroupObjectPermissionBase, get_group_obj_perms_model()),
    ]
