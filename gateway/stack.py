"""Run the whole stack on loopback: nginx in front, uvicorn behind it.

    python -m gateway.stack        (what `make run` calls)

Prepares the data folder (secret key, migrations, collected static files,
the nginx config rendered from the settings), starts nginx and uvicorn,
restarts either if it dies, and stops both on Ctrl-C or SIGTERM.
Environment: GATEWAY_DATA_DIR, GATEWAY_PORT (8000), GATEWAY_WORKERS (one per
core), plus everything gateway.settings reads.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
# Where the workers' metrics meet (protected_media.metrics).
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def log(message: str) -> None:
    print(f"[gateway] {message}", flush=True)


def find_nginx() -> str:
    found = shutil.which("nginx") or next(
        (path for path in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(path, os.X_OK)),
        None,
    )
    if found is None:
        sys.exit(
            "[gateway] nginx is not installed. On Debian or Ubuntu: "
            "sudo apt-get update && sudo apt-get install -y nginx"
        )
    return found


class Stack:
    def __init__(self, data_dir: Path, port: int, workers: int) -> None:
        self.data_dir = data_dir
        self.port = port
        self.workers = workers
        self.nginx_dir = data_dir / "nginx"
        self.nginx_conf = self.nginx_dir / "nginx.conf"
        self.socket = data_dir / "run" / "uvicorn.sock"
        self.nginx_binary = find_nginx()
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "gateway.settings",
            "GATEWAY_DATA_DIR": str(data_dir),
            "GATEWAY_SECRET_KEY": os.environ.get("GATEWAY_SECRET_KEY") or self._secret_key(),
            "PYTHONUNBUFFERED": "1",
            METRICS_ENV: str(data_dir / "run" / "metrics"),
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def _secret_key(self) -> str:
        path = self.data_dir / "secret_key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_urlsafe(50))
        return path.read_text().strip()

    def manage(self, *args: str) -> None:
        subprocess.run(
            [sys.executable, str(BASE_DIR / "manage.py"), *args],
            env=self.env,
            cwd=BASE_DIR,
            check=True,
        )

    def prepare(self) -> None:
        for folder in ("private", "static", "run", "nginx/tmp"):
            (self.data_dir / folder).mkdir(parents=True, exist_ok=True)
        # The commands below share the workers' environment, metrics included.
        self._empty_metrics_folder()
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("collectstatic", "--noinput", "-v", "0")
        self.manage(
            "render_nginx",
            "--standalone",
            str(self.nginx_dir),
            "--listen",
            f"{HOST}:{self.port}",
            "--upstream",
            f"unix:{self.socket}",
            "--output",
            str(self.nginx_conf),
        )
        subprocess.run([*self._nginx_command(), "-t", "-q"], check=True, cwd=self.nginx_dir)

    def _nginx_command(self) -> list[str]:
        return [
            self.nginx_binary,
            "-p",
            str(self.nginx_dir),
            "-e",
            str(self.nginx_dir / "error.log"),
            "-c",
            str(self.nginx_conf),
        ]

    def _uvicorn_command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "gateway.asgi:application",
            "--uds",
            str(self.socket),
            "--workers",
            str(self.workers),
            # Only nginx can reach the socket, so its forwarded headers are trusted.
            "--proxy-headers",
            "--forwarded-allow-ips",
            "*",
            "--no-server-header",
            # Longer than nginx's idle upstream timeout (60s), so nginx always
            # closes first and never sends a request on a closing connection.
            "--timeout-keep-alive",
            "75",
            "--timeout-graceful-shutdown",
            "10",
            "--log-level",
            "warning",
        ]

    def start(self, name: str) -> None:
        if name == "uvicorn":
            self.socket.unlink(missing_ok=True)
            self._empty_metrics_folder()
            command = self._uvicorn_command()
        else:
            command = self._nginx_command()
        # A session of their own: Ctrl-C reaches only us, and we stop them in order.
        self.processes[name] = subprocess.Popen(
            command, env=self.env, cwd=BASE_DIR, start_new_session=True
        )

    def _empty_metrics_folder(self) -> None:
        # prometheus-client's multiprocess mode: every worker writes its counts
        # here and /metrics adds them up; a new uvicorn starts from zero.
        folder = Path(self.env[METRICS_ENV])
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, mode=0o700)

    def wait_until_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode} while starting")
            try:
                with urllib.request.urlopen(f"{self.url}healthz", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the stack did not answer {self.url}healthz in {STARTUP_TIMEOUT:.0f}s")

    def supervise(self) -> None:
        while not self.stopping:
            for name, process in list(self.processes.items()):
                if process.poll() is not None and not self.stopping:
                    log(f"{name} exited with {process.returncode}; restarting it")
                    time.sleep(0.5)
                    self.start(name)
            time.sleep(0.5)

    def stop(self, *_: object) -> None:
        self.stopping = True
        # nginx first (SIGQUIT: finish open responses), then uvicorn (SIGTERM:
        # finish in-flight requests).
        for name, stop_signal in (("nginx", signal.SIGQUIT), ("uvicorn", signal.SIGTERM)):
            process = self.processes.get(name)
            if process is not None and process.poll() is None:
                process.send_signal(stop_signal)
        for process in self.processes.values():
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main() -> None:
    data_dir = Path(os.environ.get("GATEWAY_DATA_DIR") or BASE_DIR / "var").resolve()
    port = int(os.environ.get("GATEWAY_PORT", "8000"))
    workers = int(os.environ.get("GATEWAY_WORKERS") or os.cpu_count() or 1)
    stack = Stack(data_dir, port, workers)
    log(f"preparing {data_dir}")
    stack.prepare()
    signal.signal(signal.SIGINT, lambda *_: stack.stop())
    signal.signal(signal.SIGTERM, lambda *_: stack.stop())
    stack.start("uvicorn")
    stack.start("nginx")
    try:
        stack.wait_until_healthy()
    except RuntimeError as error:
        stack.stop()
        sys.exit(f"[gateway] {error}; see {stack.nginx_dir / 'error.log'}")
    log(f"running at {stack.url} ({workers} uvicorn worker(s) behind nginx); Ctrl-C stops")
    stack.supervise()
    log("stopped")


if __name__ == "__main__":
    main()
