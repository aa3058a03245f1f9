"""Model fields whose files live in the private store and are served by the gateway.

Saving a file inspects its bytes, stores it under a server-generated name
(``<upload_to>/<128-bit key><extension>``) and writes a ``StoredFile`` record
with the original name, size and detected type. The record is what the
gateway looks up; the owning row (found through ``source``) is what the
policy judges.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.core import checks
from django.core.exceptions import FieldDoesNotExist
from django.db import models, router, transaction
from django.db.models.signals import post_delete, post_init, post_save

from .field_files import (
    PENDING,
    ProtectedFieldFile,
    ProtectedFieldFileMixin,
    ProtectedImageFieldFile,
    forget_file,
    inspect_for_field,
    prefetch_records,
    undone_on_failure,
)
from .inspection import IMAGE_FORMATS, UploadRefused
from .storage import protected_storage

__all__ = [
    "ProtectedFieldFile",
    "ProtectedFieldFileMixin",
    "ProtectedFieldMixin",
    "ProtectedFileField",
    "ProtectedImageField",
    "ProtectedImageFieldFile",
    "prefetch_records",
]

_INITIAL_NAMES = "_protected_media_initial_names"


class ProtectedFieldMixin:
    """Shared by both fields: owner, storage, record bookkeeping and deletion."""

    name: str
    model: type[models.Model]
    attname: str
    allowed_types: tuple[str, ...] | None
    form_class: type[forms.FileField]

    def _init_protected(
        self, kwargs: dict[str, Any], owner_field: str | None, groups_field: str | None = None
    ) -> None:
        self.owner_field = owner_field
        self.groups_field = groups_field
        kwargs.setdefault("storage", protected_storage)
        kwargs.setdefault("max_length", 255)
        kwargs.setdefault("db_index", True)

    @property
    def source_label(self) -> str:
        return f"{self.model._meta.label_lower}.{self.name}"

    @property
    def owner_attname(self) -> str | None:
        if self.owner_field is None:
            return None
        return self.model._meta.get_field(self.owner_field).attname  # type: ignore[union-attr]

    def _remember_name(self, instance: models.Model, **kwargs: Any) -> None:
        value = instance.__dict__.get(self.attname)
        # Only a name loaded from the database counts; a File handed to the
        # constructor is a new upload, not a file to replace.
        names = instance.__dict__.setdefault(_INITIAL_NAMES, {})
        names[self.attname] = value if isinstance(value, str) else None

    def _delete_after_row(self, instance: models.Model, using: str, **kwargs: Any) -> None:
        name = getattr(instance, self.attname).name
        if name:
            forget_file(name, using=using)

    def _forget_replaced_file(self, instance: models.Model, using: str, **kwargs: Any) -> None:
        # After the row is saved, so a save that fails keeps the old file, and
        # inside the save's transaction, so a rollback keeps it too.
        names = instance.__dict__.setdefault(_INITIAL_NAMES, {})
        old_name = names.get(self.attname)
        new_name = getattr(instance, self.attname).name
        if old_name and old_name != new_name:
            forget_file(old_name, using=using)
        names[self.attname] = new_name

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()  # type: ignore[misc]
        if kwargs.get("storage") is protected_storage:
            del kwargs["storage"]
        if self.owner_field is not None:
            kwargs["owner_field"] = self.owner_field
        if self.groups_field is not None:
            kwargs["groups_field"] = self.groups_field
        if self.allowed_types:
            kwargs["allowed_types"] = self.allowed_types
        return name, path, args, kwargs

    def contribute_to_class(self, cls: type[models.Model], name: str, **kwargs: Any) -> None:
        super().contribute_to_class(cls, name, **kwargs)  # type: ignore[misc]
        if cls._meta.abstract:
            return
        if not getattr(cls.save_base, PENDING, False):
            cls.save_base = _atomic_save_base(cls.save_base)  # type: ignore[method-assign]
        post_init.connect(self._remember_name, sender=cls, weak=False)
        post_save.connect(self._forget_replaced_file, sender=cls, weak=False)
        post_delete.connect(self._delete_after_row, sender=cls, weak=False)

    def formfield(self, **kwargs: Any) -> Any:
        # Refusals surface as form errors instead of failing inside model.save().
        return super().formfield(  # type: ignore[misc]
            **{"form_class": _inspecting_form_field(self.form_class, self), **kwargs}
        )

    def check(self, **kwargs: Any) -> list[checks.CheckMessage]:
        return [
            *super().check(**kwargs),  # type: ignore[misc]
            *self._check_owner_field(),
            *self._check_groups_field(),
        ]

    def _check_groups_field(self) -> list[checks.CheckMessage]:
        from django.contrib.auth.models import Group

        if self.groups_field is None:
            return []
        try:
            target = self.model._meta.get_field(self.groups_field)
        except FieldDoesNotExist:
            target = None
        if target is not None and target.many_to_many and target.related_model is Group:
            return []
        return [
            checks.Error(
                f"groups_field={self.groups_field!r} must name a ManyToManyField "
                f"of {self.model._meta.label} to auth.Group.",
                obj=self,
                id="protected_media.E013",
            )
        ]

    def _check_owner_field(self) -> list[checks.CheckMessage]:
        if self.owner_field is None:
            return []
        try:
            target = self.model._meta.get_field(self.owner_field)
        except FieldDoesNotExist:
            target = None
        is_relation = target is not None and (target.many_to_one or target.one_to_one)
        if is_relation and target.related_model is get_user_model():  # type: ignore[union-attr]
            return []
        return [
            checks.Error(
                f"owner_field={self.owner_field!r} must name a ForeignKey or OneToOneField "
                f"of {self.model._meta.label} to the user model.",
                obj=self,
                id="protected_media.E010",
            )
        ]


def _inspecting_form_field(base: type[forms.FileField], field: ProtectedFieldMixin) -> type:
    class InspectingFileField(base):  # type: ignore[valid-type,misc]
        def clean(self, data: Any, initial: Any = None) -> Any:
            value = super().clean(data, initial)
            if value and value is not initial and not getattr(value, "_committed", False):
                try:
                    inspect_for_field(value, field)
                except UploadRefused as refusal:
                    raise forms.ValidationError(refusal.message, code=refusal.reason) from None
            return value

    return InspectingFileField


def _has_new_upload(instance: models.Model) -> bool:
    for field in instance._meta.concrete_fields:
        # A deferred field (absent from __dict__) holds no new upload, and
        # reading it would load it.
        if isinstance(field, ProtectedFieldMixin) and field.attname in instance.__dict__:
            value = getattr(instance, field.attname)
            if value and not value._committed:
                return True
    return False


def _atomic_save_base(save_base: Callable[..., Any]) -> Callable[..., Any]:
    """The holder's save_base, in one transaction with the files its fields
    store (FileField.pre_save stores them just before the row's INSERT or
    UPDATE). Without it, in autocommit, a record would commit before an insert
    that fails, and stay with its file."""

    @functools.wraps(save_base)
    def atomic_save_base(instance: models.Model, *args: Any, **kwargs: Any) -> Any:
        if PENDING in instance.__dict__ or not _has_new_upload(instance):
            return save_base(instance, *args, **kwargs)
        using = kwargs.get("using") or router.db_for_write(type(instance), instance=instance)
        with undone_on_failure(instance), transaction.atomic(using=using):
            return save_base(instance, *args, **kwargs)

    setattr(atomic_save_base, PENDING, True)
    return atomic_save_base


# The stubs give Field and FileField different contribute_to_class signatures.
class ProtectedFileField(ProtectedFieldMixin, models.FileField):  # type: ignore[misc]
    attr_class = ProtectedFieldFile
    form_class = forms.FileField

    def __init__(
        self,
        *args: Any,
        owner_field: str | None = None,
        groups_field: str | None = None,
        allowed_types: tuple[str, ...] | None = None,
        **kwargs: Any,
    ) -> None:
        self.allowed_types = tuple(allowed_types) if allowed_types else None
        self._init_protected(kwargs, owner_field, groups_field)
        super().__init__(*args, **kwargs)


class ProtectedImageField(ProtectedFieldMixin, models.ImageField):  # type: ignore[misc]
    attr_class = ProtectedImageFieldFile
    form_class = forms.ImageField

    def __init__(
        self,
        *args: Any,
        owner_field: str | None = None,
        groups_field: str | None = None,
        **kwargs: Any,
    ) -> None:
        # An image field takes images only, whatever else the site allows.
        self.allowed_types = tuple(IMAGE_FORMATS)
        self._init_protected(kwargs, owner_field, groups_field)
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        kwargs.pop("allowed_types", None)
        return name, path, args, kwargs
