"""The Python fallback answers like nginx: ranges, HEAD and conditional requests."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from protected_media.backends.streaming import CHUNK_SIZE, byte_range

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def streaming(settings) -> None:
    settings.SENDFILE_BACKEND = "protected_media.backends.streaming"


async def body(response) -> bytes:
    assert response.streaming and response.is_async
    return b"".join([chunk async for chunk in response.streaming_content])


async def fetch(user, make_file, data: bytes, **headers):
    item = await sync_to_async(make_file)(user, "data.bin", data)
    client = AsyncClient()
    await client.aforce_login(user)
    return item, client, await client.get(item.file.url, headers=headers)


async def test_whole_file_streams_in_chunks(alice, make_file) -> None:
    data = ("line of text\n" * 100_000).encode()
    _, _, response = await fetch(alice, make_file, data)
    chunks = [chunk async for chunk in response.streaming_content]
    assert b"".join(chunks) == data
    assert max(len(chunk) for chunk in chunks) <= CHUNK_SIZE
    assert response.status_code == 200
    assert response["Content-Length"] == str(len(data))
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Cache-Control"] == "private, no-store"
    assert response["Accept-Ranges"] == "bytes"
    assert "X-Accel-Redirect" not in response


TEXT = ("0123456789abcdef" * 64 + "\n").encode()  # 1025 bytes of plain text


@pytest.mark.parametrize(
    ("range_header", "status", "content_range", "expected"),
    [
        ("bytes=0-9", 206, "bytes 0-9/1025", TEXT[:10]),
        ("bytes=1000-", 206, "bytes 1000-1024/1025", TEXT[1000:]),
        ("bytes=-5", 206, "bytes 1020-1024/1025", TEXT[-5:]),
        ("bytes=1020-5000", 206, "bytes 1020-1024/1025", TEXT[1020:]),
        ("bytes=0-1,2-3", 200, None, TEXT),  # several ranges: the whole file, as max_ranges 1
        ("bytes=9-2", 200, None, TEXT),  # invalid: ignored
        ("items=0-1", 200, None, TEXT),
    ],
)
async def test_single_ranges(alice, make_file, range_header, status, content_range, expected):
    _, _, response = await fetch(alice, make_file, TEXT, Range=range_header)
    assert response.status_code == status
    assert response.get("Content-Range") == content_range
    assert response["Content-Length"] == str(len(expected))
    assert await body(response) == expected


@pytest.mark.parametrize("range_header", ["bytes=1025-", "bytes=5000-6000", "bytes=-0"])
async def test_unsatisfiable_ranges(alice, make_file, range_header) -> None:
    _, _, response = await fetch(alice, make_file, TEXT, Range=range_header)
    assert response.status_code == 416
    assert response["Content-Range"] == "bytes */1025"


async def test_conditional_requests(alice, make_file) -> None:
    item, client, first = await fetch(alice, make_file, TEXT)
    etag, last_modified = first["ETag"], first["Last-Modified"]
    cached = await client.get(item.file.url, headers={"If-None-Match": etag})
    assert cached.status_code == 304
    assert cached.content == b""
    assert cached["ETag"] == etag
    assert (
        await client.get(item.file.url, headers={"If-None-Match": '"other"'})
    ).status_code == 200
    since = await client.get(item.file.url, headers={"If-Modified-Since": last_modified})
    assert since.status_code == 304
    # If-Range with a stale validator: the whole file, not a piece of the new one.
    stale = await client.get(item.file.url, headers={"Range": "bytes=0-1", "If-Range": '"old"'})
    assert stale.status_code == 200
    fresh = await client.get(item.file.url, headers={"Range": "bytes=0-1", "If-Range": etag})
    assert fresh.status_code == 206


async def test_head_sends_headers_only(alice, make_file) -> None:
    item = await sync_to_async(make_file)(alice, "t.txt", TEXT)
    client = AsyncClient()
    await client.aforce_login(alice)
    response = await client.head(item.file.url)
    assert response.status_code == 200
    assert response["Content-Length"] == str(len(TEXT))
    assert response["ETag"]
    # That no byte follows is proven under the real uvicorn (tests/stack).


async def test_missing_on_disk_is_the_same_404(alice, bob, make_file, private_root) -> None:
    item = await sync_to_async(make_file)(alice, "t.txt", TEXT)
    (private_root / item.file.name).unlink()
    client = AsyncClient()
    await client.aforce_login(alice)
    missing = await client.get(item.file.url)
    await client.aforce_login(bob)
    forbidden = await client.get(item.file.url)
    assert (missing.status_code, missing.content) == (404, b"Not Found\n")
    assert dict(missing.headers) == dict(forbidden.headers)


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, None),
        ("bytes=0-0", 10, (0, 1)),
        ("bytes=9-", 10, (9, 1)),
        ("bytes=10-", 10, "unsatisfiable"),
        ("bytes=-20", 10, (0, 10)),
        ("bytes=-", 10, None),
        ("bytes=0-1, 3-4", 10, None),
    ],
)
def test_byte_range_parsing(header, size, expected) -> None:
    assert byte_range(header, size) == expected


@pytest.mark.parametrize("target", ["outside", "other user's file"])
async def test_symlinks_under_the_root_are_not_followed(
    alice, bob, make_file, private_root, tmp_path, target
) -> None:
    # As nginx's disable_symlinks: a link planted where alice's file was
    # serves nothing, whether it points outside the root or at bob's file.
    mine = await sync_to_async(make_file)(alice, "t.txt", b"mine\n")
    theirs = await sync_to_async(make_file)(bob, "t.txt", b"bob's secret\n")
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"outside secret\n")
    path = private_root / mine.file.name
    path.unlink()
    path.symlink_to(secret if target == "outside" else private_root / theirs.file.name)
    client = AsyncClient()
    await client.aforce_login(alice)
    response = await client.get(mine.file.url)
    assert (response.status_code, response.content) == (404, b"Not Found\n")


async def test_a_linked_folder_under_the_root_is_not_followed(
    alice, make_file, private_root, tmp_path
) -> None:
    item = await sync_to_async(make_file)(alice, "t.txt", b"mine\n")
    folder = private_root / "files"
    moved = tmp_path / "moved-files"
    folder.rename(moved)
    folder.symlink_to(moved, target_is_directory=True)
    client = AsyncClient()
    await client.aforce_login(alice)
    response = await client.get(item.file.url)
    assert response.status_code == 404
