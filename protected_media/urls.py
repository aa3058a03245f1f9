"""Mount under PROTECTED_MEDIA_URL, e.g. ``path("media/", include("protected_media.urls"))``.

The patterns take everything below the prefix, line breaks included (``.``
would stop at one), so a malformed URL reaches the view and gets the same 404
as a missing or forbidden file, not Django's own.
"""

from django.urls import re_path

from . import views

app_name = "protected_media"
urlpatterns = [
    # Share links (protected_media.shares.URL_PREFIX), malformed ones too: a
    # key never holds "/".
    re_path(r"^s/(?P<token>[\s\S]*)\Z", views.serve_shared, name="share"),
    re_path(r"^(?P<key>[\s\S]*)\Z", views.serve, name="serve"),
]
