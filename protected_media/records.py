"""The records the gateway reads: one ``StoredFile`` per private file, and the
``ShareLink`` rows that let others read one. They know nothing of the fields
that write them (``fields``), so both the fields and the decision core import
them without a cycle.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from .keys import KEY_LENGTH


class StoredFile(models.Model):
    """The record of one private file: what the gateway looks up by key.

    ``source`` names the model field that holds the file
    (``app_label.model_name.field_name``); the row of that model holding
    ``name`` is the object the access policy judges.
    """

    key = models.CharField(primary_key=True, max_length=KEY_LENGTH, editable=False)
    name = models.CharField(max_length=255, unique=True)
    source = models.CharField(max_length=255)
    original_name = models.CharField(max_length=255)
    size = models.PositiveBigIntegerField()
    content_type = models.CharField(max_length=100)
    created = models.DateTimeField(auto_now_add=True)
    # A thumbnail is a file of its own, judged by its original's row and
    # deleted with it (protected_media.thumbnails).
    original = models.ForeignKey(
        "self",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        editable=False,
        related_name="thumbnails",
    )
    size_px = models.PositiveIntegerField(
        null=True,
        blank=True,
        editable=False,
        help_text=_("For a thumbnail, the longest edge it was made for."),
    )

    class Meta:
        verbose_name = _("stored file")

    def __str__(self) -> str:
        return self.original_name

    @property
    def judged_record(self) -> StoredFile:
        """The record a policy judges: a thumbnail's original, else itself
        (``decision.find`` loads the original with the thumbnail)."""
        original = self.original if self.original_id is not None else None
        return original if original is not None else self


class ShareLink(models.Model):
    """A link that lets others read one version of one file until it expires
    or is revoked (security rule 10; ``protected_media.shares``).

    Only a hash of the link's token is stored: the link itself is shown once,
    to the user who creates it.
    """

    class Audience(models.TextChoices):
        ANYONE = "anyone", _("anyone with the link")
        SIGNED_IN = "signed_in", _("signed-in users with the link")
        USERS = "users", _("the named users")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # The record is the file's version: replacing the content makes a new
    # record and deletes this one, and with it every link to it.
    record = models.ForeignKey(StoredFile, on_delete=models.CASCADE, related_name="share_links")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField()
    revoked = models.DateTimeField(null=True, blank=True)
    audience = models.CharField(max_length=16, choices=Audience.choices, default=Audience.ANYONE)
    users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")

    class Meta:
        ordering = ("-created",)
        verbose_name = _("share link")

    def __str__(self) -> str:
        return f"{self.record_id} until {self.expires:%Y-%m-%d %H:%M}"


class Adoption(models.Model):
    """One file a field held before it was protected, copied into the private
    store by ``protected_media_adopt`` (``protected_media.ops.adopt``).

    Written in the transaction that points the row at its new file, so it
    exists only once the protected copy is committed: the old copy is
    deleted from it (``--delete-originals``) on that run or a later one, so
    a run cut short between the two still finishes the job.
    """

    source = models.CharField(max_length=255, help_text=_("app_label.model_name.field_name"))
    old_storage = models.CharField(max_length=100, help_text=_("Its STORAGES alias."))
    old_name = models.CharField(max_length=1024)
    new_name = models.CharField(max_length=255)
    adopted = models.DateTimeField(auto_now_add=True)
    original_deleted = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("adopted file")
        indexes = (models.Index(fields=["source", "original_deleted"]),)

    def __str__(self) -> str:
        return f"{self.old_name} -> {self.new_name}"
