"""The metrics view keeps itself to loopback clients, whatever serves it: the
nginx location is not the only guard (the streaming fallback, uvicorn alone)."""

from __future__ import annotations

import pytest
from django.test import Client

from protected_media.ops.metrics import from_loopback

pytestmark = pytest.mark.django_db

REFUSAL = (404, b"Not Found\n", "text/plain; charset=utf-8")


def scrape(remote_addr: str, **headers: str):
    response = Client(REMOTE_ADDR=remote_addr).get("/metrics", headers=headers)
    return response.status_code, response.content, response["Content-Type"]


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"])
def test_loopback_clients_may_scrape(address) -> None:
    status, body, content_type = scrape(address)
    assert status == 200
    assert content_type.startswith("text/plain; version=")
    assert b"protected_media_uploads_total" in body


@pytest.mark.parametrize(
    "address",
    [
        "203.0.113.9",  # another machine
        "10.0.0.1",  # the local network is not this machine
        "::ffff:203.0.113.9",
        "2001:db8::1",
        "",  # no address at all (a unix socket with no trusted proxy)
        "unix:/run/gateway.sock",  # not an address
    ],
)
def test_any_other_client_gets_the_one_refusal(address) -> None:
    assert scrape(address) == REFUSAL


def test_a_forwarded_for_header_is_not_believed() -> None:
    # REMOTE_ADDR is the server's word (uvicorn's, from the socket or a proxy
    # it trusts); X-Forwarded-For is the client's.
    assert scrape("203.0.113.9", **{"X-Forwarded-For": "127.0.0.1"}) == REFUSAL
    assert scrape("203.0.113.9", **{"X-Real-IP": "127.0.0.1", "Forwarded": "for=127.0.0.1"}) == (
        REFUSAL
    )


def test_from_loopback_reads_only_the_address() -> None:
    assert from_loopback("127.0.0.1") and from_loopback("::1")
    assert not from_loopback(None)
    assert not from_loopback("localhost")
    assert not from_loopback("127.0.0.1, 203.0.113.9")
