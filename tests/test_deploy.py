"""deploy/ agrees with the settings, and the real nginx and uvicorn accept it.

No database: the render command, nginx and uvicorn run in subprocesses.
"""

from __future__ import annotations

import ast
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from protected_media.nginx.render import render_standalone
from tests.stack.harness import UnixServer, free_port, nginx_listening, stop_process

BASE_DIR = Path(__file__).resolve().parent.parent
DEPLOY = BASE_DIR / "deploy"
SITE_CONF = DEPLOY / "nginx" / "gateway.conf"
UNIT = DEPLOY / "systemd" / "gateway.service"
ENV_EXAMPLE = DEPLOY / "systemd" / "gateway.env.example"
GUIDE = BASE_DIR / "docs" / "deployment.md"

RENDER_ENV = {"GATEWAY_DATA_DIR": "/srv/gateway", "GATEWAY_SECRET_KEY": "render-only"}
RENDER_ARGS = (
    "manage.py", "protected_media_nginx",
    "--listen", "443",
    "--server-name", "gateway.example.com",
    "--upstream", "unix:/run/gateway/uvicorn.sock",
)  # fmt: skip
RENDER_COMMAND = (
    " ".join(f"{name}={value}" for name, value in RENDER_ENV.items())
    + " .venv/bin/python "
    + shlex.join(RENDER_ARGS)
    + " -o deploy/nginx/gateway.conf"
)
HOST = "gateway.example.com"
TABLE_HEADING = "## gateway.conf, line by line"
TLS_SNIPPET_START = "# /etc/nginx/conf.d/gateway-tls.conf\n"
START_TIMEOUT = 30.0


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the test settings or a stray GATEWAY_*."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("GATEWAY_") and name != "DJANGO_SETTINGS_MODULE"
    }
    return {**env, **extra}


def find_nginx() -> str:
    found = shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(path, os.X_OK)),
        None,
    )
    if found is None:
        pytest.fail("nginx is not installed: sudo apt-get update && sudo apt-get install -y nginx")
    return found


def substitute(text: str, old: str, new: str) -> str:
    assert text.count(old) >= 1, f"{old!r} not found"
    return text.replace(old, new)


# -- reading the files -------------------------------------------------------


def env_example() -> dict[str, str]:
    pairs = (
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    return {name.strip(): value.strip() for name, value in pairs}


def unit_entries() -> dict[str, list[str]]:
    entries: dict[str, list[str]] = {}
    # systemd joins a line ending in a backslash to the next, with a space.
    for line in UNIT.read_text().replace("\\\n", " ").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            name, _, value = line.partition("=")
            entries.setdefault(name.strip(), []).append(value.strip())
    return entries


def exec_start_script() -> str:
    # Quotes as in a POSIX shell; systemd turns "$$" into "$".
    argv = [word.replace("$$", "$") for word in shlex.split(unit_entries()["ExecStart"][0])]
    assert argv[:2] == ["/bin/sh", "-c"] and len(argv) == 3, argv
    return argv[2]


def site_lines() -> set[str]:
    lines = (line.strip() for line in SITE_CONF.read_text().splitlines())
    return {line for line in lines if line and not line.startswith("#") and line != "}"}


def guide_table() -> list[list[str]]:
    section = GUIDE.read_text().split(TABLE_HEADING, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert rows[0] == "| Line | From | Why |", rows[0]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows[2:]]


def code_spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def environment_reads(path: Path) -> set[str]:
    """GATEWAY_* names the module reads: os.environ.get, os.getenv, os.environ[...]
    or its own _env_bool."""
    readers = {"os.environ.get", "os.getenv", "_env_bool"}
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and ast.unparse(node.func) in readers and node.args:
            key = node.args[0]
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            key = node.slice
        else:
            continue
        if isinstance(key, ast.Constant) and str(key.value).startswith("GATEWAY_"):
            names.add(str(key.value))
    return names


def gateway_env_reads() -> set[str]:
    from protected_media.ops.metrics import MULTIPROCESS_ENV

    # The variables not ours: prometheus-client's multiprocess folder, which
    # protected_media.ops.metrics reads too, and glibc's malloc thresholds, which
    # the run command sets for its workers as the unit does.
    return (
        environment_reads(BASE_DIR / "gateway" / "settings.py")
        | environment_reads(BASE_DIR / "gateway" / "stack.py")
        | {MULTIPROCESS_ENV, "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"}
    )


def setting_names() -> set[str]:
    """Settings gateway/settings.py defines, and settings protected_media/conf.py reads."""
    names = set()
    for node in ast.parse((BASE_DIR / "gateway" / "settings.py").read_text()).body:
        if isinstance(node, ast.Assign):
            names |= {target.id for target in node.targets if isinstance(target, ast.Name)}
    for node in ast.walk(ast.parse((BASE_DIR / "protected_media" / "conf.py").read_text())):
        if (
            isinstance(node, ast.Call)
            and ast.unparse(node.func) == "_setting"
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(str(node.args[0].value))
    return {name for name in names if name.isupper()}


def render_options() -> set[str]:
    command = BASE_DIR / "protected_media" / "management" / "commands" / "protected_media_nginx.py"
    return {
        arg.value
        for node in ast.walk(ast.parse(command.read_text()))
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("add_argument")
        for arg in node.args
        if isinstance(arg, ast.Constant) and str(arg.value).startswith("--")
    }


# -- the committed config is the renderer's output ------------------------


def test_gateway_conf_is_exactly_what_protected_media_nginx_writes(tmp_path: Path) -> None:
    output = tmp_path / "gateway.conf"
    done = subprocess.run(
        [sys.executable, *RENDER_ARGS, "-o", str(output)],
        cwd=BASE_DIR,
        env=clean_env(**RENDER_ENV),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert output.read_bytes() == SITE_CONF.read_bytes()


def test_guide_gives_the_render_command() -> None:
    assert RENDER_COMMAND in GUIDE.read_text()


# -- nginx accepts it --------------------------------------------------------


def nginx_check(nginx: str, state_dir: Path, site: str) -> subprocess.CompletedProcess[str]:
    (state_dir / "tmp").mkdir(parents=True, exist_ok=True)
    conf = state_dir / "nginx.conf"
    conf.write_text(render_standalone(site, state_dir=str(state_dir), user=None))
    return subprocess.run(
        [nginx, "-t", "-p", str(state_dir), "-e", str(state_dir / "error.log"), "-c", str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_nginx_accepts_gateway_conf(tmp_path: Path) -> None:
    # The /srv paths do not exist here: nginx -t checks syntax and directives,
    # not aliases or the upstream socket, so the file is tested as committed.
    done = nginx_check(find_nginx(), tmp_path, SITE_CONF.read_text())
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr
    assert "[warn]" not in done.stderr


def test_nginx_check_reads_gateway_conf(tmp_path: Path) -> None:
    # The check above would notice a broken line in the file.
    broken = substitute(SITE_CONF.read_text(), "max_ranges 1;", "max_ranges one;")
    done = nginx_check(find_nginx(), tmp_path, broken)
    assert done.returncode != 0
    assert "max_ranges" in done.stderr


# -- the guide's TLS file with the rendered site, served for real ------------


class EchoHeaders(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = str(self.headers).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # Unix socket paths are limited to 107 bytes.
    path = Path(tempfile.mkdtemp(prefix="gw-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def exchange(port: int, request: bytes, context: ssl.SSLContext | None, sni: str = HOST) -> bytes:
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        connection = context.wrap_socket(raw, server_hostname=sni) if context else raw
        with connection:
            connection.sendall(request)
            try:
                while chunk := connection.recv(65536):
                    data += chunk
            except (ssl.SSLEOFError, ConnectionResetError):
                pass
    return data


def get(path: str, host: str = HOST, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n".encode()


def self_signed(folder: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is not installed: sudo apt-get install -y openssl")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", f"/CN={HOST}", "-addext", f"subjectAltName=DNS:{HOST}",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@contextmanager
def running_nginx(state: Path, config: str, port: int) -> Iterator[None]:
    (state / "tmp").mkdir(parents=True)
    conf = state / "nginx.conf"
    # As root, nginx's workers would run as "nobody", who cannot enter tmp.
    user = pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() == 0 else None
    conf.write_text(render_standalone(config, state_dir=str(state), user=user))
    command = [find_nginx(), "-p", str(state), "-e", str(state / "error.log"), "-c", str(conf)]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    # Such as "protocol options redefined": the ssl flag must merge silently.
    assert "[warn]" not in checked.stderr
    with nginx_listening(command, state / "error.log", port):
        yield


def test_guide_tls_file_makes_the_rendered_site_https(short_dir: Path) -> None:
    cert, key = self_signed(short_dir)
    tls_port, http_port = free_port(), free_port()
    snippets = re.findall(r"```nginx\n(.*?)```", GUIDE.read_text(), re.S)
    [tls] = [snippet for snippet in snippets if snippet.startswith(TLS_SNIPPET_START)]
    tls = re.sub(r"(?m)^ssl_certificate \S+;", f"ssl_certificate {cert};", tls)
    tls = re.sub(r"(?m)^ssl_certificate_key \S+;", f"ssl_certificate_key {key};", tls)
    assert str(cert) in tls and str(key) in tls
    tls = substitute(tls, "listen 443 ", f"listen 127.0.0.1:{tls_port} ")
    tls = substitute(tls, "listen 80", f"listen 127.0.0.1:{http_port}")
    data, upstream = short_dir / "data", short_dir / "app.sock"
    (data / "static").mkdir(parents=True)
    (data / "static" / "site.0123456789ab.css").write_text("body{}\n")
    site = substitute(SITE_CONF.read_text(), "listen 443;", f"listen 127.0.0.1:{tls_port};")
    site = substitute(site, "/srv/gateway/", f"{data}/")
    site = substitute(site, "unix:/run/gateway/uvicorn.sock", f"unix:{upstream}")
    app = UnixServer(str(upstream), EchoHeaders)
    threading.Thread(target=app.serve_forever, daemon=True).start()
    trusted = ssl.create_default_context(cafile=str(cert))
    anyone = ssl.create_default_context()
    anyone.check_hostname = False
    anyone.verify_mode = ssl.CERT_NONE
    try:
        # conf.d comes before sites-enabled in Debian's nginx.conf.
        with running_nginx(short_dir / "nginx", tls + site, tls_port):
            static = exchange(tls_port, get("/static/site.0123456789ab.css"), trusted)
            head, _, body = static.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 "), head
            assert b"\r\nCache-Control: public, max-age=31536000, immutable" in head
            assert body == b"body{}\n"

            # Django learns the scheme and the client from these headers.
            proxied = exchange(tls_port, get("/files/"), trusted)
            assert proxied.startswith(b"HTTP/1.1 200 "), proxied
            assert b"X-Forwarded-Proto: https\n" in proxied
            assert b"X-Forwarded-For: 127.0.0.1\n" in proxied

            # The right certificate, another Host: closed without an answer.
            assert exchange(tls_port, get("/files/", host="other.example"), trusted) == b""

            # A name no server claims gets no handshake.
            with pytest.raises(ssl.SSLError):
                exchange(tls_port, get("/"), anyone, sni="other.example")

            redirect = exchange(http_port, get("/files/?page=2"), None)
            assert redirect.startswith(b"HTTP/1.1 301 "), redirect
            assert f"\r\nLocation: https://{HOST}/files/?page=2\r\n".encode() in redirect
    finally:
        app.shutdown()
        app.server_close()


# -- the unit's command line, run as systemd would run it --------------------


def child_workers(pid: int) -> int:
    count = 0
    for entry in Path("/proc").iterdir():
        try:
            ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if ppid == str(pid) and b"spawn_main" in command:
            count += 1
    return count


def ask_unix(path: Path, request: bytes) -> bytes:
    data = b""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(10)
        connection.connect(str(path))
        connection.sendall(request)
        while chunk := connection.recv(65536):
            data += chunk
    return data


def test_unit_command_serves_the_gateway(short_dir: Path) -> None:
    entries = unit_entries()
    [app_dir] = entries["WorkingDirectory"]
    sock, log = short_dir / "uvicorn.sock", short_dir / "uvicorn.log"
    script = substitute(exec_start_script(), f"{app_dir}/.venv/bin/python", sys.executable)
    script = substitute(script, "/run/gateway/uvicorn.sock", str(sock))
    # The access log (info) shows which client uvicorn believes it is serving.
    script = substitute(script, "--no-access-log", "--access-log")
    script = substitute(script, "--log-level warning", "--log-level info")
    env = clean_env(
        **{
            **env_example(),
            "GATEWAY_DATA_DIR": str(short_dir / "data"),
            "GATEWAY_SECRET_KEY": "unit-test-" + "k" * 50,
            # What nproc answers, so the test does not depend on the machine.
            "OMP_NUM_THREADS": "2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    # The deploy procedure collects the static files before the service
    # starts: the site's pages name them by their hashed names.
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=BASE_DIR,
        env=env,
        check=True,
    )
    # The checkout stands in for WorkingDirectory.
    with log.open("wb") as output:
        process = subprocess.Popen(["/bin/sh", "-c", script], cwd=BASE_DIR, env=env, stdout=output)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert process.poll() is None, log.read_text()
            try:
                health = ask_unix(sock, get("/healthz"))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                assert time.monotonic() < deadline, "uvicorn did not answer"
                time.sleep(0.2)
        # "$(nproc)" reached uvicorn as a number.
        assert child_workers(process.pid) == 2
        assert health.startswith(b"HTTP/1.1 200 "), health
        assert health.endswith(b"\r\n\r\nok\n")
        assert b"\r\nserver:" not in health.lower()
        # GATEWAY_ALLOWED_HOSTS came from the env file.
        assert ask_unix(sock, get("/healthz", host="other.example")).startswith(b"HTTP/1.1 400 ")

        # A unix peer has no address, yet nginx's X-Forwarded-For is trusted.
        forwarded = get("/healthz?from-nginx", extra="X-Forwarded-For: 203.0.113.7\r\n")
        assert ask_unix(sock, forwarded).startswith(b"HTTP/1.1 200 ")
        while "/healthz?from-nginx" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert ' 203.0.113.7:0 - "GET /healthz?from-nginx ' in log.read_text()

        # Behind TLS, Django sees https (nginx's X-Forwarded-Proto): CSRF's
        # origin check passes, and only the cookie is missing.
        login = (
            f"POST /accounts/login/ HTTP/1.1\r\nHost: {HOST}\r\nOrigin: https://{HOST}\r\n"
            "Content-Length: 0\r\nConnection: close\r\n{}\r\n"
        )
        behind_tls = ask_unix(sock, login.format("X-Forwarded-Proto: https\r\n").encode())
        assert behind_tls.startswith(b"HTTP/1.1 403 ")
        assert b"requires a CSRF cookie" in behind_tls
        plain = ask_unix(sock, login.format("").encode())
        assert plain.startswith(b"HTTP/1.1 403 ")
        assert b"requires a CSRF cookie" not in plain
    finally:
        stop_process(process, signal.SIGTERM, timeout=30)


# -- names in deploy/ exist in the code --------------------------------------


def test_deploy_names_only_variables_the_gateway_reads() -> None:
    reads = gateway_env_reads()
    assert {"GATEWAY_DATA_DIR", "GATEWAY_SECRET_KEY", "GATEWAY_WORKERS"} <= reads
    named = set(env_example())
    for assignment in unit_entries().get("Environment", []):
        named |= {word.split("=", 1)[0] for word in shlex.split(assignment)}
    for path in DEPLOY.rglob("*"):
        if path.is_file():
            named |= set(re.findall(r"\bGATEWAY_[A-Z0-9_]+\b", path.read_text()))
    assert named - reads == set()


def test_env_example_sets_every_variable_of_the_settings() -> None:
    example = env_example()
    assert environment_reads(BASE_DIR / "gateway" / "settings.py") - set(example) == set()
    assert example["GATEWAY_SECRET_KEY"] == ""
    assert example["GATEWAY_DEBUG"] == "0"


def test_guide_table_has_a_row_for_every_line_of_gateway_conf() -> None:
    documented = {code_spans(row[0])[0] for row in guide_table()}
    assert site_lines() - documented == set()
    assert documented - site_lines() == set()


def test_guide_table_names_only_settings_and_options_that_exist() -> None:
    settings, options, reads = setting_names(), render_options(), gateway_env_reads()
    assert {"SENDFILE_ROOT", "PROTECTED_MEDIA_MAX_UPLOAD_SIZE", "STATIC_URL"} <= settings
    assert "--listen" in options
    for line, source, _why in guide_table():
        for name in code_spans(source):
            if name.startswith("--"):
                assert name in options, (line, name)
            elif name.startswith("GATEWAY_"):
                assert name in reads, (line, name)
            else:
                assert name in settings, (line, name)


def test_unit_env_and_nginx_agree() -> None:
    entries = unit_entries()
    data_dir = env_example()["GATEWAY_DATA_DIR"]
    assert data_dir == RENDER_ENV["GATEWAY_DATA_DIR"]
    assert entries["ReadWritePaths"] == [data_dir]
    assert entries["WorkingDirectory"] == [f"{data_dir}/app"]
    assert set(entries["ReadOnlyPaths"][0].split()) == {f"{data_dir}/app", f"{data_dir}/static"}
    assert f"alias {data_dir}/static/;" in site_lines()
    assert f"alias {data_dir}/private/;" in site_lines()
    sock = re.search(r"--uds (\S+)", exec_start_script())
    assert sock is not None
    assert f"server unix:{sock[1]};" in site_lines()
    assert Path(sock[1]).parent == Path("/run") / entries["RuntimeDirectory"][0]
    assert entries["User"] == ["gateway"]
    assert entries["Group"] == ["www-data"]
    assert entries["UMask"] == ["0027"]
