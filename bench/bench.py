"""What the permission check costs next to nginx sending the bytes, in one run.

    python -m bench.bench [--smoke] [--duration S] [--concurrency 1,32,256]
                          [--workers N] [--output DIR] [--sizes 4KiB,1MiB,64MiB]
                          [--cases gateway,s3-gateway,...] [--store-concurrency 100]

Starts eight stacks with the run command (each in a fresh temporary data
folder), at the same time: the default one (X-Accel-Redirect, media answered
by protected_media's ASGI entry point), one with that entry point off (media
through Django's full handler and middleware), one streaming files from Python
(``protected_media.backends.streaming``), the default one again with two
uvicorn workers, one with the entry point's reads in its threads, two on a
fresh PostgreSQL database each (reads on the event loop, and in threads), and
one keeping its files in an S3 bucket of a SeaweedFS started for the run
(``bench.store_cases``); and uvicorn alone serving Django's bare floor and
uvicorn's own (``bench.floor_case``). Only what the chosen cases need is
started. On each stack it signs a user in and uploads files of 4 KiB, 1 MiB
and 64 MiB through the API, and puts byte-identical copies under the static
folder. Then wrk drives, through nginx (but for s3-direct and the floors) and
at each concurrency:

- static:      ``/static/bench/<file>``: nginx alone, no Python;
- gateway:     ``/media/<key>`` as the owner: nginx -> uvicorn -> the entry
               point -> the permission check -> X-Accel-Redirect -> nginx
               sends the file;
- django-view: the same through Django's handler (PROTECTED_MEDIA_FAST_PATH off);
- fallback:    the same with Python streaming the bytes;
- gateway-2w:  the gateway case with two uvicorn workers (4 KiB only);
- gateway-threads: the gateway case (4 KiB) with the entry point's reads in
               its threads rather than on the event loop;
- gateway-pg:  the gateway case (4 KiB) on PostgreSQL rather than SQLite;
- gateway-pg-threads: the same with the entry point's reads in its threads;
- health:      ``/healthz``, an async Django view touching no database: what
               any request through nginx and Django costs at the least;
- floor:       a trivial async Django view with no middleware and no
               database, served by uvicorn alone (wrk talks to it; no nginx):
               what a request through Django costs at the least;
- asgi-floor:  a bare ASGI application answering ``ok``, served the same way:
               what uvicorn itself costs a request, which no check can remove;
- s3-gateway:  the gateway case on the S3 stack: X-Accel-Redirect to the
               internal store location, nginx fetches the object from the store;
- s3-direct:   a presigned GET of the same object straight at the store (wrk
               talks to SeaweedFS; no nginx, no check).

The 64 MiB gateway and store cases also run at --store-concurrency
connections (100; 0: not), with the S3 stack's app memory before, at its peak
and after.

Every URL is fetched once and compared byte for byte before it is timed, and
nginx's access log is read after each case (but for those wrk sends straight
to a server: s3-direct and the floors), so a case answering anything but the
file cannot pass for a fast one. Prints every figure and the ratios between
cases measured side by side; writes ``results.json`` and ``results.png`` to the
output folder (``var/bench/``). Exits non-zero when any request failed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import functools
import json
import math
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

from bench.cpu import GROUPS, cpu_spent, descendants, everywhere, named, per_gib, per_request
from bench.floor_case import ASGI_FLOOR_CASE, FLOOR_APPS, FLOOR_BODY, FLOOR_CASE, FloorServer
from bench.store_cases import (
    LARGE,
    STORE_CASES,
    STORE_DIRECT,
    STORE_GATEWAY,
    STORE_RATIO_COLUMNS,
    StoreCaseError,
    check_direct,
    check_store_handoff,
    direct_urls,
    store_ratios,
)
from gateway.seaweed import Seaweed
from tests.stack.harness import ADMIN_URL, Stack, rss_kib, upload

BASE_DIR = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = BASE_DIR / "var" / "bench"

KIB = 1024
MIB = 1024 * 1024
SIZES = {"4KiB": 4 * KIB, "1MiB": MIB, "64MiB": 64 * MIB}
SMOKE_SIZES = ("4KiB", "1MiB")
FILE_CASES = ("static", "gateway", "django-view", "fallback")
SCALING_CASE = "gateway-2w"
THREADS_CASE = "gateway-threads"
POSTGRES_CASE = "gateway-pg"
POSTGRES_THREADS_CASE = "gateway-pg-threads"
# The cases timed on 4 KiB files only: each compares one setting with the
# gateway case's, where the check is most of a request's cost.
FOUR_KIB_CASES = (SCALING_CASE, THREADS_CASE, POSTGRES_CASE, POSTGRES_THREADS_CASE)
CASES = (*FILE_CASES, *STORE_CASES, *FOUR_KIB_CASES, "health", FLOOR_CASE, ASGI_FLOOR_CASE)
HANDOFF_CASES = ("gateway", "django-view", *FOUR_KIB_CASES, STORE_GATEWAY)
# The S3 stack's SeaweedFS keeps its objects in a temporary folder of the
# run, removed with the stacks' folders.
STORE_FOLDER = "seaweedfs"
# Many large downloads through the store at once: the app hands out URLs and
# never touches the bytes, so its memory must not grow with 100 of 64 MiB.
STORE_CONCURRENCY = 100
HEALTH_BODY = b"ok\n"

USERNAME = "bench"
PASSWORD = "bench-pass-5120"  # a throwaway account in a throwaway stack
MAX_UPLOAD = 80 * MIB
STREAMING_BACKEND = "protected_media.backends.streaming"

# A case in which the average connection finished fewer responses than this is
# measured again, longer (once, and never longer than MAX_CASE_SECONDS): wrk
# counts only finished responses, so a window that holds one or two 64 MiB
# transfers per connection says little about requests per second.
MIN_RESPONSES_PER_CONNECTION = 3
MAX_CASE_SECONDS = 120.0
# wrk counts a response slower than its --timeout as a socket error. It is set
# past the end of the window: a slow case is measured (its latency recorded),
# not failed; one that never answers shows as no finished response.
WRK_TIMEOUT_MARGIN = 30.0
RSS_INTERVAL = 0.1
PAUSE_BETWEEN_CASES = 0.5
LOG_SETTLE = 0.3


def log(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def _total_rss_kib(pids: list[int]) -> int:
    return sum(rss_kib(pids).values())


class BenchError(Exception):
    """The benchmark cannot go on: a stack, an upload or a verification failed."""


# wrk


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    command = "sudo apt-get update && sudo apt-get install -y wrk"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit(f"[bench] wrk is not installed. Install it with: {command}")
    log("installing wrk from Debian's packages")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        done = subprocess.run(args, env=env, stdout=subprocess.DEVNULL, check=False, timeout=900)
        if done.returncode != 0:
            sys.exit(f"[bench] {' '.join(args)} failed; install wrk with: {command}")
    found = shutil.which("wrk")
    if not found:
        sys.exit(f"[bench] wrk is still missing after apt-get; install it with: {command}")
    return found


_UNITS_TO_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_BINARY_UNITS = {"B": 1, "KB": KIB, "MB": MIB, "GB": KIB**3, "TB": KIB**4}


def _milliseconds(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise ValueError(f"unreadable wrk time {text!r}")
    return float(match[1]) * _UNITS_TO_MS[match[2]]


def _bytes(text: str) -> float:
    # wrk's "MB" and "GB" are binary units (powers of 1024).
    match = re.fullmatch(r"([\d.]+)(B|KB|MB|GB|TB)", text)
    if not match:
        raise ValueError(f"unreadable wrk size {text!r}")
    return float(match[1]) * _BINARY_UNITS[match[2]]


def parse_wrk(output: str) -> dict[str, Any]:
    """The figures of one wrk run (with --latency)."""
    done = re.search(r"(\d+) requests in ([\d.]+\w+), ([\d.]+\w+) read", output)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    transfer = re.search(r"Transfer/sec:\s+([\d.]+\w+)", output)
    if not (done and rate and transfer):
        raise ValueError(f"unreadable wrk output:\n{output}")
    percentiles = {
        int(found[1]): _milliseconds(found[2])
        for found in re.finditer(r"^\s+(50|75|90|99)%\s+([\d.]+\w+)\s*$", output, re.MULTILINE)
    }
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if socket_errors:
        errors = dict(zip(errors, map(int, socket_errors.groups()), strict=True))
    bad_status = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    requests = int(done[1])
    return {
        "requests": requests,
        "seconds": _milliseconds(done[2]) / 1e3,
        "bytes_read": _bytes(done[3]),
        "requests_per_s": float(rate[1]),
        "bytes_per_s": _bytes(transfer[1]),
        # wrk prints 0 for every percentile when nothing finished.
        "p50_ms": percentiles.get(50) if requests else None,
        "p99_ms": percentiles.get(99) if requests else None,
        "non_2xx_3xx": int(bad_status[1]) if bad_status else 0,
        "socket_errors": errors,
    }


def run_wrk(
    wrk: str, url: str, cookie: str | None, concurrency: int, seconds: float
) -> dict[str, Any]:
    threads = min(2, concurrency)
    timeout = seconds + WRK_TIMEOUT_MARGIN
    command = [
        wrk,
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{math.ceil(seconds)}s",
        f"--timeout={math.ceil(timeout)}s",
        "--latency",
        *(["-H", f"Cookie: {cookie}"] if cookie else []),
        url,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=seconds + timeout + 60
    )
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return parse_wrk(done.stdout)


# the app's memory


class RssSampler:
    """The summed resident memory of some processes: before, at its peak
    during, and after."""

    def __init__(self, pids: list[int], max_seconds: float) -> None:
        self.pids = pids
        self.max_samples = int(max_seconds / RSS_INTERVAL) + 1
        self.baseline = 0
        self.peak = 0
        self.after = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for _ in range(self.max_samples):
            if self._stop.wait(RSS_INTERVAL):
                return
            self.peak = max(self.peak, _total_rss_kib(self.pids))

    def __enter__(self) -> RssSampler:
        self.baseline = self.peak = _total_rss_kib(self.pids)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.after = _total_rss_kib(self.pids)
        self.peak = max(self.peak, self.after)


# the stacks


@dataclass
class Target:
    """One URL to time, on one stack, with what it must answer."""

    case: str
    size: str | None
    # The floor cases have no stack: uvicorn alone serves each.
    stack: Stack | FloorServer
    path: str
    body: bytes
    # A URL wrk fetches instead of the stack's nginx (s3-direct, the floors);
    # the stack's app is still the one whose memory is sampled.
    direct_url: str | None = None
    # The store's process, whose CPU the case's figures count (S3 cases).
    store_pid: int | None = None


@dataclass
class Result:
    case: str
    size: str | None
    size_bytes: int | None
    concurrency: int
    url: str
    duration_s: float
    requests: int
    requests_per_s: float
    bytes_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    non_2xx_3xx: int
    socket_errors: dict[str, int]
    rss_baseline_kib: int
    rss_peak_kib: int
    rss_after_kib: int
    nginx_statuses: dict[str, int]
    remeasured_from_s: float | None = None
    problems: list[str] = field(default_factory=list)
    # CPU seconds spent during the case by nginx, the app, the store and wrk.
    cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def mib_per_s(self) -> float:
        return self.bytes_per_s / MIB

    @property
    def cpu_per_gib(self) -> dict[str, float]:
        return per_gib(self.cpu_s, self.bytes_per_s * self.duration_s)


def cookie_of(client: httpx.Client) -> str:
    return f"sessionid={client.cookies['sessionid']}; csrftoken={client.cookies['csrftoken']}"


def start_stack(
    name: str,
    workers: int,
    folders: list[Path],
    env: dict[str, str] | None = None,
    *,
    postgres: bool = False,
) -> Stack:
    data_dir = Path(tempfile.mkdtemp(prefix=f"gateway-bench-{name}-"))
    folders.append(data_dir)
    stack = Stack(
        data_dir,
        {
            "GATEWAY_MAX_UPLOAD_SIZE": str(MAX_UPLOAD),
            "GATEWAY_WORKERS": str(workers),
            **(env or {}),
        },
        postgres=postgres,
    )
    database = f", database {stack.database}" if stack.database else ""
    log(f"starting the {name} stack on {stack.url} (data in {data_dir}{database})")
    return stack


def ensure_postgres() -> None:
    """Exit with what to do when the PostgreSQL cases' server does not answer."""
    import psycopg

    try:
        psycopg.connect(ADMIN_URL, connect_timeout=5).close()
    except psycopg.Error as error:
        sys.exit(
            f"[bench] the {POSTGRES_CASE} cases need PostgreSQL at {ADMIN_URL} "
            f"(POSTGRES_URL): {error}. Start it (scripts/ensure-postgres {ADMIN_URL}) "
            "or leave those cases out with --cases."
        )


def prepare(stack: Stack, files: dict[str, bytes]) -> tuple[str, dict[str, str]]:
    """Sign a user in, upload the files, copy them under static; the cookie and
    each size's media path."""
    stack.shell(
        "from django.contrib.auth.models import User\n"
        f"User.objects.create_user({USERNAME!r}, password={PASSWORD!r})\n"
    )
    media: dict[str, str] = {}
    client = stack.login(USERNAME, PASSWORD)
    try:
        client.timeout = httpx.Timeout(120)
        cookie = cookie_of(client)
        for size, data in files.items():
            response = upload(client, f"bench-{size}.pdf", data, "application/pdf")
            if response.status_code != 201:
                raise BenchError(
                    f"upload of {size} refused: {response.status_code} {response.text}"
                )
            described = response.json()
            if described["content_type"] != "application/pdf" or described["size"] != len(data):
                raise BenchError(f"upload of {size} stored as {described}")
            media[size] = described["url"]
    finally:
        client.close()
    static = stack.data_dir / "static" / "bench"
    static.mkdir(parents=True, exist_ok=True)
    for size, data in files.items():
        (static / f"bench-{size}.pdf").write_bytes(data)
    return cookie, media


def verify(target: Target, cookie: str) -> None:
    """One plain request through nginx, and for media one straight to uvicorn:
    the case must answer 200 with exactly the expected bytes, by the path it names."""
    where = f"{target.case} {target.size or ''} {target.path}".replace("  ", " ")
    if target.case == STORE_DIRECT and target.direct_url:
        check_direct(target.direct_url, target.body)
        return
    url = target.direct_url or f"{target.stack.url}{target.path}"
    with httpx.Client(timeout=120) as client:
        response = client.get(url, headers={} if target.direct_url else {"Cookie": cookie})
    if response.status_code != 200:
        raise BenchError(f"{where}: status {response.status_code}, not 200")
    if response.content != target.body:
        raise BenchError(f"{where}: {len(response.content)} bytes, not the expected ones")
    if target.case in (*HANDOFF_CASES, "fallback") and isinstance(target.stack, Stack):
        # The file's security headers come from nginx on the handoff and from
        # the fallback itself: which path served it shows only at uvicorn.
        direct = target.stack.raw_uvicorn("GET", target.path, {"Cookie": cookie})
        if direct.status != 200:
            raise BenchError(f"{where}: uvicorn answered {direct.status}")
        if target.case == STORE_GATEWAY:
            check_store_handoff(direct)
        elif target.case in HANDOFF_CASES:
            if "x-accel-redirect" not in direct.headers or direct.body:
                raise BenchError(f"{where}: uvicorn did not hand the file to nginx")
        elif "x-accel-redirect" in direct.headers or direct.body != target.body:
            raise BenchError(f"{where}: uvicorn did not stream the file itself")


def _read_new(path: Path, offset: int, limit: int = 8 * MIB) -> str:
    if not path.exists():
        return ""
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read(limit).decode(errors="replace")


def nginx_statuses(access_log: Path, offset: int) -> Counter[str]:
    """The status of every request nginx logged from ``offset`` on."""
    statuses: Counter[str] = Counter()
    status = re.compile(rb'" (\d{3}) ')
    with access_log.open("rb") as handle:
        handle.seek(offset)
        for line in handle:
            found = status.search(line)
            statuses[found[1].decode() if found else "unreadable"] += 1
    return statuses


def measure(
    wrk: str, target: Target, cookie: str, concurrency: int, seconds: float
) -> dict[str, Any]:
    stack = target.stack
    access_log = stack.data_dir / "nginx" / "access.log"
    # A direct case passes no nginx (and the floors have none).
    log_offset = 0 if target.direct_url else access_log.stat().st_size
    stack_log_offset = stack.log_path.stat().st_size
    pids = stack.app_pids()
    url = target.direct_url or f"{stack.url}{target.path}"
    assert stack.process is not None
    groups = {"nginx": named(descendants(stack.process.pid), "nginx"), "app": pids}
    if target.store_pid is not None:
        groups["store"] = descendants(target.store_pid)
    found_again = {}
    if target.case in (POSTGRES_CASE, POSTGRES_THREADS_CASE):
        # The server's processes on this machine, sharing its cores with the
        # rest (none where POSTGRES_URL names another machine).
        groups["database"] = everywhere("postgres")
        found_again["database"] = functools.partial(everywhere, "postgres")
    with (
        RssSampler(pids, max_seconds=2 * seconds + WRK_TIMEOUT_MARGIN + 60) as rss,
        cpu_spent(groups, found_again) as cpu,
    ):
        figures = run_wrk(wrk, url, None if target.direct_url else cookie, concurrency, seconds)
    # nginx logs the requests wrk abandoned at the end once they are torn down.
    time.sleep(LOG_SETTLE)
    # A direct case passes no nginx: its statuses are wrk's alone.
    statuses = Counter[str]() if target.direct_url else nginx_statuses(access_log, log_offset)
    problems = []
    bad = {code: n for code, n in statuses.items() if code not in ("200", "499")}
    if bad:
        problems.append(f"nginx logged statuses {bad}")
    # 499: a request wrk abandoned when its time was up; there are at most as
    # many as there are connections.
    if statuses.get("499", 0) > concurrency:
        problems.append(f"nginx logged {statuses['499']} closed requests (499)")
    if figures["requests"] and figures["bytes_read"] < 0.98 * figures["requests"] * len(
        target.body
    ):
        problems.append(
            f"read {figures['bytes_read']:.0f} bytes for {figures['requests']} responses "
            f"of {len(target.body)}: the responses were not the file"
        )
    if sorted(stack.app_pids()) != pids:
        problems.append(f"the app's processes changed during the case ({pids} before)")
    new_log = _read_new(stack.log_path, stack_log_offset)
    if "Traceback" in new_log or "exited with" in new_log:
        problems.append(f"the stack logged an error:\n{new_log[-2000:]}")
    return {
        **figures,
        "rss_baseline_kib": rss.baseline,
        "rss_peak_kib": rss.peak,
        "rss_after_kib": rss.after,
        "nginx_statuses": dict(sorted(statuses.items())),
        "problems": problems,
        "cpu_s": cpu,
    }


def run_case(wrk: str, target: Target, cookie: str, concurrency: int, seconds: float) -> Result:
    figures = measure(wrk, target, cookie, concurrency, seconds)
    remeasured_from = None
    per_connection = figures["requests"] / concurrency
    failed = figures["non_2xx_3xx"] or any(figures["socket_errors"].values()) or figures["problems"]
    # A failed case is reported as it is, never replaced by a second try.
    if not failed and per_connection < MIN_RESPONSES_PER_CONNECTION and seconds < MAX_CASE_SECONDS:
        # Long enough for each connection to finish a few responses at the
        # rate just measured (bytes read count unfinished responses too).
        rate = max(figures["bytes_per_s"], 1.0)
        needed = 1.5 * MIN_RESPONSES_PER_CONNECTION * concurrency * len(target.body) / rate
        longer = min(MAX_CASE_SECONDS, max(2 * seconds, math.ceil(needed)))
        log(
            f"  {figures['requests']} responses on {concurrency} connections in {seconds:.0f}s;"
            f" measuring again for {longer:.0f}s"
        )
        time.sleep(PAUSE_BETWEEN_CASES)
        remeasured_from, seconds = seconds, longer
        figures = measure(wrk, target, cookie, concurrency, seconds)
    return Result(
        case=target.case,
        size=target.size,
        size_bytes=SIZES[target.size] if target.size else None,
        concurrency=concurrency,
        url=target.path,
        duration_s=figures["seconds"],
        requests=figures["requests"],
        requests_per_s=figures["requests_per_s"],
        bytes_per_s=figures["bytes_per_s"],
        p50_ms=figures["p50_ms"],
        p99_ms=figures["p99_ms"],
        non_2xx_3xx=figures["non_2xx_3xx"],
        socket_errors=figures["socket_errors"],
        rss_baseline_kib=figures["rss_baseline_kib"],
        rss_peak_kib=figures["rss_peak_kib"],
        rss_after_kib=figures["rss_after_kib"],
        nginx_statuses=figures["nginx_statuses"],
        remeasured_from_s=remeasured_from,
        problems=figures["problems"],
        cpu_s=figures["cpu_s"],
    )


def failures_of(results: list[Result]) -> list[str]:
    failed = []
    for result in results:
        name = f"{result.case} {result.size or ''} c={result.concurrency}".replace("  ", " ")
        errors = sum(result.socket_errors.values())
        if result.non_2xx_3xx:
            failed.append(f"{name}: {result.non_2xx_3xx} non-2xx/3xx responses")
        if errors:
            failed.append(f"{name}: socket errors {result.socket_errors}")
        if result.requests == 0:
            failed.append(f"{name}: no response finished")
        failed.extend(f"{name}: {problem}" for problem in result.problems)
    return failed


# reporting


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _of(result: Result | None, figure: str) -> Any:
    """One figure of a case, None when the case was not measured."""
    return getattr(result, figure) if result is not None else None


def _growth_mib(result: Result | None) -> float | None:
    return (result.rss_peak_kib - result.rss_baseline_kib) / KIB if result else None


def ratios_of(results: list[Result]) -> list[dict[str, Any]]:
    """One row per size and concurrency with any file case measured; a ratio
    whose cases were not both measured (--cases) is None."""
    found = {(r.case, r.size, r.concurrency): r for r in results}
    rows = []
    for concurrency in sorted({r.concurrency for r in results}):
        health = found.get(("health", None, concurrency))
        floor = found.get((FLOOR_CASE, None, concurrency))
        for size in SIZES:
            cases = {
                case: found.get((case, size, concurrency))
                for case in (*FILE_CASES, *STORE_CASES, *FOUR_KIB_CASES)
            }
            if not any(cases.values()):
                continue
            static, gateway = cases["static"], cases["gateway"]
            django_view, fallback = cases["django-view"], cases["fallback"]
            rps, mibps = "requests_per_s", "bytes_per_s"
            row: dict[str, Any] = {
                "size": size,
                "concurrency": concurrency,
                "gateway_over_static_rps": _ratio(_of(gateway, rps), _of(static, rps)),
                "gateway_over_static_mibps": _ratio(_of(gateway, mibps), _of(static, mibps)),
                "fallback_over_static_rps": _ratio(_of(fallback, rps), _of(static, rps)),
                "fallback_over_static_mibps": _ratio(_of(fallback, mibps), _of(static, mibps)),
                "gateway_over_static_p50": _ratio(_of(gateway, "p50_ms"), _of(static, "p50_ms")),
                "gateway_over_django_view_rps": _ratio(_of(gateway, rps), _of(django_view, rps)),
                "gateway_over_health_rps": None,
                "django_view_over_health_rps": None,
                "gateway_over_floor_rps": None,
                "gateway_pg_over_floor_rps": None,
                "two_workers_over_one_rps": _ratio(
                    _of(cases[SCALING_CASE], rps), _of(gateway, rps)
                ),
                "loop_over_threads_rps": _ratio(_of(gateway, rps), _of(cases[THREADS_CASE], rps)),
                "pg_loop_over_threads_rps": _ratio(
                    _of(cases[POSTGRES_CASE], rps), _of(cases[POSTGRES_THREADS_CASE], rps)
                ),
                "gateway_rss_growth_mib": _growth_mib(gateway),
                "fallback_rss_growth_mib": _growth_mib(fallback),
                **store_ratios(gateway, cases[STORE_GATEWAY], cases[STORE_DIRECT]),
            }
            if size == "4KiB":
                row["gateway_over_health_rps"] = _ratio(_of(gateway, rps), _of(health, rps))
                row["django_view_over_health_rps"] = _ratio(_of(django_view, rps), _of(health, rps))
                row["gateway_over_floor_rps"] = _ratio(_of(gateway, rps), _of(floor, rps))
                row["gateway_pg_over_floor_rps"] = _ratio(
                    _of(cases[POSTGRES_CASE], rps), _of(floor, rps)
                )
            rows.append(row)
    return rows


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]], left: int) -> str:
    """Plain text columns: the first ``left`` aligned left, the figures right."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    line = "  ".join("-" * width for width in widths)

    def render(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(width) if index < left else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([render(header), line, *(render(row) for row in rows)])


def _ranked(results: list[Result]) -> list[Result]:
    order = {case: index for index, case in enumerate(CASES)}
    sizes = {size: index for index, size in enumerate(SIZES)}
    return sorted(
        results,
        key=lambda r: (r.concurrency, sizes.get(r.size or "", len(sizes)), order[r.case]),
    )


def figures_table(results: list[Result]) -> str:
    ranked = _ranked(results)
    rows = [
        [
            r.case,
            r.size or "-",
            str(r.concurrency),
            _fmt(r.requests_per_s),
            _fmt(r.mib_per_s),
            _fmt(r.p50_ms),
            _fmt(r.p99_ms),
            str(r.requests),
            str(r.non_2xx_3xx + sum(r.socket_errors.values())),
            f"{r.rss_baseline_kib / KIB:.0f}->{r.rss_peak_kib / KIB:.0f}"
            f"->{r.rss_after_kib / KIB:.0f}",
        ]
        for r in ranked
    ]
    header = [
        "case",
        "size",
        "conc",
        "req/s",
        "MiB/s",
        "p50 ms",
        "p99 ms",
        "requests",
        "errors",
        "app RSS MiB before->peak->after",
    ]
    return _table(header, rows, left=3)


def cpu_table(results: list[Result]) -> str:
    """The CPU each request cost each group of processes."""
    rows = []
    for r in _ranked(results):
        spent = per_request(r.cpu_s, r.requests)
        cells = [f"{spent[name]:.0f}" if name in spent else "-" for name in GROUPS]
        rows.append([r.case, r.size or "-", str(r.concurrency), *cells])
    return _table(["case", "size", "conc", *(f"{name} µs" for name in GROUPS)], rows, left=3)


def ratios_table(ratios: list[dict[str, Any]]) -> str:
    rows = [
        [
            row["size"],
            str(row["concurrency"]),
            _fmt(row["gateway_over_static_rps"], 3),
            _fmt(row["gateway_over_static_mibps"], 3),
            _fmt(row["gateway_over_static_p50"], 1),
            _fmt(row["gateway_over_health_rps"], 3),
            _fmt(row["django_view_over_health_rps"], 3),
            _fmt(row["gateway_over_django_view_rps"], 3),
            _fmt(row["two_workers_over_one_rps"], 3),
            _fmt(row["loop_over_threads_rps"], 3),
            _fmt(row["gateway_over_floor_rps"], 3),
            _fmt(row["gateway_pg_over_floor_rps"], 3),
            _fmt(row["pg_loop_over_threads_rps"], 3),
            _fmt(row["fallback_over_static_rps"], 3),
            _fmt(row["fallback_over_static_mibps"], 3),
            f"{_fmt(row['gateway_rss_growth_mib'], 0)}/{_fmt(row['fallback_rss_growth_mib'], 0)}",
        ]
        for row in ratios
    ]
    # Only the sizes, and the columns, whose cases were run (--cases).
    rows = [row for row in rows if any(cell.strip("-/") for cell in row[2:])]
    if not rows:
        return ""
    header = [
        "size",
        "conc",
        "gateway/static req/s",
        "gateway/static MiB/s",
        "gateway/static p50",
        "gateway/health req/s",
        "django-view/health req/s",
        "gateway/django-view req/s",
        "2 workers/1 req/s",
        "gateway/gateway-threads req/s",
        "gateway/floor req/s",
        "gateway-pg/floor req/s",
        "gateway-pg/gateway-pg-threads req/s",
        "fallback/static req/s",
        "fallback/static MiB/s",
        "RSS growth MiB gateway/fallback",
    ]
    # A column whose cases were not run (--cases) is left out.
    kept = [
        index
        for index in range(len(header))
        if index < 2 or any(row[index].strip("-/") for row in rows)
    ]
    return _table(
        [header[index] for index in kept], [[row[index] for index in kept] for row in rows], left=2
    )


def store_ratios_table(ratios: list[dict[str, Any]]) -> str:
    rows = [
        [
            row["size"],
            str(row["concurrency"]),
            *(_fmt(row[key], digits) for key, _, digits in STORE_RATIO_COLUMNS),
            "->".join(f"{row[f's3_rss_{when}_mib']:.0f}" for when in ("before", "peak", "after")),
        ]
        for row in ratios
        if row["s3_rss_before_mib"] is not None
    ]
    header = [
        "size",
        "conc",
        *(title for _, title, _ in STORE_RATIO_COLUMNS),
        "s3 app RSS MiB before->peak->after",
    ]
    return _table(header, rows, left=2)


def _version(command: list[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)
    except OSError:
        return "unknown"
    return (done.stdout + done.stderr).strip().splitlines()[0] if done.stdout + done.stderr else ""


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine_info(wrk: str) -> dict[str, Any]:
    import django
    import uvicorn

    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "django": django.get_version(),
        "uvicorn": uvicorn.__version__,
        # What uvicorn's "auto" loop and HTTP parser are, for the stacks and
        # the floor alike: uvloop and httptools when installed (None: asyncio, h11).
        "uvloop": _package_version("uvloop"),
        "httptools": _package_version("httptools"),
        "nginx": _version([nginx, "-v"]).removeprefix("nginx version: nginx/"),
        "wrk": _version([wrk, "-v"]).split(" Copyright")[0].removeprefix("wrk "),
    }


def draw(results: list[Result], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {
        "static": "#4c72b0",
        "gateway": "#55a868",
        "django-view": "#dd8452",
        "fallback": "#c44e52",
        STORE_GATEWAY: "#937860",
        STORE_DIRECT: "#da8bc3",
        SCALING_CASE: "#8c8c8c",
        THREADS_CASE: "#ccb974",
        POSTGRES_CASE: "#2f6f4f",
        POSTGRES_THREADS_CASE: "#b0d9b1",
        "health": "#8172b2",
        FLOOR_CASE: "#64b5cd",
        ASGI_FLOOR_CASE: "#a1c9f4",
    }
    concurrencies = sorted({r.concurrency for r in results})
    sizes = [size for size in SIZES if any(r.size == size for r in results)]
    found = {(r.case, r.size, r.concurrency): r for r in results}
    drawn = [
        case
        for case in (*FILE_CASES, *STORE_CASES, *FOUR_KIB_CASES)
        if any(r.case == case for r in results)
    ]
    panels = len(concurrencies) + 1
    columns = 2
    rows = math.ceil(panels / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(12, 4.2 * rows), squeeze=False)
    flat = list(axes.flat)
    references = [
        case
        for case in ("health", FLOOR_CASE, ASGI_FLOOR_CASE)
        if any(r.case == case for r in results)
    ]
    groups = [*sizes, " / ".join(references) or "health"]
    width = 0.8 / max(len(drawn), 1)
    middle = (len(drawn) - 1) / 2
    for axis, concurrency in zip(flat, concurrencies, strict=False):
        for index, case in enumerate(drawn):
            xs, heights = [], []
            for group_index, size in enumerate(sizes):
                result = found.get((case, size, concurrency))
                if result and result.requests_per_s > 0:
                    xs.append(group_index + (index - middle) * width)
                    heights.append(result.requests_per_s)
            bars = axis.bar(xs, heights, width, label=case, color=colours[case])
            axis.bar_label(bars, labels=[_fmt(h, 0) for h in heights], fontsize=7)
        # The requests that fetch no file, side by side in the last group.
        for index, case in enumerate(references):
            reference = found.get((case, None, concurrency))
            if reference and reference.requests_per_s > 0:
                offset = (index - (len(references) - 1) / 2) * width
                bars = axis.bar(
                    [len(sizes) + offset],
                    [reference.requests_per_s],
                    width,
                    label=case,
                    color=colours[case],
                )
                axis.bar_label(bars, labels=[_fmt(reference.requests_per_s, 0)], fontsize=7)
        axis.set_xticks(range(len(groups)), groups)
        axis.set_yscale("log")
        axis.margins(y=0.15)
        axis.set_ylabel("requests/s (log scale)")
        axis.set_title(f"{concurrency} connection{'s' if concurrency > 1 else ''}")
        axis.grid(axis="y", which="both", alpha=0.3)
        axis.legend(fontsize="small")
    biggest = sizes[-1] if sizes else None
    axis = flat[len(concurrencies)]
    # The 4 KiB-only cases have no bars here: their places stay empty, so
    # each case keeps its position and colour in every panel.
    for index, case in enumerate(drawn):
        measured = [c for c in concurrencies if (case, biggest, c) in found]
        if not measured:
            continue
        heights = [found[(case, biggest, c)].mib_per_s for c in measured]
        xs = [concurrencies.index(c) + (index - middle) * width for c in measured]
        bars = axis.bar(xs, heights, width, label=case, color=colours[case])
        axis.bar_label(bars, labels=[_fmt(h, 0) for h in heights], fontsize=7)
    axis.set_xticks(range(len(concurrencies)), [f"{c} conn." for c in concurrencies])
    axis.set_ylabel("MiB/s")
    axis.set_title(f"throughput, {biggest} files")
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize="small")
    for axis in flat[panels:]:
        axis.set_visible(False)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# the run


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench",
        description="What the permission check costs next to nginx sending the bytes.",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="quick: ~1 s per case, concurrency 1 and 8, 4 KiB and 1 MiB only "
        "(the store cases 1 MiB at 8 only)",
    )
    parser.add_argument("--duration", type=float, help="seconds per case (10; smoke 1)")
    parser.add_argument(
        "--concurrency", help="comma-separated connection counts (1,32,256; smoke 1,8)"
    )
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers per stack (1)")
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="where results.json/png go"
    )
    parser.add_argument(
        "--sizes", help=f"comma-separated file sizes ({','.join(SIZES)}; smoke 4KiB,1MiB)"
    )
    parser.add_argument("--cases", help=f"comma-separated cases to run (all: {','.join(CASES)})")
    parser.add_argument(
        "--store-concurrency",
        type=int,
        help=f"connections for the extra 64 MiB gateway and store run "
        f"({STORE_CONCURRENCY}; smoke and 0: none)",
    )
    args = parser.parse_args(argv)
    args.duration = args.duration or (1.0 if args.smoke else 10.0)
    if not 0 < args.duration <= MAX_CASE_SECONDS:
        parser.error(f"--duration must be within (0, {MAX_CASE_SECONDS:.0f}]")
    try:
        args.concurrency = [
            int(c) for c in (args.concurrency or ("1,8" if args.smoke else "1,32,256")).split(",")
        ]
    except ValueError:
        parser.error("--concurrency takes integers separated by commas, e.g. 1,32,256")
    if not args.concurrency or not all(1 <= c <= 4096 for c in args.concurrency):
        parser.error("--concurrency values must be between 1 and 4096")
    if not 1 <= args.workers <= 64:
        parser.error("--workers must be between 1 and 64")
    args.sizes = args.sizes.split(",") if args.sizes else list(SMOKE_SIZES if args.smoke else SIZES)
    if not args.sizes or not set(args.sizes) <= set(SIZES):
        parser.error(f"--sizes takes some of {','.join(SIZES)}")
    args.cases = args.cases.split(",") if args.cases else list(CASES)
    if not args.cases or not set(args.cases) <= set(CASES):
        parser.error(f"--cases takes some of {','.join(CASES)}")
    if args.store_concurrency is None:
        args.store_concurrency = 0 if args.smoke else STORE_CONCURRENCY
    if not 0 <= args.store_concurrency <= 4096:
        parser.error("--store-concurrency must be between 0 and 4096")
    return args


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def run(args: argparse.Namespace) -> int:
    wrk = ensure_wrk()
    args.output.mkdir(parents=True, exist_ok=True)
    files = {size: b"%PDF-1.4\n" + os.urandom(SIZES[size] - 9) for size in args.sizes}
    folders: list[Path] = []
    stacks: list[Stack] = []
    results: list[Result] = []
    seaweed: Seaweed | None = None
    floors: dict[str, FloorServer] = {}
    cases = set(args.cases)
    four_kib = "4KiB" in args.sizes
    if four_kib and cases & {POSTGRES_CASE, POSTGRES_THREADS_CASE}:
        ensure_postgres()
    try:
        handoff = django_view = fallback = scaled = threads = s3 = None
        postgres = postgres_threads = None
        # The store first: it binds its ports as it starts, while a stack takes
        # its port now and binds it only when started below, so the store
        # could otherwise be handed a stack's port.
        if cases & set(STORE_CASES):
            store_dir = Path(tempfile.mkdtemp(prefix="gateway-bench-store-"))
            folders.append(store_dir)
            seaweed = Seaweed(store_dir / STORE_FOLDER)
            store = seaweed.start()
            log(f"SeaweedFS serving bucket {store.bucket!r} at {store.endpoint_url}")
        if cases & {"static", "gateway", "health"}:
            handoff = start_stack("handoff", args.workers, folders)
        if "django-view" in cases:
            django_view = start_stack(
                "django-view", args.workers, folders, {"GATEWAY_FAST_MEDIA": "0"}
            )
        if "fallback" in cases:
            fallback = start_stack(
                "fallback", args.workers, folders, {"GATEWAY_SENDFILE_BACKEND": STREAMING_BACKEND}
            )
        if SCALING_CASE in cases and four_kib:
            scaled = start_stack(SCALING_CASE, args.workers * 2, folders)
        if THREADS_CASE in cases and four_kib:
            threads = start_stack(
                THREADS_CASE, args.workers, folders, {"GATEWAY_FAST_MEDIA_LOOP_READS": "0"}
            )
        if POSTGRES_CASE in cases and four_kib:
            postgres = start_stack(POSTGRES_CASE, args.workers, folders, postgres=True)
        if POSTGRES_THREADS_CASE in cases and four_kib:
            postgres_threads = start_stack(
                POSTGRES_THREADS_CASE,
                args.workers,
                folders,
                {"GATEWAY_FAST_MEDIA_LOOP_READS": "0"},
                postgres=True,
            )
        if cases & set(STORE_CASES):
            s3 = start_stack("s3", args.workers, folders, store.gateway_environment())
        started = (handoff, django_view, fallback, scaled, threads, postgres, postgres_threads, s3)
        stacks = [stack for stack in started if stack]
        for case in FLOOR_APPS:
            if case in cases:
                floor_dir = Path(tempfile.mkdtemp(prefix=f"gateway-bench-{case}-"))
                folders.append(floor_dir)
                floors[case] = FloorServer(floor_dir, case)
                log(f"starting uvicorn alone with {FLOOR_APPS[case]} on {floors[case].url}")
                floors[case].start()
        # Side by side, on two cores: the stacks' migrations, collectstatic
        # and sign-ins overlap; the cases are timed one at a time.
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(len(stacks), 1)) as pool:
            list(pool.map(Stack.start, stacks))
            log("signing in and uploading " + ", ".join(args.sizes))
            prepared = list(pool.map(lambda stack: prepare(stack, files), stacks))
        cookies = {id(stack): cookie for stack, (cookie, _) in zip(stacks, prepared, strict=True)}
        media = {id(stack): paths for stack, (_, paths) in zip(stacks, prepared, strict=True)}
        direct = direct_urls(store, files) if STORE_DIRECT in cases else {}
        store_pid = seaweed.process.pid if seaweed and seaweed.process else None
        # The quick run takes the store's path with the largest file at the
        # highest concurrency: it proves the path, the full run measures it.
        store_sizes = args.sizes[-1:] if args.smoke else args.sizes
        targets: list[Target] = []
        for size in args.sizes:
            body = files[size]
            if handoff and "static" in cases:
                targets.append(
                    Target("static", size, handoff, f"/static/bench/bench-{size}.pdf", body)
                )
            if handoff and "gateway" in cases:
                targets.append(Target("gateway", size, handoff, media[id(handoff)][size], body))
            if s3 and STORE_GATEWAY in cases and size in store_sizes:
                targets.append(
                    Target(STORE_GATEWAY, size, s3, media[id(s3)][size], body, store_pid=store_pid)
                )
            if s3 and STORE_DIRECT in cases and size in store_sizes:
                path = direct[size].partition("?")[0]
                targets.append(
                    Target(STORE_DIRECT, size, s3, path, body, direct[size], store_pid=store_pid)
                )
            if django_view:
                targets.append(
                    Target("django-view", size, django_view, media[id(django_view)][size], body)
                )
            if fallback:
                targets.append(Target("fallback", size, fallback, media[id(fallback)][size], body))
        if scaled:
            targets.append(
                Target(SCALING_CASE, "4KiB", scaled, media[id(scaled)]["4KiB"], files["4KiB"])
            )
        for case, stack in (
            (THREADS_CASE, threads),
            (POSTGRES_CASE, postgres),
            (POSTGRES_THREADS_CASE, postgres_threads),
        ):
            if stack:
                targets.append(Target(case, "4KiB", stack, media[id(stack)]["4KiB"], files["4KiB"]))
        if handoff and "health" in cases:
            targets.append(Target("health", None, handoff, "/healthz", HEALTH_BODY))
        for case, floor in floors.items():
            # No session: a floor reads no cookie, and wrk sends none to a direct URL.
            cookies[id(floor)] = ""
            targets.append(Target(case, None, floor, "/", FLOOR_BODY, f"{floor.url}/"))
        for target in targets:
            verify(target, cookies[id(target.stack)])
        log(f"every URL answers 200 with the expected bytes; {len(targets)} cases per concurrency")
        info = machine_info(wrk)
        runs = [
            (concurrency, target)
            for concurrency in args.concurrency
            for target in targets
            if not (
                args.smoke and target.case in STORE_CASES and concurrency < max(args.concurrency)
            )
        ]
        if args.store_concurrency and args.store_concurrency not in args.concurrency:
            # Many large downloads at once through the store: the app's memory
            # must not grow with them (it never touches the bytes).
            runs += [
                (args.store_concurrency, target)
                for target in targets
                if target.size == LARGE and target.case in ("gateway", *STORE_CASES)
            ]
        for concurrency, target in runs:
            label = f"{target.case} {target.size or ''}".strip()
            log(f"{label} at {concurrency} connection(s), {args.duration:g}s")
            result = run_case(wrk, target, cookies[id(target.stack)], concurrency, args.duration)
            results.append(result)
            time.sleep(PAUSE_BETWEEN_CASES)
    except (BenchError, StoreCaseError) as error:
        log(f"FAILED: {error}")
        servers: list[Stack | FloorServer] = [*stacks, *floors.values()]
        for server in servers:
            log(f"last lines of the {server.data_dir.name} log:\n{server.log()[-3000:]}")
        return 1
    finally:
        for floor in floors.values():
            floor.stop()
        for stack in stacks:
            stack.stop()
        # The store last: the S3 stack's workers may still be talking to it.
        # Its data goes with its folder, so it need not stop gracefully
        # (which takes weed about 11 s once it has run for a minute).
        if seaweed is not None and seaweed.process is not None:
            seaweed.process.kill()
            seaweed.process.wait()
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)

    ratios = ratios_of(results)
    failed = failures_of(results)
    settings = {
        "command": " ".join(["python -m bench.bench", *sys.argv[1:]]),
        "smoke": args.smoke,
        "duration_s": args.duration,
        "concurrency": args.concurrency,
        "workers": args.workers,
        "sizes": {size: SIZES[size] for size in args.sizes},
        "cases": args.cases,
        "store_concurrency": args.store_concurrency,
        "wrk_threads": "min(2, connections)",
    }
    report = {
        "machine": info,
        "settings": settings,
        "results": [{**asdict(r), "mib_per_s": r.mib_per_s} for r in results],
        "ratios": ratios,
        "failures": failed,
    }
    (args.output / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    scaling = (
        f" ({SCALING_CASE}: {args.workers * 2})"
        if any(r.case == SCALING_CASE for r in results)
        else ""
    )
    title = (
        f"protected media gateway, one run, {info['nproc']} cores, "
        f"{args.workers} uvicorn worker(s){scaling}, {info['date'][:10]}"
    )
    draw(results, args.output / "results.png", title)

    print()
    print(
        f"{info['date']}  {info['nproc']} cores  Python {info['python']}  "
        f"Django {info['django']}  nginx {info['nginx']}  {info['wrk']}  "
        f"{args.workers} uvicorn worker(s)  {args.duration:g}s per case"
    )
    print()
    print(figures_table(results))
    print()
    print("CPU PER REQUEST (each group's CPU time in the case ÷ its requests)")
    print(cpu_table(results))
    print()
    print("RATIOS (measured side by side in this run)")
    if table := ratios_table(ratios):
        print(table)
    if any(row["s3_rss_before_mib"] is not None for row in ratios):
        print()
        print("object storage: s3-gateway next to s3-direct and the local-disk gateway")
        print(store_ratios_table(ratios))
    remeasured = [r for r in results if r.remeasured_from_s]
    if remeasured:
        print()
        for r in remeasured:
            print(
                f"{r.case} {r.size} c={r.concurrency}: measured again over {r.duration_s:.0f}s "
                f"(fewer than {MIN_RESPONSES_PER_CONNECTION} responses per connection "
                f"in {r.remeasured_from_s:g}s)"
            )
    print()
    log(f"wrote {args.output / 'results.json'} and {args.output / 'results.png'}")
    if failed:
        log("FAILED requests:")
        for line in failed:
            print(f"  {line}")
        return 1
    return 0


def main(argv: list[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(run(parse_args(argv)))


if __name__ == "__main__":
    main()
