"""A site whose own pattern takes one media path before the gateway's: the
entry point must leave that path to the site's view, as Django would."""

from django.http import HttpRequest, HttpResponse
from django.urls import include, path


def site_view(request: HttpRequest, key: str) -> HttpResponse:
    return HttpResponse(f"the site's own view for {key}\n", content_type="text/plain")


urlpatterns = [
    path("media/<str:key>", site_view),
    path("media/", include("protected_media.urls")),
]
