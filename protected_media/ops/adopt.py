"""Adopting the files a field held before it was protected.

A site that turns a ``FileField`` holding files into a ``ProtectedFileField``
keeps rows that name files in the old storage (``MEDIA_ROOT``, a public
bucket): no record, no key, so no gateway URL. Adopting a row stores its old
file again through the field, as an upload would be (inspected, under a new
key, with its record and thumbnails), and points the row at it, all in one
transaction; an ``Adoption`` row, written in that same transaction, remembers
the old copy so it can be deleted once the new one is committed.

Each row is its own unit: a run stopped half way (Ctrl-C, a crash, a store
outage) leaves every row either adopted or as it was, and running again
finishes the job. A copy stored by a run killed outright, before its commit,
has no record: ``protected_media_orphans`` finds it.
"""

from __future__ import annotations

import enum
import posixpath
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.core.checks import CheckMessage, Warning
from django.core.exceptions import SuspiciousFileOperation
from django.core.files import File
from django.core.files.storage import Storage, storages
from django.db import DatabaseError, models, router, transaction
from django.db.models import QuerySet
from django.utils import timezone

from ..field_files import inspect_for_field, undone_on_failure
from ..fields import ProtectedFieldMixin
from ..inspection import UploadRefused
from ..records import Adoption, StoredFile

# Refusals that are about the store, not the file: every later row would meet
# them too, so the run stops and says so.
STORE_REFUSALS = frozenset({"store_unavailable", "storage_full", "storage_error"})


class AdoptError(Exception):
    """The command cannot start, or must stop: its message says why."""


class Result(enum.Enum):
    ADOPTED = "adopted"
    WOULD_ADOPT = "would be adopted"
    REFUSED = "refused"
    MISSING = "missing"
    CHANGED = "changed meanwhile"


LEFT_AS_THEY_WERE = frozenset({Result.REFUSED, Result.MISSING, Result.CHANGED})


@dataclass(frozen=True)
class Outcome:
    pk: Any
    old_name: str
    result: Result
    # The new file's name, or why the row was left as it was.
    detail: str


def resolve_field(label: str) -> tuple[type[models.Model], ProtectedFieldMixin]:
    """The model and protected field ``app_label.Model.field`` names."""
    parts = label.split(".")
    if len(parts) != 3:
        raise AdoptError(
            f"{label!r}: name the field as app_label.Model.field, e.g. shop.Profile.photo."
        )
    app_label, model_name, field_name = parts
    try:
        model = apps.get_model(app_label, model_name)
    except LookupError as error:
        raise AdoptError(f"{label!r}: {error}") from error
    field = next((f for f in model._meta.concrete_fields if f.name == field_name), None)
    if field is None:
        raise AdoptError(f"{label!r}: {model._meta.label} has no field {field_name!r}.")
    if not isinstance(field, ProtectedFieldMixin):
        raise AdoptError(
            f"{label!r} is a {type(field).__name__}: make it a ProtectedFileField or "
            "ProtectedImageField and migrate first; adopting stores its files through it."
        )
    return model, field


def resolve_storage(alias: str) -> Storage:
    """The old storage, by its STORAGES alias."""
    try:
        storage = storages[alias]
    except Exception as error:  # InvalidStorageError, or the backend failing to load
        raise AdoptError(
            f"--from-storage {alias!r}: {error}. Name an alias of the STORAGES setting "
            "that reaches the old files."
        ) from error
    return storage


def pending(model: type[models.Model], field: ProtectedFieldMixin) -> QuerySet[Any, Any]:
    """(pk, name) of every row whose file has no record yet, in pk order."""
    attname = field.attname
    recorded = StoredFile.objects.filter(source=field.source_label).values("name")
    rows = (
        model._default_manager.exclude(**{f"{attname}__isnull": True})
        .exclude(**{attname: ""})
        .exclude(**{f"{attname}__in": recorded})
        .order_by("pk")
        .values_list("pk", attname)
    )
    return rows


class Adopter:
    """Adopts the rows of one field, one transaction each."""

    def __init__(
        self,
        model: type[models.Model],
        field: ProtectedFieldMixin,
        old_storage: Storage,
        old_storage_alias: str,
        *,
        dry_run: bool = False,
    ) -> None:
        self.model = model
        self.field = field
        self.old_storage = old_storage
        self.old_storage_alias = old_storage_alias
        self.dry_run = dry_run

    def adopt(self, pk: Any, old_name: str) -> Outcome:
        def outcome(result: Result, detail: str) -> Outcome:
            return Outcome(pk, old_name, result, detail)

        instance = self.model._default_manager.filter(pk=pk).first()
        if instance is None or getattr(instance, self.field.attname).name != old_name:
            return outcome(Result.CHANGED, "the row changed since the scan: run again")
        try:
            handle = self.old_storage.open(old_name, "rb")
        except FileNotFoundError:
            return outcome(Result.MISSING, f"no such file in storage {self.old_storage_alias!r}")
        except (OSError, SuspiciousFileOperation) as error:
            # Unreadable, or a name that leaves the storage's folder.
            return outcome(Result.REFUSED, f"could not be read: {error}")
        with handle:
            content = File(handle, name=posixpath.basename(old_name))
            try:
                if self.dry_run:
                    inspect_for_field(content, self.field)
                    return outcome(Result.WOULD_ADOPT, "")
                return self._store(instance, content, outcome)
            except UploadRefused as refusal:
                if refusal.reason in STORE_REFUSALS:
                    raise AdoptError(
                        f"Stopped at row {pk}: {refusal.message} Every row before it is "
                        "adopted or as it was; run the command again to go on."
                    ) from refusal
                return outcome(Result.REFUSED, refusal.message)

    def _store(
        self, instance: models.Model, content: File[Any], outcome: Callable[[Result, str], Outcome]
    ) -> Outcome:
        attname = self.field.attname
        old_name = getattr(instance, attname).name
        using = router.db_for_write(self.model, instance=instance)
        field_file = getattr(instance, self.field.name)
        try:
            # Rolled back, the files stored for it go too (Ctrl-C included):
            # field_file.save's own transaction has ended by then.
            with undone_on_failure(instance), transaction.atomic(using=using):
                field_file.save(content.name, content, save=False)
                # Only if the row still names the old file: a user who
                # replaced it meanwhile keeps the new one.
                updated = (
                    self.model._default_manager.using(using)
                    .filter(pk=instance.pk, **{attname: old_name})
                    .update(**{attname: field_file.name})
                )
                if updated != 1:
                    raise _RowChanged
                Adoption.objects.using(using).create(
                    source=self.field.source_label,
                    old_storage=self.old_storage_alias,
                    old_name=old_name,
                    new_name=field_file.name,
                )
        except _RowChanged:
            return outcome(Result.CHANGED, "the row changed while it was adopted: run again")
        return outcome(Result.ADOPTED, field_file.name)


class _RowChanged(Exception):
    pass


def originals_to_delete(
    model: type[models.Model], field: ProtectedFieldMixin, old_storage_alias: str
) -> list[Adoption]:
    """Adoptions of the field from that storage whose old copy is still there,
    and that no row of the field names any more (two rows may have shared
    one old file: it goes when the last of them is adopted)."""
    still_named = model._default_manager.values(field.attname)
    return list(
        Adoption.objects.filter(
            source=field.source_label, old_storage=old_storage_alias, original_deleted=None
        )
        .exclude(old_name__in=still_named)
        .order_by("pk")
    )


def delete_original(adoption: Adoption, old_storage: Storage) -> bool:
    """Delete one old copy, then mark it deleted. False if another run did."""
    with transaction.atomic():
        locked = (
            Adoption.objects.select_for_update()
            .filter(pk=adoption.pk, original_deleted=None)
            .first()
        )
        if locked is None:
            return False
        # Storage.delete of a name already gone is not an error (Django's
        # contract): a run cut short after the delete and before its commit
        # deletes nothing twice.
        old_storage.delete(adoption.old_name)
        locked.original_deleted = timezone.now()
        locked.save(update_fields=["original_deleted"])
    return True


def protected_fields() -> Iterator[tuple[type[models.Model], ProtectedFieldMixin]]:
    for model in apps.get_models():
        for field in model._meta.concrete_fields:
            if isinstance(field, ProtectedFieldMixin):
                yield model, field


def say_after_first_migrate(
    sender: Any,
    *,
    using: str,
    plan: Any = None,
    stdout: Any = None,
    verbosity: int = 1,
    **kwargs: Any,
) -> None:
    """``post_migrate``: W003 once more, after the ``migrate`` that made this
    app's tables. The checks ``migrate`` runs first found no table to count
    the rows against, and a site that protected a field holding files in the
    same run would hear of those rows nowhere."""
    made_tables = any(
        migration.app_label == "protected_media" and migration.initial and not backwards
        for migration, backwards in plan or ()
    )
    if not made_tables or stdout is None or verbosity < 1:
        return
    for message in check_unadopted_files(databases=[using]):
        stdout.write(str(message))


def check_unadopted_files(**kwargs: Any) -> list[CheckMessage]:
    """W003, with the database checks (``migrate``, ``check --database``):
    rows of a protected field that name files stored before it was
    protected. Their ``.url`` raises and the gateway cannot serve them."""
    if not kwargs.get("databases"):
        return []
    messages: list[CheckMessage] = []
    for model, field in protected_fields():
        try:
            count = pending(model, field).count()
        except DatabaseError:
            # Tables not made yet (this very migrate makes them).
            continue
        if count:
            messages.append(
                Warning(
                    f"{count} row{'' if count == 1 else 's'} of {field.source_label} name a "
                    "file stored before the field was protected: it has no gateway URL "
                    "and the gateway cannot serve it.",
                    hint=f"Run: manage.py protected_media_adopt "
                    f"{model._meta.label}.{field.name} (docs/adopting.md).",
                    obj=field,
                    id="protected_media.W003",
                )
            )
    return messages
