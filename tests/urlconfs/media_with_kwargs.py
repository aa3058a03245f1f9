"""The gateway's include with extra arguments, which Django hands the view."""

from django.urls import include, path

urlpatterns = [path("media/", include("protected_media.urls"), {"extra": "argument"})]
