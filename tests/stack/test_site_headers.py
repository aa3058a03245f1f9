"""Through the real stack: pages carry their policy and stay out of caches,
files are framed by no page on either backend, and the metrics view keeps
itself to loopback even where nginx's location does not stand in front."""

from __future__ import annotations

import pytest

from .conftest import USERS
from .harness import Stack, cookie_header, upload

pytestmark = pytest.mark.stack

PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
FILE_POLICY = "default-src 'none'; frame-ancestors 'none'; sandbox"
REFUSAL = (404, b"Not Found\n")


def test_pages_carry_the_policy_and_no_cache_keeps_them(stack: Stack, alice) -> None:
    for path in ("/files/", "/profile/", "/api/files/"):
        response = stack.raw("GET", path, headers=cookie_header(alice))
        assert response.status == 200, path
        assert response.headers["cache-control"] == "private, no-store", path
        assert response.headers["content-security-policy"] == PAGE_POLICY, path


@pytest.mark.parametrize("backend", ["stack", "fallback_stack"])
def test_files_may_be_framed_by_no_page(request, backend) -> None:
    running: Stack = request.getfixturevalue(backend)
    owner = running.login("alice", USERS["alice"])
    try:
        created = upload(owner, "frame.txt", b"not in a frame\n", "text/plain")
        assert created.status_code == 201, created.text
        served = running.raw("GET", created.json()["url"], headers=cookie_header(owner))
    finally:
        owner.close()
    assert (served.status, served.body) == (200, b"not in a frame\n")
    assert served.headers["content-security-policy"] == FILE_POLICY
    assert [
        value for name, value in served.header_list if name.lower() == "content-security-policy"
    ] == [FILE_POLICY]


def test_metrics_refuse_a_client_uvicorn_names_as_remote(stack: Stack) -> None:
    # Straight to uvicorn, as a site without nginx's location would be: the
    # address uvicorn takes from its trusted proxy is not loopback.
    remote = stack.raw_uvicorn("GET", "/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert (remote.status, remote.body) == REFUSAL
    assert "x-accel-redirect" not in remote.headers
    local = stack.raw_uvicorn("GET", "/metrics", headers={"X-Forwarded-For": "127.0.0.1"})
    assert local.status == 200


def test_a_forwarded_for_header_sent_to_nginx_changes_nothing(stack: Stack) -> None:
    # nginx writes X-Forwarded-For itself ($remote_addr): what a client sends
    # neither opens nor closes the metrics.
    through = stack.raw("GET", "/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert through.status == 200
    assert through.headers["content-type"].startswith("text/plain; version=")
