"""Thumbnails through the real stack: made at upload, handed to nginx after the
check under the original's policy, and gone with the original."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from .harness import Stack, cookie_header, upload

pytestmark = pytest.mark.stack

THUMBNAILS = """
import json
from protected_media.models import ProtectedFile
item = ProtectedFile.objects.get(pk={file_id!r})
thumbs = item.file.thumbnails
print(json.dumps([[t.size_px, item.file.thumbnail_url(t.size_px), t.name] for t in thumbs]))
"""


def png(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 160, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_thumbnail_is_served_by_nginx_to_the_owner_only(stack: Stack, alice, bob) -> None:
    created = upload(alice, "big.png", png((1200, 600)), "image/png")
    assert created.status_code == 201, created.text
    file_id = created.json()["id"]
    [[size, url, name]] = json.loads(
        stack.shell(THUMBNAILS.format(file_id=file_id)).strip().splitlines()[-1]
    )
    assert size == 256  # the default size
    assert (stack.private_root / name).is_file()

    response = stack.raw("GET", url, headers=cookie_header(alice))
    assert response.status == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["content-disposition"] == 'inline; filename="big-256.png"'
    assert response.headers["cache-control"] == "private, no-store"
    assert "x-accel-redirect" not in response.headers
    with Image.open(io.BytesIO(response.body)) as image:
        assert image.size == (256, 128)

    refused = stack.raw("GET", url, headers=cookie_header(bob))
    baseline = stack.raw("GET", created.json()["url"], headers=cookie_header(bob))
    assert refused.status == baseline.status == 404
    assert refused.body == baseline.body

    deleted = alice.delete(
        f"/api/files/{file_id}/",
        headers={"X-CSRFToken": alice.cookies["csrftoken"], "Origin": str(alice.base_url)},
    )
    assert deleted.status_code == 204
    assert stack.raw("GET", url, headers=cookie_header(alice)).status == 404
    assert not (stack.private_root / name).exists()
