"""Protected files in Django REST framework serializers.

Importing this module needs ``djangorestframework``; the rest of the app does
not. What it adds:

- ``ProtectedFileSerializerField``: reads as the file's gateway URL, its
  thumbnail's, its name, size and type; takes an upload, inspected as the
  field's forms inspect it, so a refused file is a 400 carrying the
  inspection's own message before anything is written.
- ``ProtectedFilesMixin`` (and ``ProtectedModelSerializer``, a
  ``ModelSerializer`` with it): protected model fields get that serializer
  field, and a file the store could not take while saving (out of reach, full)
  is the gateway's answer for it (503 with ``Retry-After``, 507, 500) rather
  than an unhandled error.
- ``exception_handler``: the same answers for views whose serializers are
  not ours, set once as ``REST_FRAMEWORK["EXCEPTION_HANDLER"]``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models
from rest_framework import exceptions, serializers
from rest_framework.views import exception_handler as drf_exception_handler

from .field_files import ProtectedFieldFile, ProtectedImageFieldFile, inspect_for_field
from .fields import ProtectedFieldMixin, ProtectedFileField, ProtectedImageField
from .inspection import UploadRefused
from .names import served_name

__all__ = [
    "ProtectedFileSerializerField",
    "ProtectedFilesMixin",
    "ProtectedModelSerializer",
    "UploadNotStored",
    "exception_handler",
    "refusal_as_api_exception",
]


class UploadNotStored(exceptions.APIException):  # type: ignore[misc]
    """An inspected upload the storage could not take: the status the
    gateway's own API answers with (503, 507 or 500) and its message."""

    status_code = 500
    default_code = "storage_error"

    def __init__(self, refusal: UploadRefused) -> None:
        super().__init__(detail=refusal.message, code=refusal.reason)
        self.status_code = refusal.status
        # DRF's exception handler sends ``wait`` as Retry-After.
        self.wait = refusal.retry_after


def refusal_as_api_exception(refusal: UploadRefused) -> exceptions.APIException:
    """What DRF answers for a refused upload: a 400 for the file itself (its
    type, size or content; the message names the field), the storage's own
    status when the file was fine but could not be stored."""
    if refusal.status >= 500:
        return UploadNotStored(refusal)
    return serializers.ValidationError(refusal.message, code=refusal.reason)


class ProtectedFileSerializerField(serializers.FileField):  # type: ignore[misc]
    """A protected model field's file: written as an upload, read as
    ``{"url", "thumbnail_url", "name", "size", "content_type"}`` (null when
    the row holds no file)."""

    def to_internal_value(self, data: Any) -> Any:
        upload = super().to_internal_value(data)
        try:
            # Inspected once: the model field's save reuses the result.
            inspect_for_field(upload, self._model_field())
        except UploadRefused as refusal:
            raise serializers.ValidationError(refusal.message, code=refusal.reason) from None
        return upload

    def to_representation(self, value: Any) -> dict[str, Any] | None:
        if not value or not isinstance(value, ProtectedFieldFile | ProtectedImageFieldFile):
            return None
        record = value.record
        return {
            "url": self._absolute(value.url),
            "thumbnail_url": self._absolute(value.thumbnail_url()),
            # The name it is served under (what the browser saves).
            "name": served_name(record.original_name, content_type=record.content_type)
            if record is not None
            else None,
            "size": record.size if record is not None else None,
            "content_type": record.content_type if record is not None else None,
        }

    def _absolute(self, url: str | None) -> str | None:
        request = self.context.get("request")
        if url is None or request is None:
            return url
        return request.build_absolute_uri(url)  # type: ignore[no-any-return]

    def _model_field(self) -> ProtectedFieldMixin:
        model = getattr(getattr(self.parent, "Meta", None), "model", None)
        field = model._meta.get_field(self.source) if model is not None else None
        if not isinstance(field, ProtectedFieldMixin):
            raise TypeError(
                f"{type(self).__name__} {self.field_name!r} must be the field of a "
                "ProtectedFileField or ProtectedImageField in a ModelSerializer."
            )
        return field


class ProtectedFilesMixin:
    """For a ``ModelSerializer``: protected fields become
    ``ProtectedFileSerializerField``, and a file the storage could not take
    while saving is the gateway's answer for it (nothing of it is kept: the
    field's save is all or nothing)."""

    serializer_field_mapping: ClassVar[dict[type[models.Field[Any, Any]], Any]] = {
        **serializers.ModelSerializer.serializer_field_mapping,
        ProtectedFileField: ProtectedFileSerializerField,
        ProtectedImageField: ProtectedFileSerializerField,
    }

    def save(self, **kwargs: Any) -> Any:
        try:
            return super().save(**kwargs)  # type: ignore[misc]
        except UploadRefused as refusal:
            raise refusal_as_api_exception(refusal) from None


class ProtectedModelSerializer(ProtectedFilesMixin, serializers.ModelSerializer):  # type: ignore[misc]
    """A ``ModelSerializer`` that knows protected files."""


def exception_handler(exc: Exception, context: dict[str, Any]) -> Any:
    """DRF's exception handler, answering a refused upload as
    ``ProtectedFilesMixin`` does, for serializers that are not ours."""
    if isinstance(exc, UploadRefused):
        exc = refusal_as_api_exception(exc)
    return drf_exception_handler(exc, context)
