"""Clients that go away mid-request, for real, on the running stack: a socket
closed halfway through an upload, halfway through a download (nginx's and the
Python fallback's), and while the view waits on a locked table. Each time
nothing is left behind (no partial file, no record, no open file, no waiting
query), the log stays quiet, and the stack answers the next requests."""

from __future__ import annotations

import os
import secrets
import socket
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from . import harness
from .conftest import MAX_UPLOAD, USERS, postgres_stack
from .harness import ADMIN_URL, Stack, cookie_header, upload

pytestmark = pytest.mark.stack

WAIT_TIMEOUT = 30.0
NORMAL_REQUESTS = 20
BIG_SIZE = 20 * 1024 * 1024
# What a client reads of a big file before it hangs up.
READ_BEFORE_CLOSING = 64 * 1024
# Messages a disconnect may add to the app's log: none is expected, a
# traceback never.
LOG_LINES_ALLOWED = 0
AUDIT_LINE = "media decision="
LOCKED_TABLE = "protected_media_storedfile"
BUFFERED_TO_FILE = "a client request body is buffered to a temporary file"


# helpers


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT_TIMEOUT) -> Any:
    return harness.wait_for(condition, what, timeout)


def access_log(stack: Stack) -> Path:
    return stack.data_dir / "nginx" / "access.log"


def logged(stack: Stack, marker: str) -> list[str]:
    """nginx's access log lines of the requests sent with User-Agent ``marker``
    (nginx writes a line once it has finished with a request)."""
    text = access_log(stack).read_text(errors="replace")
    return [line for line in text.splitlines() if f'"{marker}"' in line]


def status_of(line: str) -> int:
    # combined format: ... "GET /x HTTP/1.1" 200 1234 "-" "agent"
    return int(line.split('"')[2].split()[0])


def bytes_sent(line: str) -> int:
    return int(line.split('"')[2].split()[1])


def request_head(stack: Stack, method: str, target: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{stack.port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def connect(stack: Stack) -> socket.socket:
    return socket.create_connection(("127.0.0.1", stack.port), timeout=10)


def private_files(stack: Stack) -> set[str]:
    return {
        str(path.relative_to(stack.private_root))
        for path in stack.private_root.rglob("*")
        if not path.is_dir()
    }


def record_names(stack: Stack) -> set[str]:
    out = stack.shell(
        "from protected_media.models import StoredFile\n"
        "for name in StoredFile.objects.values_list('name', flat=True): print(name)\n"
    )
    return set(out.split())


def new_log_lines(stack: Stack, offset: int) -> list[str]:
    """What the app logged since ``offset``, but for the audit trail's one
    line per media decision (a request whose client left was still decided)."""
    return [
        line
        for line in stack.log()[offset:].splitlines()
        if line.strip() and not line.startswith(AUDIT_LINE)
    ]


def assert_log_quiet(stack: Stack, offset: int) -> None:
    added = stack.log()[offset:]
    assert "Traceback" not in added, added
    assert len(new_log_lines(stack, offset)) <= LOG_LINES_ALLOWED, added


def assert_answers_normally(stack: Stack, owner, media: dict, content: bytes) -> None:
    """The next requests, one after another, all answered: nothing stuck."""
    headers = cookie_header(owner)
    for number in range(NORMAL_REQUESTS):
        kind = number % 4
        if kind == 0:
            response = stack.raw("GET", "/healthz")
            assert (response.status, response.body) == (200, b"ok\n"), response
        elif kind == 1:
            assert stack.raw("GET", "/static/demo/site.css").status == 200
        elif kind == 2:
            response = stack.raw("GET", media["url"], headers=headers)
            assert (response.status, response.body) == (200, content), response.status
        else:
            response = owner.get("/api/files/")
            assert response.status_code == 200, response.text


def put_big_file(stack: Stack, owner: str, size: int = BIG_SIZE) -> tuple[dict, bytes]:
    """A file over the stack's upload limit: written under the private root and
    recorded as an upload would be (through the shell)."""
    key = secrets.token_urlsafe(16)
    name = f"files/{key}.txt"
    line = b"0123456789abcdefghijklmnopqrstuvwxyz-big-download\n"
    content = (line * (size // len(line) + 1))[:size]
    path = stack.private_root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    stack.shell(
        "from django.contrib.auth.models import User\n"
        "from protected_media.models import ProtectedFile, StoredFile\n"
        f"StoredFile.objects.create(key={key!r}, name={name!r},"
        " source='protected_media.protectedfile.file', original_name='big-download.txt',"
        f" size={size}, content_type='text/plain')\n"
        f"ProtectedFile.objects.create(owner=User.objects.get(username={owner!r}), file={name!r})\n"
    )
    return {"url": f"/media/{key}", "path": path}, content


def holders(pids: list[int], path: Path) -> list[tuple[int, str]]:
    """The open descriptors of these processes on ``path``."""
    found = []
    for pid in pids:
        try:
            descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for descriptor in descriptors:
            try:
                if Path(os.readlink(descriptor)) == path:
                    found.append((pid, descriptor.name))
            except OSError:
                continue
    return found


def nginx_pids(stack: Stack) -> list[int]:
    master = int((stack.data_dir / "nginx" / "nginx.pid").read_text())
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [master, *map(int, children)]


def temporary_bodies(stack: Stack) -> list[str]:
    """Request bodies nginx holds open in its temporary folder."""
    folder = str(stack.data_dir / "nginx" / "tmp" / "client_body")
    found = []
    for pid in nginx_pids(stack):
        for descriptor in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(descriptor)
            except OSError:
                continue
            if target.startswith(folder + "/"):
                found.append(target)
    return found


def hang_up_mid_download(stack: Stack, target: str, headers: dict[str, str], marker: str) -> int:
    """GET ``target`` on nginx, read a little of the body, close; the bytes read."""
    received = b""
    with connect(stack) as client:
        client.sendall(request_head(stack, "GET", target, {**headers, "User-Agent": marker}))
        while b"\r\n\r\n" not in received or len(received) < READ_BEFORE_CLOSING:
            chunk = client.recv(16384)
            assert chunk, received[:500]
            received += chunk
    assert received.startswith(b"HTTP/1.1 200 "), received[:500]
    return len(received)


# (a) mid-upload


def test_upload_abandoned_mid_body_leaves_nothing(stack: Stack, alice) -> None:
    small = upload(alice, "kept.txt", b"kept\n", "text/plain").json()
    files_before = private_files(stack)
    records_before = record_names(stack)
    listing_before = alice.get("/api/files/").json()
    offset = len(stack.log())
    body_temp = stack.data_dir / "nginx" / "tmp" / "client_body"

    boundary = "----disconnect" + secrets.token_hex(8)
    start = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="half.txt"\r\n'
        "Content-Type: text/plain\r\n\r\n"
    ).encode()
    declared = MAX_UPLOAD - 4096
    marker = f"half-upload-{secrets.token_hex(4)}"
    headers = {
        **cookie_header(alice),
        "X-CSRFToken": alice.cookies["csrftoken"],
        "Origin": stack.url,
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(declared),
        "User-Agent": marker,
    }
    error_log = stack.data_dir / "nginx" / "error.log"
    spooled = error_log.read_text(errors="replace").count(BUFFERED_TO_FILE)
    with connect(stack) as client:
        client.sendall(request_head(stack, "POST", "/api/files/", headers))
        client.sendall(start + b"half of a file\n" * 20_000)  # ~300 KiB of ~1 MiB
        # nginx is writing the body to its temporary file: the upload is under way.
        wait_for(
            lambda: error_log.read_text(errors="replace").count(BUFFERED_TO_FILE) > spooled,
            "nginx to spool the body",
        )
        assert temporary_bodies(stack)

    (line,) = wait_for(lambda: logged(stack, marker), "nginx to log the abandoned upload")
    # nginx's code for a client that closed before its request was complete;
    # the body never reached the app (nginx buffers whole bodies first).
    assert status_of(line) == 400
    # nginx unlinks its temporary file at once and keeps only the descriptor:
    # closed too now.
    assert not temporary_bodies(stack)
    assert not list(body_temp.iterdir())
    assert private_files(stack) == files_before
    assert not [name for name in private_files(stack) if ".upload-" in name]
    assert record_names(stack) == records_before
    assert alice.get("/api/files/").json() == listing_before
    assert_answers_normally(stack, alice, small, b"kept\n")
    assert_log_quiet(stack, offset)


def test_upload_whole_body_then_hang_up_is_all_or_nothing(stack: Stack, alice) -> None:
    small = upload(alice, "kept.txt", b"kept\n", "text/plain").json()
    files_before = private_files(stack)
    records_before = record_names(stack)
    offset = len(stack.log())
    content = b"sent in full, never waited for\n" * 20_000  # ~600 KiB
    boundary = "----disconnect" + secrets.token_hex(8)
    body = (
        (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="whole.txt"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    marker = f"whole-upload-{secrets.token_hex(4)}"
    headers = {
        **cookie_header(alice),
        "X-CSRFToken": alice.cookies["csrftoken"],
        "Origin": stack.url,
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(len(body)),
        "User-Agent": marker,
    }
    with connect(stack) as client:
        client.sendall(request_head(stack, "POST", "/api/files/", headers) + body)
    wait_for(lambda: logged(stack, marker), "nginx to log the upload")

    # Whether the app got to it or not, the store ends consistent: every new
    # file has its record and its whole content, and no temporary file
    # remains. (Only what this upload changed: earlier tests on this stack
    # leave planted symlinks and files without records on purpose.)
    def consistent() -> tuple[set[str], set[str]] | None:
        files = private_files(stack) - files_before
        records = record_names(stack) - records_before
        if files != records or any(".upload-" in name for name in files):
            return None
        return files, records

    new, _ = wait_for(consistent, "the store to be consistent")
    assert len(new) <= 1
    for name in new:
        assert (stack.private_root / name).read_bytes() == content
    assert_answers_normally(stack, alice, small, b"kept\n")
    assert "Traceback" not in stack.log()[offset:]


# (b) mid-download


def test_download_abandoned_mid_body_nginx_sends_it(stack: Stack, alice) -> None:
    big, content = put_big_file(stack, "alice")
    small = upload(alice, "kept.txt", b"kept\n", "text/plain").json()
    headers = cookie_header(alice)
    whole = stack.raw("GET", big["url"], headers=headers)
    assert (whole.status, len(whole.body)) == (200, BIG_SIZE)
    assert whole.body == content
    offset = len(stack.log())
    error_log = stack.data_dir / "nginx" / "error.log"
    errors_before = error_log.read_text(errors="replace")

    for _ in range(3):
        marker = f"half-download-{secrets.token_hex(4)}"
        read = hang_up_mid_download(stack, big["url"], headers, marker)
        (line,) = wait_for(lambda marker=marker: logged(stack, marker), "nginx to log it")
        assert status_of(line) == 200
        assert read <= bytes_sent(line) < BIG_SIZE

    # nginx sent the bytes: the app saw one handoff per request, nothing more.
    assert_log_quiet(stack, offset)
    added = error_log.read_text(errors="replace")[len(errors_before) :]
    assert not [line for line in added.splitlines() if "[crit]" in line or "[alert]" in line]
    assert_answers_normally(stack, alice, small, b"kept\n")


@pytest.fixture(scope="module")
def fallback_owner(fallback_stack):
    client = fallback_stack.login("alice", USERS["alice"])
    yield client
    client.close()


def test_fallback_download_abandoned_through_nginx(fallback_stack, fallback_owner) -> None:
    stack = fallback_stack
    big, content = put_big_file(stack, "alice")
    small = upload(fallback_owner, "kept.txt", b"kept\n", "text/plain").json()
    headers = cookie_header(fallback_owner)
    offset = len(stack.log())

    for _ in range(3):
        marker = f"fallback-half-{secrets.token_hex(4)}"
        hang_up_mid_download(stack, big["url"], headers, marker)
        (line,) = wait_for(lambda marker=marker: logged(stack, marker), "nginx to log it")
        assert status_of(line) == 200
        assert bytes_sent(line) < BIG_SIZE

    # The stream stops and the file is closed once nginx drops the upstream.
    wait_for(lambda: not holders(stack.uvicorn_pids(), big["path"]), "uvicorn to close the file")
    assert_log_quiet(stack, offset)
    assert_answers_normally(stack, fallback_owner, small, b"kept\n")
    whole = stack.raw("GET", big["url"], headers=headers)
    assert whole.body == content


def test_fallback_download_abandoned_at_uvicorn(fallback_stack, fallback_owner) -> None:
    """Straight to uvicorn's socket, without nginx's buffers in between: the
    client stops reading while Python is streaming, then hangs up."""
    stack = fallback_stack
    big, _ = put_big_file(stack, "alice")
    small = upload(fallback_owner, "kept.txt", b"kept\n", "text/plain").json()
    headers = {**cookie_header(fallback_owner), "Host": "127.0.0.1"}
    offset = len(stack.log())
    pids = stack.uvicorn_pids()

    for _ in range(3):
        received = b""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(10)
            client.connect(str(stack.uvicorn_socket))
            head = [f"GET {big['url']} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
            client.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
            while len(received) < READ_BEFORE_CLOSING:
                chunk = client.recv(16384)
                assert chunk, received[:500]
                received += chunk
            assert received.startswith(b"HTTP/1.1 200 "), received[:500]
            # Python is streaming: it has the file open now.
            assert holders(pids, big["path"])
    wait_for(lambda: not holders(pids, big["path"]), "uvicorn to close the file")
    assert_log_quiet(stack, offset)
    assert_answers_normally(stack, fallback_owner, small, b"kept\n")


# (c) while the view waits on the database


@pytest.fixture(scope="module")
def locked_stack(tmp_path_factory) -> Iterator[tuple[Stack, str]]:
    with postgres_stack(tmp_path_factory, "disconnect-postgres") as (stack, _, url):
        yield stack, url


def backends(url: str, database: str, where: str) -> int:
    with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
        row = connection.execute(
            f"SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND {where}",
            [database],
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_disconnect_while_the_view_waits_on_a_locked_table(locked_stack) -> None:
    stack, url = locked_stack
    database = urllib.parse.urlsplit(url).path.lstrip("/")
    alice = stack.login("alice", USERS["alice"])
    try:
        created = upload(alice, "ledger.txt", b"balanced\n", "text/plain").json()
        headers = cookie_header(alice)
        assert stack.raw("GET", created["url"], headers=headers).status == 200
        offset = len(stack.log())
        # More media requests than the entry point has threads, and one through
        # Django's own handler (the API's listing reads the records too).
        targets = [created["url"]] * 6 + ["/api/files/"]
        markers = [f"locked-{number}-{secrets.token_hex(4)}" for number in range(len(targets))]

        with psycopg.connect(url) as locker:
            locker.execute(f"LOCK TABLE {LOCKED_TABLE} IN ACCESS EXCLUSIVE MODE")
            clients = []
            try:
                for target, marker in zip(targets, markers, strict=True):
                    client = connect(stack)
                    clients.append(client)
                    client.sendall(
                        request_head(stack, "GET", target, {**headers, "User-Agent": marker})
                    )
                # The entry point's four threads and Django's request thread
                # wait on the lock: the requests are inside the app.
                waiting = "wait_event_type = 'Lock'"
                wait_for(lambda: backends(url, database, waiting) == 5, "queries to wait")
            finally:
                for client in clients:
                    client.close()
            for marker in markers:
                (line,) = wait_for(lambda marker=marker: logged(stack, marker), "nginx's 499")
                assert status_of(line) == 499
            locker.rollback()

        # Released: the queued work drains and nothing waits or holds a transaction.
        wait_for(
            lambda: (
                backends(url, database, "(wait_event_type = 'Lock' OR state LIKE 'idle in%%')") == 0
            ),
            "the waiting queries to finish",
        )
        assert_answers_normally(stack, alice, created, b"balanced\n")
        assert_log_quiet(stack, offset)
    finally:
        alice.close()
