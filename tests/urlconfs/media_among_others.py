"""A site whose patterns before the gateway's come in every shape the media
routes' pruning must judge: some can never match a media path and may be
left out, the rest can or cannot be told apart simply and must be kept."""

from django.http import HttpRequest, HttpResponse
from django.urls import ResolverMatch, URLPattern, include, path, re_path
from django.urls.resolvers import RoutePattern
from django.utils.translation import gettext_lazy


def named(name: str):  # type: ignore[no-untyped-def]
    def view(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        return HttpResponse(name)

    view.__name__ = name
    return view


class CatchAllPattern(URLPattern):
    """A site's own pattern class, which resolves as it likes, whatever its route says."""

    def resolve(self, path: str):  # type: ignore[no-untyped-def]
        if path.startswith("media/claimed"):
            return ResolverMatch(
                self.callback, (), {}, route="media/claimed", captured_kwargs={}, extra_kwargs={}
            )
        return None


admin_like = [path("", named("admin_index")), path("<str:page>/", named("admin_page"))]

urlpatterns = [
    CatchAllPattern(RoutePattern("elsewhere", is_endpoint=True), named("site_pattern_class")),
    path("", named("home")),
    path("medi", named("endpoint_short_of_the_prefix")),
    path("media/exact", named("endpoint_under_the_prefix")),
    path("med<str:rest>/", named("converter_inside_the_prefix")),
    path("admin/", include(admin_like)),
    path("mediaeval/", include(admin_like)),
    re_path(r"^medi?a/optional/(?P<rest>.+)$", named("regex_optional_letter")),
    re_path(r"^admin/|media/alternative", named("regex_alternative")),
    re_path(r"media/unanchored/(?P<rest>.+)", named("regex_unanchored")),
    re_path(r"^other/(?P<rest>.+)$", named("regex_elsewhere")),
    path(gettext_lazy("media/translated/<str:rest>"), named("translated_route")),
    path("<str:anything>/media/", named("converter_first")),
    path(
        "media/",
        include(
            (
                [
                    path("nested/<str:rest>", named("nested")),
                    path("", include("protected_media.urls")),
                ],
                "site",
            ),
            namespace="site",
        ),
        {"extra": "kept"},
    ),
]
