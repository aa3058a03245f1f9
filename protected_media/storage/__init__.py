"""Where the private bytes live, as PROTECTED_MEDIA_STORAGE says: ``local``
(a folder on this machine's disk) or ``s3`` (a bucket of an S3-compatible
store). ``protected_storage`` is whichever is selected: the fields, their
thumbnails and deletions all go through it.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import Storage
from django.core.signals import setting_changed
from django.utils.functional import LazyObject, empty

from ..conf import LOCAL_STORAGE, S3_STORAGE, conf
from .local import TEMPORARY_PREFIX, ProtectedStorage

__all__ = [
    "S3_INSTALL_HINT",
    "TEMPORARY_PREFIX",
    "ProtectedStorage",
    "is_protected_storage",
    "protected_storage",
    "selected_class",
]

S3_INSTALL_HINT = 'Install the s3 extra: pip install "django-protected-media-gateway[s3]".'


def selected_class() -> type[Storage]:
    """The storage class PROTECTED_MEDIA_STORAGE selects."""
    name = conf.storage
    if name == LOCAL_STORAGE:
        return ProtectedStorage
    if name == S3_STORAGE:
        try:
            from .s3 import ProtectedS3Storage  # an optional dependency (the s3 extra)
        except ImportError as error:
            raise ImproperlyConfigured(
                f"PROTECTED_MEDIA_STORAGE = 's3' needs django-storages and boto3. {S3_INSTALL_HINT}"
            ) from error
        return ProtectedS3Storage
    raise ImproperlyConfigured(f"PROTECTED_MEDIA_STORAGE {name!r} must be 'local' or 's3'.")


class SelectedStorage(LazyObject):  # type: ignore[type-arg]  # generic in the stubs only
    def _setup(self) -> None:
        self._wrapped = selected_class()()

    def __bool__(self) -> bool:
        # Django's FileField asks `storage or default_storage` as each model
        # is defined: answer without making the storage, so that models load
        # and the system checks can say what a wrong setting is missing.
        return True


protected_storage: Any = SelectedStorage()


def is_protected_storage(storage: object) -> bool:
    """Whether the gateway serves the files of ``storage``: the selected
    storage, or another instance of its class (made from the same settings).
    Any other storage would hand out URLs that skip the check."""
    if storage is protected_storage:
        return True
    try:
        return type(storage) is selected_class()
    except ImproperlyConfigured:
        return False


def _forget_selected_storage(*, setting: str, **kwargs: Any) -> None:
    # Under override_settings: the next use makes the storage the new
    # settings describe (and the S3 storage its client from them).
    if setting == "PROTECTED_MEDIA_STORAGE" or setting.startswith("PROTECTED_MEDIA_S3_"):
        protected_storage._wrapped = empty


setting_changed.connect(_forget_selected_storage, dispatch_uid="protected_media.storage")
