from django import forms

from protected_media.models import ProtectedFile

from .models import Profile


class UploadForm(forms.ModelForm):
    class Meta:
        model = ProtectedFile
        fields = ("file",)


class ProfilePictureForm(forms.ModelForm):
    class Meta:
        model = Profile
        fields = ("profile_picture",)
