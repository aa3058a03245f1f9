"""What an upload can cost, on the running stack: the issue's GIF (about 500
bytes of 1x1 frames on a canvas just under the pixel limit) is refused with
its limit named and nothing stored; and a client that hangs up while its
upload is being inspected stops the work and leaves no file and no record."""

from __future__ import annotations

import re
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.crafted_inputs import gif

from . import harness
from .conftest import USERS, start_stack
from .harness import Stack, cookie_header, cpu_seconds, upload

pytestmark = pytest.mark.stack

# 1x1 frames on a 6324x6324 canvas (just under the default 40,000,000 pixels).
ISSUE_GIF = gif(6324, 6324, 20)
WAIT_TIMEOUT = 60.0
REFUSED = re.compile(r'^protected_media_upload_refusals_total\{reason="client_gone"\} (\S+)$', re.M)
STORED = re.compile(r"^protected_media_uploads_total (\S+)$", re.M)


def files_under(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file()} if root.exists() else set()


def test_the_issues_gif_is_refused_and_nothing_is_stored(stack: Stack, alice) -> None:
    assert len(ISSUE_GIF) < 600
    before = files_under(stack.private_root)
    response = upload(alice, "tiny.gif", ISSUE_GIF, "image/gif")
    assert response.status_code == 413
    assert response.json() == {
        "error": "Processing this image (all its frames and thumbnails) would take more "
        "than 100,000,000 pixels."
    }
    assert files_under(stack.private_root) == before
    assert "tiny.gif" not in alice.get("/api/files/").text


@pytest.fixture(scope="module")
def costly_stack(tmp_path_factory) -> Iterator[Stack]:
    # A budget so large that the issue's GIF is inspected for tens of
    # seconds, as it was before the budget: the window to hang up in.
    running = start_stack(tmp_path_factory, "upload-cost", GATEWAY_MAX_PROCESSED_PIXELS=str(10**13))
    yield running
    running.stop()


def metric(stack: Stack, pattern: re.Pattern[str]) -> float:
    text = stack.raw("GET", "/metrics").body.decode()
    found = pattern.search(text)
    return float(found[1]) if found else 0.0


def test_a_client_that_hangs_up_mid_inspection_leaves_nothing(costly_stack: Stack) -> None:
    stack = costly_stack
    client = stack.login("alice", USERS["alice"])
    boundary = secrets.token_hex(8)
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.gif"\r\n'
            "Content-Type: image/gif\r\n\r\n"
        ).encode()
        + ISSUE_GIF
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = (
        f"POST /api/files/ HTTP/1.1\r\nHost: 127.0.0.1:{stack.port}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(body)}\r\nX-CSRFToken: {client.cookies['csrftoken']}\r\n"
        f"Origin: {stack.url}\r\nCookie: {cookie_header(client)['Cookie']}\r\n\r\n"
    ).encode()
    workers = stack.app_pids()
    idle = cpu_seconds(workers)
    with socket.create_connection(("127.0.0.1", stack.port)) as connection:
        connection.sendall(head + body)
        # Inspection is under way once the worker has burnt a second on it.
        harness.wait_for(
            lambda: cpu_seconds(workers) > idle + 1.0, "the inspection to start", WAIT_TIMEOUT
        )
    # The client is gone: the inspection stops at its next frame, refused.
    harness.wait_for(lambda: metric(stack, REFUSED) == 1.0, "the client_gone refusal", WAIT_TIMEOUT)
    assert metric(stack, STORED) == 0.0
    assert files_under(stack.private_root) == set()
    assert client.get("/api/files/").json()["files"] == []
    # The worker is free again: the next upload is answered.
    response = upload(client, "small.gif", gif(4, 4, 2), "image/gif")
    assert response.status_code == 201, response.text
    client.close()
