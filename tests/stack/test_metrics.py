"""The metrics through the real stack: two workers' counts added up, and the
endpoint open to loopback only."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..metrics_text import samples
from .conftest import start_stack
from .harness import Stack, cookie_header, upload

pytestmark = pytest.mark.stack

SERVED = 'protected_media_decisions_total{decision="served",reason="owner"}'
DENIED = 'protected_media_decisions_total{decision="denied",reason="not_found"}'


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory, "metrics", GATEWAY_WORKERS="2")
    yield stack
    stack.stop()


def scrape(stack: Stack) -> dict[str, float]:
    response = stack.raw("GET", "/metrics")
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return samples(response.body.decode())


def test_every_workers_decisions_are_counted(two_workers: Stack) -> None:
    stack = two_workers
    alice, bob = stack.login("alice", "alice-pass-4821"), stack.login("bob", "bob-pass-9377")
    try:
        created = upload(alice, "counted.txt", b"one, two\n", "text/plain").json()
        before = scrape(stack)
        # Fresh connections, so that both workers take some of them.
        for _ in range(30):
            assert stack.raw("GET", created["url"], headers=cookie_header(alice)).status == 200
        for _ in range(7):
            assert stack.raw("GET", created["url"], headers=cookie_header(bob)).status == 404
        after = scrape(stack)
    finally:
        alice.close()
        bob.close()
    assert after[SERVED] - before.get(SERVED, 0) == 30
    assert after[DENIED] - before.get(DENIED, 0) == 7
    assert after["protected_media_uploads_total"] >= 1
    # The counts came from two worker processes, each with its own counters.
    (main,) = stack.uvicorn_pids()
    children = Path(f"/proc/{main}/task/{main}/children").read_text().split()
    assert len(children) >= 2
    assert len(list(stack.data_dir.glob("run/metrics/counter_*.db"))) >= 2


def test_only_loopback_may_scrape(two_workers: Stack) -> None:
    # Any other address gets the media refusal, as if nothing were there.
    connection = http.client.HTTPConnection(
        "127.0.0.1", two_workers.port, timeout=10, source_address=("127.0.0.2", 0)
    )
    try:
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    assert (response.status, body) == (404, b"Not Found\n")
    assert response.getheader("content-type") == "text/plain; charset=utf-8"
