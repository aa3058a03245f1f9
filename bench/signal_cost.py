"""What counting decisions costs on the hot path. A probe, not a test.

    python -m bench.signal_cost [--rounds N] [--calls N]

Times ``protected_media.audit.arecord`` (the audit step every media decision
ends with: the log line, the ``file_served`` / ``file_denied`` signal and the
decision counters) in one process on one uvloop event loop, in rounds that
alternate between three setups so that drift in the machine's load falls on
all alike:

- ``no counter``: nothing connected (a site without metrics);
- ``metrics``: ``ops.metrics`` connected as the app connects it when
  PROTECTED_MEDIA_METRICS_URL is set (a plain counter the audit calls);
- ``via signal``: the same count made by an async receiver of the decision
  signals instead, which ``asend_robust`` runs as an asyncio task.

Prints each setup's median microseconds per decision and its ratio to
``no counter``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

import uvloop

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

from django.test import RequestFactory  # noqa: E402

from protected_media import audit  # noqa: E402
from protected_media.decision import Reason, Refusal  # noqa: E402
from protected_media.ops import metrics  # noqa: E402
from protected_media.signals import file_denied  # noqa: E402

SETUPS = ("no counter", "metrics", "via signal")


async def count_through_the_signal(*, reason: str, latency: float, **kwargs: object) -> None:
    metrics.record_decision(audit.DENIED, str(reason), latency)


async def one_round(setup: str, calls: int) -> float:
    """Seconds per decision over ``calls`` refusals (no record needed)."""
    factory = RequestFactory()
    refusal = Refusal(Reason.NO_RECORD)
    if setup == "metrics":
        metrics.connect()
    elif setup == "via signal":
        file_denied.connect(count_through_the_signal)
    try:
        begin = time.perf_counter()
        for _ in range(calls):
            request = factory.get("/media/x")
            await audit.arecord(request, refusal, kind="media", key=None, user=None)
        return (time.perf_counter() - begin) / calls
    finally:
        metrics.disconnect()
        file_denied.disconnect(count_through_the_signal)


async def main(rounds: int, calls: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {setup: [] for setup in SETUPS}
    for _ in range(rounds):
        for setup in SETUPS:
            results[setup].append(await one_round(setup, calls))
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=2000)
    arguments = parser.parse_args()
    # uvloop, as uvicorn runs the gateway: its tasks are cheaper than asyncio's.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        timings = runner.run(main(arguments.rounds, arguments.calls))
    base = statistics.median(timings["no counter"])
    for setup in SETUPS:
        median = statistics.median(timings[setup])
        print(f"{setup:>13}: {median * 1e6:7.1f} µs per decision  ({median / base:.2f}x)")
