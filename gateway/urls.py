from django.contrib import admin
from django.urls import include, path

from protected_media.ops import metrics

from .demo import api, views

handler400 = "gateway.demo.api.bad_request"
handler403 = "gateway.demo.api.permission_denied"
handler404 = "gateway.demo.api.page_not_found"
# An upload nginx refused for its size (protected_media.too_large).
handler413 = "gateway.demo.api.too_large"
handler500 = "gateway.demo.api.server_error"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("profile/", views.profile, name="profile"),
    path("files/", views.files, name="files"),
    path("files/<uuid:file_id>/delete/", views.delete_file, name="delete-file"),
    path("files/<uuid:file_id>/share/", views.share_file, name="share-file"),
    path("shares/<uuid:share_id>/revoke/", views.revoke_share, name="revoke-share"),
    path("api/files/", api.files, name="api-files"),
    path("api/files/<uuid:file_id>/", api.file_detail, name="api-file"),
    path("api/files/<uuid:file_id>/shares/", api.file_shares, name="api-file-shares"),
    path("api/shares/<uuid:share_id>/", api.share_detail, name="api-share"),
    path("admin/", admin.site.urls),
    # PROTECTED_MEDIA_METRICS_URL: nginx lets only loopback reach it.
    path("metrics", metrics.view, name="metrics"),
    # Must match PROTECTED_MEDIA_URL (system check protected_media.E008).
    path("media/", include("protected_media.urls")),
]
