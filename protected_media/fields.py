"""Model fields whose files live in the private store and are served by the gateway.

Saving a file inspects its bytes, stores it under a server-generated name
(``<upload_to>/<128-bit key><extension>``) and writes a ``StoredFile`` record
with the original name, size and detected type. The record is what the
gateway looks up; the owning row (found through ``source``) is what the
policy judges.
"""

from __future__ import annotations

import errno
import functools
import logging
import posixpath
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib.auth import get_user_model
from django.core import checks
from django.core.exceptions import FieldDoesNotExist
from django.core.files.base import ContentFile
from django.db import models, router, transaction
from django.db.models.fields.files import FieldFile, ImageFieldFile
from django.db.models.signals import post_delete, post_init, post_save

from . import metrics
from .conf import conf
from .inspection import (
    IMAGE_FORMATS,
    Inspected,
    UploadRefused,
    inspect_upload,
    raise_if_client_gone,
)
from .keys import new_key
from .names import sanitize_original_name, stored_name
from .storage import protected_storage
from .thumbnails import pick as pick_thumbnail
from .thumbnails import store as store_thumbnails

if TYPE_CHECKING:
    from .models import StoredFile

logger = logging.getLogger("protected_media")
_INITIAL_NAMES = "_protected_media_initial_names"
_INSPECTION = "_protected_media_inspection"
# Files written during the holder's save, until its transaction ends.
_PENDING = "_protected_media_pending_files"


class ProtectedFieldFileMixin:
    field: Any  # a ProtectedFileField or ProtectedImageField
    instance: models.Model
    name: str | None
    storage: Any
    _committed: bool

    def save(self, name: str, content: Any, save: bool = True) -> None:
        from .models import StoredFile

        inspected = inspect_for_field(content, self.field)
        key = new_key()
        folder = posixpath.dirname(self.field.generate_filename(self.instance, key))
        target = stored_name(folder=folder, key=key, extension=inspected.extension)
        data = ContentFile(inspected.replacement) if inspected.replacement is not None else content
        using = self._db
        # The file, its records and (with save=True) the holding row are one
        # unit: one transaction, and the files written go again if any part
        # fails. Called with save=False from the holder's own save, the
        # holder's insert comes after this returns: _atomic_save_base holds
        # that insert and this in one transaction, and cleans up after both.
        before = (self.name, self._committed, self.instance.__dict__.get(self.field.attname))
        written: list[str] = []
        try:
            with transaction.atomic(using=using):
                try:
                    self.name = self.storage.save(target, data, max_length=self.field.max_length)
                except OSError as error:
                    # The storage wrote under a temporary name and removed it:
                    # nothing is left on disk, and no record was made.
                    raise storage_failure(error) from error
                written.append(self.name)
                record = StoredFile.objects.using(using).create(
                    key=key,
                    name=self.name,
                    source=self.field.source_label,
                    original_name=sanitize_original_name(name or ""),
                    size=inspected.size,
                    content_type=inspected.content_type,
                )
                thumbnails: list[StoredFile] = []
                if inspected.replacement is not None and conf.thumbnail_sizes:
                    thumbnails = store_thumbnails(
                        record,
                        inspected.replacement,
                        storage=self.storage,
                        using=using,
                        sizes=conf.thumbnail_sizes,
                    )
                written.extend(thumbnail.name for thumbnail in thumbnails)
                setattr(self.instance, self.field.attname, self.name)
                self._committed = True
                self.__dict__["record"] = record
                self.__dict__["thumbnails"] = thumbnails
                if save:
                    self.instance.save()
        except BaseException:
            _delete_files(written)
            _restore(self, before)
            raise
        pending = self.instance.__dict__.get(_PENDING)
        if pending is not None:
            pending.append((self, before, written))
        metrics.record_upload()

    save.alters_data = True  # type: ignore[attr-defined]

    @property
    def _db(self) -> str:
        return router.db_for_write(type(self.instance), instance=self.instance)

    @property
    def record(self) -> StoredFile | None:
        """The metadata row of this file (cached on the FieldFile)."""
        from .models import StoredFile

        if "record" not in self.__dict__:
            self.__dict__["record"] = (
                StoredFile.objects.filter(name=self.name).first() if self.name else None
            )
        return self.__dict__["record"]  # type: ignore[no-any-return]

    @property
    def thumbnails(self) -> list[StoredFile]:
        """This file's thumbnails, smallest first (from ``prefetch_records``
        when it ran; cached on the FieldFile)."""
        if "thumbnails" not in self.__dict__:
            record = self.record
            found = list(record.thumbnails.all()) if record is not None else []
            self.__dict__["thumbnails"] = sorted(found, key=lambda thumb: thumb.size_px or 0)
        return self.__dict__["thumbnails"]  # type: ignore[no-any-return]

    def thumbnail(self, size: int | None = None) -> StoredFile | None:
        """The smallest thumbnail made for at least ``size`` pixels (the
        smallest of all for None); None if there is none: an image that fits
        a size has no thumbnail for it, and is its own."""
        return pick_thumbnail(self.thumbnails, size)

    def thumbnail_url(self, size: int | None = None) -> str | None:
        """The gateway URL of ``thumbnail(size)``, or None. Templates call it
        without a size: ``{{ item.file.thumbnail_url|default:item.file.url }}``."""
        thumbnail = self.thumbnail(size)
        return protected_storage.url(thumbnail.name) if thumbnail is not None else None


class ProtectedFieldFile(ProtectedFieldFileMixin, FieldFile):
    pass


class ProtectedImageFieldFile(ProtectedFieldFileMixin, ImageFieldFile):
    pass


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
        if not getattr(cls.save_base, _PENDING, False):
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


def inspect_for_field(upload: Any, field: ProtectedFieldMixin) -> Inspected:
    """Inspect once: a form's clean() and the later save share the result."""
    cached = getattr(upload, _INSPECTION, None)
    try:
        # Also on the way to save(): nothing is written for a client that left.
        raise_if_client_gone()
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        inspected = inspect_upload(
            upload,
            allowed_types=field.allowed_types or conf.allowed_types,
            max_size=conf.max_upload_size,
            max_image_pixels=conf.max_image_pixels,
            max_frames=conf.max_image_frames,
            max_processed_pixels=conf.max_processed_pixels,
            max_jpeg_scans=conf.max_jpeg_scans,
            max_metadata=conf.max_image_metadata,
            thumbnail_sizes=conf.thumbnail_sizes,
        )
    except UploadRefused as refusal:
        # Counted here, once: a form's clean() that refuses keeps save() away.
        metrics.record_upload_refusal(refusal.reason)
        raise
    setattr(upload, _INSPECTION, inspected)
    return inspected


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


def storage_failure(error: OSError) -> UploadRefused:
    """The answer to an upload the disk could not take: 507 when it is full
    (or over quota), 500 for anything else (unwritable, gone); logged, since
    an operator must act."""
    logger.error("protected_media could not store an upload: %s", error)
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        refusal = UploadRefused(
            "storage_full", "The server has no room for this file; nothing was stored.", 507
        )
    else:
        refusal = UploadRefused(
            "storage_error", "The server could not store this file; nothing was stored.", 500
        )
    metrics.record_upload_refusal(refusal.reason)
    return refusal


def forget_file(name: str, *, using: str) -> None:
    """Drop the record now and the file once the transaction commits (rule 9),
    with its thumbnails (their records go by CASCADE)."""
    from .models import StoredFile

    records = StoredFile.objects.using(using)
    names = [name, *records.filter(original__name=name).values_list("name", flat=True)]
    records.filter(name=name).delete()
    transaction.on_commit(lambda: _delete_files(names), using=using)


def _delete_files(names: list[str]) -> None:
    for name in names:
        protected_storage.delete(name)


def _restore(field_file: Any, before: tuple[str | None, bool, Any]) -> None:
    # As before the failed save: the upload still to be stored, so a retry
    # stores it again rather than naming a file that is gone.
    field_file.name, field_file._committed, value = before
    field_file.__dict__.pop("record", None)
    field_file.__dict__.pop("thumbnails", None)
    field_file.instance.__dict__[field_file.field.attname] = value


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
        if _PENDING in instance.__dict__ or not _has_new_upload(instance):
            return save_base(instance, *args, **kwargs)
        using = kwargs.get("using") or router.db_for_write(type(instance), instance=instance)
        pending: list[tuple[Any, tuple[str | None, bool, Any], list[str]]] = []
        instance.__dict__[_PENDING] = pending
        try:
            with transaction.atomic(using=using):
                return save_base(instance, *args, **kwargs)
        except BaseException:
            for field_file, before, written in pending:
                _delete_files(written)
                _restore(field_file, before)
            raise
        finally:
            del instance.__dict__[_PENDING]

    setattr(atomic_save_base, _PENDING, True)
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
