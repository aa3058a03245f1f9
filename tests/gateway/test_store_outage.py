"""A store that is out of reach while a file is uploaded: the client gets a
503 saying when to try again, and nothing is kept, neither object nor
record; a store that refuses (bad credentials) stays a 500, since waiting
will not help."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from gateway.seaweed import SeaweedStore
from protected_media.models import ProtectedFile, StoredFile
from protected_media.storage import s3

from ..store import object_names, use_store
from .test_api import assert_json_error, browser, upload

pytestmark = pytest.mark.django_db

DATA = b"minutes of the meeting\n"


@pytest.fixture
def store(settings, seaweed: SeaweedStore) -> SeaweedStore:
    use_store(settings, seaweed)
    return seaweed


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """An address that accepts connections and never answers: a store hung
    on a full disk or a dead backend."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stopping = threading.Event()

    def accept() -> None:
        while not stopping.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            accepted.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stopping.set()
    listener.close()
    for connection in accepted:
        connection.close()


def closed_endpoint() -> str:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def assert_nothing_kept(store: SeaweedStore, before: set[str]) -> None:
    assert not StoredFile.objects.exists()
    assert not ProtectedFile.objects.exists()
    # The endpoint was wrong, not the bucket: the real one is untouched.
    assert object_names(store) == before


def test_an_unreachable_store_is_a_503_with_retry_after(settings, store, alice, caplog) -> None:
    before = object_names(store)
    settings.PROTECTED_MEDIA_S3_ENDPOINT_URL = closed_endpoint()
    client, headers = browser(alice)
    refused = upload(client, headers, "minutes.txt", DATA, "text/plain")
    message = assert_json_error(refused, 503)
    assert refused["Retry-After"] == "10"
    assert message == (
        "The file store is not answering right now; nothing was stored. Try again in 10 seconds."
    )
    assert_nothing_kept(store, before)
    assert "could not store an upload" in caplog.text


def test_a_store_that_never_answers_is_a_503_in_bounded_time(
    settings, store, alice, silent_endpoint, monkeypatch
) -> None:
    # The real read timeout (s3.READ_TIMEOUT, with the client's retries) is
    # tens of seconds; a short one proves the same path quickly.
    monkeypatch.setattr(s3, "READ_TIMEOUT", 0.5)
    before = object_names(store)
    settings.PROTECTED_MEDIA_S3_ENDPOINT_URL = silent_endpoint
    client, headers = browser(alice)
    refused = upload(client, headers, "minutes.txt", DATA, "text/plain")
    assert_json_error(refused, 503)
    assert refused["Retry-After"] == "10"
    assert_nothing_kept(store, before)


def test_a_store_that_refuses_the_credentials_is_a_500_without_retry_after(
    settings, store, alice
) -> None:
    before = object_names(store)
    settings.PROTECTED_MEDIA_S3_SECRET_ACCESS_KEY = "not-the-secret"
    client, headers = browser(alice)
    refused = upload(client, headers, "minutes.txt", DATA, "text/plain")
    assert assert_json_error(refused, 500) == (
        "The server could not store this file; nothing was stored."
    )
    assert not refused.has_header("Retry-After")
    assert_nothing_kept(store, before)
