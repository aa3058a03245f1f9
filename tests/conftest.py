from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import SyncToAsync
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections
from PIL import Image

from gateway.seaweed import Seaweed, SeaweedStore
from protected_media.models import ProtectedFile

from .store import use_store


def png_bytes(size: tuple[int, int] = (8, 6), color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory) -> Iterator[SeaweedStore]:
    """A real S3 store (SeaweedFS on loopback, signatures and expiry checked)
    and its bucket, shared by the session's tests: started when a test first
    asks for it, so a session that never does starts none."""
    with Seaweed(tmp_path_factory.mktemp("seaweedfs")) as store:
        yield store


@pytest.fixture(params=["local", "s3"])
def each_storage(request, settings) -> str:
    """The test once on each storage: local disk, then the real store's bucket
    (the same expectations: the storage must not change what users see)."""
    if request.param == "s3":
        use_store(settings, request.getfixturevalue("seaweed"))
    return str(request.param)


@pytest.fixture(autouse=True)
def _close_connections_of_asgirefs_thread():
    # Async tests' sync_to_async calls run in asgiref's one shared thread,
    # where no request_finished ever closes the connection: left open, it
    # keeps PostgreSQL from dropping the test database at the end.
    yield
    SyncToAsync.single_thread_executor.submit(connections.close_all).result()


@pytest.fixture(autouse=True)
def private_root(settings, tmp_path: Path) -> Path:
    root = tmp_path / "private"
    settings.SENDFILE_ROOT = str(root)
    return root


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="alice-password")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password="bob-password")


@pytest.fixture
def make_file() -> Callable[..., ProtectedFile]:
    def make(owner, name: str = "notes.txt", data: bytes = b"hello\n") -> ProtectedFile:
        item = ProtectedFile(owner=owner)
        item.file.save(name, SimpleUploadedFile(name, data), save=True)
        return item

    return make


@pytest.fixture
def lean_answers(monkeypatch) -> list[Any]:
    """Each answer the entry point's lean path sends (``fastpath.lean``)."""
    from protected_media.fastpath import lean

    sent: list[lean.Answer] = []
    send_answer = lean.send_answer

    async def counted(answer: lean.Answer, *args: Any) -> None:
        sent.append(answer)
        await send_answer(answer, *args)

    monkeypatch.setattr(lean, "send_answer", counted)
    return sent
