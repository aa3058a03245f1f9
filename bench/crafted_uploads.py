"""What a crafted upload costs the worker that inspects it, measured.

    python -m bench.crafted_uploads [--flood 8] [--seconds 15]

Starts the gateway with the run command (default settings, one uvicorn
worker, in a fresh temporary data folder, as ``bench.bench`` does), signs a
user in and sends, through nginx, each upload of ``bench.crafted_inputs``
built at the default limits. For each it prints the answer, the wall time,
the worker's CPU seconds (from ``/proc/<pid>/stat``) and the growth of its
peak resident memory during the upload (``VmHWM``, reset through
``clear_refs``) over the idle worker's.

Then another user fetches a small file of theirs through the gateway, one
request after another, for ``--seconds``: once alone, once while ``--flood``
clients send crafted uploads back to back; p50 and p99 printed side by side.
Exits non-zero when an answer is not the expected one or a target is missed
(2 s of CPU, 256 MiB of memory growth per upload).
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.crafted_inputs import DEFAULT_LIMITS, Crafted, crafted
from tests.stack.harness import Stack, cpu_seconds, upload

CPU_TARGET_S = 2.0
RSS_TARGET_MIB = 256.0
USERS = {"crafter": "crafter-pass-2291", "reader": "reader-pass-7730"}
SETTLE_S = 0.3


def log(message: str) -> None:
    print(f"[crafted] {message}", flush=True)


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def reset_peaks(pids: list[int]) -> int:
    """Reset each process's peak RSS to its current RSS; their sum, in KiB."""
    for pid in pids:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    return sum(_status_kib(pid, "VmRSS") for pid in pids)


def peak_kib(pids: list[int]) -> int:
    return sum(_status_kib(pid, "VmHWM") for pid in pids)


def answer_of(response: httpx.Response) -> str:
    if response.status_code == 201:
        return "201 stored"
    try:
        message = str(response.json().get("error", ""))
    except ValueError:
        message = response.text[:60]
    return f"{response.status_code} {message}"


def measure(stack: Stack, client: httpx.Client, cases: list[Crafted]) -> list[dict[str, object]]:
    workers = stack.app_pids()
    # Growth is counted from the idle worker, not from its memory before each
    # upload: what an earlier upload left allocated counts against the later.
    idle_rss = reset_peaks(workers)
    rows = []
    for case in cases:
        time.sleep(SETTLE_S)
        reset_peaks(workers)
        before_cpu = cpu_seconds(workers)
        started = time.perf_counter()
        response = upload(client, f"{case.name}.bin", case.data)
        wall = time.perf_counter() - started
        cpu = cpu_seconds(workers) - before_cpu
        growth = (peak_kib(workers) - idle_rss) / 1024
        ok = response.status_code == case.status
        rows.append(
            {
                "case": case.name,
                "size": len(case.data),
                "expected": case.status,
                "answer": answer_of(response),
                "wall_s": wall,
                "cpu_s": cpu,
                "rss_growth_mib": growth,
                "ok": ok and cpu <= CPU_TARGET_S and growth <= RSS_TARGET_MIB,
            }
        )
        log(f"{case.name}: {rows[-1]['answer'][:60]} cpu {cpu:.2f}s rss +{growth:.0f} MiB")
        if response.status_code == 201:
            client.delete(
                f"/api/files/{response.json()['id']}/",
                headers={"X-CSRFToken": client.cookies["csrftoken"], "Origin": stack.url},
            )
    return rows


def latencies(client: httpx.Client, path: str, stop: threading.Event) -> list[float]:
    found = []
    while not stop.is_set():
        started = time.perf_counter()
        response = client.get(path)
        found.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"the reader's file answered {response.status_code}")
    return found


def flood(stack: Stack, cases: list[Crafted], clients: int, seconds: float, media: tuple) -> dict:
    reader, path = media
    stop = threading.Event()
    sent: list[int] = []

    def crafter(offset: int) -> None:
        client = stack.login("crafter", USERS["crafter"])
        client.timeout = httpx.Timeout(120)
        try:
            for case in itertools.islice(itertools.cycle(cases), offset, None):
                if stop.is_set():
                    return
                response = upload(client, f"{case.name}.bin", case.data)
                sent.append(response.status_code)
        finally:
            client.close()

    threads = [threading.Thread(target=crafter, args=(index * 3,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # every flooder has a request in flight
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    measured = latencies(reader, path, stop)
    for thread in threads:
        thread.join()
    return {"requests": len(measured), "uploads": len(sent), **_percentiles(measured)}


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50_ms": statistics.median(ordered),
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
    }


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| upload | bytes | answer | wall s | CPU s | RSS growth MiB |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for row in rows:
        answer = str(row["answer"])
        answer = answer if len(answer) <= 70 else answer[:67] + "..."
        mark = "" if row["ok"] else " **(over target or unexpected)**"
        lines.append(
            f"| `{row['case']}` | {row['size']:,} | {answer}{mark} | {row['wall_s']:.2f} "
            f"| {row['cpu_s']:.2f} | {row['rss_growth_mib']:.0f} |"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    log("building the crafted uploads at the default limits")
    cases = crafted(DEFAULT_LIMITS)
    data_dir = Path(tempfile.mkdtemp(prefix="gateway-crafted-"))
    stack = Stack(data_dir, {"GATEWAY_WORKERS": "1"})
    log(f"starting a stack on {stack.url} (data in {data_dir})")
    stack.start()
    try:
        stack.shell(
            "from django.contrib.auth.models import User\n"
            + "".join(
                f"User.objects.create_user({u!r}, password={p!r})\n" for u, p in USERS.items()
            )
        )
        client = stack.login("crafter", USERS["crafter"])
        client.timeout = httpx.Timeout(120)
        rows = measure(stack, client, cases)
        reader = stack.login("reader", USERS["reader"])
        small = upload(reader, "small.txt", b"a small file of the reader's own\n")
        path = httpx.URL(small.json()["url"]).path
        stop = threading.Event()
        threading.Timer(args.seconds, stop.set).start()
        alone = _percentiles(latencies(reader, path, stop))
        log(f"flooding with {args.flood} crafted uploads at once for {args.seconds:g}s")
        flooded = flood(stack, cases, args.flood, args.seconds, (reader, path))
    finally:
        stack.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    print()
    print(table(rows))
    print()
    print("| another user's small file | p50 ms | p99 ms |")
    print("|---|---:|---:|")
    print(f"| alone | {alone['p50_ms']:.1f} | {alone['p99_ms']:.1f} |")
    print(
        f"| during {args.flood} concurrent crafted uploads ({flooded['uploads']} sent) "
        f"| {flooded['p50_ms']:.1f} | {flooded['p99_ms']:.1f} |"
    )
    worst_cpu = max(float(row["cpu_s"]) for row in rows)
    worst_rss = max(float(row["rss_growth_mib"]) for row in rows)
    print(
        f"\nworst: {worst_cpu:.2f} s of CPU, +{worst_rss:.0f} MiB of RSS "
        f"(targets {CPU_TARGET_S:g} s, {RSS_TARGET_MIB:g} MiB)"
    )
    return 0 if all(row["ok"] for row in rows) else 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flood", type=int, default=8, help="concurrent crafted uploads")
    parser.add_argument("--seconds", type=float, default=15.0, help="each latency window")
    sys.exit(run(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
