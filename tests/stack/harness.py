"""Start the real stack (the run command: nginx in front of uvicorn) for tests,
and speak HTTP to it, raw when a test needs bytes no client library would send."""

from __future__ import annotations

import http.client
import os
import re
import secrets
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import httpx

BASE_DIR = Path(__file__).resolve().parents[2]
START_TIMEOUT = 120.0
# Set (a postgres:// URL, as tests/settings.py reads it): each stack gets a
# fresh PostgreSQL database of its own, made on start and dropped on stop
# (as does a Stack(..., postgres=True) when it is not set).
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
# Where databases are made and dropped: the suite's PostgreSQL, or the local
# one for the stacks that always run on PostgreSQL.
ADMIN_URL = TEST_DATABASE_URL or os.environ.get(
    "POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)
# Stacks answer every request: the tests and the benchmark send thousands a
# second from one address. tests/stack/test_rate_limits.py sets its own.
NO_RATE_LIMITS = {
    "GATEWAY_MEDIA_RATE": "off",
    "GATEWAY_MEDIA_CONNECTIONS": "off",
    "GATEWAY_UPLOAD_RATE": "off",
    "GATEWAY_UPLOAD_CONNECTIONS": "off",
}


# Every port free_port has handed out in this process.
_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def free_port() -> int:
    """A loopback port nothing listens on, and never one this process handed
    out before. A Stack takes its port when made but binds it only when
    started, and the kernel offers a port it has just released to the next
    caller: the benchmark's uvicorn floor once took a stack's port, the stack's
    health check was answered by the floor, and its sign-in found no form."""
    with _handed_out_lock:
        while True:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = int(probe.getsockname()[1])
            if port not in _handed_out:
                _handed_out.add(port)
                return port


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes
    header_list: list[tuple[str, str]] = field(default_factory=list)


def postgres_admin(statement: str, database: str) -> None:
    """``statement`` with ``{name}`` standing for the quoted name ``database``,
    run on ADMIN_URL's database outside a transaction."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
        connection.execute(sql.SQL(statement).format(name=sql.Identifier(database)))


def rss_kib(pids: list[int]) -> dict[int, int]:
    """Each live process's resident memory, in KiB."""
    found = {}
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        if match:
            found[pid] = int(match[1])
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU the processes have used, from /proc; a process
    that has gone counts nothing."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def wait_for(condition: Callable[[], Any], what: str, timeout: float) -> Any:
    """``condition()``'s first true result, polled for up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """A throwaway HTTP upstream on a unix socket (with http.server handlers)."""

    daemon_threads = True

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        # A unix peer has no address; the handler wants a pair.
        connection, _ = self.socket.accept()
        return connection, ("unix", 0)


@contextmanager
def nginx_listening(command: list[str], error_log: Path, port: int) -> Iterator[None]:
    """Run nginx with ``command`` until the block ends, once it listens on ``port``."""
    server = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert server.poll() is None, error_log.read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "nginx did not listen"
                time.sleep(0.05)
        yield
    finally:
        stop_process(server, signal.SIGQUIT, timeout=10)


def stop_process(process: subprocess.Popen[bytes], stop_signal: int, timeout: float) -> None:
    """Ask a process to stop, and kill it if it has not within ``timeout``."""
    if process.poll() is not None:
        return
    process.send_signal(stop_signal)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.socket_path)


def _exchange(
    connection: http.client.HTTPConnection,
    method: str,
    target: str,
    headers: dict[str, str] | None,
    body: bytes | None,
) -> RawResponse:
    try:
        # skip_accept_encoding and a verbatim target: the path goes out as written.
        connection.putrequest(method, target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        data = response.read()
        header_list = [(name.lower(), value) for name, value in response.getheaders()]
        return RawResponse(response.status, dict(header_list), data, header_list)
    finally:
        connection.close()


class Stack:
    def __init__(
        self, data_dir: Path, extra_env: dict[str, str] | None = None, *, postgres: bool = False
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "stack.log"
        self.env = {
            key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"
        }
        self.env.update(
            {
                "GATEWAY_DATA_DIR": str(data_dir),
                "GATEWAY_PORT": str(self.port),
                "GATEWAY_WORKERS": "1",
                **NO_RATE_LIMITS,
                **(extra_env or {}),
            }
        )
        self.database = ""
        if "GATEWAY_DATABASE_URL" in (extra_env or {}):
            pass  # the caller's own database
        elif TEST_DATABASE_URL or postgres:
            # ADMIN_URL is TEST_DATABASE_URL when that is set.
            self.database = f"gateway_stack_{secrets.token_hex(6)}"
            self.env["GATEWAY_DATABASE_URL"] = urllib.parse.urlunsplit(
                urllib.parse.urlsplit(ADMIN_URL)._replace(path=f"/{self.database}")
            )
        else:
            # Never a database of the developer's own: SQLite in the data folder.
            self.env.pop("GATEWAY_DATABASE_URL", None)
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: BinaryIO | None = None

    # lifecycle

    def start(self) -> Stack:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.database:
            postgres_admin("CREATE DATABASE {name}", self.database)
        self._log_file = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway.stack"],
            cwd=BASE_DIR,
            env=self.env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"the run command exited:\n{self.log()}")
            if b"running at" in self.log_path.read_bytes():
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the stack did not start in {START_TIMEOUT:.0f}s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, signal.SIGTERM, timeout=30)
        if self._log_file is not None:
            self._log_file.close()
        if self.database:
            postgres_admin("DROP DATABASE IF EXISTS {name} WITH (FORCE)", self.database)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # the app's side

    @property
    def private_root(self) -> Path:
        return self.data_dir / "private"

    @property
    def uvicorn_socket(self) -> Path:
        return self.data_dir / "run" / "uvicorn.sock"

    def manage(self, *args: str) -> str:
        # The run command makes a key in the data folder unless it was given one.
        key = self.env.get("GATEWAY_SECRET_KEY") or (self.data_dir / "secret_key").read_text()
        env = {**self.env, "GATEWAY_SECRET_KEY": key}
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def shell(self, code: str) -> str:
        return self.manage("shell", "--no-imports", "-c", code)

    def uvicorn_pids(self) -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    command = (entry / "cmdline").read_bytes()
                except OSError:
                    continue
                if b"uvicorn" in command and str(self.uvicorn_socket).encode() in command:
                    pids.append(int(entry.name))
        return pids

    def app_pids(self) -> list[int]:
        """uvicorn's processes and their descendants (the workers)."""
        found = set(self.uvicorn_pids())
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        for _ in range(8):  # a few generations at most
            children = {pid for pid, parent in parents.items() if parent in found} - found
            if not children:
                break
            found |= children
        return sorted(found)

    # HTTP

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=30)

    def login(self, username: str, password: str) -> httpx.Client:
        client = self.client()
        client.get("/accounts/login/")
        response = client.post(
            "/accounts/login/",
            data={
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": client.cookies["csrftoken"],
            },
            # As a browser sends it: Django's CSRF check compares it with Host.
            headers={"Origin": self.url},
        )
        assert response.status_code == 302, response.text
        return client

    def raw(
        self,
        method: str,
        target: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> RawResponse:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        return _exchange(connection, method, target, headers, body)

    def raw_uvicorn(
        self, method: str, target: str, headers: dict[str, str] | None = None
    ) -> RawResponse:
        """Straight to uvicorn's socket, skipping nginx."""
        return _exchange(
            UnixHTTPConnection(str(self.uvicorn_socket)), method, target, headers, None
        )


def upload(
    client: httpx.Client, name: str, data: bytes, content_type: str = "application/octet-stream"
) -> httpx.Response:
    return client.post(
        "/api/files/",
        files={"file": (name, data, content_type)},
        headers={
            "X-CSRFToken": client.cookies["csrftoken"],
            "Origin": str(client.base_url).rstrip("/"),
        },
    )


def cookie_header(client: httpx.Client) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{name}={value}" for name, value in client.cookies.items())}
