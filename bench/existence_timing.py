"""Does a refusal take longer when the file exists? A probe, not a test.

    python -m bench.existence_timing [--samples N] [--warmup N] [--database postgres]

Starts the real stack twice with the run command (nginx in front of uvicorn,
each in a fresh temporary data folder, as ``bench.bench`` does): once with
protected_media's ASGI entry point answering media requests, once with it off
(media through Django's handler and the view). On each, alice uploads a file
and bob signs in; then bob asks, through nginx on one kept-alive connection,
for alice's file (forbidden: it exists) and for random keys (missing), the two
kinds interleaved in a shuffled order so that drift in the machine's load
falls on both alike. Every answer must be the one 404. bob asks for each
missing key once before it is timed, as he asked for alice's file before:
the lean path reads a key the same session asked for before in fewer steps
(``fastpath.guesses``), whether or not a file by that key exists, so each
kind is compared as a key asked for before.

Prints, per path, each kind's median and the probability that a random
forbidden sample is slower than a random missing one (0.5: the two cannot be
told apart). Target: that probability within 0.40-0.60 and the medians within
5 % of each other. Exits non-zero if an answer was not the one 404.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import http.client
import random
import secrets
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.bench import BenchError, ensure_postgres, log, start_stack
from tests.stack.harness import Stack, cookie_header, upload

USERS = {"alice": "alice-pass-4821", "bob": "bob-pass-9377"}
NOT_FOUND = b"Not Found\n"
PATHS = {"entry-point": {}, "django-view": {"GATEWAY_FAST_MEDIA": "0"}}
P_RANGE = (0.40, 0.60)
MEDIAN_TOLERANCE = 0.05


@dataclass(frozen=True)
class Figures:
    path: str
    forbidden_ms: float
    missing_ms: float
    p_forbidden_slower: float

    @property
    def median_gap(self) -> float:
        return abs(self.forbidden_ms - self.missing_ms) / self.missing_ms

    @property
    def on_target(self) -> bool:
        low, high = P_RANGE
        return low <= self.p_forbidden_slower <= high and self.median_gap <= MEDIAN_TOLERANCE


def random_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode()


def p_slower(slow: list[float], fast: list[float]) -> float:
    """P(a random sample of ``slow`` exceeds one of ``fast``), ties counting half."""
    ordered = sorted(fast)
    wins = 0.0
    for value in slow:
        below = bisect.bisect_left(ordered, value)
        ties = bisect.bisect_right(ordered, value) - below
        wins += below + ties / 2
    return wins / (len(slow) * len(ordered))


def prepare(stack: Stack) -> tuple[str, dict[str, str]]:
    """alice's media path and bob's headers."""
    stack.shell(
        "from django.contrib.auth.models import User\n"
        + "".join(
            f"User.objects.create_user({name!r}, password={password!r})\n"
            for name, password in USERS.items()
        )
    )
    alice = stack.login("alice", USERS["alice"])
    try:
        response = upload(alice, "ledger.txt", b"balanced\n", "text/plain")
    finally:
        alice.close()
    if response.status_code != 201:
        raise BenchError(f"upload refused: {response.status_code} {response.text}")
    bob = stack.login("bob", USERS["bob"])
    bob.close()
    return str(response.json()["url"]), cookie_header(bob)


def fetch(connection: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    if response.status != 404 or body != NOT_FOUND:
        raise BenchError(f"{path}: {response.status} {body[:80]!r}, not the one 404")
    return elapsed * 1000


def probe(stack: Stack, name: str, samples: int, warmup: int) -> Figures:
    path, headers = prepare(stack)
    prefix = path.rsplit("/", 1)[0]
    connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    missing = [f"{prefix}/{random_key()}" for _ in range(samples)]
    try:
        for _ in range(warmup):
            fetch(connection, path, headers)
            fetch(connection, f"{prefix}/{random_key()}", headers)
        for target in missing:
            fetch(connection, target, headers)
        order = ["forbidden"] * samples + ["missing"] * samples
        random.shuffle(order)
        times: dict[str, list[float]] = {"forbidden": [], "missing": []}
        for kind in order:
            target = path if kind == "forbidden" else missing.pop()
            times[kind].append(fetch(connection, target, headers))
    finally:
        connection.close()
    return Figures(
        path=name,
        forbidden_ms=statistics.median(times["forbidden"]),
        missing_ms=statistics.median(times["missing"]),
        p_forbidden_slower=p_slower(times["forbidden"], times["missing"]),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=3000, help="requests of each kind")
    parser.add_argument("--warmup", type=int, default=200, help="pairs sent before timing")
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="the stacks' database (postgres: the benchmark's server)",
    )
    args = parser.parse_args(argv)
    postgres = args.database == "postgres"
    if postgres:
        ensure_postgres()
    results: list[Figures] = []
    folders: list[Path] = []
    try:
        for name, env in PATHS.items():
            stack = start_stack(name, 1, folders, env, postgres=postgres).start()
            try:
                log(f"{name}: {args.samples} forbidden and {args.samples} missing, interleaved")
                results.append(probe(stack, name, args.samples, args.warmup))
            finally:
                stack.stop()
    except BenchError as error:
        sys.exit(f"[bench] {error}")
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"{'path':<12} {'forbidden ms':>13} {'missing ms':>11} {'gap':>6} {'P(f>m)':>7}  target")
    for figures in results:
        print(
            f"{figures.path:<12} {figures.forbidden_ms:>13.3f} {figures.missing_ms:>11.3f}"
            f" {figures.median_gap:>6.1%} {figures.p_forbidden_slower:>7.3f}"
            f"  {'met' if figures.on_target else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
