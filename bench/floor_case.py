"""The benchmark's ``floor`` case, Django's bare floor (``bench.floor``), and
its ``asgi-floor`` case, uvicorn's own (``bench.asgi_floor``): each served by
uvicorn alone, one worker, no nginx in front; wrk talks to it directly, as it
talks to the store in the s3-direct case.

uvicorn runs with the run command's choices that change what a request
costs (gateway/stack.py): the same event loop and HTTP parser (the run
command names neither, so uvicorn picks uvloop and httptools when they are
installed; ``--loop auto --http auto`` here say so), no Server header, the
same keep-alive timeout, no access log. It listens on TCP rather than a
unix socket because wrk connects to it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import BinaryIO

import httpx

from tests.stack.harness import BASE_DIR, START_TIMEOUT, free_port, stop_process

FLOOR_CASE = "floor"
ASGI_FLOOR_CASE = "asgi-floor"
# Each case's application (bench.floor is not imported here: it configures
# Django's settings when imported).
FLOOR_APPS = {
    FLOOR_CASE: "bench.floor:application",
    ASGI_FLOOR_CASE: "bench.asgi_floor:application",
}
# What both answer.
FLOOR_BODY = b"ok\n"


class FloorServer:
    """uvicorn serving one of ``FLOOR_APPS`` on a free loopback port, its
    output in ``data_dir``. Offers what the benchmark reads of a stack's app:
    its URL, its processes, its log."""

    def __init__(self, data_dir: Path, case: str = FLOOR_CASE) -> None:
        self.data_dir = data_dir
        self.app = FLOOR_APPS[case]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "floor.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log_file: BinaryIO | None = None

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            self.app,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--loop",
            "auto",
            "--http",
            "auto",
            "--no-server-header",
            "--timeout-keep-alive",
            "75",
            "--no-access-log",
            "--log-level",
            "warning",
            "--lifespan",
            "off",
        ]

    def start(self) -> FloorServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log_file = self.log_path.open("wb")
        # The floor's settings are its own: none of the gateway's may leak in.
        env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
        self.process = subprocess.Popen(
            self.command(),
            cwd=BASE_DIR,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"uvicorn serving {self.app} exited:\n{self.log()}")
            try:
                httpx.get(f"{self.url}/", timeout=1)
                return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.app} did not answer in {START_TIMEOUT:.0f}s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, signal.SIGTERM, timeout=10)
        if self._log_file is not None:
            self._log_file.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def app_pids(self) -> list[int]:
        # One worker: uvicorn serves in its own process, with no supervisor.
        if self.process is None or self.process.poll() is not None:
            return []
        return [self.process.pid]
