"""The progress line of the long-running commands (orphans, adopt)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sized
from typing import TypeVar

from django.core.management.base import BaseCommand, CommandParser, OutputWrapper

T = TypeVar("T")
# How often the progress line is redrawn: often enough to see it move, rarely
# enough that a walk of millions of entries does not spend its time drawing.
PROGRESS_INTERVAL = 0.2


def plain(text: str) -> str:
    """No style: stderr's would paint a progress line as an error."""
    return text


def progress(items: Iterable[T], stream: OutputWrapper, *, doing: str, unit: str) -> Iterator[T]:
    """Yield ``items``, keeping one line on the terminal ``stream`` up to date
    with how many went by (of how many, when ``items`` knows); the line stays
    at the end, with the time taken."""
    of_total = f"/{len(items):,}" if isinstance(items, Sized) else ""
    started = shown = time.monotonic()

    def draw(count: int, ending: str = "") -> None:
        # A carriage return redraws the line in place.
        stream.write(f"\r{doing}: {count:,}{of_total} {unit}{ending}", plain, ending="")
        stream.flush()

    count = 0
    draw(count)
    for item in items:
        count += 1
        now = time.monotonic()
        if now - shown >= PROGRESS_INTERVAL:
            draw(count)
            shown = now
        yield item
    draw(count, f" in {time.monotonic() - started:.1f} s\n")


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class ProgressCommand(BaseCommand):
    """A command with a progress line on a terminal's standard error, and
    ``--no-progress`` to go without."""

    show_progress = False

    def add_progress_argument(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--no-progress",
            dest="progress",
            action="store_false",
            help="no progress line (there is none when standard error is not a terminal)",
        )

    def start_progress(self, options: dict[str, object]) -> None:
        self.show_progress = bool(options["progress"]) and self.stderr.isatty()

    def progress(self, items: Iterable[T], doing: str, unit: str) -> Iterable[T]:
        if not self.show_progress:
            return items
        return progress(items, self.stderr, doing=doing, unit=unit)

    def end_progress_line(self) -> None:
        # A progress line cut short has no newline: what follows goes below it.
        if self.show_progress:
            self.stderr.write("", plain)
