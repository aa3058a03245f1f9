"""Where a media request's time goes, from a sampling profiler's stacks.

cProfile (``profile_check --profile``) times every call, which inflates code
made of many small calls (logging, Django's settings proxy) several times
over. A sampling profiler does not; py-spy (a separate tool, not one of the
project's dependencies) writes its samples as collapsed stacks, one
``frame;frame;... count`` line each, and this prints each function's
inclusive share of the samples taken inside one request:

    py-spy record --nonblocking --rate 250 --format raw --output spy.txt -- \\
        python -m bench.profile_check --requests 40000
    python -m bench.sampled_shares spy.txt --top 40
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

# The frame that one request's samples sit under in profile_check.
REQUEST_FRAME = "one_request"
_LOCATION = re.compile(r" \(.*\)$")


def shares(lines: list[str], within: str = REQUEST_FRAME) -> tuple[int, Counter[str]]:
    """The number of samples under ``within`` and, for each function seen
    there (its name without file and line), the samples that had it on the
    stack, each sample counted once per function."""
    total = 0
    inclusive: Counter[str] = Counter()
    for line in lines:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        if not any(frame.startswith(within + " ") for frame in frames):
            continue
        count = int(count_text)
        total += count
        for name in {_LOCATION.sub("", frame) for frame in frames}:
            inclusive[name] += count
    return total, inclusive


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("stacks", type=Path, help="py-spy's --format raw output")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--within", default=REQUEST_FRAME, help="the request's frame")
    args = parser.parse_args(argv)
    total, inclusive = shares(args.stacks.read_text().splitlines(), args.within)
    if not total:
        raise SystemExit(f"no sample under {args.within!r} in {args.stacks}")
    print(f"{total} samples under {args.within}")
    for name, count in inclusive.most_common(args.top):
        print(f"{100 * count / total:5.1f} %  {name}")


if __name__ == "__main__":
    main()
