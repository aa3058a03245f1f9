"""Restarts under load, for real: SIGTERM to one uvicorn worker and to uvicorn
itself while requests are inside the app, and `nginx -s reload` with a newly
rendered config while clients fetch static and media files. Requests in
flight finish with their whole bytes; the app comes back by itself; a reload
fails no request.

Requests are held inside the app by a lock on the table the media check reads
(PostgreSQL, a database of the stack's own, as in test_database_down.py), so
"in flight" is a fact read from pg_stat_activity, not a guess about timing."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest

from . import harness
from .conftest import MAX_UPLOAD, USERS, postgres_stack
from .harness import ADMIN_URL, RawResponse, Stack, cookie_header, upload

pytestmark = pytest.mark.stack

WAIT_TIMEOUT = 60.0
WORKERS = 2
# The entry point's threads per worker (PROTECTED_MEDIA_FAST_PATH_THREADS):
# this many media requests are all inside the app once this many queries wait,
# however nginx spreads them over the workers.
IN_FLIGHT_MEDIA = 4
LOCKED_TABLE = "protected_media_storedfile"
CONTENT = b"every byte of it, after the restart too\n" * 4000  # ~160 KiB
UPLOADED = b"an upload caught by the restart\n" * 16_000  # ~500 KiB
LOAD_THREADS = 4
REQUESTS_PER_PHASE = 100


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT_TIMEOUT) -> Any:
    return harness.wait_for(condition, what, timeout)


@pytest.fixture(scope="module")
def pg_stack(tmp_path_factory) -> Iterator[tuple[Stack, str]]:
    with postgres_stack(tmp_path_factory, "restart", GATEWAY_WORKERS=str(WORKERS)) as (
        stack,
        _,
        url,
    ):
        yield stack, url


@pytest.fixture
def owner(pg_stack):
    stack, _ = pg_stack
    client = stack.login("alice", USERS["alice"])
    yield client
    client.close()


# the processes, read from /proc


def children(pid: int) -> list[int]:
    """uvicorn's worker processes under ``pid`` (multiprocessing's resource
    tracker, its other child, left out)."""
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    workers = []
    for child in found:
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                workers.append(int(child))
        except OSError:
            continue
    return workers


def nginx_workers(master: int) -> set[int]:
    try:
        return {
            int(child)
            for child in Path(f"/proc/{master}/task/{master}/children").read_text().split()
        }
    except OSError:
        return set()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def socket_inodes(pid: int) -> set[int]:
    found = set()
    try:
        descriptors = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return found
    for descriptor in descriptors:
        try:
            target = os.readlink(descriptor)
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(int(target[8:-1]))
    return found


def listening_inodes(path: Path) -> set[int]:
    """The inodes of unix sockets listening on ``path`` (/proc/net/unix)."""
    found = set()
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        # Num RefCount Protocol Flags Type St Inode Path; flags 00010000: listening.
        if len(fields) == 8 and fields[7] == str(path) and fields[3] == "00010000":
            found.add(int(fields[6]))
    return found


def listens(pid: int, stack: Stack) -> bool:
    return bool(socket_inodes(pid) & listening_inodes(stack.uvicorn_socket))


def tcp_port_inodes() -> dict[int, int]:
    """Local TCP port -> socket inode, for loopback connections."""
    ports = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            ports[int(fields[1].rsplit(":", 1)[1], 16)] = int(fields[9])
    return ports


def lock_waiters(url: str) -> list[int]:
    """The client ports of the stack's queries waiting on a lock."""
    database = urllib.parse.urlsplit(url).path.lstrip("/")
    with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT client_port FROM pg_stat_activity"
            " WHERE datname = %s AND wait_event_type = 'Lock'",
            [database],
        ).fetchall()
    return [port for (port,) in rows]


def workers_waiting(url: str, workers: list[int]) -> set[int]:
    """The workers whose database connections wait on the lock."""
    inodes = tcp_port_inodes()
    waiting = {inodes.get(port) for port in lock_waiters(url)}
    return {pid for pid in workers if socket_inodes(pid) & waiting}


# the requests


def media_get(stack: Stack, url: str, headers: dict[str, str]) -> RawResponse:
    return stack.raw("GET", url, headers=headers)


def upload_raw(stack: Stack, client, name: str, data: bytes) -> RawResponse:
    boundary = "----restart" + secrets.token_hex(8)
    body = (
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {
        **cookie_header(client),
        "X-CSRFToken": client.cookies["csrftoken"],
        "Origin": stack.url,
        "Content-Type": f"multipart/form-data; boundary={boundary}",
    }
    return stack.raw("POST", "/api/files/", headers=headers, body=body)


def hold_requests_in_flight(
    stack: Stack, url: str, owner, media_url: str, pool: ThreadPoolExecutor
) -> tuple[psycopg.Connection, list]:
    """Lock the records' table, then send IN_FLIGHT_MEDIA media requests and
    one upload; returns once every one of them waits inside the app."""
    locker = psycopg.connect(url)
    locker.execute(f"LOCK TABLE {LOCKED_TABLE} IN ACCESS EXCLUSIVE MODE")
    headers = cookie_header(owner)
    futures = [pool.submit(media_get, stack, media_url, headers) for _ in range(IN_FLIGHT_MEDIA)]
    futures.append(pool.submit(upload_raw, stack, owner, "caught.txt", UPLOADED))
    wait_for(lambda: len(lock_waiters(url)) == IN_FLIGHT_MEDIA + 1, "the requests to wait")
    return locker, futures


def assert_finished_whole(stack: Stack, futures: list) -> None:
    *media, uploaded = [future.result(timeout=WAIT_TIMEOUT) for future in futures]
    for response in media:
        assert response.status == 200, response
        assert response.body == CONTENT
    assert uploaded.status == 201, uploaded
    created = json.loads(uploaded.body)
    assert created["size"] == len(UPLOADED)
    key = created["url"].rsplit("/", 1)[1]
    (stored,) = [path for path in stack.private_root.rglob(f"{key}*")]
    assert stored.read_bytes() == UPLOADED


def test_sigterm_to_a_worker_finishes_its_requests_and_uvicorn_replaces_it(pg_stack, owner) -> None:
    stack, url = pg_stack
    created = upload(owner, "steady.txt", CONTENT, "text/plain").json()
    (master,) = stack.uvicorn_pids()
    workers = wait_for(lambda: len(children(master)) == WORKERS and children(master), "workers")
    offset = len(stack.log())

    with ThreadPoolExecutor(IN_FLIGHT_MEDIA + 1) as pool:
        locker, futures = hold_requests_in_flight(stack, url, owner, created["url"], pool)
        try:
            # A worker with requests inside it, told to stop.
            victim = sorted(workers_waiting(url, workers))[0]
            os.kill(victim, signal.SIGTERM)
            # It has stopped taking connections; its requests still wait.
            wait_for(lambda: not listens(victim, stack), "the worker to stop listening")
            assert alive(victim)
            assert victim in workers_waiting(url, workers)
            # Meanwhile the other worker answers.
            assert stack.raw("GET", "/healthz").status == 200
        finally:
            locker.rollback()
            locker.close()
        assert_finished_whole(stack, futures)

    wait_for(lambda: not alive(victim), "the worker to exit")
    replaced = wait_for(
        lambda: len(children(master)) == WORKERS and children(master), "a new worker"
    )
    assert victim not in replaced
    assert stack.uvicorn_pids() == [master]
    for _ in range(10):
        response = stack.raw("GET", created["url"], headers=cookie_header(owner))
        assert (response.status, response.body) == (200, CONTENT)
    assert "Traceback" not in stack.log()[offset:]


def test_sigterm_to_uvicorn_finishes_in_flight_requests_then_the_run_command_restarts_it(
    pg_stack, owner
) -> None:
    stack, url = pg_stack
    created = upload(owner, "steady.txt", CONTENT, "text/plain").json()
    (master,) = stack.uvicorn_pids()
    workers = children(master)
    offset = len(stack.log())

    with ThreadPoolExecutor(IN_FLIGHT_MEDIA + 1) as pool:
        locker, futures = hold_requests_in_flight(stack, url, owner, created["url"], pool)
        try:
            os.kill(master, signal.SIGTERM)
            # Every worker has stopped taking connections, and the requests
            # inside them still wait: the shutdown is under way.
            wait_for(
                lambda: not any(listens(pid, stack) for pid in workers),
                "the workers to stop listening",
            )
            assert len(lock_waiters(url)) == IN_FLIGHT_MEDIA + 1
        finally:
            locker.rollback()
            locker.close()
        assert_finished_whole(stack, futures)

    # The run command's supervisor starts uvicorn again once it has exited.
    wait_for(lambda: not alive(master), "uvicorn to exit")
    wait_for(lambda: "uvicorn exited with 0; restarting it" in stack.log()[offset:], "a restart")
    headers = cookie_header(owner)
    wait_for(
        lambda: stack.raw("GET", created["url"], headers=headers).status == 200,
        "media to answer again",
    )
    (restarted,) = stack.uvicorn_pids()
    assert restarted != master
    for _ in range(10):
        response = stack.raw("GET", created["url"], headers=headers)
        assert (response.status, response.body) == (200, CONTENT)
    assert "Traceback" not in stack.log()[offset:]


# nginx -s reload


class Load:
    """Threads fetching a static file and a media file in a loop, each request
    on a connection of its own, counting every answer and every failure."""

    def __init__(self, stack: Stack, media_url: str, headers: dict[str, str]) -> None:
        self.stack = stack
        self.targets = [
            ("/static/demo/site.css", {}, (stack.data_dir / "static/demo/site.css").read_bytes()),
            (media_url, headers, CONTENT),
        ]
        self.done = 0
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, daemon=True) for _ in range(LOAD_THREADS)
        ]

    def _run(self) -> None:
        number = 0
        while not self.stopping.is_set():
            target, headers, expected = self.targets[number % 2]
            number += 1
            try:
                response = self.stack.raw("GET", target, headers=headers)
                failure = (
                    None
                    if (response.status, response.body) == (200, expected)
                    else f"{target}: {response.status} {response.body[:100]!r}"
                )
            except Exception as error:  # every failure counts
                failure = f"{target}: {error!r}"
            with self.lock:
                self.done += 1
                if failure is not None:
                    self.failures.append(failure)

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=WAIT_TIMEOUT)

    def more(self, count: int) -> None:
        """Returns once ``count`` more requests have been answered."""
        target = self.done + count
        wait_for(lambda: self.done >= target or self.failures, f"{count} requests")


def render_and_reload(stack: Stack, max_upload: int) -> None:
    """What docs/deployment.md's upgrade does: render from the settings, test the
    file, reload nginx."""
    nginx_dir = stack.data_dir / "nginx"
    conf = nginx_dir / "nginx.conf"
    saved = stack.env["GATEWAY_MAX_UPLOAD_SIZE"]
    stack.env["GATEWAY_MAX_UPLOAD_SIZE"] = str(max_upload)
    try:
        stack.manage(
            "protected_media_nginx",
            "--standalone",
            str(nginx_dir),
            "--listen",
            f"127.0.0.1:{stack.port}",
            "--upstream",
            f"unix:{stack.uvicorn_socket}",
            "--output",
            str(conf),
        )
    finally:
        stack.env["GATEWAY_MAX_UPLOAD_SIZE"] = saved
    assert f"client_max_body_size {max_upload + 64 * 1024};" in conf.read_text()
    nginx = ["nginx", "-p", str(nginx_dir), "-e", str(nginx_dir / "error.log"), "-c", str(conf)]
    subprocess.run([*nginx, "-t", "-q"], check=True, cwd=nginx_dir)
    subprocess.run([*nginx, "-s", "reload"], check=True, cwd=nginx_dir)


def nginx_refuses_body_of(stack: Stack, size: int) -> bool:
    """Whether nginx refuses a body of ``size`` bytes from its header alone:
    413, or 100 Continue when the size is allowed."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as client:
        client.sendall(
            f"POST /api/files/ HTTP/1.1\r\nHost: 127.0.0.1:{stack.port}\r\n"
            "Content-Type: text/plain\r\nExpect: 100-continue\r\n"
            f"Content-Length: {size}\r\n\r\n".encode()
        )
        answer = client.recv(4096)
    assert answer.startswith((b"HTTP/1.1 413 ", b"HTTP/1.1 100 ")), answer[:200]
    return answer.startswith(b"HTTP/1.1 413 ")


def test_nginx_reload_with_a_new_config_under_load_fails_no_request(pg_stack, owner) -> None:
    stack, _ = pg_stack
    created = upload(owner, "steady.txt", CONTENT, "text/plain").json()
    master = int((stack.data_dir / "nginx" / "nginx.pid").read_text())
    old_workers = nginx_workers(master)
    offset = len(stack.log())
    smaller = 256 * 1024
    try:
        with Load(stack, created["url"], cookie_header(owner)) as load:
            load.more(REQUESTS_PER_PHASE)
            render_and_reload(stack, smaller)
            # The new config is in force: nginx refuses a body the old one let in.
            wait_for(lambda: nginx_refuses_body_of(stack, MAX_UPLOAD // 2), "the new config")
            wait_for(lambda: not nginx_workers(master) & old_workers, "the old workers to exit")
            load.more(REQUESTS_PER_PHASE)
            render_and_reload(stack, MAX_UPLOAD)
            wait_for(lambda: not nginx_refuses_body_of(stack, MAX_UPLOAD // 2), "the old config")
            load.more(REQUESTS_PER_PHASE)
        assert load.failures == [], load.failures[:10]
        assert load.done >= 3 * REQUESTS_PER_PHASE
    finally:
        if nginx_refuses_body_of(stack, MAX_UPLOAD // 2):
            render_and_reload(stack, MAX_UPLOAD)
    assert int((stack.data_dir / "nginx" / "nginx.pid").read_text()) == master
    # Nothing restarted behind nginx: the app did not notice.
    assert "exited" not in stack.log()[offset:]
    assert "Traceback" not in stack.log()[offset:]
