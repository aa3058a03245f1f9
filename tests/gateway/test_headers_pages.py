"""The site's own pages: a Content-Security-Policy on each, and no per-user
answer a cache may keep (gateway.middleware, on the gateway's URLconf)."""

from __future__ import annotations

import json

import pytest
from django.conf import settings
from django.test import Client, override_settings

from gateway.middleware import PAGE_POLICY
from protected_media.models import ShareLink

from .test_api import browser

pytestmark = pytest.mark.django_db

SITE_MIDDLEWARE = [*settings.MIDDLEWARE, "gateway.middleware.SiteHeadersMiddleware"]
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@pytest.fixture(autouse=True)
def _site_middleware():
    with override_settings(MIDDLEWARE=SITE_MIDDLEWARE):
        yield


@pytest.fixture
def notes(alice, make_file):
    return make_file(alice, "notes.txt", b"notes\n")


@pytest.fixture
def share(notes):
    client, headers = browser(notes.owner)
    created = client.post(
        f"/api/files/{notes.pk}/shares/", "{}", content_type="application/json", headers=headers
    )
    assert created.status_code == 201
    return ShareLink.objects.get()


def directives(response) -> set[str]:
    return {part.strip() for part in response["Cache-Control"].split(",")}


def assert_private(response) -> None:
    # Django's never_cache (sign-in, admin) says more; every answer says these.
    assert {"private", "no-store"} <= directives(response), response["Cache-Control"]
    assert "public" not in directives(response)


def test_the_policy_is_the_documented_one() -> None:
    assert PAGE_POLICY == POLICY


# What each per-user route answers a signed-in owner, with its status.
GET_ROUTES = [
    ("/", 302),
    ("/files/", 200),
    ("/profile/", 200),
    ("/api/files/", 200),
    ("/api/files/{file}/", 200),
    ("/api/files/{file}/shares/", 200),
    ("/api/shares/{share}/", 405),  # DELETE only
    ("/admin/", 302),
    ("/accounts/login/", 200),
    ("/no-such-page/", 404),
]


@pytest.mark.parametrize(("route", "status"), GET_ROUTES)
def test_every_per_user_get_is_private_and_has_the_policy(notes, share, route, status) -> None:
    client, _ = browser(notes.owner)
    response = client.get(route.format(file=notes.pk, share=share.pk))
    assert response.status_code == status
    assert_private(response)
    assert response["Content-Security-Policy"] == POLICY


def test_our_own_views_say_exactly_private_no_store(notes) -> None:
    client, _ = browser(notes.owner)
    for route in ("/files/", "/profile/", "/api/files/", f"/api/files/{notes.pk}/"):
        assert client.get(route)["Cache-Control"] == "private, no-store", route


@pytest.mark.parametrize(
    ("route", "body", "status"),
    [
        ("/api/files/{file}/shares/", "{}", 201),
        ("/files/{file}/share/", {"lifetime": "3600", "audience": "anyone"}, 302),
        ("/shares/{share}/revoke/", {}, 302),
        ("/api/shares/{share}/", None, 204),
        ("/files/{file}/delete/", {}, 302),
        ("/accounts/logout/", {}, 200),  # no LOGOUT_REDIRECT_URL in the test settings
    ],
)
def test_every_per_user_post_is_private(notes, share, route, body, status) -> None:
    client, headers = browser(notes.owner)
    url = route.format(file=notes.pk, share=share.pk)
    if body is None:
        response = client.delete(url, headers=headers)
    elif isinstance(body, str):
        response = client.post(url, body, content_type="application/json", headers=headers)
    else:
        response = client.post(url, body, headers=headers)
    assert response.status_code == status, response.content
    assert_private(response)


def test_an_anonymous_api_refusal_is_private_too() -> None:
    response = Client().get("/api/files/")
    assert response.status_code in (401, 403)
    assert response["Cache-Control"] == "private, no-store"
    assert json.loads(response.content)


def test_media_answers_keep_their_own_headers(notes) -> None:
    # The gateway's answer sets its Cache-Control (the policy's); the
    # middleware adds nothing over it.
    client, _ = browser(notes.owner)
    response = client.get(notes.file.url)
    assert response.status_code == 200
    assert response["Cache-Control"] == "private, no-store"


# -- files: framed by no page ---------------------------------------------------------

MEDIA_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; sandbox",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def test_the_rendered_internal_location_forbids_framing() -> None:
    from protected_media.nginx.render import MEDIA_SECURITY_HEADERS

    assert dict(MEDIA_SECURITY_HEADERS) == MEDIA_HEADERS


@pytest.mark.parametrize(
    ("extra", "status"),
    [
        ({}, 200),
        ({"Range": "bytes=0-1"}, 206),
        ({"Range": "bytes=99-"}, 416),
        ({"If-None-Match": "*"}, 304),
    ],
)
def test_the_fallback_sends_the_internal_locations_headers(settings, notes, extra, status) -> None:
    # Not the pages' policy: a file is sandboxed and framed by nobody, on every answer.
    settings.SENDFILE_BACKEND = "protected_media.backends.streaming"
    client, _ = browser(notes.owner)
    response = client.get(notes.file.url, headers=extra)
    assert response.status_code == status
    for name, value in MEDIA_HEADERS.items():
        assert response[name] == value, name
    assert response["Cache-Control"] == "private, no-store"


def test_media_requests_are_left_alone(notes) -> None:
    # ProtectedMediaASGI answers most media requests without this middleware:
    # Django's handler must answer the others with the same headers.
    from protected_media.asgi import skipped_middleware

    assert skipped_middleware() == []
    client, _ = browser(notes.owner)
    for path in (notes.file.url, "/media/not-a-key", "/media/s/%0A"):
        response = client.get(path)
        assert response.status_code in (200, 404), path
        assert "Content-Security-Policy" not in response, path
        assert response["Cache-Control"] == "private, no-store", path
