from django.conf import settings
from django.db import models

from protected_media.fields import ProtectedFileField


class Report(models.Model):
    """A site's own model with a protected file, a dated folder and no metadata columns."""

    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    attachment = ProtectedFileField(upload_to="reports/%Y/", owner_field="author")
    public = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"Report {self.pk}"
