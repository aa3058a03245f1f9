"""Mount under PROTECTED_MEDIA_URL, e.g. ``path("media/", include("protected_media.urls"))``.

The pattern takes everything below the prefix, so a malformed URL reaches the
view and gets the same 404 as a missing or forbidden file, not Django's own.
"""

from django.urls import re_path

from . import views

app_name = "protected_media"
urlpatterns = [
    # Share links (protected_media.shares.URL_PREFIX): a key never holds "/".
    re_path(r"^s/(?P<token>[^/]*)\Z", views.serve_shared, name="share"),
    re_path(r"^(?P<key>.*)\Z", views.serve, name="serve"),
]
