"""Where a busy worker's CPU goes, from perf's samples of the running process.

Python 3.12 and newer name their functions to perf (``PYTHONPERFSUPPORT=1``).
perf samples on the CPU clock without stopping the process (py-spy stops it
for each sample, or reads torn stacks with ``--nonblocking``), and with
``--call-graph dwarf`` unwinds the C stack of each sample up to the first
Python frame, where it stops. So each sample belongs to exactly one Python
function: the innermost one, whose bytecode, or C code it called (SQLite, a
socket write in the kernel), was running. This prints those self shares,
grouped by what the code is, then the heaviest functions:

    PYTHONPERFSUPPORT=1 .venv-next/bin/python -m bench.bench --cases gateway \\
        --sizes 4KiB --concurrency 32 --duration 25 &
    # once wrk runs, the worker: the uvicorn process serving gateway.asgi
    perf record -e cpu-clock -F 400 --call-graph dwarf,32768 -p <pid> -o perf.data -- sleep 10
    perf script -i perf.data > perf.txt
    python -m bench.perf_shares perf.txt --top 30

Being self time, a share is not a function's whole cost: what it calls in
Python is counted under the callee.
"""

from __future__ import annotations

import argparse
import itertools
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

# A Python frame as perf prints it: "<address> py::<function>:<file>+<offset> (<map>)".
_PYTHON_FRAME = re.compile(r"\spy::(?P<function>[^:]+):(?P<file>\S+?)\+0x[0-9a-f]+\s")
_KERNEL = "[kernel.kallsyms]"
_INSTALLED = re.compile(r"^.*/(?:site-packages|lib/python3\.\d+)/|^.*/(?=protected_media/)")
# The first group whose folder or file the function's file contains.
GROUPS = (
    ("uvicorn's protocol and its proxy-headers middleware", ("/uvicorn/",)),
    ("the event loop (asyncio's runner and uvloop)", ("/asyncio/", "uvloop")),
    (
        "the database: statements, rows, the pool",
        ("fastpath/sqlite_reads.py", "fastpath/prepared.py", "/psycopg/", "/psycopg_pool/"),
    ),
    ("the audit line (logging)", ("/logging/", "protected_media/audit.py")),
    ("the metrics (prometheus-client)", ("/prometheus_client/",)),
    ("the check (protected_media)", ("/protected_media/",)),
    ("Django's helpers", ("/django/",)),
)
OTHER_PYTHON = "other Python (json, posixpath, ...)"
NO_PYTHON = "no Python frame on the stack"


@dataclass(frozen=True)
class Sample:
    function: str | None  # the innermost Python function, None when none was seen
    file: str
    in_kernel: bool  # the kernel ran below it (a system call, a page fault)


def samples(lines: Iterable[str]) -> Iterator[Sample]:
    """The samples of ``perf script``'s output: a header line, then one
    frame a line, innermost first, then a blank line."""
    frames: list[str] = []
    for line in itertools.chain(lines, [""]):
        if line.strip():
            if line[0].isspace():
                frames.append(line)
            continue
        if frames:
            yield _sample(frames)
            frames = []


def _sample(frames: list[str]) -> Sample:
    in_kernel = False
    for frame in frames:
        found = _PYTHON_FRAME.search(frame)
        if found:
            return Sample(found["function"], found["file"], in_kernel)
        in_kernel = in_kernel or _KERNEL in frame
    return Sample(None, "", in_kernel)


def group_of(sample: Sample) -> str:
    if sample.function is None:
        return NO_PYTHON
    for label, parts in GROUPS:
        if any(part in sample.file for part in parts):
            return label
    return OTHER_PYTHON


def short_path(file: str) -> str:
    """The file from its package or standard library folder on."""
    return _INSTALLED.sub("", file)


def report(taken: list[Sample], top: int) -> str:
    total = len(taken)
    if not total:
        return "no samples"
    groups = Counter(group_of(sample) for sample in taken)
    kernel = Counter(group_of(sample) for sample in taken if sample.in_kernel)
    lines = [f"{total} samples", "", f"{'share':>6}  {'in the kernel':>13}  group"]
    for label, count in groups.most_common():
        lines.append(f"{count / total:6.1%}  {kernel[label] / total:13.1%}  {label}")
    functions = Counter(
        (sample.function, short_path(sample.file), sample.in_kernel)
        for sample in taken
        if sample.function is not None
    )
    lines += ["", f"the {top} heaviest functions (self; 'kernel': below it, in the kernel)"]
    for (function, file, in_kernel), count in functions.most_common(top):
        where = " kernel" if in_kernel else ""
        lines.append(f"{count / total:6.1%}  {function}  ({file}){where}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("script", type=Path, help="perf script's output")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args(argv)
    with args.script.open(encoding="utf-8", errors="replace") as handle:
        print(report(list(samples(handle)), args.top))


if __name__ == "__main__":
    main()
