"""The Python fallback under the real uvicorn (behind nginx's plain proxy)."""

from __future__ import annotations

import pytest

from .conftest import USERS
from .harness import cookie_header, upload

pytestmark = pytest.mark.stack

BIG = b"0123456789abcdef\n" * 60_000  # ~1 MiB of text, several chunks


@pytest.fixture(scope="module")
def owner(fallback_stack):
    client = fallback_stack.login("alice", USERS["alice"])
    yield client
    client.close()


@pytest.fixture(scope="module")
def big_file(owner):
    response = upload(owner, "big.txt", BIG, "text/plain")
    assert response.status_code == 201, response.text
    return response.json()


def test_streams_the_whole_file(fallback_stack, owner, big_file) -> None:
    response = fallback_stack.raw_uvicorn("GET", big_file["url"], headers=cookie_header(owner))
    assert response.status == 200
    assert response.body == BIG
    assert "x-accel-redirect" not in response.headers
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    through_nginx = fallback_stack.raw("GET", big_file["url"], headers=cookie_header(owner))
    assert through_nginx.body == BIG


def test_range_head_and_304_under_uvicorn(fallback_stack, owner, big_file) -> None:
    headers = cookie_header(owner)
    partial = fallback_stack.raw_uvicorn(
        "GET", big_file["url"], {**headers, "Range": "bytes=100-199"}
    )
    assert (partial.status, partial.body) == (206, BIG[100:200])
    head = fallback_stack.raw_uvicorn("HEAD", big_file["url"], headers)
    assert (head.status, head.body) == (200, b"")
    assert head.headers["content-length"] == str(len(BIG))
    cached = fallback_stack.raw_uvicorn(
        "GET", big_file["url"], {**headers, "If-None-Match": head.headers["etag"]}
    )
    assert (cached.status, cached.body) == (304, b"")
    assert "Traceback" not in fallback_stack.log()


def test_others_still_refused(fallback_stack, big_file) -> None:
    bob = fallback_stack.login("bob", USERS["bob"])
    response = fallback_stack.raw("GET", big_file["url"], headers=cookie_header(bob))
    bob.close()
    assert (response.status, response.body) == (404, b"Not Found\n")
