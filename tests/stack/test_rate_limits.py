"""nginx's rate and connection limits (PROTECTED_MEDIA_MEDIA_* and
PROTECTED_MEDIA_UPLOAD_*) on the real stack, as a client sees them.

nginx counts per client address, and loopback answers on all of 127.0.0.0/8:
each test speaks from an address of its own, so no test spends another's
allowance, and the setup (users, files, sessions) goes through manage.py,
never through nginx."""

from __future__ import annotations

import itertools
import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from .conftest import start_stack
from .harness import Stack, upload

pytestmark = pytest.mark.stack

MEDIA_BURST = 5
UPLOAD_BURST = 1
# Per minute: an allowance does not refill while a test runs, so exactly
# 1 + burst requests pass at once, however slow the machine.
RATES = {
    "GATEWAY_MEDIA_RATE": "2r/m",
    "GATEWAY_MEDIA_BURST": str(MEDIA_BURST),
    "GATEWAY_MEDIA_CONNECTIONS": "off",
    "GATEWAY_UPLOAD_RATE": "1r/m",
    "GATEWAY_UPLOAD_BURST": str(UPLOAD_BURST),
    "GATEWAY_UPLOAD_CONNECTIONS": "off",
}
# The slower zone, 1r/m, lets one more request in after 60 seconds.
RATES_RETRY_AFTER = "60"
# Far more than loopback's socket buffers hold (4 MiB to send, a few KiB to
# receive once the client sets its own): a download nobody reads stays open.
LARGE_SIZE = 16 * 1024 * 1024
MEDIA_CONNECTIONS = 2
CONNECTIONS = {
    "GATEWAY_MEDIA_RATE": "off",
    "GATEWAY_MEDIA_CONNECTIONS": str(MEDIA_CONNECTIONS),
    "GATEWAY_UPLOAD_RATE": "off",
    "GATEWAY_UPLOAD_CONNECTIONS": "1",
    # The large file below is stored through the field, which checks the limit.
    "GATEWAY_MAX_UPLOAD_SIZE": str(2 * LARGE_SIZE),
}
TOO_MANY = b"Too Many Requests: slow down and try again shortly.\n"
SMALL = b"rate limit test\n"
RELEASE_TIMEOUT = 10.0

SETUP = """
import json
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.test import Client
from protected_media.models import ProtectedFile
alice = User.objects.get(username="alice")
urls = {}
for name, data in (("small.txt", SMALL), ("large.txt", b"x" * LARGE_SIZE)):
    if not data:
        continue
    item = ProtectedFile(owner=alice)
    item.file.save(name, ContentFile(data), save=True)
    urls[name] = item.file.url
client = Client()
client.force_login(alice)
print(json.dumps({"urls": urls, "session": client.cookies["sessionid"].value}))
"""

_addresses = itertools.count(10)


def new_address() -> str:
    """A loopback address no other test has spoken from."""
    return f"127.0.0.{next(_addresses)}"


class Site:
    def __init__(self, stack: Stack, setup: dict[str, object]) -> None:
        self.stack = stack
        urls = setup["urls"]
        assert isinstance(urls, dict)
        self.small, self.large = urls["small.txt"], urls.get("large.txt", "")
        self.session = str(setup["session"])

    def client(self, address: str, *, signed_in: bool = True) -> httpx.Client:
        return httpx.Client(
            base_url=self.stack.url,
            transport=httpx.HTTPTransport(local_address=address),
            cookies={"sessionid": self.session} if signed_in else None,
            follow_redirects=False,
            timeout=30,
        )

    def static_file(self) -> str:
        manifest = json.loads((self.stack.data_dir / "static" / "staticfiles.json").read_text())
        return "/static/" + next(iter(manifest["paths"].values()))


def start(tmp_path_factory, name: str, env: dict[str, str], large: int) -> Iterator[Site]:
    stack = start_stack(tmp_path_factory, name, **env)
    try:
        code = f"SMALL = {SMALL!r}\nLARGE_SIZE = {large}\n" + SETUP
        yield Site(stack, json.loads(stack.shell(code).splitlines()[-1]))
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def rates(tmp_path_factory) -> Iterator[Site]:
    yield from start(tmp_path_factory, "rate-limits", RATES, large=0)


@pytest.fixture(scope="module")
def connections(tmp_path_factory) -> Iterator[Site]:
    yield from start(tmp_path_factory, "connection-limits", CONNECTIONS, large=LARGE_SIZE)


def assert_too_many(response: httpx.Response, retry_after: str) -> None:
    assert response.status_code == 429, (response.status_code, response.text)
    assert response.content == TOO_MANY
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["retry-after"] == retry_after
    assert response.headers["cache-control"] == "no-store"
    assert not [name for name in response.headers if name.lower().startswith("x-accel-")]


def nginx_conf(stack: Stack) -> str:
    return (stack.data_dir / "nginx" / "nginx.conf").read_text()


# -- request rates ----------------------------------------------------------


def test_media_beyond_the_burst_gets_429(rates) -> None:
    with rates.client(new_address()) as client:
        # Each of these is served by nginx from the internal location after
        # the app's X-Accel-Redirect: were that redirect counted again, the
        # allowance would be gone halfway through.
        for _ in range(1 + MEDIA_BURST):
            response = client.get(rates.small)
            assert response.status_code == 200, response.text
            assert response.content == SMALL
        for _ in range(5):
            assert_too_many(client.get(rates.small), RATES_RETRY_AFTER)
        head = client.head(rates.small)
        assert head.status_code == 429
        assert head.headers["retry-after"] == RATES_RETRY_AFTER
    # Another address has its own allowance.
    with rates.client(new_address()) as other:
        response = other.get(rates.small)
        assert response.status_code == 200
        assert response.content == SMALL


def test_media_is_counted_before_the_app_answers(rates) -> None:
    # Refusals count too: nginx decides before the permission check runs.
    with rates.client(new_address(), signed_in=False) as client:
        unknown = "/media/AAAAAAAAAAAAAAAAAAAAAA"
        for _ in range(1 + MEDIA_BURST):
            assert client.get(rates.small).status_code == 302
        assert_too_many(client.get(unknown), RATES_RETRY_AFTER)


def test_static_files_are_never_limited(rates) -> None:
    static = rates.static_file()
    with rates.client(new_address()) as client:
        statuses = [client.get(rates.small).status_code for _ in range(2 + MEDIA_BURST)]
        assert statuses[-1] == 429
        for _ in range(3 * (1 + MEDIA_BURST)):
            response = client.get(static)
            assert response.status_code == 200
            assert response.headers["cache-control"].startswith("public, ")


def test_uploads_beyond_the_burst_get_429(rates) -> None:
    with rates.client(new_address()) as client:
        # A page sets the CSRF cookie; reads do not touch the upload allowance.
        assert client.get("/accounts/login/").status_code == 200
        created = []
        for number in range(1 + UPLOAD_BURST):
            response = upload(client, f"up-{number}.txt", b"upload %d\n" % number, "text/plain")
            assert response.status_code == 201, response.text
            created.append(response.json())
        refused = upload(client, "one-too-many.txt", b"refused\n", "text/plain")
        assert_too_many(refused, RATES_RETRY_AFTER)
        # Every write method shares the allowance.
        deletion = client.delete(
            f"/api/files/{created[0]['id']}/",
            headers={"X-CSRFToken": client.cookies["csrftoken"], "Origin": rates.stack.url},
        )
        assert_too_many(deletion, RATES_RETRY_AFTER)

        # Reads pass: pages, the API's list, and media (a zone of its own).
        for _ in range(3 * (1 + UPLOAD_BURST)):
            assert client.get("/files/").status_code == 200
            assert client.get("/healthz").status_code == 200
        listed = client.get("/api/files/")
        assert listed.status_code == 200
        names = {item["name"] for item in listed.json()["files"]}
        assert {"up-0.txt", "up-1.txt"} <= names
        assert "one-too-many.txt" not in names
        media = client.get(created[0]["url"])
        assert media.status_code == 200
        assert media.content == b"upload 0\n"


def test_rates_render_as_set(rates) -> None:
    text = nginx_conf(rates.stack)
    assert "rate=2r/m;" in text
    assert f"burst={MEDIA_BURST} nodelay;" in text
    assert "rate=1r/m;" in text
    assert "limit_conn" not in text


# -- connections at once ----------------------------------------------------


def hold_download(site: Site, address: str) -> socket.socket:
    """A download of the large file that has started and that nobody reads:
    nginx keeps the request open while the socket buffers are full."""
    connection = socket.socket()
    # A small receive window, set before connecting, keeps the buffers small.
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    connection.settimeout(10)
    connection.bind((address, 0))
    connection.connect(("127.0.0.1", site.stack.port))
    connection.sendall(
        f"GET {site.large} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Cookie: sessionid={site.session}\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = connection.recv(4096)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert f"\r\nContent-Length: {LARGE_SIZE}\r\n".encode() in head
    return connection


def hold_upload(site: Site, address: str) -> socket.socket:
    """An upload whose body never comes: nginx has passed its limits and waits
    for the body (it says so with "100 Continue") before it asks the app."""
    connection = socket.create_connection(
        ("127.0.0.1", site.stack.port), timeout=10, source_address=(address, 0)
    )
    connection.sendall(
        b"POST /api/files/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Length: 100000\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    assert connection.recv(4096).startswith(b"HTTP/1.1 100 Continue\r\n")
    return connection


def eventually(request, expected: int) -> httpx.Response:
    """``request()`` until it answers ``expected``: nginx frees a connection's
    slot when it notices the client has gone."""
    deadline = time.monotonic() + RELEASE_TIMEOUT
    while (response := request()).status_code != expected:
        assert time.monotonic() < deadline, (response.status_code, response.text)
        time.sleep(0.05)
    return response


def test_media_downloads_beyond_the_connection_limit_get_429(connections) -> None:
    address = new_address()
    held = [hold_download(connections, address) for _ in range(MEDIA_CONNECTIONS)]
    try:
        with connections.client(address) as client:
            # No rate is set on this stack: the connections alone refuse.
            assert_too_many(client.get(connections.small), "1")
            assert client.get(connections.static_file()).status_code == 200
            assert client.get("/files/").status_code == 200
        with connections.client(new_address()) as other:
            assert other.get(connections.small).content == SMALL
    finally:
        for connection in held:
            connection.close()
    with connections.client(address) as client:
        assert eventually(lambda: client.get(connections.small), 200).content == SMALL


def test_uploads_beyond_the_connection_limit_get_429(connections) -> None:
    address = new_address()
    held = hold_upload(connections, address)
    try:
        with connections.client(address) as client:
            assert client.get("/accounts/login/").status_code == 200
            refused = upload(client, "second.txt", b"second\n", "text/plain")
            assert_too_many(refused, "1")
            # Reads have an empty key: not counted, whatever the writes do.
            assert client.get("/files/").status_code == 200
            assert client.get(connections.small).content == SMALL
    finally:
        held.close()
    with connections.client(address) as client:
        client.get("/accounts/login/")
        response = eventually(lambda: upload(client, "later.txt", b"later\n", "text/plain"), 201)
        assert response.json()["name"] == "later.txt"


def test_without_a_rate_no_request_is_refused(connections) -> None:
    # PROTECTED_MEDIA_MEDIA_RATE and _UPLOAD_RATE are None on this stack.
    text = nginx_conf(connections.stack)
    assert "limit_req" not in text
    assert "limit_conn protected_media_media_conn 2;" in text
    with connections.client(new_address()) as client:
        for _ in range(10 * (1 + MEDIA_BURST)):
            assert client.get(connections.small).status_code == 200


def test_test_stacks_render_no_limits(stack) -> None:
    # tests/stack/harness.py turns every limit off: the other stack tests and
    # the benchmark send thousands of requests a second from one address.
    text = nginx_conf(stack)
    assert "limit_req" not in text
    assert "limit_conn" not in text
    assert "@protected_media_too_many" not in text
