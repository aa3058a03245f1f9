"""Where a case's CPU went: nginx, the app, the store and wrk, in seconds.

On a machine where the load generator, nginx, the app and the store share the
same few cores, a throughput ratio between two paths is bounded by what each
path costs in CPU per byte: when the cores are busy, the path that spends more
of them per GiB delivers fewer GiB. The benchmark prints these figures beside
the object-storage ratios so that a ratio can be read against that bound.
"""

from __future__ import annotations

import resource
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from tests.stack.harness import cpu_seconds

# Process groups, in the order they are printed.
GROUPS = ("app", "nginx", "database", "store", "wrk")


def descendants(root: int) -> list[int]:
    """``root`` and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        found.append(pid)
        pending.extend(children.get(pid, ()))
    return found


def everywhere(name: str) -> list[int]:
    """Every process on this machine whose command is ``name`` (a database
    server's, which the benchmark did not start)."""
    running = [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]
    return named(running, name)


def named(pids: list[int], name: str) -> list[int]:
    """The processes among ``pids`` whose command is ``name``."""
    kept = []
    for pid in pids:
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == name:
                kept.append(pid)
        except OSError:
            continue
    return kept


def _children_cpu() -> float:
    # Finished, waited-for children only: during a case that is wrk alone
    # (the stacks and the store run on until the end of the run).
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def cpu_spent(
    groups: Mapping[str, list[int]],
    found_again: Mapping[str, Callable[[], list[int]]] | None = None,
) -> Iterator[dict[str, float]]:
    """CPU seconds each group of processes, and wrk, spent inside the block
    (filled in when it ends). A group in ``found_again`` is looked up again at
    the end, and a process that joined it meanwhile (a database server's
    backend for a new connection) counts all it spent."""
    spent: dict[str, float] = {}
    before = {name: cpu_seconds(pids) for name, pids in groups.items()}
    before_children = _children_cpu()
    yield spent
    for name, pids in groups.items():
        again = (found_again or {}).get(name)
        joined = [pid for pid in again() if pid not in pids] if again else []
        spent[name] = cpu_seconds(pids) + cpu_seconds(joined) - before[name]
    spent["wrk"] = _children_cpu() - before_children


def per_gib(spent: Mapping[str, float], bytes_read: float) -> dict[str, float]:
    """CPU seconds per GiB delivered, by group."""
    gib = bytes_read / (1 << 30)
    return {name: seconds / gib for name, seconds in spent.items()} if gib else {}


def per_request(spent: Mapping[str, float], requests: int) -> dict[str, float]:
    """CPU microseconds per request, by group, in the order they are printed."""
    if not requests:
        return {}
    return {name: spent[name] / requests * 1e6 for name in GROUPS if name in spent}


def total(spent: Mapping[str, float]) -> float:
    return sum(spent.values())
