from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Sized
from pathlib import Path
from typing import Any, TypeVar

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper

from ...conf import conf
from ...ops import orphans

T = TypeVar("T")
# How often the progress line is redrawn: often enough to see it move, rarely
# enough that a walk of millions of entries does not spend its time drawing.
PROGRESS_INTERVAL = 0.2


def _plain(text: str) -> str:
    return text


def progress(items: Iterable[T], stream: OutputWrapper, *, doing: str, unit: str) -> Iterator[T]:
    """Yield ``items``, keeping one line on the terminal ``stream`` up to date
    with how many went by (of how many, when ``items`` knows); the line stays
    at the end, with the time taken."""
    of_total = f"/{len(items):,}" if isinstance(items, Sized) else ""
    started = shown = time.monotonic()

    def draw(count: int, ending: str = "") -> None:
        # A carriage return redraws the line in place; plain, since stderr's
        # style would paint it as an error.
        stream.write(f"\r{doing}: {count:,}{of_total} {unit}{ending}", _plain, ending="")
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


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class Command(BaseCommand):
    help = (
        "Report files under SENDFILE_ROOT without a StoredFile record and records "
        "without a file; remove them with --delete."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--delete", action="store_true", help="remove the orphans found (default: report only)"
        )
        parser.add_argument(
            "--grace",
            type=float,
            default=orphans.DEFAULT_GRACE,
            metavar="SECONDS",
            help="leave files changed and records created this recently (default 3600)",
        )
        parser.add_argument(
            "--no-progress",
            dest="progress",
            action="store_false",
            help="no progress line (there is none when standard error is not a terminal)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if conf.root is None:
            raise CommandError("SENDFILE_ROOT is not set.")
        root = Path(os.path.abspath(conf.root))  # as the storage joins names
        if not root.is_dir():
            raise CommandError(f"The private root {root} is not a folder.")
        if options["grace"] < 0:
            raise CommandError("--grace cannot be negative.")
        self.show_progress = options["progress"] and self.stderr.isatty()
        grace = options["grace"]
        records = list(orphans.load_records())
        entries = self._progress(orphans.walk(root), "Walking the private root", "entries")
        report = orphans.classify(entries, records, now=time.time(), grace=grace)
        self._print(root, report, grace)
        if not options["delete"]:
            count = len(report.files_without_record) + len(report.records_without_file)
            if count:
                self.stdout.write(
                    f"Nothing deleted: run again with --delete to remove "
                    f"{_plural(len(report.files_without_record), 'file')} and "
                    f"{_plural(len(report.records_without_file), 'record')}."
                )
            return
        if report.records_without_file and not report.regular_files:
            # An empty or unmounted folder would make every record look fileless.
            raise CommandError(
                f"No file at all under {root}: is it the right folder, and mounted? "
                "Nothing was deleted."
            )
        self._delete(root, report, grace)

    def _delete(self, root: Path, report: orphans.Report, grace: float) -> None:
        files = records = 0
        skipped = []
        for entry in self._progress(report.files_without_record, "Deleting files", "files"):
            if orphans.delete_file(root, entry, now=time.time(), grace=grace):
                files += 1
            else:
                skipped.append(entry.name)
        for record in self._progress(report.records_without_file, "Deleting records", "records"):
            if orphans.delete_record(root, record):
                records += 1
            else:
                skipped.append(record.name)
        self.stdout.write(f"Deleted {_plural(files, 'file')} and {_plural(records, 'record')}.")
        for name in skipped:
            self.stdout.write(f"  skipped {orphans.display(name)}: it changed since the scan")

    def _progress(self, items: Iterable[T], doing: str, unit: str) -> Iterable[T]:
        if not self.show_progress:
            return items
        return progress(items, self.stderr, doing=doing, unit=unit)

    def _print(self, root: Path, report: orphans.Report, grace: float) -> None:
        write = self.stdout.write
        name = orphans.display
        write(f"Private root: {name(str(root))}")
        entries = "entry" if report.entries == 1 else "entries"
        write(
            f"Scanned {report.entries} {entries} on disk and {_plural(report.records, 'record')}."
        )
        write(f"Files without a record: {len(report.files_without_record)}")
        for entry in report.files_without_record:
            write(f"  {name(entry.name)} ({_plural(entry.size, 'byte')})")
        write(f"Records without a file: {len(report.records_without_file)}")
        for record in report.records_without_file:
            write(f"  {record.key} {name(record.name)} ({name(record.source)})")
        recent = len(report.recent_files) + len(report.recent_records)
        write(f"Kept, newer than {grace:g} s: {recent}")
        for entry in report.recent_files:
            write(f"  {name(entry.name)}")
        for record in report.recent_records:
            write(f"  {record.key} {name(record.name)} (record)")
        write(f"Kept, uploads being written: {len(report.temporary)}")
        for entry in report.temporary:
            write(f"  {name(entry.name)}")
        write(f"Symlinks, not followed and kept: {len(report.symlinks)}")
        for entry in report.symlinks:
            write(f"  {name(entry.name)} -> {name(entry.target)}")
        write(f"Other entries, kept: {len(report.other)}")
        for entry in report.other:
            write(f"  {name(entry.name or '.')} ({entry.kind.value})")
