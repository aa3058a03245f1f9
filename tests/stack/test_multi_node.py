"""Several gateway nodes behind a load balancer: two run commands on two
ports, each with its own data folder (its local disk shared with nobody),
sharing one PostgreSQL database, one bucket (the session's SeaweedFS) and one
secret key. Whatever one node does, the other sees on its very next request,
and one node's app dying costs the other nothing.

The load balancer itself is left out: each request names its node, as a
balancer would choose one, and a browser's cookies go to either (cookies do
not depend on the port)."""

from __future__ import annotations

import os
import signal
import threading
import urllib.parse
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from gateway.seaweed import SeaweedStore

from . import harness
from .conftest import MAX_UPLOAD, USERS, postgres_stack
from .harness import Stack, cookie_header, upload

pytestmark = pytest.mark.stack

DATA = b"one bucket, two nodes\n" * 180  # ~4 KiB
NOT_FOUND = b"Not Found\n"
BAD_GATEWAY = b"Bad Gateway: the application is not answering; try again shortly.\n"
WAIT_TIMEOUT = 60.0
# Threads fetching the file from each node while node A's app is killed:
# enough to keep requests in flight on both, few enough for two shared cores.
THREADS_ON_A = 1
THREADS_ON_B = 2
# A client of the dead node waits a little before asking again, as browsers
# and balancers do: a tight loop of 502s would starve the app's restart.
PAUSE_AFTER_502 = 0.1
# A hang shows up as a failed request, not as a stuck test.
REQUEST_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def nodes(tmp_path_factory, seaweed: SeaweedStore) -> Iterator[tuple[Stack, Stack]]:
    bucket = seaweed.gateway_environment()
    with postgres_stack(tmp_path_factory, "node-a", **bucket) as (node_a, _, url):
        # Node A's run command made the site's key in its data folder; node B
        # is given it as an operator gives it to every node. B starts once A
        # is up, so A's migrate has run and B's finds nothing to do: two
        # migrates at once on one database could both try to create a table.
        secret_key = (node_a.data_dir / "secret_key").read_text().strip()
        node_b = Stack(
            tmp_path_factory.mktemp("node-b"),
            {
                "GATEWAY_MAX_UPLOAD_SIZE": str(MAX_UPLOAD),
                "GATEWAY_DATABASE_URL": url,
                "GATEWAY_SECRET_KEY": secret_key,
                **bucket,
            },
        )
        node_b.start()
        try:
            yield node_a, node_b
        finally:
            node_b.stop()


@pytest.fixture
def alice(nodes: tuple[Stack, Stack]) -> Iterator[httpx.Client]:
    """alice's browser, signed in through node A."""
    node_a, _ = nodes
    client = node_a.login("alice", USERS["alice"])
    yield client
    client.close()


@pytest.fixture
def anonymous() -> Iterator[httpx.Client]:
    with httpx.Client(follow_redirects=False, timeout=30) as client:
        yield client


def on(node: Stack, browser: httpx.Client) -> httpx.Client:
    """The same browser's requests sent to ``node``, with its cookies."""
    return httpx.Client(
        base_url=node.url, cookies=browser.cookies, follow_redirects=False, timeout=30
    )


def writing(node: Stack, browser: httpx.Client) -> dict[str, str]:
    # Django's CSRF check compares Origin with the Host the node was asked as.
    return {"X-CSRFToken": browser.cookies["csrftoken"], "Origin": node.url}


def assert_served(response: httpx.Response, content_type: str, disposition: str) -> None:
    assert response.status_code == 200, response.text
    assert response.content == DATA
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Content-Disposition"] == disposition
    assert response.headers["Cache-Control"] == "private, no-store"
    assert "X-Accel-Redirect" not in response.headers


def assert_refused(response: httpx.Response) -> None:
    assert (response.status_code, response.content) == (404, NOT_FOUND)
    assert response.headers["Cache-Control"] == "private, no-store"


def test_a_file_uploaded_on_a_is_served_by_b_and_once_deleted_on_b_refused_by_a(
    nodes: tuple[Stack, Stack], alice: httpx.Client
) -> None:
    _, node_b = nodes  # alice's browser is signed in through node A
    created = upload(alice, "ledger.txt", DATA, "text/plain")
    assert created.status_code == 201, created.text
    url, file_id = created.json()["url"], created.json()["id"]

    with on(node_b, alice) as alice_on_b:
        served = alice_on_b.get(url)
        assert_served(served, "text/plain; charset=utf-8", 'inline; filename="ledger.txt"')
        # The first node has answered for the file too, just before the delete:
        # nothing it learned then may outlive the delete on the other node.
        assert_served(alice.get(url), "text/plain; charset=utf-8", 'inline; filename="ledger.txt"')

        deleted = alice_on_b.delete(f"/api/files/{file_id}/", headers=writing(node_b, alice))
        assert deleted.status_code == 204, deleted.text

        assert_refused(alice.get(url))
        assert_refused(alice_on_b.get(url))
        # The API on either node agrees: the record is gone.
        assert alice.get(f"/api/files/{file_id}/").status_code == 404
        assert alice_on_b.get(f"/api/files/{file_id}/").status_code == 404


def test_a_share_link_made_on_a_works_on_b_and_once_revoked_on_b_is_refused_by_a(
    nodes: tuple[Stack, Stack], alice: httpx.Client, anonymous: httpx.Client
) -> None:
    node_a, node_b = nodes
    created = upload(alice, "Board minutes.txt", DATA, "text/plain")
    assert created.status_code == 201, created.text
    made = alice.post(
        f"/api/files/{created.json()['id']}/shares/", json={}, headers=writing(node_a, alice)
    )
    assert made.status_code == 201, made.text
    # The link names node A's address; its path is what any node answers.
    path = urllib.parse.urlsplit(made.json()["url"]).path
    disposition = 'inline; filename="Board minutes.txt"'

    served = anonymous.get(node_b.url + path)
    assert_served(served, "text/plain; charset=utf-8", disposition)
    assert served.headers["Referrer-Policy"] == "no-referrer"
    assert_served(anonymous.get(node_a.url + path), "text/plain; charset=utf-8", disposition)

    with on(node_b, alice) as alice_on_b:
        revoked = alice_on_b.delete(
            f"/api/shares/{made.json()['id']}/", headers=writing(node_b, alice)
        )
    assert revoked.status_code == 204, revoked.text

    assert_refused(anonymous.get(node_a.url + path))
    assert_refused(anonymous.get(node_b.url + path))


def test_a_session_signed_out_on_a_is_refused_by_b(nodes: tuple[Stack, Stack]) -> None:
    node_a, node_b = nodes
    browser = node_a.login("bob", USERS["bob"])
    try:
        created = upload(browser, "diary.txt", DATA, "text/plain")
        assert created.status_code == 201, created.text
        url = created.json()["url"]
        # What someone who copied the cookie still holds after the sign-out.
        copied = cookie_header(browser)
        assert node_b.raw("GET", url, headers=copied).status == 200
        assert node_b.raw("GET", "/api/files/", headers=copied).status == 200

        signed_out = browser.post("/accounts/logout/", headers=writing(node_a, browser))
        assert signed_out.status_code == 302, signed_out.text
    finally:
        browser.close()

    media = node_b.raw("GET", url, headers=copied)
    assert media.status == 302
    assert media.headers["location"].startswith("/accounts/login/?next=")
    api = node_b.raw("GET", "/api/files/", headers=copied)
    assert (api.status, api.body) == (403, b'{"error": "Sign in first."}')


class Load:
    """Threads fetching the file from one node in a loop, each on a
    keep-alive connection of its own, sorting every answer: the file, our
    502, or anything else (a wrong answer, an error, a timeout)."""

    def __init__(self, node: Stack, url: str, headers: dict[str, str], threads: int) -> None:
        self.node = node
        self.url = url
        self.headers = headers
        self.answers: Counter[str] = Counter()
        self.others: list[str] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.node.url, timeout=REQUEST_TIMEOUT) as client:
            while not self.stopping.is_set():
                try:
                    response = client.get(self.url, headers=self.headers)
                    answer = (response.status_code, response.content)
                except httpx.HTTPError as error:
                    answer = (0, repr(error).encode())
                with self.lock:
                    if answer == (200, DATA):
                        self.answers["file"] += 1
                    elif answer == (502, BAD_GATEWAY):
                        self.answers["bad gateway"] += 1
                    else:
                        self.others.append(f"{answer[0]} {answer[1][:100]!r}")
                if answer[0] == 502:
                    self.stopping.wait(PAUSE_AFTER_502)

    def count(self, answer: str) -> int:
        with self.lock:
            return self.answers[answer]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=WAIT_TIMEOUT)


def test_node_a_killed_under_load_b_serves_on_without_an_error_and_a_comes_back(
    nodes: tuple[Stack, Stack], alice: httpx.Client
) -> None:
    node_a, node_b = nodes
    created = upload(alice, "steady.txt", DATA, "text/plain")
    assert created.status_code == 201, created.text
    url, headers = created.json()["url"], cookie_header(alice)

    with (
        Load(node_b, url, headers, THREADS_ON_B) as on_b,
        Load(node_a, url, headers, THREADS_ON_A) as on_a,
    ):
        harness.wait_for(
            lambda: (
                (on_b.count("file") >= 50 and on_a.count("file") >= 20)
                or on_b.others
                or on_a.others
            ),
            "both nodes to serve under load",
            WAIT_TIMEOUT,
        )
        assert on_b.others == on_a.others == [], (on_b.others[:10], on_a.others[:10])
        killed = node_a.uvicorn_pids()
        assert killed, "node A's app is not running"
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        served_by_b_at_kill = on_b.count("file")

        # Node A's nginx answers for its dead app at once, in the site's words.
        down = node_a.raw("GET", url, headers=headers)
        assert (down.status, down.body) == (502, BAD_GATEWAY)
        assert down.headers["retry-after"] == "5"
        assert down.headers["cache-control"] == "no-store"

        # The run command's supervisor starts node A's app again by itself.
        harness.wait_for(
            lambda: node_a.raw("GET", url, headers=headers).status == 200,
            "node A to serve again",
            WAIT_TIMEOUT,
        )
        served_by_b_while_a_was_down = on_b.count("file") - served_by_b_at_kill
        served_by_a_when_back = on_a.count("file")
        harness.wait_for(
            lambda: on_a.count("file") >= served_by_a_when_back + 20,
            "node A's load to be served again",
            WAIT_TIMEOUT,
        )

    assert on_b.others == [], on_b.others[:10]
    assert set(on_b.answers) == {"file"}
    assert served_by_b_while_a_was_down > 0
    # Node A's clients got the file or the 502, never a hang or an error.
    assert on_a.others == [], on_a.others[:10]
    for _ in range(5):
        again = node_a.raw("GET", url, headers=headers)
        assert (again.status, again.body) == (200, DATA)
