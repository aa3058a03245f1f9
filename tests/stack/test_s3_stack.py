"""Private files in a bucket, through the whole stack: the run command with
GATEWAY_STORAGE=s3 against the real SeaweedFS (signatures and expiry
checked), uploads through the API, downloads through nginx, which fetches the
object from the store after the check. Nothing lands on the local disk."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import httpx
import pytest
from PIL import Image

from gateway.seaweed import SeaweedStore, s3_client

from .conftest import USERS, start_stack
from .harness import Stack, upload

pytestmark = pytest.mark.stack

DATA = b"quarterly numbers, private\n" * 40
STORE_HEADERS = ("x-amz-", "seaweed-")
NAME_OF = """
from protected_media.models import ProtectedFile
print(ProtectedFile.objects.get(pk={file_id!r}).file.name)
"""
THUMBNAIL_OF = """
import json
from protected_media.models import ProtectedFile
file = ProtectedFile.objects.get(pk={file_id!r}).file
print(json.dumps([file.thumbnail_url(), file.thumbnail().name]))
"""


@pytest.fixture(scope="module")
def s3_stack(tmp_path_factory, seaweed: SeaweedStore) -> Iterator[Stack]:
    running = start_stack(
        tmp_path_factory,
        "s3-stack",
        **seaweed.gateway_environment(),
    )
    yield running
    running.stop()


@pytest.fixture
def owner(s3_stack: Stack) -> Iterator[httpx.Client]:
    client = s3_stack.login("alice", USERS["alice"])
    yield client
    client.close()


@pytest.fixture
def stranger(s3_stack: Stack) -> Iterator[httpx.Client]:
    client = s3_stack.login("bob", USERS["bob"])
    yield client
    client.close()


def in_bucket(store: SeaweedStore, name: str) -> bytes | None:
    client = s3_client(store)
    try:
        return client.get_object(Bucket=store.bucket, Key=name)["Body"].read()
    except client.exceptions.NoSuchKey:
        return None


def stored_name(stack: Stack, file_id: str) -> str:
    return stack.shell(NAME_OF.format(file_id=file_id)).strip().splitlines()[-1]


def assert_no_store_header(response: httpx.Response) -> None:
    leaked = [name for name in response.headers if name.lower().startswith(STORE_HEADERS)]
    assert leaked == []


def test_an_upload_lands_in_the_bucket_and_nginx_serves_it_to_its_owner(
    s3_stack: Stack, seaweed: SeaweedStore, owner: httpx.Client
) -> None:
    created = upload(owner, "numbers.txt", DATA, "text/plain")
    assert created.status_code == 201, created.text
    name = stored_name(s3_stack, created.json()["id"])
    assert in_bucket(seaweed, name) == DATA
    assert not (s3_stack.private_root / name).exists()

    served = owner.get(created.json()["url"])
    assert served.status_code == 200
    assert served.content == DATA
    assert served.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert served.headers["Content-Disposition"] == 'inline; filename="numbers.txt"'
    assert served.headers["Cache-Control"] == "private, no-store"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert "X-Accel-Redirect" not in served.headers
    assert_no_store_header(served)

    head = owner.head(created.json()["url"])
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["Content-Length"] == str(len(DATA))
    assert_no_store_header(head)

    part = owner.get(created.json()["url"], headers={"Range": "bytes=0-9"})
    assert (part.status_code, part.content) == (206, DATA[:10])


def test_a_stranger_gets_the_one_404_and_the_store_is_never_asked(
    owner: httpx.Client, stranger: httpx.Client
) -> None:
    created = upload(owner, "mine.txt", DATA, "text/plain")
    refused = stranger.get(created.json()["url"])
    missing = stranger.get("/media/" + "A" * 22)
    assert (refused.status_code, refused.content) == (404, b"Not Found\n")
    assert (refused.status_code, refused.content) == (missing.status_code, missing.content)
    assert_no_store_header(refused)


def test_a_deleted_file_leaves_the_bucket_and_is_refused(
    s3_stack: Stack, seaweed: SeaweedStore, owner: httpx.Client
) -> None:
    created = upload(owner, "gone.txt", DATA, "text/plain")
    name = stored_name(s3_stack, created.json()["id"])
    deleted = owner.delete(
        f"/api/files/{created.json()['id']}/",
        headers={"X-CSRFToken": owner.cookies["csrftoken"], "Origin": s3_stack.url},
    )
    assert deleted.status_code == 204, deleted.text
    assert in_bucket(seaweed, name) is None
    again = owner.get(created.json()["url"])
    assert (again.status_code, again.content) == (404, b"Not Found\n")


def test_a_thumbnail_is_made_in_the_bucket_and_served_from_it(
    s3_stack: Stack, seaweed: SeaweedStore, owner: httpx.Client
) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (900, 600), (30, 90, 200)).save(buffer, format="PNG")
    created = upload(owner, "photo.png", buffer.getvalue(), "image/png")
    assert created.status_code == 201, created.text
    url, name = json.loads(
        s3_stack.shell(THUMBNAIL_OF.format(file_id=created.json()["id"])).strip().splitlines()[-1]
    )
    assert in_bucket(seaweed, name) is not None
    served = owner.get(url)
    assert served.status_code == 200
    assert served.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(served.content)).size[0] <= 256
