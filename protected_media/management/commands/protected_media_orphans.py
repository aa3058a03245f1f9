from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError, CommandParser

from ...conf import S3_STORAGE, conf
from ...ops import orphans
from ...storage import protected_storage, selected_class
from ..progress import ProgressCommand, plural


@dataclass(frozen=True)
class Place:
    """Where the private files are: the private root or the bucket, as the
    report names it and as the deletions reach it."""

    heading: str
    scanned: Callable[[int], str]  # "3 entries on disk"
    walking: str
    unit: str
    entries: Callable[[], Iterator[orphans.DiskEntry]]
    delete_file: Callable[..., bool]  # (entry, *, now, grace)
    delete_record: Callable[[orphans.Record], bool]
    empty: str  # why deleting with no file at all is refused
    on_disk: bool
    # What the place raises when it cannot be read: turned into a CommandError.
    errors: tuple[type[Exception], ...] = ()


def _disk() -> Place:
    if conf.root is None:
        raise CommandError("SENDFILE_ROOT is not set.")
    root = Path(os.path.abspath(conf.root))  # as the storage joins names
    if not root.is_dir():
        raise CommandError(f"The private root {root} is not a folder.")
    return Place(
        heading=f"Private root: {orphans.display(str(root))}",
        scanned=lambda count: f"{count} {'entry' if count == 1 else 'entries'} on disk",
        walking="Walking the private root",
        unit="entries",
        entries=lambda: orphans.walk(root),
        delete_file=functools.partial(orphans.delete_file, root),
        delete_record=functools.partial(orphans.delete_record, root),
        empty=f"No file at all under {root}: is it the right folder, and mounted?",
        on_disk=True,
    )


def _bucket() -> Place:
    try:
        selected_class()
    except ImproperlyConfigured as error:
        raise CommandError(str(error)) from error
    if not conf.s3_bucket or not conf.s3_endpoint_url:
        raise CommandError(
            "PROTECTED_MEDIA_S3_BUCKET and PROTECTED_MEDIA_S3_ENDPOINT_URL must be set."
        )
    # Imported here: boto3 is the s3 extra, installed only where it is selected.
    from ...ops import bucket_orphans

    bucket = bucket_orphans.Bucket(protected_storage)
    return Place(
        heading=f"Bucket: {orphans.display(str(bucket))}",
        scanned=lambda count: f"{plural(count, 'object')} in the bucket",
        walking="Listing the bucket",
        unit="objects",
        entries=bucket.entries,
        delete_file=bucket.delete_object,
        delete_record=bucket.delete_record,
        empty=f"No object at all in bucket {bucket}: is it the right bucket?",
        on_disk=False,
        errors=(bucket_orphans.BucketError,),
    )


class Command(ProgressCommand):
    help = (
        "Report private files without a StoredFile record and records without a "
        "file: under SENDFILE_ROOT, or in the bucket when PROTECTED_MEDIA_STORAGE "
        'is "s3"; remove them with --delete.'
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
        self.add_progress_argument(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        place = _bucket() if conf.storage == S3_STORAGE else _disk()
        if options["grace"] < 0:
            raise CommandError("--grace cannot be negative.")
        self.start_progress(options)
        grace = options["grace"]
        records = list(orphans.load_records())
        entries = self.progress(place.entries(), place.walking, place.unit)
        try:
            report = orphans.classify(entries, records, now=time.time(), grace=grace)
        except place.errors as error:
            self.end_progress_line()
            raise CommandError(f"{error}\nNothing was deleted.") from error
        self._print(place, report, grace)
        if not options["delete"]:
            count = len(report.files_without_record) + len(report.records_without_file)
            if count:
                self.stdout.write(
                    f"Nothing deleted: run again with --delete to remove "
                    f"{plural(len(report.files_without_record), 'file')} and "
                    f"{plural(len(report.records_without_file), 'record')}."
                )
            return
        if report.records_without_file and not report.regular_files:
            # An empty or unmounted folder, or the wrong bucket, would make
            # every record look fileless.
            raise CommandError(f"{place.empty} Nothing was deleted.")
        self._delete(place, report, grace)

    def _delete(self, place: Place, report: orphans.Report, grace: float) -> None:
        files = records = 0
        skipped = []
        try:
            for entry in self.progress(report.files_without_record, "Deleting files", "files"):
                if place.delete_file(entry, now=time.time(), grace=grace):
                    files += 1
                else:
                    skipped.append(entry.name)
            for record in self.progress(report.records_without_file, "Deleting records", "records"):
                if place.delete_record(record):
                    records += 1
                else:
                    skipped.append(record.name)
        except place.errors as error:
            self.end_progress_line()
            raise CommandError(
                f"{error}\nStopped after deleting {plural(files, 'file')} and "
                f"{plural(records, 'record')}."
            ) from error
        self.stdout.write(f"Deleted {plural(files, 'file')} and {plural(records, 'record')}.")
        for name in skipped:
            self.stdout.write(f"  skipped {orphans.display(name)}: it changed since the scan")

    def _print(self, place: Place, report: orphans.Report, grace: float) -> None:
        write = self.stdout.write
        name = orphans.display
        write(place.heading)
        write(f"Scanned {place.scanned(report.entries)} and {plural(report.records, 'record')}.")
        write(f"Files without a record: {len(report.files_without_record)}")
        for entry in report.files_without_record:
            write(f"  {name(entry.name)} ({plural(entry.size, 'byte')})")
        write(f"Records without a file: {len(report.records_without_file)}")
        for record in report.records_without_file:
            write(f"  {record.key} {name(record.name)} ({name(record.source)})")
        recent = len(report.recent_files) + len(report.recent_records)
        write(f"Kept, newer than {grace:g} s: {recent}")
        for entry in report.recent_files:
            write(f"  {name(entry.name)}")
        for record in report.recent_records:
            write(f"  {record.key} {name(record.name)} (record)")
        if place.on_disk:
            # A bucket has neither: an upload's object appears whole, and no key links to another.
            write(f"Kept, uploads being written: {len(report.temporary)}")
            for entry in report.temporary:
                write(f"  {name(entry.name)}")
            write(f"Symlinks, not followed and kept: {len(report.symlinks)}")
            for entry in report.symlinks:
                write(f"  {name(entry.name)} -> {name(entry.target)}")
        write(f"Other entries, kept: {len(report.other)}")
        for entry in report.other:
            write(f"  {name(entry.name or '.')} ({entry.kind.value})")
