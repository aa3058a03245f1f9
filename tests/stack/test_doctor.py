"""`manage.py protected_media_doctor` against the real stack, and against real nginx
instances started from the rendered config with one mistake edited in."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from .conftest import MAX_UPLOAD, USERS
from .harness import BASE_DIR, Stack, free_port, nginx_listening, upload

pytestmark = pytest.mark.stack

CHECKS = [
    "static",
    "internal",
    "private files",
    "anonymous media",
    "media headers",
    "nginx config",
    "system checks",
]
TEXT = b"doctor's private notes\n" * 20


def run_doctor(
    stack: Stack, *args: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "protected_media_doctor", *args],
        cwd=BASE_DIR,
        env={
            **stack.env,
            "GATEWAY_SECRET_KEY": (stack.data_dir / "secret_key").read_text(),
            **env,
        },
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def report(done: subprocess.CompletedProcess[str]) -> dict[str, tuple[str, str]]:
    """{check: (PASS/FAIL/SKIP, reason)}, and every line of stdout is one check."""
    lines = done.stdout.splitlines()
    results = {}
    for line in lines:
        status, _, rest = line.partition(" ")
        name, _, reason = rest.partition(": ")
        assert status in ("PASS", "FAIL", "SKIP") and reason, line
        results[name] = (status, reason)
    assert list(results) == CHECKS, done.stdout
    return results


def statuses(results: dict[str, tuple[str, str]]) -> dict[str, str]:
    return {name: status for name, (status, _) in results.items()}


@pytest.fixture(scope="module")
def sessions(stack: Stack) -> Iterator[dict[str, str]]:
    clients = {name: stack.login(name, password) for name, password in USERS.items()}
    yield {name: client.cookies["sessionid"] for name, client in clients.items()}
    for client in clients.values():
        client.close()


@pytest.fixture(scope="module")
def private_file(stack: Stack) -> dict[str, str]:
    client = stack.login("alice", USERS["alice"])
    response = upload(client, "doctor.txt", TEXT, "text/plain")
    client.close()
    assert response.status_code == 201, response.text
    return response.json()


def full_run(
    stack: Stack, url: str, config: Path, private_file: dict[str, str], cookie: str
) -> subprocess.CompletedProcess[str]:
    # The cookie on standard input, as the docs advise: not in the process list.
    return run_doctor(
        stack,
        url,
        "--nginx-config", str(config),
        "--media-url", private_file["url"],
        "--session-cookie", "-",
        stdin=cookie + "\n",
    )  # fmt: skip


# -- the good stack ------------------------------------------------------------


def test_good_stack_passes_every_check(stack, private_file, sessions) -> None:
    config = stack.data_dir / "nginx" / "nginx.conf"
    done = full_run(stack, stack.url, config, private_file, sessions["alice"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    results = report(done)
    assert set(statuses(results).values()) == {"PASS"}, done.stdout
    assert "(public, max-age=31536000, immutable)" in results["static"][1]
    assert "(public, max-age=3600)" in results["static"][1]
    assert "a real private file" in results["internal"][1]
    assert "a real file's key and an unknown key" in results["anonymous media"][1]
    assert results["media headers"][1].startswith(f"GET {private_file['url']}: 200 with ")
    assert "Content-Security-Policy" in results["media headers"][1]
    # The deployment checks ran: on plain http, the session cookie is not Secure.
    assert results["system checks"][1].startswith("none at the fail level")
    assert "security.W012" in results["system checks"][1]


def test_without_options_the_checks_that_need_them_are_skipped(stack, private_file) -> None:
    done = run_doctor(stack, stack.url + "/")
    assert done.returncode == 0, done.stdout + done.stderr
    results = report(done)
    assert statuses(results) == {
        **dict.fromkeys(CHECKS, "PASS"),
        "media headers": "SKIP",
        "nginx config": "SKIP",
    }
    assert "--media-url and --session-cookie" in results["media headers"][1]
    key = private_file["url"].rsplit("/", 1)[1]
    assert f"{key[:4]}..." in results["internal"][1]
    assert key not in done.stdout


def test_a_session_that_may_not_read_the_file_fails(stack, private_file, sessions) -> None:
    config = stack.data_dir / "nginx" / "nginx.conf"
    done = full_run(stack, stack.url, config, private_file, f"sessionid={sessions['bob']}")
    assert done.returncode == 1
    assert done.stderr == "CommandError: 1 of 7 checks failed.\n"
    status, reason = report(done)["media headers"]
    assert status == "FAIL"
    assert reason.startswith(f"GET {private_file['url']} with the session answered 404, not 200")


def test_a_config_rendered_for_other_settings_fails(stack) -> None:
    # deploy/'s reference render has the default upload limit and /srv/gateway,
    # not this stack's limit and folder: the first difference is named.
    reference = BASE_DIR / "deploy" / "nginx" / "gateway.conf"
    done = run_doctor(stack, stack.url, "--nginx-config", str(reference))
    assert done.returncode == 1
    status, reason = report(done)["nginx config"]
    assert status == "FAIL"
    lines = reference.read_text().splitlines()
    # Its first line that this stack's render differs on, counted from 1.
    line = next(
        number
        for number, text in enumerate(lines, 1)
        if text.strip() == "client_max_body_size 10551296;"
    )
    assert reason == (
        f"{reference} differs from a fresh render: line {line} is 'client_max_body_size "
        f"10551296;', the settings give 'client_max_body_size {MAX_UPLOAD + 64 * 1024};'"
    )


def test_system_check_errors_fail(stack) -> None:
    # The stack serves with nginx; the settings the doctor reads name a backend
    # protected_media refuses (protected_media.E012).
    done = run_doctor(stack, stack.url, GATEWAY_SENDFILE_BACKEND="django_sendfile.backends.simple")
    assert done.returncode == 1
    results = report(done)
    assert results["system checks"] == ("FAIL", "1 at the fail level: protected_media.E012")
    assert statuses(results)["static"] == "PASS"


def test_nothing_listening_fails_every_http_check(stack) -> None:
    done = run_doctor(stack, f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 1
    results = report(done)
    for name in ("static", "internal", "anonymous media"):
        status, reason = results[name]
        assert status == "FAIL"
        assert reason.startswith("no answer: ")
    assert results["system checks"][0] == "PASS"


# -- a real nginx with one mistake edited into the rendered config ------------


@contextmanager
def broken_nginx(stack: Stack, state: Path, edit: Callable[[str], str]) -> Iterator[Path]:
    """nginx on a free port, in front of the stack's uvicorn, with ``edit`` applied."""
    port = free_port()
    text = (stack.data_dir / "nginx" / "nginx.conf").read_text()
    text = substitute(text, str(stack.data_dir / "nginx"), str(state))
    # The listen line and the header that records it, which the doctor renders with.
    text = substitute(text, f"127.0.0.1:{stack.port}", f"127.0.0.1:{port}")
    config = state / "nginx.conf"
    (state / "tmp").mkdir(parents=True)
    config.write_text(edit(text))
    command = ["nginx", "-p", str(state), "-e", str(state / "error.log"), "-c", str(config)]
    with nginx_listening(command, state / "error.log", port):
        yield config


def substitute(text: str, old: str, new: str) -> str:
    assert old in text, f"{old!r} not found"
    return text.replace(old, new)


def listen_port(config: Path) -> int:
    line = next(line for line in config.read_text().splitlines() if "listen 127.0.0.1:" in line)
    return int(line.strip().rstrip(";").rsplit(":", 1)[1])


def raw_get(port: int, target: str) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(f"GET {target} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def stored_name(stack: Stack, private_file: dict[str, str]) -> str:
    key = private_file["url"].rsplit("/", 1)[1]
    [path] = stack.private_root.rglob(f"{key}.*")
    return path.relative_to(stack.private_root).as_posix()


def without_security_headers(text: str, root: str) -> str:
    for name in (
        "X-Content-Type-Options",
        "Content-Security-Policy",
        "Referrer-Policy",
        "Cross-Origin-Resource-Policy",
    ):
        lines = text.splitlines(keepends=True)
        # Only the internal location's lines: static keeps its nosniff.
        start = next(i for i, line in enumerate(lines) if "internal;" in line)
        text = "".join(
            line
            for i, line in enumerate(lines)
            if not (i > start and line.strip().startswith(f"add_header {name} "))
        )
    return text


BROKEN = {
    # The location still exists, but anyone may ask for it.
    "missing internal": (
        lambda text, root: substitute(text, "        internal;\n", ""),
        {"internal", "nginx config"},
        "'internal;'",
    ),
    # The classic Django setup: media served straight from the folder.
    "public alias on the media prefix": (
        lambda text, root: substitute(
            text,
            "        client_max_body_size 1k;\n        proxy_pass http://protected_media_app;\n",
            f"        alias {root}/;\n",
        ),
        {"private files", "anonymous media", "media headers", "nginx config"},
        "'alias {private_root}/;'",
    ),
    # "location /static" with "alias .../static/": "/static../private/x" reads
    # the private folder beside STATIC_ROOT.
    "static location without its trailing slash": (
        lambda text, root: substitute(text, "location ^~ /static/ {", "location ^~ /static {"),
        {"private files", "nginx config"},
        "'location ^~ /static {'",
    ),
    "missing security headers": (
        without_security_headers,
        {"media headers", "nginx config"},
        "(nothing)",
    ),
}


@pytest.mark.parametrize("breakage", list(BROKEN))
def test_broken_nginx_fails_the_checks_that_see_it(
    stack, private_file, sessions, tmp_path, breakage
) -> None:
    edit, failing, line_reason = BROKEN[breakage]
    root = str(stack.private_root.resolve())
    with broken_nginx(stack, tmp_path / "nginx", lambda text: edit(text, root)):
        config = tmp_path / "nginx" / "nginx.conf"
        url = f"http://127.0.0.1:{listen_port(config)}"
        done = full_run(stack, url, config, private_file, sessions["alice"])
        control = {
            target: raw_get(listen_port(config), target)
            for target in (
                f"/_protected/{stored_name(stack, private_file)}",
                f"/media/{stored_name(stack, private_file)}",
                f"/static../private/{stored_name(stack, private_file)}",
            )
        }
    results = report(done)
    assert {name for name, status in statuses(results).items() if status == "FAIL"} == failing
    assert set(statuses(results).values()) == {"PASS", "FAIL"}, done.stdout
    assert done.returncode == 1
    assert done.stderr == f"CommandError: {len(failing)} of 7 checks failed.\n"
    assert line_reason.replace("{private_root}", root) in results["nginx config"][1]
    # The breakage is real: where the doctor says a private file is public,
    # a plain request gets its bytes.
    served = [target for target, (status, body) in control.items() if body == TEXT]
    assert bool(served) == (breakage != "missing security headers")
    # The report names the file by the start of its key only.
    key = private_file["url"].rsplit("/", 1)[1]
    assert key not in done.stdout.replace(private_file["url"], "")
    shown = [target.replace(key, f"{key[:4]}...") for target in served]
    if "private files" in failing:
        assert any(f"GET {target} without" in results["private files"][1] for target in shown)
    if "internal" in failing:
        assert served == [f"/_protected/{stored_name(stack, private_file)}"]
        assert results["internal"][1] == (
            f"GET {shown[0]} answered 200, not 404: the location is not internal"
        )
    if breakage == "missing security headers":
        assert results["media headers"][1] == (
            f"GET {private_file['url']} lacks the right X-Content-Type-Options, "
            "Content-Security-Policy, Referrer-Policy, Cross-Origin-Resource-Policy"
        )
