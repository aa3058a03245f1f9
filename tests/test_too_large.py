"""An upload nginx refused for its size, handed to the app as a GET with
``X-Protected-Media-Refused: too-large``: the middleware answers it with the
URLconf's ``handler413`` or the default (JSON, the site's ``413.html``, or a
line of text), and leaves every other request alone. The real hand-over, from
nginx, is tested in tests/stack/test_stack.py."""

from __future__ import annotations

import json

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from protected_media.inspection import human_size
from protected_media.too_large import REFUSAL_META, TOO_LARGE, refusal_middleware

MARK = {REFUSAL_META: TOO_LARGE}
PASSED = HttpResponse("the page itself")


def expected_message(limit: int) -> str:
    return f"The upload is larger than the limit of {human_size(limit)}; nothing was saved."


@pytest.fixture
def limit(settings) -> int:
    settings.PROTECTED_MEDIA_MAX_UPLOAD_SIZE = 3 * 1024 * 1024
    return settings.PROTECTED_MEDIA_MAX_UPLOAD_SIZE


def answer(**meta: str) -> HttpResponse:
    request = RequestFactory().get("/profile/", **meta)
    return refusal_middleware(lambda request: PASSED)(request)


def test_an_unmarked_request_passes(limit) -> None:
    assert answer() is PASSED
    assert answer(**{REFUSAL_META: "something-else"}) is PASSED


def test_json_for_a_client_that_prefers_it(limit) -> None:
    response = answer(HTTP_ACCEPT="application/json", **MARK)
    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {"error": expected_message(limit)}
    assert human_size(limit) == "3 MiB"
    assert response["Cache-Control"] == "private, no-store"


def test_a_line_of_text_without_a_413_template(limit) -> None:
    response = answer(HTTP_ACCEPT="text/html,*/*;q=0.8", **MARK)
    assert response.status_code == 413
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response.content.decode() == expected_message(limit) + "\n"


def test_the_sites_413_template(limit, settings, tmp_path) -> None:
    (tmp_path / "413.html").write_text("<h1>Too big</h1><p>{{ message }} ({{ limit }})</p>")
    settings.TEMPLATES = [
        {**settings.TEMPLATES[0], "DIRS": [str(tmp_path)]},
    ]
    response = answer(**MARK)  # no Accept header at all: the page
    assert response.status_code == 413
    assert response.content.decode() == (
        f"<h1>Too big</h1><p>{expected_message(limit)} (3 MiB)</p>"
    )


def test_the_urlconfs_handler413(limit, settings) -> None:
    settings.ROOT_URLCONF = "gateway.urls"
    response = answer(**MARK)
    # gateway.demo.api.too_large: the demo site's page.
    assert response.status_code == 413
    assert "<h1>File too large</h1>" in response.content.decode()


async def test_the_async_middleware_answers_alike(limit) -> None:
    async def page(request) -> HttpResponse:
        return PASSED

    middleware = refusal_middleware(page)
    factory = RequestFactory()
    assert await middleware(factory.get("/files/")) is PASSED
    refused = await middleware(factory.get("/files/", HTTP_ACCEPT="application/json", **MARK))
    assert refused.status_code == 413
    assert json.loads(refused.content) == {"error": expected_message(limit)}


def test_media_requests_may_skip_it(settings) -> None:
    from protected_media.asgi import skipped_middleware

    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "protected_media.too_large.refusal_middleware"]
    assert skipped_middleware() == []
