"""The one decision every media request goes through: key -> record -> policy -> answer.

Both the async view and any other adapter call ``adecide`` and only turn its
result into a response; nothing here knows about HTTP transports or nginx.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist

from .conf import conf
from .fields import ProtectedFieldMixin
from .headers import media_headers
from .keys import is_key
from .models import StoredFile
from .names import is_safe_stored_name
from .policy import get_policy

if TYPE_CHECKING:
    from django.db.models import Model

logger = logging.getLogger("protected_media")


class Refusal(enum.Enum):
    # One answer for "no": missing, forbidden and malformed look the same.
    NOT_FOUND = "not_found"
    # Anonymous requests, decided before any lookup so the answer cannot
    # depend on whether the file exists.
    LOGIN = "login"


@dataclass(frozen=True)
class Grant:
    record: StoredFile
    obj: Model
    headers: dict[str, str]


async def adecide(*, key: str, user: Any) -> Grant | Refusal:
    if not user.is_authenticated:
        return Refusal.LOGIN if conf.anonymous == "login" else Refusal.NOT_FOUND
    if not is_key(key):
        return Refusal.NOT_FOUND
    record = await StoredFile.objects.filter(pk=key).afirst()
    if record is None:
        return Refusal.NOT_FOUND
    if not is_safe_stored_name(record.name):
        logger.error("protected_media record %s has an unsafe name; refused", record.pk)
        return Refusal.NOT_FOUND
    obj = await _aowner_object(record)
    if obj is None:
        return Refusal.NOT_FOUND
    try:
        allowed = await get_policy()(user, obj, record)
    except Exception:
        # A broken policy must fail closed.
        logger.exception("protected_media policy raised; access denied")
        return Refusal.NOT_FOUND
    if allowed is not True:
        return Refusal.NOT_FOUND
    headers = media_headers(
        content_type=record.content_type,
        original_name=record.original_name,
        inline_types=conf.inline_types,
        cache_control=conf.cache_control,
    )
    return Grant(record=record, obj=obj, headers=headers)


async def _aowner_object(record: StoredFile) -> Model | None:
    app_label, model_name, field_name = [*record.source.split("."), "", "", ""][:3]
    try:
        model = apps.get_model(app_label, model_name)
        field = model._meta.get_field(field_name)
    except (LookupError, FieldDoesNotExist, ValueError):
        logger.error("protected_media record %s names an unknown field", record.pk)
        return None
    if not isinstance(field, ProtectedFieldMixin):
        return None
    # Exactly one row may hold a file: if a name were ever copied onto a
    # second row, whose owner decides would be a guess.
    holders = model._default_manager.filter(**{field.name: record.name})[:2]
    rows: list[Model] = [row async for row in holders]
    if len(rows) != 1:
        if rows:
            logger.error("protected_media record %s is held by several rows; refused", record.pk)
        return None
    return rows[0]
