"""A database that cannot answer (down, or its pool exhausted under load) is a
503 with Retry-After on every page and API call, logged once, never a 500
with a traceback per request."""

from __future__ import annotations

import logging

import pytest
from django.db import OperationalError
from django.test import Client

from protected_media import responses
from protected_media.models import ProtectedFile

pytestmark = pytest.mark.django_db


@pytest.fixture
def database_gone(monkeypatch):
    def fail(*args, **kwargs):
        raise OperationalError("couldn't get a connection after 5.00 sec")

    monkeypatch.setattr(responses, "_database_down", False)
    monkeypatch.setattr(ProtectedFile.objects, "filter", fail)


def signed_in(user) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def test_the_api_answers_503_in_json(alice, database_gone, caplog) -> None:
    client = signed_in(alice)
    for _ in range(3):
        response = client.get("/api/files/")
        assert response.status_code == 503
        assert response["Retry-After"] == "5"
        assert response["Cache-Control"] == "private, no-store"
        assert response.json() == {
            "error": "The database cannot answer right now; try again in a few seconds."
        }
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "cannot answer" in errors[0].getMessage()


def test_a_page_answers_503_with_the_sites_page(alice, database_gone) -> None:
    response = signed_in(alice).get("/files/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response["Content-Type"] == "text/html; charset=utf-8"
    body = response.content.decode()
    assert "<title>Busy for a moment · Media gateway</title>" in body
    assert "Try again in a few seconds; nothing was changed." in body
    # Rendered without the request: no user, so nothing asked the database.
    assert "Sign out" not in body


def test_other_errors_stay_500(alice, monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(ProtectedFile.objects, "filter", fail)
    response = signed_in(alice).get("/api/files/")
    assert response.status_code == 500
    page = signed_in(alice).get("/files/")
    assert page.status_code == 500
    assert "<title>Something went wrong · Media gateway</title>" in page.content.decode()
