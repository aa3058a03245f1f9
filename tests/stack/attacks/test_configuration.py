"""Misconfiguration as an attacker finds it: an upstream that sends
X-Accel-Redirect, a spoofed Host, files where a public root could reach them,
and the Python fallback left on in production."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from protected_media.nginx.render import ACCEL_HEADERS, SiteConfig, render_site, render_standalone

from ...test_nginx_config import Directive, parse
from ..harness import BASE_DIR, Stack, UnixServer, cookie_header, free_port, nginx_listening
from .support import answered_by_django, get_line, wire

pytestmark = pytest.mark.stack

SECRET = b"private file behind the internal location\n"
UPSTREAM_BODY = b"the other app's own page, long enough to notice a rate limit\n"
ACCEL_VALUES = {
    "X-Accel-Redirect": "/_protected/files/secret.txt",
    "X-Accel-Expires": "3600",
    "X-Accel-Limit-Rate": "1",
    "X-Accel-Buffering": "no",
    "X-Accel-Charset": "utf-8",
}


def proxy_locations(config: str) -> list[Directive]:
    http = parse(config)
    servers = http.all("server") or http.one("http").all("server")
    return [loc for server in servers for loc in server.all("location") if loc.all("proxy_pass")]


def running_configs(stack: Stack) -> list[tuple[str, str]]:
    return [
        ("the stack's nginx.conf", (stack.data_dir / "nginx" / "nginx.conf").read_text()),
        ("deploy/nginx/gateway.conf", (BASE_DIR / "deploy" / "nginx" / "gateway.conf").read_text()),
    ]


@pytest.mark.parametrize("which", [0, 1], ids=["rendered for the stack", "deploy"])
def test_every_other_proxy_location_ignores_x_accel(stack: Stack, which: int) -> None:
    _, config = running_configs(stack)[which]
    locations = proxy_locations(config)
    media = [loc for loc in locations if loc.args[-1] == "/media/"]
    others = [loc for loc in locations if loc.args[-1] != "/media/"]
    assert len(media) == 1 and others
    # The gateway location must follow the redirect...
    assert media[0].all("proxy_ignore_headers") == []
    # ...and every other one must ignore every X-Accel header.
    for location in others:
        ignored = {arg for d in location.all("proxy_ignore_headers") for arg in d.args}
        assert set(ACCEL_HEADERS) <= ignored, location.args
    for cache in ("proxy_cache", "fastcgi_cache", "uwsgi_cache", "scgi_cache", "autoindex"):
        assert cache not in config


# -- a second upstream that answers with X-Accel-Redirect -------------------------------


class AccelEverywhere(BaseHTTPRequestHandler):
    """Another app behind the same nginx, hostile or compromised: it asks nginx
    to send a private file on every answer."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        for name, value in ACCEL_VALUES.items():
            # Not the rate limit on the gateway's location, where nginx obeys
            # it: the control below would get one byte a second.
            if not (self.path.startswith("/media/") and name == "X-Accel-Limit-Rate"):
                self.send_header(name, value)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(UPSTREAM_BODY)))
        self.end_headers()
        self.wfile.write(UPSTREAM_BODY)

    do_POST = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def second_upstream() -> Iterator[tuple[int, Path]]:
    """nginx with the rendered site, in front of AccelEverywhere instead of the app."""
    folder = Path(tempfile.mkdtemp(prefix="gw-"))  # unix socket paths are short
    (folder / "private" / "files").mkdir(parents=True)
    (folder / "private" / "files" / "secret.txt").write_bytes(SECRET)
    (folder / "static").mkdir()
    (folder / "nginx" / "tmp").mkdir(parents=True)
    port = free_port()
    site = render_site(
        SiteConfig(
            listen=f"127.0.0.1:{port}",
            upstream=f"unix:{folder / 'app.sock'}",
            server_name="_",
            static_url="/static/",
            static_root=str(folder / "static"),
            media_url="/media/",
            internal_url="/_protected/",
            private_root=str(folder / "private"),
            max_body_size=1024 * 1024,
        )
    )
    user = None
    if os.geteuid() == 0:  # workers must be able to read the folder
        import pwd

        user = pwd.getpwuid(os.geteuid()).pw_name
    conf = folder / "nginx" / "nginx.conf"
    conf.write_text(render_standalone(site, state_dir=str(folder / "nginx"), user=user))
    app = UnixServer(str(folder / "app.sock"), AccelEverywhere)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    command = [nginx, "-p", str(folder / "nginx"), "-e", str(folder / "nginx" / "error.log")]
    try:
        with nginx_listening([*command, "-c", str(conf)], folder / "nginx" / "error.log", port):
            yield port, folder
    finally:
        app.shutdown()
        app.server_close()
        shutil.rmtree(folder, ignore_errors=True)


def fetch(port: int, target: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    if method == "POST":
        request += "Content-Length: 0\r\n"
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as connection:
        connection.sendall(request.encode() + b"\r\n")
        while chunk := connection.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    ("target", "method"),
    [
        ("/", "GET"),  # the site's root, through `location /`
        ("/accounts/login/", "GET"),
        ("/api/files/", "POST"),
        ("/mediafiles/x", "GET"),  # a prefix that only looks like the gateway's
        ("/static", "GET"),  # the static prefix without its slash
        ("/_protected", "GET"),
    ],
)
def test_another_upstreams_x_accel_redirect_is_ignored(second_upstream, target, method) -> None:
    port, _ = second_upstream
    started = time.monotonic()
    status, headers, body = fetch(port, target, method)
    # The other app's own answer, untouched: no file, no rate limit, no charset.
    assert (status, body) == (200, UPSTREAM_BODY)
    assert SECRET not in body
    assert headers["content-type"] == "text/plain"
    assert not [name for name in headers if name.startswith("x-accel")]
    assert time.monotonic() - started < 5  # X-Accel-Limit-Rate: 1 would take a minute


def test_the_gateway_location_does_follow_it(second_upstream) -> None:
    # The control: through the gateway's location the same answer does serve
    # the private file, so the test above would see a missing ignore.
    port, _ = second_upstream
    status, headers, body = fetch(port, "/media/anything")
    assert (status, body) == (200, SECRET)
    assert headers["x-content-type-options"] == "nosniff"


# -- Host ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host_lines",
    [
        [b"Host: evil.example"],  # a host the site does not serve
        [b"Host: 127.0.0.1.evil.example"],
        [b"Host: evil.example:80@127.0.0.1"],  # userinfo smuggled into Host
        [b"Host: 127.0.0.1", b"Host: evil.example"],  # two Host headers
        [b"Host: 127.0.0.1/../evil"],  # a path in Host
        [b"Host: "],  # empty
    ],
)
def test_a_spoofed_host_is_refused(stack: Stack, owner, private_file, host_lines) -> None:
    # Password-reset links and redirects are built from Host: a host the site
    # does not serve must be refused, by nginx or by Django's ALLOWED_HOSTS.
    cookie = b"Cookie: " + cookie_header(owner)["Cookie"].encode()
    lines = [
        b"GET " + private_file["url"].encode() + b" HTTP/1.1",
        *host_lines,
        cookie,
        b"Connection: close",
    ]
    response = wire(stack, b"\r\n".join(lines) + b"\r\n\r\n")
    assert response is not None
    assert response.status == 400
    assert b"canary" not in response.body
    assert b"evil" not in response.body


def test_forwarded_host_headers_are_not_trusted(stack: Stack) -> None:
    response = wire(
        stack,
        get_line(
            b"/media/AAAAAAAAAAAAAAAAAAAAAA",
            b"X-Forwarded-Host: evil.example",
            b"Forwarded: host=evil.example",
        ),
    )
    assert response is not None and response.status == 302
    assert response.headers["location"].startswith("/accounts/login/")
    assert answered_by_django(response)


# -- the filesystem --------------------------------------------------------------------


def test_private_files_are_closed_to_other_users_and_outside_public_roots(
    stack: Stack, private_file
) -> None:
    private = stack.private_root.resolve()
    for public in (stack.data_dir / "static", stack.data_dir / "public-media"):
        public = public.resolve()
        assert not private.is_relative_to(public) and not public.is_relative_to(private)
    files = [path for path in private.rglob("*") if path.is_file() and not path.is_symlink()]
    assert files
    for path in files:
        # Atomic writes: no temporary file left behind under the root.
        assert not path.name.startswith(".upload-")
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o007 == 0, (path, oct(mode))  # nothing for other users
    for folder in [private, *(p for p in private.rglob("*") if p.is_dir() and not p.is_symlink())]:
        if folder == private:
            continue
        assert stat.S_IMODE(folder.stat().st_mode) & 0o007 == 0, folder


def test_the_fallback_in_production_is_reported(fallback_stack: Stack) -> None:
    # From security.md: the Python fallback left on in production.
    env = {
        **fallback_stack.env,
        "GATEWAY_SECRET_KEY": (fallback_stack.data_dir / "secret_key").read_text(),
        "GATEWAY_DEBUG": "0",
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "protected_media.W001" in done.stdout + done.stderr
