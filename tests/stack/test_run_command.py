"""The run command itself: it prints the URL, restarts a dead uvicorn, and
stops everything on Ctrl-C."""

from __future__ import annotations

import os
import signal
import time

import pytest

from .harness import Stack

pytestmark = pytest.mark.stack


def wait_for(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def healthy(stack: Stack) -> bool:
    try:
        return stack.raw("GET", "/healthz").status == 200
    except OSError:
        return False


def nginx_pids(stack: Stack) -> list[int]:
    pid_file = stack.data_dir / "nginx" / "nginx.pid"
    return [int(pid_file.read_text())] if pid_file.exists() else []


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_supervises_and_stops_on_ctrl_c(tmp_path) -> None:
    stack = Stack(tmp_path / "data").start()
    try:
        assert f"running at {stack.url}/" in stack.log()
        assert healthy(stack)

        first = stack.uvicorn_pids()
        assert first
        for pid in first:
            os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: stack.uvicorn_pids() and stack.uvicorn_pids() != first)
        assert wait_for(lambda: healthy(stack)), stack.log()
        assert "uvicorn exited with -9; restarting it" in stack.log()

        children = stack.uvicorn_pids() + nginx_pids(stack)
        assert children
        stack.process.send_signal(signal.SIGINT)
        assert stack.process.wait(timeout=30) == 0
        assert not [pid for pid in children if alive(pid)]
        assert not healthy(stack)
    finally:
        stack.stop()
