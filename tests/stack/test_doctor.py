"""`manage.py protected_media_doctor` against the real stack, and against real nginx
instances started from the rendered config with one mistake edited in."""

from __future__ import annotations

import re
import socket
import string
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from protected_media.ops.doctor.bucket import Refused
from protected_media.ops.doctor.findings import FINDINGS
from protected_media.ops.doctor.store import FIXES, refused

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
    return run_doctor_command(stack, "protected_media_doctor", *args, stdin=stdin, **env)


def run_doctor_command(
    stack: Stack, command: str, *args: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    """manage.py ``command`` with the stack's settings, changed by ``env``."""
    return subprocess.run(
        [sys.executable, "manage.py", command, *args],
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


def parse_line(line: str) -> tuple[str, str, str | None, str]:
    """(status, check, finding id or None, reason) of one line of the report."""
    status, _, rest = line.partition(" ")
    label, _, reason = rest.partition(": ")
    name, _, finding = label.partition(" [")
    assert status in ("PASS", "FAIL", "SKIP", "WARN") and reason, line
    # A finding names its id and its fix; a pass has neither.
    assert (status == "PASS") == (finding == "") == (". Fix: " not in reason), line
    return status, name, finding.removesuffix("]") or None, reason


def report(done: subprocess.CompletedProcess[str]) -> dict[str, tuple[str, str]]:
    """{check: (PASS/FAIL/SKIP, reason)}, and every line of stdout is one check."""
    results = {}
    for line in done.stdout.splitlines():
        status, name, _, reason = parse_line(line)
        results[name] = (status, reason)
    assert list(results) == CHECKS, done.stdout
    return results


def finding_ids(done: subprocess.CompletedProcess[str]) -> dict[str, str | None]:
    return {parse_line(line)[1]: parse_line(line)[2] for line in done.stdout.splitlines()}


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
    assert reason.endswith(
        "Fix: sign in as the file's owner and give that sessionid cookie's value with "
        "--session-cookie - and the file's URL with --media-url"
    )


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
    seen, _, fix = reason.partition(". Fix: ")
    assert seen == (
        f"{reference} differs from a fresh render: line {line} is 'client_max_body_size "
        f"10551296;', the settings give 'client_max_body_size {MAX_UPLOAD + 64 * 1024};'"
    )
    # The command that writes it again, with the options the file records.
    assert fix.startswith("manage.py protected_media_nginx --listen ")
    assert fix.endswith(f" -o {reference}, then nginx -t && systemctl reload nginx")


def test_system_check_errors_fail(stack) -> None:
    # The stack serves with nginx; the settings the doctor reads name a backend
    # protected_media refuses (protected_media.E012).
    done = run_doctor(stack, stack.url, GATEWAY_SENDFILE_BACKEND="django_sendfile.backends.simple")
    assert done.returncode == 1
    results = report(done)
    status, reason = results["system checks"]
    assert status == "FAIL"
    # The id, then the hint that says what to set.
    assert reason.startswith(
        "1 at the fail level: protected_media.E012. Fix: protected_media.E012: "
    )
    assert "SENDFILE_BACKEND" in reason
    assert finding_ids(done)["system checks"] == "D701"
    assert statuses(results)["static"] == "PASS"


def test_nothing_listening_fails_every_http_check(stack) -> None:
    port = free_port()
    done = run_doctor(stack, f"http://127.0.0.1:{port}")
    assert done.returncode == 1
    results = report(done)
    for name in ("static", "internal", "anonymous media"):
        status, reason = results[name]
        assert status == "FAIL"
        assert reason.startswith(f"no answer from http://127.0.0.1:{port} (")
        assert reason.endswith("Fix: start nginx (systemctl start nginx) and give the doctor "
                               "the address of its listen line")  # fmt: skip
        assert finding_ids(done)[name] == "D001"
    assert results["system checks"][0] == "PASS"


# -- the static files, as the settings the doctor reads have them --------------

PLAIN_STORAGE = "django.contrib.staticfiles.storage.StaticFilesStorage"


def settings_module(folder: Path, static_root: Path, storage: str | None) -> dict[str, str]:
    """The environment of a run whose settings are the gateway's with another
    STATIC_ROOT and, given one, another static storage."""
    lines = ["from gateway.settings import *  # noqa: F403", f"STATIC_ROOT = {str(static_root)!r}"]
    if storage:
        lines.append(f'STORAGES = {{**STORAGES, "staticfiles": {{"BACKEND": {storage!r}}}}}')
    (folder / "doctor_static_settings.py").write_text("\n".join(lines) + "\n")
    return {"DJANGO_SETTINGS_MODULE": "doctor_static_settings", "PYTHONPATH": str(folder)}


def test_a_storage_without_a_manifest_names_the_storage_setting(stack, tmp_path) -> None:
    # The user's case: the static storage is not the manifest one, and
    # collectstatic has run, so running it again changes nothing.
    env = settings_module(tmp_path, tmp_path / "static", PLAIN_STORAGE)
    collected = run_doctor_command(stack, "collectstatic", "--noinput", **env)
    assert collected.returncode == 0, collected.stderr
    assert not (tmp_path / "static" / "staticfiles.json").exists()
    done = run_doctor(stack, stack.url, **env)
    assert finding_ids(done)["static"] == "D101"
    assert report(done)["static"] == (
        "FAIL",
        f'STORAGES["staticfiles"] is {PLAIN_STORAGE}, which writes no manifest: collectstatic '
        "gives no file a hashed name, so nginx cannot let browsers cache static files for a "
        'year. Fix: hashed names need STORAGES["staticfiles"] = {"BACKEND": '
        '"django.contrib.staticfiles.storage.ManifestStaticFilesStorage"}, then manage.py '
        "collectstatic --noinput",
    )


def test_a_manifest_storage_without_its_manifest_says_run_collectstatic(stack, tmp_path) -> None:
    (tmp_path / "static").mkdir()
    env = settings_module(tmp_path, tmp_path / "static", None)
    done = run_doctor(stack, stack.url, **env)
    assert finding_ids(done)["static"] == "D102"
    manifest = (tmp_path / "static" / "staticfiles.json").resolve()
    assert report(done)["static"] == (
        "FAIL",
        f"no readable {manifest} (No such file or directory): "
        'STORAGES["staticfiles"] is django.contrib.staticfiles.storage.'
        "ManifestStaticFilesStorage, but collectstatic has not written its manifest since. "
        "Fix: run manage.py collectstatic --noinput",
    )
    # Once collected, the same settings pass: the finding named the whole fix.
    assert run_doctor_command(stack, "collectstatic", "--noinput", **env).returncode == 0
    assert report(run_doctor(stack, stack.url, **env))["static"][0] == "PASS"


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
            f"GET {shown[0]} answered 200, not 404: the location is not internal, so anyone "
            "may read a private file by its stored name. Fix: internal; in location ^~ "
            "/_protected/; write it with manage.py protected_media_nginx, then nginx -t && "
            "systemctl reload nginx"
        )
    if breakage == "missing security headers":
        seen, _, fix = results["media headers"][1].partition(". Fix: ")
        assert seen == (
            f"GET {private_file['url']} lacks the right X-Content-Type-Options, "
            "Content-Security-Policy, Referrer-Policy, Cross-Origin-Resource-Policy: nginx's "
            "internal location does not add them as the settings say"
        )
        assert fix.startswith(
            'add_header X-Content-Type-Options "nosniff" always; in location ^~ /_protected/; '
        )
        assert fix.endswith("; then nginx -t && systemctl reload nginx")


# -- every finding the doctor can print names its fix ----------------------------

# A fix names a setting, a command to run or an nginx directive (or, for
# the store, the bucket policy or the clock service to change).
FIX_WORDS = re.compile(
    r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b|STORAGES\[|manage\.py |systemctl |nginx -t|date -u|--[a-z-]+"
    r"|bucket policy|Object Lock|NTP"
    r"|\b(?:alias|internal|add_header|proxy_pass|proxy_hide_header|location \^~)\b"
)


@pytest.mark.parametrize("finding_id", list(FINDINGS))
def test_every_finding_prints_its_id_and_a_fix(finding_id) -> None:
    finding = FINDINGS[finding_id]
    fields = {
        field
        for template in (finding.seen, finding.fix)
        for _, field, _, _ in string.Formatter().parse(template)
        if field
    }
    values = {field: f"<{field}>" for field in fields}
    # A refusal's fix comes from the store's error code: one of them here,
    # each in the test below.
    values["fix"] = FIXES["NoSuchBucket"]
    line = finding.result(check="" if finding.check else "some check", **values).line
    status, name, shown_id, reason = parse_line(line)
    assert (status, shown_id) == (finding.status, finding_id)
    assert name == (finding.check or "some check")
    seen, _, fix = reason.partition(". Fix: ")
    assert seen and FIX_WORDS.search(fix), line


@pytest.mark.parametrize("code", list(FIXES))
def test_every_refusal_of_the_store_names_its_fix(code) -> None:
    class Store:
        name, access_key_id, endpoint_url = "files", "AKIA", "https://s3.example.com"

    result = refused(Store(), Refused("PutObject", code, 403), check="store credentials")  # type: ignore[arg-type]
    assert result.line.startswith(f"FAIL store credentials [D805]: PutObject refused with {code}")
    assert FIX_WORDS.search(result.fix) or "allow s3:" in result.fix
