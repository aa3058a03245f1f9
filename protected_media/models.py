from __future__ import annotations

import uuid
from typing import cast

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from .fields import ProtectedFieldFile, ProtectedFileField, prefetch_records
from .records import Adoption, ShareLink, StoredFile

__all__ = ["Adoption", "ProtectedFile", "ShareLink", "StoredFile", "prefetch_records"]


class ProtectedFile(models.Model):
    """A ready-made private upload for sites that need no model of their own."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="protected_files"
    )
    file = ProtectedFileField(upload_to="files/", owner_field="owner", groups_field="groups")
    groups = models.ManyToManyField(
        "auth.Group",
        blank=True,
        related_name="protected_files",
        help_text=_("Members of these groups may read the file."),
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-created",)
        verbose_name = _("protected file")

    def __str__(self) -> str:
        return self.original_name

    @property
    def record(self) -> StoredFile | None:
        return cast(ProtectedFieldFile, self.file).record

    @property
    def original_name(self) -> str:
        return self.record.original_name if self.record else ""

    @property
    def size(self) -> int:
        return self.record.size if self.record else 0

    @property
    def content_type(self) -> str:
        return self.record.content_type if self.record else ""
