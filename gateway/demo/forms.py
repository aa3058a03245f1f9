from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from django import forms

from protected_media.models import ProtectedFile

from .models import Profile
from .sharing import AUDIENCES, Audience, default_lifetime, describe_lifetime, lifetimes


class UploadForm(forms.ModelForm):
    class Meta:
        model = ProtectedFile
        fields = ("file",)


class ProfilePictureForm(forms.ModelForm):
    class Meta:
        model = Profile
        fields = ("profile_picture",)


class ShareForm(forms.Form):
    """A share link's lifetime and audience. The choices are read when the
    form is made, so a changed maximum lifetime applies at once."""

    lifetime = forms.TypedChoiceField(
        label="Link expires after", coerce=lambda seconds: timedelta(seconds=int(seconds))
    )
    audience = forms.ChoiceField(
        label="Who can open it", choices=list(AUDIENCES.items()), initial=Audience.ANYONE
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = lifetimes()
        field = cast(forms.TypedChoiceField, self.fields["lifetime"])
        field.choices = [
            (str(int(lifetime.total_seconds())), describe_lifetime(lifetime))
            for lifetime in choices
        ]
        field.initial = str(int(default_lifetime(choices).total_seconds()))
