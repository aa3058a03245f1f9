"""The file a protected field holds: storing it (inspected, under a key, with
its record and thumbnails, all or nothing) and reading its record back.

``fields`` declares the fields; this module is what their values do.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import posixpath
from collections.abc import Iterator
from typing import Any

from django.core.files.base import ContentFile
from django.db import models, router, transaction
from django.db.models.fields.files import FieldFile, ImageFieldFile

from .conf import conf
from .inspection import Inspected, UploadRefused, inspect_upload, raise_if_client_gone
from .keys import new_key
from .names import sanitize_original_name, stored_name
from .records import StoredFile
from .signals import upload_refused, upload_stored
from .storage import protected_storage
from .storage.errors import STORE_RETRY_AFTER, StoreUnavailable
from .thumbnails import pick as pick_thumbnail
from .thumbnails import store as store_thumbnails

logger = logging.getLogger("protected_media")
_INSPECTION = "_protected_media_inspection"
# Files written during the holder's save, until its transaction ends.
PENDING = "_protected_media_pending_files"


class ProtectedFieldFileMixin:
    field: Any  # a ProtectedFileField or ProtectedImageField
    instance: models.Model
    name: str | None
    storage: Any
    _committed: bool

    def save(self, name: str, content: Any, save: bool = True) -> None:
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
                    raise storage_failure(error, self.field) from error
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
            delete_files(written)
            restore(self, before)
            raise
        pending = self.instance.__dict__.get(PENDING)
        if pending is not None:
            pending.append((self, before, written))
        upload_stored.send_robust(
            sender=self.field.model, instance=self.instance, field=self.field, record=record
        )

    save.alters_data = True  # type: ignore[attr-defined]

    @property
    def _db(self) -> str:
        return router.db_for_write(type(self.instance), instance=self.instance)

    @property
    def record(self) -> StoredFile | None:
        """The metadata row of this file (cached on the FieldFile)."""
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


def inspect_for_field(upload: Any, field: Any) -> Inspected:
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
        # Sent here, once: a form's clean() that refuses keeps save() away.
        upload_refused.send_robust(sender=field.model, field=field, reason=refusal.reason)
        raise
    setattr(upload, _INSPECTION, inspected)
    return inspected


def storage_failure(error: OSError, field: Any) -> UploadRefused:
    """The answer to an upload the storage could not take: 507 when the disk
    is full (or over quota), 503 with Retry-After when the store is out of
    reach or busy, 500 for anything else (unwritable, gone, refused);
    logged, since an operator must act."""
    logger.error("protected_media could not store an upload: %s", error)
    if isinstance(error, StoreUnavailable):
        refusal = UploadRefused(
            "store_unavailable",
            "The file store is not answering right now; nothing was stored. "
            f"Try again in {STORE_RETRY_AFTER} seconds.",
            503,
            retry_after=STORE_RETRY_AFTER,
        )
    elif error.errno in (errno.ENOSPC, errno.EDQUOT):
        refusal = UploadRefused(
            "storage_full", "The server has no room for this file; nothing was stored.", 507
        )
    else:
        refusal = UploadRefused(
            "storage_error", "The server could not store this file; nothing was stored.", 500
        )
    upload_refused.send_robust(sender=field.model, field=field, reason=refusal.reason)
    return refusal


def forget_file(name: str, *, using: str) -> None:
    """Drop the record now and the file once the transaction commits (rule 9),
    with its thumbnails (their records go by CASCADE)."""
    records = StoredFile.objects.using(using)
    names = [name, *records.filter(original__name=name).values_list("name", flat=True)]
    records.filter(name=name).delete()
    transaction.on_commit(lambda: delete_files(names), using=using)


def delete_files(names: list[str]) -> None:
    for name in names:
        try:
            protected_storage.delete(name)
        except Exception as error:
            # A store out of reach: the rest must still go, and a failed save
            # must still raise its own error. The file has no record now, so
            # protected_media_orphans finds it.
            logger.error("protected_media could not delete %s: %s", name, error)


@contextlib.contextmanager
def undone_on_failure(instance: models.Model) -> Iterator[None]:
    """Every file that ``instance``'s protected fields store inside the block
    is deleted again, and each field file put back as it was, if the block
    fails (Ctrl-C included). Put it around the transaction that holds the
    records: a file outlives its own save's transaction, never the caller's."""
    pending: list[tuple[Any, tuple[str | None, bool, Any], list[str]]] = []
    instance.__dict__[PENDING] = pending
    try:
        yield
    except BaseException:
        for field_file, before, written in pending:
            delete_files(written)
            restore(field_file, before)
        raise
    finally:
        del instance.__dict__[PENDING]


def restore(field_file: Any, before: tuple[str | None, bool, Any]) -> None:
    # As before the failed save: the upload still to be stored, so a retry
    # stores it again rather than naming a file that is gone.
    field_file.name, field_file._committed, value = before
    field_file.__dict__.pop("record", None)
    field_file.__dict__.pop("thumbnails", None)
    field_file.instance.__dict__[field_file.field.attname] = value


def prefetch_records(instances: list[Any], field_name: str = "file") -> list[Any]:
    """Load the records of many rows' files and their thumbnails in two
    queries (for listings)."""
    files = [getattr(instance, field_name) for instance in instances]
    records = StoredFile.objects.prefetch_related("thumbnails").in_bulk(
        [f.name for f in files if f.name], field_name="name"
    )
    for file in files:
        record = records.get(file.name)
        file.__dict__["record"] = record
        thumbnails = list(record.thumbnails.all()) if record is not None else []
        file.__dict__["thumbnails"] = sorted(thumbnails, key=lambda thumb: thumb.size_px or 0)
    return instances
