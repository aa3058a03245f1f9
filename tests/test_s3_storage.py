"""PROTECTED_MEDIA_STORAGE = "s3" against a real store (SeaweedFS, signatures
and expiry checked): files land in the bucket with their records, keep the
gateway's URL, go with their rows, and reach their owner through nginx's
X-Accel-Redirect to a presigned URL; nobody else gets more than local's 404."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.core.asgi import get_asgi_application
from django.core.exceptions import ImproperlyConfigured
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, transaction
from django.test import AsyncClient

from gateway.seaweed import s3_client
from protected_media.asgi import ProtectedMediaASGI
from protected_media.inspection import UploadRefused
from protected_media.models import ProtectedFile, StoredFile
from protected_media.storage import protected_storage
from protected_media.testing import aassert_served

from .conftest import png_bytes
from .store import STORE_INTERNAL_URL, fetch_as_nginx, object_names, read_object, use_store

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def store(settings, seaweed):
    use_store(settings, seaweed)
    return seaweed


def photo() -> SimpleUploadedFile:
    # Large enough for a thumbnail.
    return SimpleUploadedFile("photo.png", png_bytes((900, 600)), content_type="image/png")


def files_on_disk(root) -> list[Any]:
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


# -- writing --------------------------------------------------------------------------


def test_a_saved_file_lands_in_the_bucket_with_its_record(
    store, alice, make_file, private_root
) -> None:
    item = make_file(alice, "notes.txt", b"hello\n")
    head = s3_client(store).head_object(Bucket=store.bucket, Key=item.file.name)
    assert head["ContentLength"] == 6
    assert read_object(store, item.file.name) == b"hello\n"
    record = StoredFile.objects.get(name=item.file.name)
    assert (record.original_name, record.size, record.content_type) == (
        "notes.txt",
        6,
        "text/plain",
    )
    # The gateway's URL, never a presigned one that would skip the check.
    assert item.file.url == f"/media/{record.key}"
    assert protected_storage.url(item.file.name) == item.file.url
    # Nothing went to the local disk.
    assert files_on_disk(private_root) == []


def test_an_image_and_its_thumbnails_land_in_the_bucket(store, alice) -> None:
    item = ProtectedFile(owner=alice)
    item.file.save("photo.png", photo(), save=True)
    thumbnails = list(StoredFile.objects.filter(original__name=item.file.name))
    assert thumbnails
    assert {item.file.name, *(thumb.name for thumb in thumbnails)} <= object_names(store)
    assert item.file.thumbnail_url() == f"/media/{thumbnails[0].key}"


def test_delete_after_commit_removes_the_object_and_its_thumbnails(store, alice) -> None:
    item = ProtectedFile(owner=alice)
    item.file.save("photo.png", photo(), save=True)
    names = {
        item.file.name,
        *StoredFile.objects.filter(original__name=item.file.name).values_list("name", flat=True),
    }
    assert len(names) == 2 and names <= object_names(store)
    with transaction.atomic():
        item.delete()
        # Until the transaction commits, the objects stay: a rollback keeps them.
        assert names <= object_names(store)
    assert not names & object_names(store)
    assert not StoredFile.objects.filter(name__in=names).exists()


def test_a_rolled_back_delete_keeps_the_object(store, alice, make_file) -> None:
    item = make_file(alice)
    with pytest.raises(RuntimeError), transaction.atomic():
        item.delete()
        raise RuntimeError("rolled back")
    assert read_object(store, item.file.name) == b"hello\n"
    assert StoredFile.objects.filter(name=item.file.name).exists()


@pytest.mark.parametrize("upload", [lambda: SimpleUploadedFile("n.txt", b"n\n"), photo])
def test_a_holder_whose_insert_fails_leaves_no_object_and_no_record(store, upload) -> None:
    before = object_names(store)
    # No owner: the database refuses the row (NOT NULL) after the field has
    # put the file (and its thumbnail) in the bucket and made their records.
    item = ProtectedFile(file=upload())
    with pytest.raises(IntegrityError):
        item.save()
    assert not StoredFile.objects.exists()
    assert object_names(store) == before


def test_an_upload_the_store_refuses_is_refused_and_leaves_nothing(
    store, settings, alice, caplog
) -> None:
    before = object_names(store)
    settings.PROTECTED_MEDIA_S3_SECRET_ACCESS_KEY = "not-the-secret"
    item = ProtectedFile(owner=alice)
    with pytest.raises(UploadRefused) as refused:
        item.file.save("n.txt", SimpleUploadedFile("n.txt", b"n\n"), save=True)
    assert (refused.value.status, refused.value.reason) == (500, "storage_error")
    assert not StoredFile.objects.exists()
    assert not ProtectedFile.objects.exists()
    assert object_names(store) == before
    assert "could not store an upload" in caplog.text
    # The secret is nowhere in what was logged.
    assert "not-the-secret" not in caplog.text


# -- reading: the handoff -------------------------------------------------------------


async def client_for(user) -> AsyncClient:
    client = AsyncClient()
    await client.aforce_login(user)
    return client


async def amake(make_file, owner, name: str = "notes.txt", data: bytes = b"hello\n"):
    return await sync_to_async(make_file)(owner, name, data)


def snapshot(response) -> tuple[int, dict[str, str], bytes]:
    headers = {name: value for name, value in response.headers.items() if name != "Date"}
    return response.status_code, headers, response.content


async def test_the_owner_gets_the_local_headers_and_a_store_target(store, alice, make_file) -> None:
    item = await amake(make_file, alice, "Quarterly report.txt", b"numbers\n")
    response = await (await client_for(alice)).get(item.file.url)
    assert (response.status_code, response.content) == (200, b"")
    headers = dict(response.headers)
    target = headers.pop("X-Accel-Redirect")
    assert headers == {
        "Content-Type": "text/plain; charset=utf-8",
        "Content-Disposition": 'inline; filename="Quarterly report.txt"',
        "Cache-Control": "private, no-store",
        "Content-Length": "0",
        "Vary": "Cookie",
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    assert target.startswith(f"{STORE_INTERNAL_URL}{store.bucket}/{item.file.name}?")
    got = fetch_as_nginx(target, store)
    assert (got.status, got.body) == (200, b"numbers\n")


async def test_head_is_presigned_for_head(store, alice, make_file) -> None:
    item = await amake(make_file, alice, "notes.txt", b"twelve bytes")
    client = await client_for(alice)
    head_target = (await client.head(item.file.url))["X-Accel-Redirect"]
    got = fetch_as_nginx(head_target, store, method="HEAD")
    assert (got.status, got.headers["content-length"], got.body) == (200, "12", b"")
    # SigV4 covers the method: each URL serves only the method it was made for.
    get_target = (await client.get(item.file.url))["X-Accel-Redirect"]
    assert fetch_as_nginx(get_target, store, method="HEAD").status == 403
    assert fetch_as_nginx(head_target, store, method="GET").status == 403


async def test_the_presigned_url_expires(store, settings, alice, make_file) -> None:
    # Two seconds: the signature's date is whole seconds, so a one-second URL
    # may have less than a second left when it is made.
    settings.PROTECTED_MEDIA_S3_URL_LIFETIME = 2
    item = await amake(make_file, alice)
    target = (await (await client_for(alice)).get(item.file.url))["X-Accel-Redirect"]
    assert "X-Amz-Expires=2&" in target
    assert fetch_as_nginx(target, store).status == 200
    await sync_to_async(time.sleep)(3.2)
    assert fetch_as_nginx(target, store).status == 403


async def test_a_stranger_gets_the_same_404_as_with_local_storage(
    store, settings, alice, bob, make_file
) -> None:
    item = await amake(make_file, alice)
    stranger = await client_for(bob)
    from_s3 = snapshot(await stranger.get(item.file.url))
    settings.PROTECTED_MEDIA_STORAGE = "local"
    from_local = snapshot(await stranger.get(item.file.url))
    assert from_s3 == from_local
    assert (from_s3[0], from_s3[2]) == (404, b"Not Found\n")
    assert not [name for name in from_s3[1] if name.lower().startswith("x-accel")]


async def test_the_fast_entry_point_hands_off_the_same_way(store, alice, make_file) -> None:
    item = await amake(make_file, alice, "notes.txt", b"fast\n")
    client = await client_for(alice)
    cookie = client.cookies["sessionid"].value
    application = ProtectedMediaASGI(get_asgi_application())
    try:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as fast:
            response = await fast.get(item.file.url, headers={"Cookie": f"sessionid={cookie}"})
    finally:
        await application.aclose()
    assert (response.status_code, response.content) == (200, b"")
    assert response.headers["content-disposition"] == 'inline; filename="notes.txt"'
    got = fetch_as_nginx(response.headers["x-accel-redirect"], store)
    assert (got.status, got.body) == (200, b"fast\n")


async def test_the_lean_path_hands_off_the_same_way(store, alice, make_file, lean_answers) -> None:
    item = await amake(make_file, alice, "notes.txt", b"lean\n")
    cookie = (await client_for(alice)).cookies["sessionid"].value
    application = ProtectedMediaASGI(get_asgi_application())
    try:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", cookies={"sessionid": cookie}
        ) as fast:
            # The first proves the reads, the second teaches the lean path.
            by_usual_path = [await fast.get(item.file.url) for _ in range(2)]
            by_lean = await fast.get(item.file.url)
            head_by_lean = await fast.head(item.file.url)
    finally:
        await application.aclose()
    assert len(lean_answers) == 2
    assert by_usual_path[-1].status_code == by_lean.status_code == 200
    # The same headers but for the redirect, which is signed afresh.
    without_target = [
        [
            (name, value)
            for name, value in response.headers.multi_items()
            if name != "x-accel-redirect"
        ]
        for response in (by_usual_path[-1], by_lean)
    ]
    assert without_target[0] == without_target[1]
    got = fetch_as_nginx(by_lean.headers["x-accel-redirect"], store)
    assert (got.status, got.body) == (200, b"lean\n")
    head_target = head_by_lean.headers["x-accel-redirect"]
    assert fetch_as_nginx(head_target, store, method="HEAD").status == 200
    assert fetch_as_nginx(head_target, store, method="GET").status == 403


async def test_the_streaming_fallback_refuses_to_serve_from_the_store(
    store, settings, alice, make_file
) -> None:
    # Check E025 says so at startup; a request that gets here anyway fails
    # closed rather than streaming nothing.
    item = await amake(make_file, alice)
    settings.SENDFILE_BACKEND = "protected_media.backends.streaming"
    with pytest.raises(ImproperlyConfigured, match="nginx only"):
        await (await client_for(alice)).get(item.file.url)


# -- protected_media.testing on the store ----------------------------------------------


class Answer:
    """A response as nginx gives it after the store's bytes came back."""

    def __init__(self, response: Any, body: bytes) -> None:
        self.status_code = response.status_code
        self.headers = {**response.headers}
        self.headers.pop("X-Accel-Redirect")
        self.headers["Content-Length"] = str(len(body))
        self.content = body


async def test_the_testing_assertions_know_the_store_handoff(store, alice, make_file) -> None:
    item = await amake(make_file, alice, "notes.txt", b"from the bucket\n")
    response = await (await client_for(alice)).get(item.file.url)
    await aassert_served(response, item.file)
    # The bytes a client gets through nginx are compared with the bucket's.
    got = fetch_as_nginx(response["X-Accel-Redirect"], store)
    await aassert_served(Answer(response, got.body), item.file, handoff=False)
    with pytest.raises(AssertionError, match="not the stored file"):
        await aassert_served(Answer(response, b"other bytes\n"), item.file, handoff=False)
    # A handoff to another object, or without a signature, is not this file's.
    other = await amake(make_file, alice, "other.txt", b"other\n")
    with pytest.raises(AssertionError, match="presigned query") as wrong:
        await aassert_served(response, other.file)
    assert "X-Amz-Signature" not in str(wrong.value)
    response["X-Accel-Redirect"] = response["X-Accel-Redirect"].partition("?")[0]
    with pytest.raises(AssertionError, match="presigned query"):
        await aassert_served(response, item.file)
