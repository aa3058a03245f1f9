"""Orphans both ways: files under the private root without a StoredFile record,
and records without a file.

``classify`` is pure: it sorts what ``walk`` found on disk and what
``load_records`` read from the database. The deletions check again, one item
at a time, that the item is still an orphan just before removing it.
"""

from __future__ import annotations

import enum
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction

from ..records import StoredFile
from ..storage import TEMPORARY_PREFIX

# An upload links its file into place, then commits its record: a file
# without a record is left alone until it is older than this.
DEFAULT_GRACE = 3600.0


class Kind(enum.Enum):
    FILE = "file"
    TEMPORARY = "temporary"
    SYMLINK = "symlink"
    OTHER = "other"  # a fifo, socket or device
    UNREADABLE = "unreadable"  # a folder that could not be listed


@dataclass(frozen=True)
class DiskEntry:
    name: str  # relative to the root, "/"-separated
    kind: Kind
    # The later of mtime and ctime: a file just linked into place, or
    # restored with an old mtime, counts as new.
    changed: float = 0.0
    size: int = 0
    target: str = ""  # where a symlink points; read, never followed


@dataclass(frozen=True)
class Record:
    key: str
    name: str
    source: str
    created: float


@dataclass
class Report:
    entries: int = 0
    records: int = 0
    regular_files: int = 0
    files_without_record: list[DiskEntry] = field(default_factory=list)
    records_without_file: list[Record] = field(default_factory=list)
    recent_files: list[DiskEntry] = field(default_factory=list)
    recent_records: list[Record] = field(default_factory=list)
    temporary: list[DiskEntry] = field(default_factory=list)
    symlinks: list[DiskEntry] = field(default_factory=list)
    other: list[DiskEntry] = field(default_factory=list)


def classify(
    entries: Iterable[DiskEntry], records: Iterable[Record], *, now: float, grace: float
) -> Report:
    report = Report()
    by_name = {record.name: record for record in records}
    report.records = len(by_name)
    present: set[str] = set()
    unreadable: list[str] = []
    for entry in entries:
        report.entries += 1
        if entry.kind is Kind.FILE:
            report.regular_files += 1
            if entry.name in by_name:
                present.add(entry.name)
            elif entry.changed > now - grace:
                report.recent_files.append(entry)
            else:
                report.files_without_record.append(entry)
            continue
        # Whatever else holds a recorded name is reported, and its record is
        # not called fileless: the operator decides what it is.
        present.add(entry.name)
        if entry.kind is Kind.TEMPORARY:
            report.temporary.append(entry)
        elif entry.kind is Kind.SYMLINK:
            report.symlinks.append(entry)
        else:
            report.other.append(entry)
            if entry.kind is Kind.UNREADABLE:
                # An unreadable root hides everything: no record is fileless.
                unreadable.append(f"{entry.name}/" if entry.name else "")
    for name, record in by_name.items():
        if name in present or name.startswith(tuple(unreadable)):
            continue
        if record.created > now - grace:
            report.recent_records.append(record)
        else:
            report.records_without_file.append(record)
    return report


def walk(root: Path) -> Iterator[DiskEntry]:
    """Everything under ``root``, depth first in name order; symlinks are not followed."""
    folders: list[tuple[str, Iterator[os.DirEntry[str]]]] = []
    try:
        folders.append(("", _listing(root)))
    except OSError:
        yield DiskEntry(name="", kind=Kind.UNREADABLE)
    while folders:
        prefix, listing = folders[-1]
        entry = next(listing, None)
        if entry is None:
            folders.pop()
            continue
        name = prefix + entry.name
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            yield DiskEntry(name=name, kind=Kind.OTHER)
            continue
        changed = max(info.st_mtime, info.st_ctime)
        if stat.S_ISLNK(info.st_mode):
            yield DiskEntry(name, Kind.SYMLINK, changed, target=_read_link(entry.path))
        elif stat.S_ISDIR(info.st_mode):
            try:
                folders.append((name + "/", _listing(Path(entry.path))))
            except OSError:
                yield DiskEntry(name=name, kind=Kind.UNREADABLE)
        elif stat.S_ISREG(info.st_mode):
            kind = Kind.TEMPORARY if entry.name.startswith(TEMPORARY_PREFIX) else Kind.FILE
            yield DiskEntry(name, kind, changed, info.st_size)
        else:
            yield DiskEntry(name, Kind.OTHER, changed)


def _listing(folder: Path) -> Iterator[os.DirEntry[str]]:
    # Read whole and closed at once: one open folder at a time, however deep.
    with os.scandir(folder) as entries:
        return iter(sorted(entries, key=lambda entry: entry.name))


def load_records() -> Iterator[Record]:
    rows = StoredFile.objects.values_list("key", "name", "source", "created")
    for key, name, source, created in rows.iterator(chunk_size=2000):
        yield Record(key=key, name=name, source=source, created=created.timestamp())


def delete_file(root: Path, entry: DiskEntry, *, now: float, grace: float) -> bool:
    """Unlink an orphan file if it still is one: a regular file, old, without a record."""
    path = root / entry.name
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(info.st_mode) or max(info.st_mtime, info.st_ctime) > now - grace:
        return False
    if _recordable(entry.name) and StoredFile.objects.filter(name=entry.name).exists():
        return False
    path.unlink()
    return True


def delete_record(root: Path, record: Record) -> bool:
    """Delete a record whose file is still missing (a dangling symlink counts as present).

    Its thumbnails' records go with it (CASCADE), and their files after the
    commit: a thumbnail never outlives its original."""
    if os.path.lexists(root / record.name):
        return False
    return forget_record(record, lambda names: _unlink_thumbnails(root, names))


def forget_record(record: Record, remove_thumbnails: Callable[[list[str]], None]) -> bool:
    """Delete ``record`` (if it still names the same file) and its
    thumbnails' records, then ``remove_thumbnails`` their files once that
    commits."""
    with transaction.atomic():
        found = StoredFile.objects.filter(pk=record.key, name=record.name)
        thumbnails = list(
            StoredFile.objects.filter(original__in=found).values_list("name", flat=True)
        )
        deleted, _ = found.delete()
        transaction.on_commit(lambda: remove_thumbnails(thumbnails))
    return deleted > 0


def _unlink_thumbnails(root: Path, names: list[str]) -> None:
    for name in names:
        path = root / name
        try:
            if stat.S_ISREG(os.lstat(path).st_mode):
                path.unlink()
        except FileNotFoundError:
            pass


def display(name: str) -> str:
    """A name on one line of the report, whatever bytes it holds."""
    return name if name.isprintable() else ascii(name)


def _recordable(name: str) -> bool:
    # A name with bytes that are not UTF-8 cannot be in the database at all.
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _read_link(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"
