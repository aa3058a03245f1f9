"""The soak test's short version (`make soak` runs it for minutes): 256 clients
mixing static files, their own media, other users' media and uploads for
about 20 seconds against two uvicorn workers on PostgreSQL. No 5xx, no
transport error, every file intact and listed, and the app's memory flat
after the warm-up. Always on PostgreSQL, whichever database the rest of the
suite uses."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.stack

ROOT = Path(__file__).resolve().parents[2]
DURATION = 20
CLIENTS = 256
# Starting the stack, 16 users and their files, the load, reading every file
# back. The soak's own hard timeout (580 s for 20 s) strikes first and cleans up.
TIMEOUT = 900
MIN_PER_KIND = 10
# A bound on memory, not on time: resident memory of uvicorn's processes
# (supervisor and both workers) at the end against the end of the warm-up.
MAX_RSS_GROWTH_MIB = 20
# Both halves of `make test` run the suite at once on one PostgreSQL: two
# soaks together would hold two stacks' full pools (2 workers x (24 of
# Django's + 4 of the loop's) each) beside every other test's connections,
# past the server's max_connections. One soak at a time, machine-wide.
LOCK = Path(tempfile.gettempdir()) / "protected-media-soak.lock"


def test_soak_short_run(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    command = [
        *(sys.executable, "-m", "bench.soak"),
        *("--duration", str(DURATION), "--clients", str(CLIENTS)),
        *("--max-rss-growth-mib", str(MAX_RSS_GROWTH_MIB), "--output", str(tmp_path)),
    ]
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False
        )
    output = f"{done.stdout}\n{done.stderr}"
    assert (tmp_path / "results.json").exists(), output
    report = json.loads((tmp_path / "results.json").read_text())

    assert report["server_error_count"] == 0, report["server_errors"]
    assert report["transport_error_count"] == 0, report["transport_error_samples"]
    assert report["problem_count"] == 0, report["problems"]
    for kind, expected in (
        ("static", "200"),
        ("media", "200"),
        ("refused", "404"),
        ("upload", "201"),
    ):
        assert report["requests"][kind]["statuses"] == {
            expected: report["requests"][kind]["count"]
        }, kind
        assert report["requests"][kind]["count"] >= MIN_PER_KIND, (kind, output)
    assert not [code for code in report["nginx_statuses"] if code.startswith("5")]

    files = report["files"]
    assert report["uploads"]["accepted"] >= MIN_PER_KIND
    assert files["total"] == 16 * 4 + report["uploads"]["accepted"]
    assert files["verified"] == files["total"], files["failed"]
    assert files["lost"] == [] and files["extra"] == []
    assert files["temporary_left"] == [] and files["missing_on_disk"] == []
    assert files["orphan_count"] == 0, files["orphans_on_disk"]
    assert files["records_without_file"] == []

    rss = report["rss_kib"]
    assert rss["processes_changed"] == []
    assert len(rss["processes"]) >= 3  # the supervisor and two workers
    assert rss["growth"] < MAX_RSS_GROWTH_MIB * 1024, rss

    assert report["failures"] == []
    assert done.returncode == 0, output
