"""A soak test: many clients, every kind of request, for minutes, on loopback.

    python -m bench.soak [--duration SECONDS] [--clients N] [--output DIR]

Starts the real stack (nginx in front of two uvicorn workers) on a fresh
PostgreSQL database of its own (dropped at the end), creates 16 users and
uploads a few text and PNG files for each, then runs N virtual clients
(asyncio and httpx, each signed in as one of the users with a copy of its
session and CSRF cookies) until the time is up. Each client loops over a
weighted mix:

- static:  ``/static/demo/site.css`` from nginx, the same bytes every time;
- media:   one of its user's own files, the bytes it uploaded (by hash);
- refused: another user's file, the 404 with ``Not Found\\n`` and no byte of it;
- upload:  a new text or PNG file of unique content, ``201``.

The uvicorn processes' resident memory is sampled at the end of the warm-up
(the first 20% of the run) and at the end. After the load every file is read
back by its owner and checked byte for byte, each user's listing must hold
exactly their files, and no upload's temporary file may be left. Prints a
summary, writes it as JSON (``results.json``) to the output folder
(``var/soak/``) and exits non-zero when any check fails. Bounded in time (a
hard timeout) and in count (clients, uploads); everything on loopback.

PNG uploads are decoded and re-encoded by the app, so the bytes served are
not the bytes sent: the first read of one must decode to exactly the pixels
sent, and from then on every read must be those same bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import ipaddress
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import ssl
import sys
import tempfile
import time
import urllib.parse
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from tests.stack.harness import ADMIN_URL, Stack, postgres_admin, rss_kib, upload

BASE_DIR = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = BASE_DIR / "var" / "soak"

WORKERS = 2
USERS = 16
PASSWORD = "soak-pass-7731"  # throwaway accounts in a throwaway stack
FILES_PER_USER = 4  # two text files and two PNGs each before the load
STATIC_PATH = "/static/demo/site.css"
REFUSAL_BODY = b"Not Found\n"
KINDS = ("static", "media", "refused", "upload")
WEIGHTS = (30, 40, 20, 10)
EXPECTED_STATUS = {"static": 200, "media": 200, "refused": 404, "upload": 201}
PNG_SHARE = 0.3  # of uploads

WARMUP_FRACTION = 0.2
MIN_WARMUP = 5.0
RSS_INTERVAL = 1.0
REQUEST_TIMEOUT = 60.0
VERIFY_PARALLEL = 32
# Bounds: whatever the arguments, a run ends, and its disk use is capped.
MAX_CLIENTS = 1024
MAX_DURATION = 3600.0
SETUP_ALLOWANCE = 300.0  # starting the stack, users, initial uploads
# Reading every file back: at most as many requests as the load made uploads.
VERIFY_ALLOWANCE = 120.0  # plus the duration
KEEP_PROBLEMS = 200  # each kind of finding is counted in full, listed up to this
# httpx builds an SSL context for every client, even for plain HTTP: 0.2 s of
# CPU each here, 50 s for 256 clients. They share this one (never used).
TLS = ssl.create_default_context()


def log(message: str) -> None:
    print(f"[soak] {message}", flush=True)


class SoakTimeout(Exception):
    """The hard timeout struck."""


# the app's memory


@dataclass
class Memory:
    pids: list[int]
    start: int = 0
    warmup: int | None = None
    end: int | None = None
    after_verify: int | None = None
    series: list[tuple[float, int]] = field(default_factory=list)
    pids_changed: list[list[int]] = field(default_factory=list)
    # Each process's share at the end of the warm-up and at the end.
    by_process: dict[str, dict[int, int]] = field(default_factory=dict)
    last: dict[int, int] = field(default_factory=dict)

    def sample(self, stack: Stack) -> int:
        pids = stack.app_pids()
        if pids != self.pids and pids not in self.pids_changed:
            self.pids_changed.append(pids)
        self.last = rss_kib(pids)
        return sum(self.last.values())


# what is stored, and what was seen


@dataclass
class Stored:
    owner: int
    url: str
    kind: str  # "text" or "png"
    size: int  # as the API described it
    served_sha: str | None  # the bytes every read must be; a PNG's is pinned at its first read
    pixels: tuple[str, tuple[int, int], str] | None = None  # a PNG's mode, size, pixel hash


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pixels_of(data: bytes) -> tuple[str, tuple[int, int], str]:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.mode, image.size, sha256(image.tobytes())


def check_body(stored: Stored, body: bytes) -> str | None:
    """Why ``body`` is not ``stored``'s content, or None."""
    digest = sha256(body)
    if stored.served_sha is not None:
        return None if digest == stored.served_sha else "bytes differ from the stored file's"
    if len(body) != stored.size:
        return f"{len(body)} bytes, the API said {stored.size}"
    try:
        decoded = pixels_of(body)
    except (OSError, ValueError) as error:
        return f"not a readable PNG ({error})"
    if decoded != stored.pixels:
        return "the PNG's pixels are not the ones sent"
    stored.served_sha = digest
    return None


def text_file(rng: random.Random, label: str) -> bytes:
    line = f"soak {label} {rng.getrandbits(128):032x}\n".encode()
    return line * rng.randint(1, 400)


def png_file(rng: random.Random) -> tuple[bytes, tuple[str, tuple[int, int], str]]:
    width, height = rng.randint(8, 96), rng.randint(8, 96)
    image = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    output = io.BytesIO()
    image.save(output, format="PNG", compress_level=1)
    return output.getvalue(), ("RGB", (width, height), sha256(image.tobytes()))


@dataclass
class Tally:
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    transport_errors: Counter[str] = field(default_factory=Counter)
    transport_samples: list[str] = field(default_factory=list)
    server_errors: list[dict[str, Any]] = field(default_factory=list)
    server_error_count: int = 0
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    uploads_started: int = 0
    uploads: Counter[str] = field(default_factory=Counter)
    # How loaded this machine and this process were: on a busy machine the
    # clients themselves wait for the CPU, and so do the latencies they measure.
    loop_lags: list[float] = field(default_factory=list)
    client_cpu_s: float = 0.0
    load_average: dict[str, list[float]] = field(default_factory=dict)

    def problem(self, message: str) -> None:
        self.problem_count += 1
        if len(self.problems) < KEEP_PROBLEMS:
            self.problems.append(message)


@dataclass
class Soak:
    stack: Stack
    cookies: list[httpx.Cookies]
    files: list[list[Stored]]  # by owner
    static_body: bytes
    max_uploads: int
    access_log_offset: int = 0
    tally: Tally = field(default_factory=Tally)

    async def request(
        self, client: httpx.AsyncClient, kind: str, method: str, url: str, **kwargs: Any
    ) -> httpx.Response | None:
        started = time.monotonic()
        try:
            response = await client.request(method, url, **kwargs)
        except httpx.TransportError as error:
            self.tally.transport_errors[f"{kind}: {type(error).__name__}"] += 1
            if len(self.tally.transport_samples) < KEEP_PROBLEMS:
                self.tally.transport_samples.append(f"{kind} {method} {url}: {error!r}")
            return None
        self.tally.latencies[kind].append(time.monotonic() - started)
        self.tally.statuses[kind][response.status_code] += 1
        if response.status_code >= 500:
            self.tally.server_error_count += 1
            if len(self.tally.server_errors) < KEEP_PROBLEMS:
                self.tally.server_errors.append(
                    {
                        "kind": kind,
                        "method": method,
                        "url": url,
                        "status": response.status_code,
                        "body": response.text[:300],
                        "at": time.time(),
                    }
                )
            return None
        if response.status_code != EXPECTED_STATUS[kind]:
            self.tally.problem(
                f"{kind} {method} {url}: {response.status_code} {response.text!r:.200}"
            )
            return None
        return response

    async def static(self, client: httpx.AsyncClient, user: int, rng: random.Random) -> None:
        response = await self.request(client, "static", "GET", STATIC_PATH)
        if response is not None and response.content != self.static_body:
            self.tally.problem(f"static {STATIC_PATH}: {len(response.content)} other bytes")

    async def media(self, client: httpx.AsyncClient, user: int, rng: random.Random) -> None:
        stored = rng.choice(self.files[user])
        response = await self.request(client, "media", "GET", stored.url)
        if response is not None:
            wrong = check_body(stored, response.content)
            if wrong:
                self.tally.problem(f"media {stored.url} (user {user}): {wrong}")

    async def refused(self, client: httpx.AsyncClient, user: int, rng: random.Random) -> None:
        other = rng.choice([index for index in range(len(self.files)) if index != user])
        stored = rng.choice(self.files[other])
        response = await self.request(client, "refused", "GET", stored.url)
        if response is not None and response.content != REFUSAL_BODY:
            self.tally.problem(f"refused {stored.url} (user {user}): body {response.content!r:.80}")

    async def upload(self, client: httpx.AsyncClient, user: int, rng: random.Random) -> None:
        self.tally.uploads_started += 1
        number = self.tally.uploads_started
        if rng.random() < PNG_SHARE:
            kind, name, content_type = "png", f"picture-{number}.png", "image/png"
            data, pixels = png_file(rng)
        else:
            kind, name, content_type = "text", f"notes-{number}.txt", "text/plain"
            data, pixels = text_file(rng, f"user {user} upload {number}"), None
        response = await self.request(
            client,
            "upload",
            "POST",
            "/api/files/",
            files={"file": (name, data, content_type)},
            headers={"X-CSRFToken": client.cookies["csrftoken"], "Origin": self.stack.url},
        )
        if response is None:
            return
        described = response.json()
        stored = Stored(
            owner=user,
            url=described["url"],
            kind=kind,
            size=described["size"],
            served_sha=sha256(data) if kind == "text" else None,
            pixels=pixels,
        )
        if described["content_type"] != content_type or (
            kind == "text" and stored.size != len(data)
        ):
            self.tally.problem(f"upload {stored.url} (user {user}) described as {described}")
        self.tally.uploads[kind] += 1
        # Readable by this user's other clients (and refused to everyone else's) from now on.
        self.files[user].append(stored)

    async def client(self, index: int, deadline: float, seed: int) -> None:
        user = index % len(self.files)
        rng = random.Random(seed * 100_003 + index)
        actions = {
            "static": self.static,
            "media": self.media,
            "refused": self.refused,
            "upload": self.upload,
        }
        async with httpx.AsyncClient(
            base_url=self.stack.url,
            cookies=httpx.Cookies(self.cookies[user]),
            timeout=REQUEST_TIMEOUT,
            verify=TLS,
            follow_redirects=False,
        ) as client:
            while time.monotonic() < deadline:
                kind = rng.choices(KINDS, WEIGHTS)[0]
                if kind == "upload" and self.tally.uploads_started >= self.max_uploads:
                    kind = "media"
                await actions[kind](client, user, rng)


# phases


def start_database() -> tuple[str, str]:
    split = urllib.parse.urlsplit(ADMIN_URL)
    host = split.hostname or ""
    if host and host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        sys.exit(f"[soak] PostgreSQL must be on loopback, not {host!r} ({ADMIN_URL})")
    database = f"gateway_soak_{os.urandom(6).hex()}"
    postgres_admin("CREATE DATABASE {name}", database)
    return database, urllib.parse.urlunsplit(split._replace(path=f"/{database}"))


def prepare(stack: Stack, rng: random.Random) -> Soak:
    names = [f"soak{index:02d}" for index in range(USERS)]
    stack.shell(
        "from django.contrib.auth.models import User\n"
        f"for name in {names!r}:\n"
        f"    User.objects.create_user(name, password={PASSWORD!r})\n"
    )
    cookies, files = [], []
    for user, name in enumerate(names):
        client = stack.login(name, PASSWORD)
        try:
            owned = []
            for number in range(FILES_PER_USER):
                if number % 2:
                    data, pixels = png_file(rng)
                    kind, filename, content_type = "png", f"start-{number}.png", "image/png"
                else:
                    data, pixels = text_file(rng, f"{name} start {number}"), None
                    kind, filename, content_type = "text", f"start-{number}.txt", "text/plain"
                response = upload(client, filename, data, content_type)
                if response.status_code != 201:
                    raise RuntimeError(
                        f"{name}'s upload refused: {response.status_code} {response.text}"
                    )
                described = response.json()
                stored = Stored(
                    user,
                    described["url"],
                    kind,
                    described["size"],
                    sha256(data) if kind == "text" else None,
                    pixels,
                )
                # Read once, so a PNG's served bytes are pinned before the load.
                read = client.get(stored.url)
                wrong = (
                    check_body(stored, read.content)
                    if read.status_code == 200
                    else read.status_code
                )
                if wrong:
                    raise RuntimeError(f"{name}'s {filename} reads back wrong: {wrong}")
                owned.append(stored)
            cookies.append(httpx.Cookies(client.cookies))
            files.append(owned)
        finally:
            client.close()
    with stack.client() as client:
        static = client.get(STATIC_PATH)
    if static.status_code != 200 or not static.content:
        raise RuntimeError(f"{STATIC_PATH}: {static.status_code}")
    return Soak(stack, cookies, files, static.content, max_uploads=0)


async def load(
    soak: Soak, clients: int, duration: float, warmup: float, memory: Memory, seed: int
) -> float:
    start = time.monotonic()
    deadline = start + duration
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    soak.tally.load_average["start"] = list(os.getloadavg())

    async def watch() -> None:
        while (now := time.monotonic()) < deadline:
            kib = memory.sample(soak.stack)
            memory.series.append((round(now - start, 1), kib))
            if memory.warmup is None and now - start >= warmup:
                memory.warmup, memory.by_process["warmup"] = kib, memory.last
                log(f"warm-up over after {now - start:.1f}s: app RSS {kib / 1024:.1f} MiB")
            pause = min(RSS_INTERVAL, max(deadline - now, 0.01))
            await asyncio.sleep(pause)
            soak.tally.loop_lags.append(time.monotonic() - now - pause)
        # Still under load: the other clients are finishing their last requests.
        memory.end = memory.sample(soak.stack)
        memory.by_process["end"] = memory.last
        soak.tally.load_average["end"] = list(os.getloadavg())

    async with asyncio.timeout(duration + REQUEST_TIMEOUT + 60):
        await asyncio.gather(
            watch(), *(soak.client(index, deadline, seed) for index in range(clients))
        )
    used = resource.getrusage(resource.RUSAGE_SELF)
    soak.tally.client_cpu_s = used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime
    return time.monotonic() - start


async def verify_files(soak: Soak) -> dict[str, Any]:
    """Every file read back by its owner, every listing exact."""
    limit = asyncio.Semaphore(VERIFY_PARALLEL)
    found: dict[str, Any] = {"verified": 0, "failed": [], "lost": [], "extra": []}
    clients = [
        httpx.AsyncClient(
            base_url=soak.stack.url,
            cookies=httpx.Cookies(cookies),
            timeout=REQUEST_TIMEOUT,
            verify=TLS,
        )
        for cookies in soak.cookies
    ]

    async def read(stored: Stored) -> None:
        async with limit:
            try:
                response = await clients[stored.owner].get(stored.url)
            except httpx.TransportError as error:
                found["failed"].append(f"{stored.url}: {error!r}")
                return
        wrong = f"status {response.status_code}" if response.status_code != 200 else None
        wrong = wrong or check_body(stored, response.content)
        if wrong:
            found["failed"].append(f"{stored.url} (user {stored.owner}): {wrong}")
        else:
            found["verified"] += 1

    try:
        await asyncio.gather(*(read(stored) for owned in soak.files for stored in owned))
        for user, owned in enumerate(soak.files):
            listing = await clients[user].get("/api/files/")
            if listing.status_code != 200:
                found["failed"].append(f"user {user}'s listing: status {listing.status_code}")
                continue
            listed = {item["url"] for item in listing.json()["files"]}
            expected = {stored.url for stored in owned}
            found["lost"] += sorted(expected - listed)
            found["extra"] += sorted(listed - expected)
    finally:
        for client in clients:
            await client.aclose()
    return found


RECORDED_NAMES = (
    "import json\n"
    "from protected_media.models import StoredFile\n"
    "print(json.dumps(list(StoredFile.objects.values_list('name', flat=True))))\n"
)


def check_disk(soak: Soak) -> dict[str, list[str]]:
    """The private folder against the records: what the app made beside the
    uploads (thumbnails) has records of its own."""
    recorded = set(json.loads(soak.stack.shell(RECORDED_NAMES).strip().splitlines()[-1]))
    root = soak.stack.private_root
    on_disk = {
        path.relative_to(root).as_posix(): path for path in root.rglob("*") if path.is_file()
    }
    kept = {name for name, path in on_disk.items() if not path.name.startswith(".")}
    stems = {path.stem for path in on_disk.values()}
    keys = {stored.url.rsplit("/", 1)[1] for owned in soak.files for stored in owned}
    return {
        "temporary": sorted(
            name for name, path in on_disk.items() if path.name.startswith(".upload-")
        ),
        "missing": sorted(keys - stems),
        "orphans": sorted(kept - recorded),
        "records_without_file": sorted(recorded - kept),
    }


def access_log(stack: Stack) -> Path:
    return stack.data_dir / "nginx" / "access.log"


def nginx_statuses(stack: Stack, offset: int) -> dict[str, int]:
    """The status of every request nginx logged from ``offset`` on."""
    statuses: Counter[str] = Counter()
    status = re.compile(rb'" (\d{3}) ')
    if access_log(stack).exists():
        with access_log(stack).open("rb") as handle:
            handle.seek(offset)
            for line in handle:
                found = status.search(line)
                statuses[found[1].decode() if found else "unreadable"] += 1
    return dict(sorted(statuses.items()))


# the report


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report_of(
    soak: Soak,
    args: argparse.Namespace,
    elapsed: float,
    warmup: float,
    memory: Memory,
    checked: dict[str, Any],
    disk: dict[str, list[str]],
    log_text: str,
) -> dict[str, Any]:
    tally = soak.tally
    requests = {}
    for kind in KINDS:
        times = tally.latencies[kind]
        requests[kind] = {
            "count": sum(tally.statuses[kind].values()),
            "statuses": {str(code): n for code, n in sorted(tally.statuses[kind].items())},
            "p50_ms": round(1e3 * p, 1) if (p := percentile(times, 0.5)) is not None else None,
            "p99_ms": round(1e3 * p, 1) if (p := percentile(times, 0.99)) is not None else None,
            "max_ms": round(1e3 * max(times), 1) if times else None,
        }
    total = sum(entry["count"] for entry in requests.values())
    after_warmup = [kib for at, kib in memory.series if at >= warmup] + [memory.end or 0]
    growth = (memory.end or 0) - (memory.warmup or 0)
    files_total = sum(len(owned) for owned in soak.files)
    tracebacks = log_text.count("Traceback")
    report: dict[str, Any] = {
        "settings": {
            "duration_s": args.duration,
            "clients": args.clients,
            "users": USERS,
            "workers": WORKERS,
            "warmup_s": warmup,
            "mix": dict(zip(KINDS, WEIGHTS, strict=True)),
            "max_uploads": args.max_uploads,
            "seed": args.seed,
            "database": "postgresql",
        },
        "machine": {
            "nproc": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average": tally.load_average,
            "client_cpu_s": round(tally.client_cpu_s, 1),
            "client_loop_lag_ms": {
                "p50": round(1e3 * (percentile(tally.loop_lags, 0.5) or 0), 1),
                "max": round(1e3 * max(tally.loop_lags, default=0), 1),
            },
        },
        "elapsed_s": round(elapsed, 1),
        "requests": requests,
        "total_requests": total,
        "requests_per_s": round(total / elapsed, 1) if elapsed else 0,
        "transport_errors": dict(tally.transport_errors),
        "transport_error_count": sum(tally.transport_errors.values()),
        "transport_error_samples": tally.transport_samples,
        "server_errors": tally.server_errors,
        "server_error_count": tally.server_error_count,
        "problems": tally.problems,
        "problem_count": tally.problem_count,
        "uploads": {"accepted": sum(tally.uploads.values()), **tally.uploads},
        "files": {
            "total": files_total,
            "verified": checked["verified"],
            "failed": checked["failed"][:KEEP_PROBLEMS],
            "failed_count": len(checked["failed"]),
            "lost": checked["lost"],
            "extra": checked["extra"],
            "temporary_left": disk["temporary"],
            "missing_on_disk": disk["missing"],
            "orphans_on_disk": disk["orphans"][:KEEP_PROBLEMS],
            "orphan_count": len(disk["orphans"]),
            "records_without_file": disk["records_without_file"][:KEEP_PROBLEMS],
        },
        "rss_kib": {
            "start": memory.start,
            "warmup": memory.warmup,
            "end": memory.end,
            "after_verify": memory.after_verify,
            "peak_after_warmup": max(after_warmup),
            "growth": growth,
            "processes": memory.pids,
            "by_process": memory.by_process,
            "processes_changed": memory.pids_changed,
            "series": memory.series,
        },
        # From the load on: the run command probes /healthz (502) until uvicorn listens.
        "nginx_statuses": nginx_statuses(soak.stack, soak.access_log_offset),
        "stack_log_tracebacks": tracebacks,
    }
    failures = []
    if report["server_error_count"]:
        failures.append(f"{report['server_error_count']} responses were 5xx")
    if report["transport_error_count"]:
        failures.append(
            f"{report['transport_error_count']} transport errors {report['transport_errors']}"
        )
    if tally.problem_count:
        failures.append(f"{tally.problem_count} wrong answers (statuses or bytes)")
    failures += [f"no {kind} request happened" for kind in KINDS if not requests[kind]["count"]]
    if checked["verified"] != files_total or checked["failed"]:
        failures.append(
            f"{checked['verified']} of {files_total} files read back intact,"
            f" {len(checked['failed'])} failures"
        )
    if checked["lost"] or checked["extra"]:
        failures.append(f"listings: {len(checked['lost'])} lost, {len(checked['extra'])} extra")
    if any(disk.values()):
        failures.append(
            f"disk: {len(disk['temporary'])} temporary, {len(disk['missing'])} missing,"
            f" {len(disk['orphans'])} orphaned files,"
            f" {len(disk['records_without_file'])} records without a file"
        )
    nginx_5xx = sum(n for code, n in report["nginx_statuses"].items() if code.startswith("5"))
    if nginx_5xx:
        failures.append(f"nginx logged {nginx_5xx} 5xx responses")
    if tracebacks:
        failures.append(f"the stack logged {tracebacks} tracebacks")
    if memory.pids_changed:
        failures.append(f"the app's processes changed: {memory.pids} became {memory.pids_changed}")
    if memory.warmup is None or memory.end is None:
        failures.append("the app's memory was not sampled")
    elif growth > args.max_rss_growth_mib * 1024:
        failures.append(
            f"the app's RSS grew {growth / 1024:.1f} MiB after the warm-up"
            f" (limit {args.max_rss_growth_mib} MiB)"
        )
    report["failures"] = failures
    return report


def print_summary(report: dict[str, Any]) -> None:
    settings, rss = report["settings"], report["rss_kib"]

    def mib(kib: int | None) -> str:
        return "-" if kib is None else f"{kib / 1024:.1f} MiB"

    log(
        f"SUMMARY: {settings['clients']} clients, {settings['users']} users,"
        f" {settings['workers']} uvicorn workers, PostgreSQL, {report['elapsed_s']}s"
        f" (warm-up {settings['warmup_s']:.0f}s)"
    )
    log(f"  {'kind':<8} {'requests':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  statuses")
    for kind, entry in report["requests"].items():
        log(
            f"  {kind:<8} {entry['count']:>9} {entry['p50_ms'] or '-':>8}"
            f" {entry['p99_ms'] or '-':>8} {entry['max_ms'] or '-':>8}  {entry['statuses']}"
        )
    log(f"  total    {report['total_requests']:>9}  ({report['requests_per_s']} req/s)")
    machine = report["machine"]
    log(
        f"  machine: {machine['nproc']} CPUs, load average {machine['load_average']};"
        f" the clients used {machine['client_cpu_s']}s of CPU, their event loop lagged"
        f" {machine['client_loop_lag_ms']['p50']} ms (p50), {machine['client_loop_lag_ms']['max']}"
        " ms (max)"
    )
    log(
        f"  5xx: {report['server_error_count']},"
        f" transport errors: {report['transport_error_count']}"
        f" {report['transport_errors'] or ''}, wrong answers: {report['problem_count']}"
    )
    files, uploads = report["files"], report["uploads"]
    log(
        f"  uploads accepted: {uploads['accepted']} ({uploads.get('text', 0)} text,"
        f" {uploads.get('png', 0)} PNG); files read back intact: {files['verified']} of"
        f" {files['total']}; lost: {len(files['lost'])}, extra: {len(files['extra'])},"
        f" temporary left: {len(files['temporary_left'])}, missing on disk:"
        f" {len(files['missing_on_disk'])}, orphans: {files['orphan_count']},"
        f" records without a file: {len(files['records_without_file'])}"
    )
    log(
        f"  app RSS ({len(rss['processes'])} processes): start {mib(rss['start'])},"
        f" warm-up {mib(rss['warmup'])}, end {mib(rss['end'])}, growth {mib(rss['growth'])},"
        f" peak after warm-up {mib(rss['peak_after_warmup'])}, after verification"
        f" {mib(rss['after_verify'])}"
    )
    warm, end = rss["by_process"].get("warmup", {}), rss["by_process"].get("end", {})
    log(
        "  per process, warm-up -> end: "
        + ", ".join(
            f"{pid}: {mib(warm.get(pid))} -> {mib(end.get(pid))}" for pid in rss["processes"]
        )
    )
    log(
        f"  nginx access log statuses: {report['nginx_statuses']};"
        f" stack log tracebacks: {report['stack_log_tracebacks']}"
    )
    for line in report["problems"][:10] + report["transport_error_samples"][:10]:
        log(f"  ! {line}")
    for entry in report["server_errors"][:10]:
        log(f"  ! 5xx: {entry}")
    if report["failures"]:
        log("FAILED:")
        for failure in report["failures"]:
            log(f"  - {failure}")
    else:
        log("PASSED: no 5xx, no transport error, every file intact, memory flat")


def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    warmup = max(WARMUP_FRACTION * args.duration, min(MIN_WARMUP, args.duration / 2))
    data_dir = Path(tempfile.mkdtemp(prefix="gateway-soak-"))
    database, url = start_database()
    stack = Stack(
        data_dir,
        {"GATEWAY_WORKERS": str(WORKERS), "GATEWAY_DATABASE_URL": url},
    )
    report: dict[str, Any] | None = None
    try:
        log(f"starting the stack on {stack.url} (database {database}, data in {data_dir})")
        stack.start()
        if urllib.parse.urlsplit(stack.url).hostname != "127.0.0.1":
            raise RuntimeError(f"the stack is not on loopback: {stack.url}")
        soak = prepare(stack, rng)
        soak.max_uploads = args.max_uploads
        soak.access_log_offset = access_log(stack).stat().st_size
        memory = Memory(stack.app_pids())
        memory.start = memory.sample(stack)
        log(
            f"{USERS} users with {FILES_PER_USER} files each; app processes {memory.pids},"
            f" RSS {memory.start / 1024:.1f} MiB; {args.clients} clients for {args.duration:.0f}s"
        )
        elapsed = asyncio.run(load(soak, args.clients, args.duration, warmup, memory, args.seed))
        log(f"load over after {elapsed:.1f}s; reading every file back")
        checked = asyncio.run(
            asyncio.wait_for(verify_files(soak), VERIFY_ALLOWANCE + args.duration)
        )
        disk = check_disk(soak)
        memory.after_verify = memory.sample(stack)
        report = report_of(soak, args, elapsed, warmup, memory, checked, disk, stack.log())
    finally:
        signal.alarm(0)  # the cleanup has its own timeouts
        stack.stop()
        postgres_admin("DROP DATABASE IF EXISTS {name} WITH (FORCE)", database)
        if report is None or report["failures"]:
            tail = stack.log()[-4000:]
            if tail:
                log(f"the stack's log ends with:\n{tail}")
            log(f"data kept in {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    print_summary(report)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    log(f"written to {args.output / 'results.json'}")
    return 1 if report["failures"] else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load (300)")
    parser.add_argument("--clients", type=int, default=256, help="concurrent clients (256)")
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="where results.json goes"
    )
    parser.add_argument("--max-uploads", type=int, default=100_000, help="uploads at most (100000)")
    parser.add_argument(
        "--max-rss-growth-mib",
        type=float,
        default=20.0,
        help="allowed RSS growth after the warm-up",
    )
    parser.add_argument("--seed", type=int, default=1, help="of the clients' choices and contents")
    args = parser.parse_args(argv)
    if not 0 < args.duration <= MAX_DURATION:
        parser.error(f"--duration must be in (0, {MAX_DURATION:.0f}]")
    if not USERS <= args.clients <= MAX_CLIENTS:
        parser.error(f"--clients must be in [{USERS}, {MAX_CLIENTS}]")
    if args.max_uploads < 0:
        parser.error("--max-uploads must not be negative")
    return args


def _timed_out(*_: object) -> None:
    raise SoakTimeout("the hard timeout struck")


def _terminate(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    # The backstop: each phase has its own timeout, this one ends the whole run.
    signal.signal(signal.SIGALRM, _timed_out)
    # 580 s for 20 s of load, 900 s for 180 s.
    load = args.duration + REQUEST_TIMEOUT + 60
    signal.alarm(int(SETUP_ALLOWANCE + load + VERIFY_ALLOWANCE + args.duration))
    try:
        sys.exit(run(args))
    except SoakTimeout:
        log("FAILED: the hard timeout struck")
        sys.exit(2)


if __name__ == "__main__":
    main()
