"""The one decision every media request goes through: key -> record -> policy -> answer.

The async view calls ``adecide`` and only turns its result into a response;
nothing here knows about HTTP transports or nginx. ``find`` is the database
half (the record and the one row holding its file), blocking and compiled
once: the view runs it in one thread hop, and the ASGI entry point runs it in
the same hop as the session and the user, handing the result in as
``prefetched``.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.db import DatabaseError

from .conf import conf
from .fastpath.compiled import CompiledLookup
from .fields import ProtectedFieldMixin
from .headers import media_headers
from .keys import is_key
from .models import ProtectedFile
from .names import is_safe_stored_name
from .policy import default_grant, default_policy, get_policy
from .records import StoredFile

if TYPE_CHECKING:
    from django.db.models import Model

logger = logging.getLogger("protected_media")
# The grant reason of a policy named by PROTECTED_MEDIA_POLICY.
CUSTOM_POLICY = "policy"


class Reason(enum.StrEnum):
    """Why a request was refused, as the audit trail names it. Every refusal
    gets the same answer (security rule 2); only the log and the signal say
    which one it was."""

    ANONYMOUS = "anonymous"
    MALFORMED_KEY = "malformed_key"
    NO_RECORD = "no_record"
    NO_HOLDER = "no_holder"
    POLICY_DENIED = "policy_denied"
    POLICY_ERROR = "policy_error"
    FILE_MISSING = "file_missing"
    DATABASE_UNAVAILABLE = "database_unavailable"
    SHARE_INVALID = "share_invalid"
    SHARE_EXPIRED = "share_expired"
    SHARE_REVOKED = "share_revoked"
    SHARE_UNKNOWN = "share_unknown"
    SHARE_AUDIENCE = "share_audience"


@dataclass(frozen=True)
class Refusal:
    reason: Reason
    # Answer with the login page rather than the one 404: only for anonymous
    # requests, decided before any lookup so that the answer cannot depend on
    # whether the file exists.
    login: bool = False
    record: StoredFile | None = None


@dataclass(frozen=True)
class Grant:
    record: StoredFile
    obj: Model
    headers: dict[str, str]
    # Who or what let the user in: "owner", "staff", "group", "permission",
    # "policy" (a custom one) or "share".
    reason: str = CUSTOM_POLICY


@dataclass(frozen=True)
class Found:
    """What the database holds for one key: its record and the row holding its
    file, or ``None`` for either where there is nothing to serve."""

    key: str
    record: StoredFile | None
    holder: Model | None


async def adecide(*, key: str, user: Any, prefetched: Found | None = None) -> Grant | Refusal:
    if not user.is_authenticated:
        return anonymous_refusal()
    if not is_key(key):
        return Refusal(Reason.MALFORMED_KEY)
    if prefetched is not None and prefetched.key == key:
        found = prefetched
    else:
        found = await sync_to_async(find)(key)
    record, obj = found.record, found.holder
    if record is None or obj is None:
        # Nothing to serve, but the work of a refusal all the same: a key that
        # names nothing must cost what another user's file costs, or the time
        # of the one 404 would tell which keys exist (rule 2).
        await ajudge_stand_in(user)
        if record is None:
            return Refusal(Reason.NO_RECORD)
        return Refusal(Reason.NO_HOLDER, record=record)
    try:
        # A thumbnail is judged as its original, with its original's record.
        reason = await apply_policy(user, obj, record.judged_record)
    except DatabaseError:
        # An outage, not a broken policy: the view's 503, logged once.
        raise
    except Exception:
        return Refusal(Reason.POLICY_ERROR, record=record)
    if reason is None:
        return Refusal(Reason.POLICY_DENIED, record=record)
    return grant(record, obj, reason=reason)


def anonymous_refusal() -> Refusal:
    return Refusal(Reason.ANONYMOUS, login=conf.anonymous == "login")


def grant(record: StoredFile, obj: Model, *, reason: str) -> Grant:
    headers = served_headers(record.content_type, record.original_name)
    return Grant(record=record, obj=obj, headers=headers, reason=reason)


def served_headers(content_type: str, original_name: str) -> dict[str, str]:
    """The headers a granted file is answered with, from its record."""
    return media_headers(
        content_type=content_type,
        original_name=original_name,
        inline_types=conf.inline_types,
        cache_control=conf.cache_control,
    )


async def apply_policy(user: Any, obj: Model, record: StoredFile) -> str | None:
    """Why the policy lets ``user`` read the file, or None. Logs and re-raises
    what the policy raises: the caller must deny (fail closed)."""
    try:
        return await _run_policy(user, obj, record)
    except DatabaseError:
        raise
    except Exception:
        logger.exception("protected_media policy raised; access denied")
        raise


async def _run_policy(user: Any, obj: Model, record: StoredFile) -> str | None:
    policy = get_policy()
    if policy is default_policy:
        return await default_grant(user, obj, record)
    # Only True grants: a policy returning a truthy non-bool is a bug.
    return CUSTOM_POLICY if await policy(user, obj, record) is True else None


async def ajudge_stand_in(user: Any) -> None:
    """Ask the policy about a stand-in file that belongs to nobody and is in
    no group, and drop the answer: the queries and policy calls of a refusal,
    for a key that names no file."""
    try:
        await _run_policy(user, stand_in_holder(), stand_in_record())
    except DatabaseError:
        # An outage answers 503 whatever the key.
        raise
    except Exception:  # noqa: S110 - a stand-in's error means nothing; never logged
        pass


# The stand-in is a file of the ready-made model (the model most sites hold
# their files in), so that it costs the same statements as one of those.
STAND_IN_SOURCE = "protected_media.protectedfile.file"
# A name no row can hold: stored names are relative (names.is_safe_stored_name).
STAND_IN_NAME = "/"


def stand_in_record() -> StoredFile:
    return StoredFile(key="", name=STAND_IN_NAME, source=STAND_IN_SOURCE, original_name="", size=0)


def stand_in_holder() -> Model:
    # Unsaved, with no owner; its random primary key is in no group and no
    # permission table.
    return ProtectedFile()


# A record by its key.
RECORD_LOOKUP = CompiledLookup(StoredFile, ["pk"], limit=1)
_HOLDERS: dict[tuple[type[Model], str], CompiledLookup[Model]] = {}


def find(key: str) -> Found:
    """The record for ``key`` and the one row holding its file (blocking)."""
    if not is_key(key):
        return Found(key, None, None)
    records = RECORD_LOOKUP.fetch(key)
    if not records or not is_safe_stored_name(records[0].name):
        if records:
            logger.error("protected_media record %s has an unsafe name; refused", records[0].pk)
        # The holder's lookup all the same, for a name no row holds: a missing
        # key runs the statements another user's file runs (rule 2).
        _holder(stand_in_record())
        return Found(key, None, None)
    record = records[0]
    if record.original_id is None:
        return Found(key, record, _holder(record))
    # A thumbnail is served under its own name but judged by the row holding
    # its original, so it never outlives nor out-shares it. One more lookup,
    # for thumbnails only.
    originals = RECORD_LOOKUP.fetch(record.original_id)
    if not originals or originals[0].original_id is not None:
        return Found(key, record, None)
    # Cached on the thumbnail: a policy can read record.original without a query.
    record.original = originals[0]
    return Found(key, record, _holder(originals[0]))


def holder_field(source: str) -> tuple[type[Model], Any]:
    """The model and field a record's ``source`` (``app_label.model.field``)
    names; LookupError, FieldDoesNotExist or ValueError where it names none."""
    app_label, model_name, field_name = [*source.split("."), "", "", ""][:3]
    model = apps.get_model(app_label, model_name)
    return model, model._meta.get_field(field_name)


def holder_lookup(model: type[Model], field: ProtectedFieldMixin) -> CompiledLookup[Model]:
    """The rows of ``model`` holding a given file in ``field``, compiled once."""
    lookup = _HOLDERS.get((model, field.name))
    if lookup is None:
        lookup = _HOLDERS.setdefault(
            (model, field.name), CompiledLookup(model, [field.name], limit=2)
        )
    return lookup


def _holder(record: StoredFile) -> Model | None:
    try:
        model, field = holder_field(record.source)
    except (LookupError, FieldDoesNotExist, ValueError):
        logger.error("protected_media record %s names an unknown field", record.pk)
        return None
    if not isinstance(field, ProtectedFieldMixin):
        return None
    lookup = holder_lookup(model, field)
    # Exactly one row may hold a file: if a name were ever copied onto a
    # second row, whose owner decides would be a guess.
    rows = lookup.fetch(record.name)
    if len(rows) != 1:
        if rows:
            logger.error("protected_media record %s is held by several rows; refused", record.pk)
        return None
    return rows[0]
