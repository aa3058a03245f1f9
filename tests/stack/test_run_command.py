"""The run command itself: it prints the URL, restarts a dead uvicorn, and
stops everything on Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import CREATE_USERS, USERS
from .harness import BASE_DIR, Stack, cookie_header, free_port, upload

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


def run_command(data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    return subprocess.Popen(
        [sys.executable, "-m", "gateway.stack"],
        cwd=BASE_DIR,
        env={**env, "GATEWAY_DATA_DIR": str(data_dir), "GATEWAY_PORT": str(port)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def port_taken(port: int) -> str:
    return (
        f"[gateway] port {port} on 127.0.0.1 is in use: stop what listens there, "
        "or choose another with GATEWAY_PORT\n"
    )


def test_a_taken_port_is_refused_before_anything_starts(tmp_path) -> None:
    # Another server holds the port: nginx could not bind it, and that server
    # would answer the health check in its place.
    data_dir = tmp_path / "data"
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        command = run_command(data_dir, port)
        out, err = command.communicate(timeout=60)
    assert (command.returncode, out, err) == (1, "", port_taken(port))
    assert not data_dir.exists()


def test_a_port_taken_while_preparing_is_refused_before_the_servers_start(tmp_path) -> None:
    port = free_port()
    command = run_command(tmp_path / "data", port)
    try:
        assert command.stdout is not None
        assert command.stdout.readline().startswith("[gateway] preparing ")
        # The migrations take seconds: the port is taken meanwhile.
        with socket.socket() as other:
            # As a server binds: a closing connection on the port is no bar.
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            other.bind(("127.0.0.1", port))
            other.listen()
            out, err = command.communicate(timeout=120)
    finally:
        command.kill()
    assert command.returncode == 1
    assert err.endswith(port_taken(port))
    assert "running at" not in out
    # Neither server was started: nginx would have failed to bind, loudly.
    assert not (tmp_path / "data" / "run" / "uvicorn.sock").exists()
    assert "nginx: [emerg]" not in err


# -- under umask 077, and a child that keeps dying --------------------------------------


@pytest.fixture(scope="module")
def strict_umask_stack(tmp_path_factory) -> Iterator[Stack]:
    # The run command and everything it starts inherit the umask, as under a
    # service manager's UMask=0077.
    previous = os.umask(0o077)
    try:
        stack = Stack(tmp_path_factory.mktemp("umask") / "data").start()
    finally:
        os.umask(previous)
    stack.shell(CREATE_USERS)
    yield stack
    stack.stop()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_stored_under_umask_077_keep_their_modes(strict_umask_stack: Stack) -> None:
    stack = strict_umask_stack
    owner = stack.login("alice", USERS["alice"])
    try:
        created = upload(owner, "notes.txt", b"under umask 077\n", "text/plain")
        assert created.status_code == 201, created.text
        served = stack.raw("GET", created.json()["url"], headers=cookie_header(owner))
    finally:
        owner.close()
    assert (served.status, served.body) == (200, b"under umask 077\n")
    stored = next(path for path in stack.private_root.rglob("*.txt"))
    folders = [stored.parent]
    while folders[-1] != stack.private_root:
        folders.append(folders[-1].parent)
    # nginx reads as the app's group: every folder 0o750, the file 0o640.
    assert {str(folder): mode(folder) for folder in folders} == {
        str(folder): 0o750 for folder in folders
    }
    assert mode(stored) == 0o640


def emergencies(stack: Stack) -> int:
    # Each nginx started on a broken config says so once on its stderr (the
    # run command's output), then exits.
    return stack.log().count("[emerg]")


def test_restarts_back_off_and_a_stop_during_the_wait_starts_nothing(
    strict_umask_stack: Stack,
) -> None:
    # Ends the module's stack: it is the last test here.
    stack = strict_umask_stack
    (stack.data_dir / "nginx" / "nginx.conf").write_text("this is not a config;\n")
    os.kill(nginx_pids(stack)[0], signal.SIGQUIT)
    # Each failed start waits twice as long as the one before.
    expected = [
        "nginx exited with 0; restarting it in 0.5s",
        "nginx exited with 1; restarting it in 1s",
        "nginx exited with 1; restarting it in 2s",
        "nginx exited with 1; restarting it in 4s",
    ]
    assert wait_for(lambda: expected[-1] in stack.log()), stack.log()
    lines = [line for line in stack.log().splitlines() if "restarting it in" in line]
    assert [line.removeprefix("[gateway] ") for line in lines] == expected
    uvicorn = stack.uvicorn_pids()
    before = emergencies(stack)
    assert before == 3

    # SIGTERM during the 4 s wait: it ends the wait, and no nginx starts.
    stack.process.send_signal(signal.SIGTERM)
    assert stack.process.wait(timeout=30) == 0
    assert emergencies(stack) == before
    assert stack.log().rstrip().endswith("[gateway] stopped"), stack.log()
    assert not [pid for pid in uvicorn if alive(pid)]
