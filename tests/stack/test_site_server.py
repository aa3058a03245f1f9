"""The site's own server block with the gateway's two files included
(`protected_media_nginx --http FILE --locations FILE`): a second nginx, with a
hand-written nginx.conf, in front of the stack's uvicorn."""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Iterator
from urllib.parse import quote

import pytest

from protected_media.nginx.from_settings import standalone_user
from tests.test_nginx_config import nginx_binary, site_server_config

from .conftest import USERS
from .harness import Stack, cookie_header, free_port, nginx_listening, upload, wait_for

pytestmark = pytest.mark.stack

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'; sandbox",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
}
REFUSAL = (404, b"Not Found\n")


@pytest.fixture(scope="module")
def site_server(stack: Stack, tmp_path_factory) -> Iterator[Stack]:
    """The stack's app as the site's own server serves it: the same data
    folder and uvicorn, HTTP to the second nginx's port."""
    state = tmp_path_factory.mktemp("site-server")
    (state / "tmp").mkdir()
    http, locations = state / "http.conf", state / "locations.conf"
    stack.manage(
        "protected_media_nginx", "--http", str(http), "--locations", str(locations),
        "--upstream", f"unix:{stack.uvicorn_socket}",
    )  # fmt: skip
    # The locations write Debian's log folder; this nginx writes its own.
    text = locations.read_text()
    assert "/var/log/nginx/" in text
    locations.write_text(text.replace("/var/log/nginx/", f"{state}/"))
    port = free_port()
    config = state / "nginx.conf"
    config.write_text(site_server_config(state, port, user=standalone_user()))
    command = [nginx_binary(), "-p", str(state), "-e", str(state / "error.log"), "-c", str(config)]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    with nginx_listening(command, state / "error.log", port):
        served = copy.copy(stack)
        served.port, served.url = port, f"http://127.0.0.1:{port}"
        served.log_path = state / "error.log"
        yield served


def test_the_site_server_serves_the_gateway_and_its_own_location(site_server: Stack) -> None:
    owner = site_server.login("alice", USERS["alice"])
    other = site_server.login("bob", USERS["bob"])
    try:
        # Uploaded through the site's server: "location /" with the upload limit.
        created = upload(owner, "site.txt", b"served by the site's server\n", "text/plain")
        assert created.status_code == 201, created.text
        url = created.json()["url"]
        mine = site_server.raw("GET", url, headers=cookie_header(owner))
        theirs = site_server.raw("GET", url, headers=cookie_header(other))
    finally:
        owner.close()
        other.close()
    assert (mine.status, mine.body) == (200, b"served by the site's server\n")
    # The location's own headers, none of the server's (X-Site).
    assert {name: mine.headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS
    assert "x-site" not in mine.headers
    assert (theirs.status, theirs.body) == REFUSAL
    assert theirs.headers["content-type"] == "text/plain; charset=utf-8"
    # Anonymous: sent to sign in, as on the stack's own server.
    stranger = site_server.raw("GET", url)
    assert (stranger.status, stranger.body) == (302, b"")
    assert stranger.headers["location"] == f"/accounts/login/?next={quote(url)}"

    # The internal location: the site's error_page 404 does not answer for it.
    stored = next(path for path in site_server.private_root.rglob("*") if path.is_file())
    direct = site_server.raw("GET", f"/_protected/{stored.relative_to(site_server.private_root)}")
    assert (direct.status, direct.body) == REFUSAL

    manifest = json.loads((site_server.data_dir / "static" / "staticfiles.json").read_text())
    hashed = manifest["paths"]["demo/site.css"]
    static = site_server.raw("GET", f"/static/{hashed}")
    assert static.status == 200
    assert static.body == (site_server.data_dir / "static" / hashed).read_bytes()
    assert static.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert static.headers["x-content-type-options"] == "nosniff"

    hello = site_server.raw("GET", "/hello")
    assert (hello.status, hello.body) == (200, b"hi")
    assert hello.headers["x-site"] == "own"

    # The gateway's requests go to its masked log, the site's to its own.
    # nginx writes a request's line once it has finished with it, which can
    # be just after the client has read the response.
    state = site_server.log_path.parent
    own = state / "site.log"
    own_log = wait_for(lambda: "GET /hello " in (text := own.read_text()) and text, "a line", 5)
    gateway_log = (state / "access.log").read_text()
    assert f"GET {url} " in gateway_log and f"GET {url} " not in own_log
    assert "GET /hello " in own_log and "GET /hello " not in gateway_log
