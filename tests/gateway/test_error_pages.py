"""The site's own pages for its HTML routes' refusals (404, 403, the CSRF
403, 400), JSON for the API, and the media's one plain 404 left as it is."""

from __future__ import annotations

import pytest
from django.test import Client

from protected_media.responses import NOT_FOUND_BODY

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def assert_site_page(response, status: int, title: str, words: str) -> str:
    assert response.status_code == status
    assert response["Content-Type"] == "text/html; charset=utf-8"
    body = response.content.decode()
    assert f"<title>{title} · Media gateway</title>" in body
    assert f"<h1>{title}</h1>" in body
    assert words in body
    # The site's stylesheet and a way back.
    assert '<link rel="stylesheet" href="/static/demo/site.' in body
    assert '<a href="/">Go to the start page</a>' in body
    return body


def test_an_unknown_page_is_the_sites_404(alice) -> None:
    client = signed_in(alice)
    body = assert_site_page(
        client.get("/no/such/page/"), 404, "Page not found", "no page at this address"
    )
    # The same bytes every time, for whoever asks: nothing in a refusal may
    # tell one request from another (no navigation, whose sign-out form
    # carries a fresh CSRF token on every page).
    assert "csrfmiddlewaretoken" not in body
    assert client.get("/other/page/").content.decode() == body
    assert Client().get("/no/such/page/").content.decode() == body


def test_an_unknown_api_route_is_json(alice) -> None:
    response = signed_in(alice).get("/api/no-such-thing/")
    assert response.status_code == 404
    assert response.json() == {"error": "Not found."}


@pytest.mark.parametrize("path", ["/media/a/b/c", "/media/", "/media/%00"])
def test_media_paths_keep_the_one_plain_404(settings, alice, path) -> None:
    # With Django's handler in front (no fast entry point), what the media
    # URLconf does not match still gets the media's bytes, not the site's page.
    response = signed_in(alice).get(path)
    assert response.status_code == 404
    assert response.content == NOT_FOUND_BODY


def test_a_form_without_its_csrf_token_gets_the_sites_403(alice) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert_site_page(client.post("/files/", {}), 403, "The form has expired", "nothing was changed")


def test_the_api_keeps_its_json_csrf_refusal(alice) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post("/api/files/", {})
    assert response.status_code == 403
    assert "X-CSRFToken" in response.json()["error"]


def test_a_page_that_cannot_render_falls_back_to_plain_text(settings, alice, tmp_path) -> None:
    # Hashed static names with no manifest collected yet: the page's
    # stylesheet cannot be named. The refusal stays what it was, in words.
    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
    }
    response = signed_in(alice).get("/no/such/page/")
    assert response.status_code == 404
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content == b"Not Found\n"
