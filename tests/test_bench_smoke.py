"""The benchmark command runs end to end (quick mode): every case answers, with
no failed request, and the raw figures and the chart are written. No timings
are judged here; they belong to `make bench`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parent.parent
# Eight stacks (two on PostgreSQL), a SeaweedFS and uvicorn alone, two
# uploads each, twenty-two one-second cases, and maybe installing wrk.
TIMEOUT = 900


def test_bench_smoke_runs_every_case(tmp_path: Path) -> None:
    output = tmp_path / "bench"
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench", "--smoke", "--output", str(output)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"

    report = json.loads((output / "results.json").read_text())
    assert report["failures"] == []
    assert {"nproc", "python", "nginx", "django", "date"} <= set(report["machine"])
    concurrencies = report["settings"]["concurrency"]
    seen = {(r["case"], r["size"], r["concurrency"]): r for r in report["results"]}
    expected = {
        (case, size, concurrency)
        for concurrency in concurrencies
        for size in ("4KiB", "1MiB")
        for case in ("static", "gateway", "fallback")
    } | {("health", None, concurrency) for concurrency in concurrencies}
    # The entry point's reads on the event loop, beside the same reads in its
    # threads, on SQLite and on PostgreSQL.
    expected |= {
        (case, "4KiB", concurrency)
        for case in ("gateway-threads", "gateway-pg", "gateway-pg-threads")
        for concurrency in concurrencies
    }
    # Django's bare floor and uvicorn's own, uvicorn alone with no nginx in front.
    expected |= {
        (case, None, concurrency)
        for case in ("floor", "asgi-floor")
        for concurrency in concurrencies
    }
    # The object store's path, once: through nginx and the check, and a
    # presigned GET straight to the store, side by side.
    expected |= {(case, "1MiB", max(concurrencies)) for case in ("s3-gateway", "s3-direct")}
    assert expected <= set(seen)
    for key in expected:
        result = seen[key]
        assert result["requests"] > 0, key
        assert result["non_2xx_3xx"] == 0, key
        assert sum(result["socket_errors"].values()) == 0, key
        assert result["problems"] == [], key
        assert result["rss_peak_kib"] > 0, key
        assert result["rss_after_kib"] > 0, key
    assert report["ratios"], "no ratios computed"
    assert "RATIOS" in done.stdout
    four_kib_rows = [row for row in report["ratios"] if row["size"] == "4KiB"]
    assert len(four_kib_rows) == len(concurrencies)
    for row in four_kib_rows:
        for ratio in (
            "loop_over_threads_rps",
            "pg_loop_over_threads_rps",
            "gateway_over_floor_rps",
            "gateway_pg_over_floor_rps",
        ):
            assert row[ratio] > 0, (ratio, row["concurrency"])
    for column in (
        "gateway/floor req/s",
        "gateway-pg/floor req/s",
        "gateway-pg/gateway-pg-threads req/s",
    ):
        assert column in done.stdout
    # A floor's CPU is uvicorn's alone: no nginx stands in front of it.
    for case in ("floor", "asgi-floor"):
        for concurrency in concurrencies:
            floor = seen[(case, None, concurrency)]
            assert floor["p99_ms"] > 0
            assert floor["cpu_s"]["app"] > 0
            assert floor["cpu_s"]["nginx"] == 0
            assert floor["nginx_statuses"] == {}
    # The database server beside the worker on this machine counts too, and
    # each case's CPU per request is printed by process.
    assert "CPU PER REQUEST" in done.stdout
    for case in ("gateway-pg", "gateway-pg-threads"):
        assert seen[(case, "4KiB", max(concurrencies))]["cpu_s"]["database"] > 0
    (store_row,) = [row for row in report["ratios"] if row["s3_rss_before_mib"] is not None]
    assert (store_row["size"], store_row["concurrency"]) == ("1MiB", max(concurrencies))
    assert store_row["s3_gateway_over_direct_mibps"] > 0
    assert store_row["s3_gateway_over_gateway_rps"] > 0
    # Where the CPU went: nginx and the store carried the gateway's case,
    # the store alone the direct one, and wrk drove both.
    store_gateway = seen[("s3-gateway", "1MiB", max(concurrencies))]["cpu_s"]
    store_direct = seen[("s3-direct", "1MiB", max(concurrencies))]["cpu_s"]
    assert min(store_gateway["nginx"], store_gateway["store"], store_gateway["wrk"]) > 0
    assert min(store_direct["store"], store_direct["wrk"]) > 0
    assert store_direct["nginx"] == 0
    assert 0 < store_row["s3_cpu_bound"] < 1
    assert "s3-gateway/s3-direct" in done.stdout

    assert (output / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def run_probe(module: str) -> subprocess.CompletedProcess[str]:
    """A cost probe of bench/, one short round."""
    done = subprocess.run(
        [sys.executable, "-m", module, "--rounds", "1", "--calls", "20"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


def test_signal_cost_probe_prints_each_setup() -> None:
    done = run_probe("bench.signal_cost")
    setups = [line.split(":")[0].strip() for line in done.stdout.splitlines()]
    assert setups == ["no counter", "metrics", "via signal"]
    assert all("µs per decision" in line for line in done.stdout.splitlines())


def test_route_cost_probe_times_both_lookups_on_both_urlconfs() -> None:
    done = run_probe("bench.route_cost")
    rows = done.stdout.splitlines()
    assert [row.split()[0] for row in rows] == ["gateway", "site"]
    # Each row: both lookups timed (the probe exits first if the media path
    # does not reach the media view) and their ratio.
    assert all(row.count(" µs") == 2 and float(row.split()[-1]) > 0 for row in rows)


def test_presign_cost_probe_prints_each_way_of_signing() -> None:
    done = run_probe("bench.presign_cost")
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["setup", "µs", "CPU", "per", "URL", "÷", "botocore"]
    assert [row.rsplit(None, 2)[0] for row in rows] == [
        "botocore client",
        "Presigner.sign",
        "Presigner.url, reused",
        "storage.presign, reused",
        "storage.presign, new key",
    ]
    # Every setup produced a figure, the botocore client's being the unit.
    assert all(float(row.split()[-2]) > 0 for row in rows)
    assert rows[0].split()[-1] == "1.000"


def test_existence_timing_probe_runs_both_paths() -> None:
    # A few samples: the probe's own figures belong to `make timing-probe`;
    # here, that it runs and that every refusal on both paths is the one 404
    # (it exits non-zero otherwise).
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-m", "bench.existence_timing", "--samples", "40", "--warmup", "5"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    rows = {line.split()[0] for line in done.stdout.splitlines() if line.strip()}
    assert {"entry-point", "django-view"} <= rows
