"""The app's own URLconf for its tests: the media view where a site mounts it,
the login pages its refusals point to, the admin and the metrics view. The
gateway's demo and API have their tests under ``tests/gateway/``, on
``gateway.urls``."""

from django.contrib import admin
from django.urls import include, path

from protected_media.ops import metrics

urlpatterns = [
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("metrics", metrics.view, name="metrics"),
    path("media/", include("protected_media.urls")),
]
