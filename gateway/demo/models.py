from django.contrib.auth.models import User
from django.db import models

from protected_media.fields import ProtectedImageField


class Profile(models.Model):
    user = models.OneToOneField(User, on_delete=models.CASCADE)
    # The seed's field, with one line changed: ImageField -> ProtectedImageField.
    profile_picture = ProtectedImageField(upload_to="profile_pics/", owner_field="user", blank=True)

    def __str__(self) -> str:
        return f"Profile of {self.user}"
