"""Run the whole stack on loopback: nginx in front, uvicorn behind it.

    python -m gateway.stack        (what `make run` calls)

Prepares the data folder (secret key, migrations, collected static files,
the nginx config rendered from the settings), starts nginx and uvicorn,
restarts either if it dies, and stops both on Ctrl-C or SIGTERM.
With GATEWAY_STORAGE=s3 and no GATEWAY_S3_ENDPOINT_URL, it first starts a
SeaweedFS of its own in the data folder (gateway.seaweed), hands its bucket
to the workers, and stops it last.
Environment: GATEWAY_DATA_DIR, GATEWAY_PORT (8000), GATEWAY_WORKERS (one per
core), plus everything gateway.settings reads.
"""

from __future__ import annotations

import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from gateway.seaweed import DEFAULT_BUCKET, DEFAULT_REGION, Seaweed

BASE_DIR = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
# Where the workers' metrics meet (protected_media.ops.metrics).
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"
# How often the supervisor looks at its children.
POLL_INTERVAL = 0.5
# A child that keeps dying is restarted after 0.5 s, then 1, 2, 4... up to
# 30 s, so a broken config does not spin a core; one that stayed up a minute
# before it died starts the series again.
RESTART_DELAY = 0.5
RESTART_DELAY_MAX = 30.0
STABLE_AFTER = 60.0


class Backoff:
    """The delay before each restart of one child (pure: times are given)."""

    def __init__(self) -> None:
        self.failures = 0
        self.started_at = 0.0

    def started(self, now: float) -> None:
        self.started_at = now

    def delay(self, now: float) -> float:
        """The wait before restarting a child found dead at ``now``."""
        if now - self.started_at >= STABLE_AFTER:
            self.failures = 0
        self.failures += 1
        return min(RESTART_DELAY * 2 ** (self.failures - 1), RESTART_DELAY_MAX)


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


def port_in_use(port: int) -> bool:
    """Whether loopback ``port`` is taken. nginx could not bind it, and the
    health check would be answered by whatever holds it: the run command
    would report itself running at another server's address."""
    with socket.socket() as probe:
        # As nginx binds: a port whose last connection is closing is not taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return True
    return False


def port_taken_message(port: int) -> str:
    return (
        f"[gateway] port {port} on {HOST} is in use: stop what listens there, "
        "or choose another with GATEWAY_PORT"
    )


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
            # glibc hands a freed image buffer back to the system only when it
            # was mapped on its own; past its first large free it stops mapping
            # them and keeps hundreds of MiB a worker no longer uses. Fixed
            # thresholds keep it mapping, and trimming the heap's free top
            # (docs/uploads.md, "What an upload can cost").
            "MALLOC_MMAP_THRESHOLD_": "131072",
            "MALLOC_TRIM_THRESHOLD_": "131072",
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "gateway.settings",
            "GATEWAY_DATA_DIR": str(data_dir),
            "GATEWAY_SECRET_KEY": os.environ.get("GATEWAY_SECRET_KEY") or self._secret_key(),
            "PYTHONUNBUFFERED": "1",
            METRICS_ENV: str(data_dir / "run" / "metrics"),
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.seaweed: Seaweed | None = None
        self.backoff: dict[str, Backoff] = {}
        self.stopping = False
        # A stop request writes here, so the supervisor's waits end at once.
        # A pipe rather than a threading.Event: setting an Event from a signal
        # handler can deadlock on the lock the interrupted wait holds.
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)

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

    def start_store(self) -> None:
        """With GATEWAY_STORAGE=s3 and no endpoint, a local SeaweedFS in the
        data folder, its bucket and credentials passed on to the workers and
        commands. Its folder keeps the objects and the credentials between runs."""
        storage = os.environ.get("GATEWAY_STORAGE", "").strip().lower()
        if storage != "s3" or os.environ.get("GATEWAY_S3_ENDPOINT_URL", "").strip():
            return
        self.seaweed = Seaweed(
            self.data_dir / "seaweedfs",
            bucket=os.environ.get("GATEWAY_S3_BUCKET", "").strip() or DEFAULT_BUCKET,
            region=os.environ.get("GATEWAY_S3_REGION", "").strip() or DEFAULT_REGION,
        )
        store = self.seaweed.start()
        self.env.update(store.gateway_environment())
        log(f"SeaweedFS serving bucket {store.bucket!r} at {store.endpoint_url}")

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
        private = self.data_dir / "private"
        if not any(private.iterdir()):
            # mkdir's mode is masked by the umask; the private root must be
            # open to nginx's group (FILE_UPLOAD_DIRECTORY_PERMISSIONS) whatever
            # umask the run command was started under.
            private.chmod(0o750)
        # The commands below share the workers' environment, metrics included.
        self._empty_metrics_folder()
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("collectstatic", "--noinput", "-v", "0")
        self.manage(
            "protected_media_nginx",
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
            # nginx logs every request already (as the deployed service runs).
            "--no-access-log",
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
        self.backoff.setdefault(name, Backoff()).started(time.monotonic())

    def _empty_metrics_folder(self) -> None:
        # prometheus-client's multiprocess mode: every worker writes its counts
        # here and /metrics adds them up; a new uvicorn starts from zero.
        folder = Path(self.env[METRICS_ENV])
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, mode=0o700)

    def wait_until_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline and not self.stopping:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{name} exited with {process.returncode} while starting")
            try:
                with urllib.request.urlopen(f"{self.url}healthz", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            self._wait(0.2)
        if self.stopping:
            return
        raise RuntimeError(f"the stack did not answer {self.url}healthz in {STARTUP_TIMEOUT:.0f}s")

    def supervise(self) -> None:
        """Restart dead children until a stop is requested, then stop them all.

        Signal handlers only request the stop: the stopping is done here, after
        the loop, so a child started just before the request is stopped with
        the others, and none is started after it."""
        while not self.stopping:
            for name, process in list(self.processes.items()):
                if process.poll() is None or self.stopping:
                    continue
                delay = self.backoff[name].delay(time.monotonic())
                log(f"{name} exited with {process.returncode}; restarting it in {delay:g}s")
                self._wait(delay)
                if self.stopping:
                    break
                self.start(name)
            self._wait(POLL_INTERVAL)
        self.stop()

    def request_stop(self, *_: object) -> None:
        """For signal handlers: async-signal-safe, ends any wait at once."""
        self.stopping = True
        try:
            os.write(self._wake_write, b"x")
        except BlockingIOError:
            pass  # the pipe is full: a wake-up is already waiting

    def _wait(self, seconds: float) -> None:
        # Ends early on a stop request; select is resumed after a signal
        # handler runs (PEP 475), and then finds the byte it wrote.
        if not self.stopping:
            select.select([self._wake_read], [], [], seconds)

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
        # The store last: the workers may be finishing uploads to it.
        if self.seaweed is not None:
            self.seaweed.stop()


def main() -> None:
    data_dir = Path(os.environ.get("GATEWAY_DATA_DIR") or BASE_DIR / "var").resolve()
    port = int(os.environ.get("GATEWAY_PORT", "8000"))
    workers = int(os.environ.get("GATEWAY_WORKERS") or os.cpu_count() or 1)
    # Before anything is written; and again below, since preparing takes
    # seconds in which another server may take the port.
    if port_in_use(port):
        sys.exit(port_taken_message(port))
    stack = Stack(data_dir, port, workers)
    log(f"preparing {data_dir}")
    try:
        stack.start_store()
        stack.prepare()
    except RuntimeError as error:  # SeaweedFS did not start
        stack.stop()
        sys.exit(f"[gateway] {error}")
    except BaseException:
        # The store runs in a session of its own: Ctrl-C does not reach it.
        stack.stop()
        raise
    if port_in_use(port):
        stack.stop()
        sys.exit(port_taken_message(port))
    signal.signal(signal.SIGINT, stack.request_stop)
    signal.signal(signal.SIGTERM, stack.request_stop)
    stack.start("uvicorn")
    stack.start("nginx")
    try:
        stack.wait_until_healthy()
    except RuntimeError as error:
        stack.stop()
        sys.exit(f"[gateway] {error}; see {stack.nginx_dir / 'error.log'}")
    if not stack.stopping:
        log(f"running at {stack.url} ({workers} uvicorn worker(s) behind nginx); Ctrl-C stops")
    stack.supervise()
    log("stopped")


if __name__ == "__main__":
    main()
