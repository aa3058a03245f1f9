"""Faults, each caused for real on the running stack: the app killed, a file
gone from disk under its record."""

from __future__ import annotations

import os
import signal
import time

import pytest

from .harness import Stack, cookie_header, upload

pytestmark = pytest.mark.stack

RESTART_TIMEOUT = 60.0


def wait_until_media_answers(stack: Stack, url: str, headers: dict[str, str]) -> int:
    deadline = time.monotonic() + RESTART_TIMEOUT
    while time.monotonic() < deadline:
        status = stack.raw("GET", url, headers=headers).status
        if status == 200:
            return status
        time.sleep(0.2)
    raise AssertionError(f"media did not come back within {RESTART_TIMEOUT:.0f}s:\n{stack.log()}")


def test_app_killed_static_flows_media_gets_our_502_and_the_app_comes_back(
    stack: Stack, alice
) -> None:
    created = upload(alice, "still-here.txt", b"still here\n", "text/plain").json()
    headers = cookie_header(alice)
    pids = stack.uvicorn_pids()
    assert pids, "uvicorn is not running"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)

    static = stack.raw("GET", "/static/demo/site.css")
    media = stack.raw("GET", created["url"], headers=headers)

    assert static.status == 200
    assert media.status == 502
    assert media.headers["content-type"] == "text/plain; charset=utf-8"
    assert media.headers["retry-after"] == "5"
    assert media.headers["cache-control"] == "no-store"
    assert media.body.startswith(b"Bad Gateway: the application is not answering")
    assert b"<html" not in media.body.lower()
    # The run command's supervisor starts uvicorn again, by itself.
    assert wait_until_media_answers(stack, created["url"], headers) == 200
    assert "restarting it" in stack.log()
    assert set(stack.uvicorn_pids()).isdisjoint(pids)


def test_file_gone_from_disk_is_the_apps_404(stack: Stack, alice) -> None:
    created = upload(alice, "vanishing.txt", b"now you see me\n", "text/plain").json()
    headers = cookie_header(alice)
    assert stack.raw("GET", created["url"], headers=headers).status == 200
    key = created["url"].rsplit("/", 1)[1]
    (stored,) = [path for path in stack.private_root.rglob("*") if path.name.startswith(key)]
    stored.unlink()

    response = stack.raw("GET", created["url"], headers=headers)
    missing = stack.raw("GET", "/media/AAAAAAAAAAAAAAAAAAAAAA", headers=headers)

    assert response.status == 404
    assert response.body == missing.body == b"Not Found\n"
    assert response.headers["content-type"] == missing.headers["content-type"]
    assert not [name for name in response.headers if name.startswith("x-accel")]
    # What nginx copied from the app's answer at the redirect stays on its
    # own 404 (no directive removes it): the file's name, and the app's
    # Cache-Control beside the 404's own. Nothing else (docs/deployment.md).
    copied = [
        (name, value)
        for name, value in response.header_list
        if name != "date" and (name, value) not in missing.header_list
    ]
    assert copied == [("content-disposition", 'inline; filename="vanishing.txt"')]
    cache_control = {value for name, value in response.header_list if name == "cache-control"}
    assert cache_control == {"private, no-store"}
    # The private location writes only critical errors: its error lines copy
    # the request line, which holds the token when a share link led there.
    # The orphans command is how an operator finds a record without its file.
    error_log = (stack.data_dir / "nginx" / "error.log").read_text()
    assert stored.name not in error_log
