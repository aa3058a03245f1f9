"""The private file store: outside every public root, atomic writes, gateway URLs."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import FileSystemStorage
from django.utils.deconstruct import deconstructible

from ..conf import conf
from .gateway_url import GatewayURLMixin

# A file being written carries this prefix until it is linked under its final
# name; the orphans command leaves such files alone.
TEMPORARY_PREFIX = ".upload-"


@deconstructible(path="protected_media.storage.ProtectedStorage")
class ProtectedStorage(GatewayURLMixin, FileSystemStorage):
    """Files under ``SENDFILE_ROOT``, whose URLs go through the gateway view.

    The location is read on every access (not cached as in FileSystemStorage),
    so a settings change is seen at once.
    """

    @property
    def base_location(self) -> str:
        root = conf.root
        if root is None:
            raise ImproperlyConfigured("SENDFILE_ROOT must name the private media folder.")
        return str(root)

    @property
    def location(self) -> str:
        return os.path.abspath(self.base_location)

    def _save(self, name: str, content: Any) -> str:
        # A partial file must never be visible under its final name (security
        # rule 9): write a temporary file beside it, then link it into place.
        # os.link fails instead of overwriting if the name is somehow taken.
        full_path = self.path(name)
        directory = os.path.dirname(full_path)
        self._make_folders(directory)
        descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=TEMPORARY_PREFIX)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                for chunk in content.chunks():
                    handle.write(chunk if isinstance(chunk, bytes) else chunk.encode())
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temporary, self.file_permissions_mode or 0o644)
            os.link(temporary, full_path)
        finally:
            os.unlink(temporary)
        return name.replace("\\", "/")

    def _make_folders(self, directory: str) -> None:
        # os.makedirs(mode=...) is masked by the umask: under umask 077 a
        # folder meant for 0o750 came out 0o700 and nginx's group could not
        # enter it. makedirs with the mode (never wider than meant, even for
        # a moment), then chmod every level it created to the exact mode.
        mode = self.directory_permissions_mode
        missing = []
        path = directory
        while not os.path.isdir(path) and os.path.dirname(path) != path:
            missing.append(path)
            path = os.path.dirname(path)
        os.makedirs(directory, mode=mode or 0o777, exist_ok=True)
        if mode is not None:
            for created in missing:
                os.chmod(created, mode)
