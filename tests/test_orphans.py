"""`manage.py protected_media_orphans`: real files in a temporary private root,
real records in the test database."""

from __future__ import annotations

import io
import os
import pty
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from protected_media.keys import new_key
from protected_media.models import ProtectedFile, StoredFile
from protected_media.ops.orphans import DiskEntry, Kind, Record, classify
from protected_media.storage import protected_storage
from tests.conftest import png_bytes

pytestmark = pytest.mark.django_db

SOURCE = "protected_media.protectedfile.file"
DAY = 24 * 3600


def orphans(*args: str, stderr: io.TextIOBase | None = None) -> str:
    out = io.StringIO()
    call_command("protected_media_orphans", *args, stdout=out, stderr=stderr or io.StringIO())
    return out.getvalue()


def fileless_record(name: str = "files/gone.txt") -> StoredFile:
    return StoredFile.objects.create(
        key=new_key(),
        name=name,
        source=SOURCE,
        original_name="gone.txt",
        size=5,
        content_type="text/plain",
    )


def stray(root: Path, name: str = "files/stray.txt", data: bytes = b"lost\n") -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def both_ways(alice, make_file, private_root):
    kept = make_file(alice)
    return kept, stray(private_root), fileless_record()


def test_report_lists_orphans_both_ways_and_deletes_nothing(both_ways, private_root) -> None:
    _kept, lost_file, lost_record = both_ways
    assert orphans("--grace", "0") == (
        f"Private root: {private_root}\n"
        "Scanned 2 entries on disk and 2 records.\n"
        "Files without a record: 1\n"
        "  files/stray.txt (5 bytes)\n"
        "Records without a file: 1\n"
        f"  {lost_record.key} files/gone.txt ({SOURCE})\n"
        "Kept, newer than 0 s: 0\n"
        "Kept, uploads being written: 0\n"
        "Symlinks, not followed and kept: 0\n"
        "Other entries, kept: 0\n"
        "Nothing deleted: run again with --delete to remove 1 file and 1 record.\n"
    )
    assert lost_file.read_bytes() == b"lost\n"
    assert StoredFile.objects.filter(pk=lost_record.pk).exists()


def test_delete_removes_both_kinds_and_nothing_else(both_ways, private_root) -> None:
    kept, lost_file, lost_record = both_ways
    output = orphans("--delete", "--grace", "0")
    assert output.endswith("Deleted 1 file and 1 record.\n")
    assert not lost_file.exists()
    assert not StoredFile.objects.filter(pk=lost_record.pk).exists()
    assert (private_root / kept.file.name).read_bytes() == b"hello\n"
    assert StoredFile.objects.filter(name=kept.file.name).exists()
    again = orphans("--delete", "--grace", "0")
    assert "Files without a record: 0\nRecords without a file: 0\n" in again
    assert again.endswith("Deleted 0 files and 0 records.\n")


def test_recent_files_and_records_are_kept(private_root) -> None:
    fresh = stray(private_root, "files/fresh.txt")
    # An old mtime (a restore from backup keeps it) does not make a file old:
    # the link into place changed its ctime.
    restored = stray(private_root, "files/restored.txt")
    os.utime(restored, (time.time() - 2 * DAY, time.time() - 2 * DAY))
    record = fileless_record()
    output = orphans("--delete")
    assert "Files without a record: 0\nRecords without a file: 0\n" in output
    assert (
        "Kept, newer than 3600 s: 3\n"
        "  files/fresh.txt\n"
        "  files/restored.txt\n"
        f"  {record.key} files/gone.txt (record)\n"
    ) in output
    assert output.endswith("Deleted 0 files and 0 records.\n")
    assert fresh.exists() and restored.exists()
    assert StoredFile.objects.filter(pk=record.pk).exists()


class SlowUpload:
    """An upload whose bytes arrive in two parts, with a cleanup run in between."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.seen_while_writing: list[str] = []
        self.output_while_writing = ""

    def chunks(self) -> Iterator[bytes]:
        yield b"first half\n"
        self.seen_while_writing = sorted(path.name for path in self.folder.iterdir())
        self.output_while_writing = orphans("--delete", "--grace", "0")
        yield b"second half\n"


def test_an_upload_being_written_is_never_deleted(private_root) -> None:
    stray(private_root, "files/old.txt")
    upload = SlowUpload(private_root / "files")
    name = protected_storage.save(f"files/{new_key()}.txt", upload)
    # The cleanup ran while the storage was writing its temporary file.
    [temporary] = [n for n in upload.seen_while_writing if n != "old.txt"]
    assert temporary.startswith(".upload-")
    assert f"Kept, uploads being written: 1\n  files/{temporary}\n" in upload.output_while_writing
    assert "Deleted 1 file and 0 records.\n" in upload.output_while_writing
    assert (private_root / name).read_bytes() == b"first half\nsecond half\n"
    # Linked into place, its record not yet written: the default grace keeps it.
    output = orphans("--delete")
    assert f"Kept, newer than 3600 s: 1\n  {name}\n" in output
    assert (private_root / name).exists()


def test_symlinks_are_reported_never_followed_nor_deleted(tmp_path, private_root) -> None:
    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "secret.txt").write_text("secret\n")
    (outside / "folder" / "inner.txt").write_text("inner\n")
    (private_root / "files").mkdir(parents=True)
    (private_root / "files" / "link.txt").symlink_to(outside / "secret.txt")
    (private_root / "linked").symlink_to(outside / "folder")
    record = fileless_record("files/link.txt")
    output = orphans("--delete", "--grace", "0")
    assert "Scanned 2 entries on disk and 1 record.\n" in output
    assert "Files without a record: 0\nRecords without a file: 0\n" in output
    assert (
        "Symlinks, not followed and kept: 2\n"
        f"  files/link.txt -> {outside}/secret.txt\n"
        f"  linked -> {outside}/folder\n"
    ) in output
    assert "inner.txt" not in output
    assert (private_root / "files" / "link.txt").is_symlink()
    assert (private_root / "linked").is_symlink()
    assert (outside / "secret.txt").read_text() == "secret\n"
    assert (outside / "folder" / "inner.txt").read_text() == "inner\n"
    assert StoredFile.objects.filter(pk=record.pk).exists()


@pytest.mark.parametrize(
    ("raw_name", "shown"),
    [
        (b"new\nline.txt", "'new\\nline.txt'"),  # would split the report's line
        (b"\xff\xfe.txt", "'\\udcff\\udcfe.txt'"),  # not UTF-8
        ("e\u0301te\u0301.txt".encode(), "e\u0301te\u0301.txt"),  # NFD, printable
        (b"a;b $(x).txt", "a;b $(x).txt"),
        (b"\x1b[31mred.txt", "'\\x1b[31mred.txt'"),  # a terminal escape
        (b"-rf", "-rf"),
    ],
)
def test_hostile_names_are_shown_on_one_line_and_deleted(private_root, raw_name, shown) -> None:
    private_root.mkdir()
    path = os.path.join(os.fsencode(private_root), raw_name)
    with open(path, "wb") as handle:
        handle.write(b"x")
    output = orphans("--delete", "--grace", "0")
    assert f"Files without a record: 1\n  {shown} (1 byte)\n" in output
    assert output.endswith("Deleted 1 file and 0 records.\n")
    assert os.listdir(os.fsencode(private_root)) == []


def read_terminal(master: int) -> bytes:
    os.set_blocking(master, False)
    data = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except (BlockingIOError, OSError):
            return data
        if not chunk:
            return data
        data += chunk


def test_progress_bar_goes_to_the_terminal_and_never_to_stdout(both_ways) -> None:
    plain = orphans("--grace", "0")
    master, replica = pty.openpty()
    try:
        with os.fdopen(replica, "w", closefd=False) as terminal:
            with_bar = orphans("--grace", "0", stderr=terminal)
        bar = read_terminal(master)
        with os.fdopen(replica, "w", closefd=False) as terminal:
            assert orphans("--grace", "0", "--no-progress", stderr=terminal) == plain
        quiet = read_terminal(master)
    finally:
        os.close(master)
        os.close(replica)
    assert with_bar == plain
    assert b"Walking the private root" in bar
    assert quiet == b""


def test_the_progress_lines_end_with_what_was_done(both_ways) -> None:
    master, replica = pty.openpty()
    try:
        with os.fdopen(replica, "w", closefd=False) as terminal:
            output = orphans("--grace", "0", "--delete", stderr=terminal)
        shown = read_terminal(master).decode()
    finally:
        os.close(master)
        os.close(replica)
    scanned = re.search(r"^Scanned (\d+) entries on disk", output, re.M)
    assert scanned is not None
    # Each line is redrawn in place (after a carriage return) and left with
    # its final count; the terminal ends lines with CR LF.
    lines = shown.removesuffix("\r\n").split("\r\n")
    finals = [line.rsplit("\r", 1)[-1] for line in lines]
    assert re.fullmatch(rf"Walking the private root: {scanned[1]} entries in \d+\.\d s", finals[0])
    assert re.fullmatch(r"Deleting files: 1/1 files in \d+\.\d s", finals[1])
    assert re.fullmatch(r"Deleting records: 1/1 records in \d+\.\d s", finals[2])
    assert len(finals) == 3


def test_a_missing_root_is_refused(settings, tmp_path) -> None:
    settings.SENDFILE_ROOT = str(tmp_path / "not-mounted")
    with pytest.raises(CommandError, match="is not a folder"):
        orphans()


def test_delete_refuses_when_the_root_holds_no_file_at_all(private_root) -> None:
    # An empty folder (an unmounted volume) would make every record fileless.
    private_root.mkdir()
    record = fileless_record()
    with pytest.raises(CommandError, match="No file at all under"):
        orphans("--delete", "--grace", "0")
    assert StoredFile.objects.filter(pk=record.pk).exists()


# -- the pure core --------------------------------------------------------------


def test_the_grace_period_boundary() -> None:
    now, grace = 10_000.0, 100.0
    entries = [
        DiskEntry("at-the-edge", Kind.FILE, changed=now - grace),
        DiskEntry("just-inside", Kind.FILE, changed=now - grace + 0.5),
    ]
    records = [
        Record("k1", "old-record", SOURCE, created=now - grace),
        Record("k2", "new-record", SOURCE, created=now - grace + 0.5),
    ]
    report = classify(entries, records, now=now, grace=grace)
    assert [entry.name for entry in report.files_without_record] == ["at-the-edge"]
    assert [entry.name for entry in report.recent_files] == ["just-inside"]
    assert [record.name for record in report.records_without_file] == ["old-record"]
    assert [record.name for record in report.recent_records] == ["new-record"]


def test_records_under_an_unreadable_folder_are_not_called_fileless() -> None:
    entries = [DiskEntry("files", Kind.UNREADABLE), DiskEntry("other/b.txt", Kind.FILE)]
    records = [
        Record("k1", "files/a.txt", SOURCE, created=0.0),
        Record("k2", "filesx/c.txt", SOURCE, created=0.0),
    ]
    report = classify(entries, records, now=10_000.0, grace=0.0)
    assert [record.name for record in report.records_without_file] == ["filesx/c.txt"]
    assert [entry.name for entry in report.other] == ["files"]
    # An unreadable root hides everything.
    hidden = classify([DiskEntry("", Kind.UNREADABLE)], records, now=10_000.0, grace=0.0)
    assert hidden.records_without_file == []


# -- thumbnails are records like any other -------------------------------------------


@pytest.fixture
def photo(settings, alice, private_root):
    settings.PROTECTED_MEDIA_THUMBNAIL_SIZES = (64,)
    item = ProtectedFile(owner=alice)
    item.file.save("photo.png", SimpleUploadedFile("photo.png", png_bytes((400, 300))))
    [thumbnail] = item.file.thumbnails
    return item, thumbnail


@pytest.mark.django_db(transaction=True)
def test_a_thumbnail_without_its_file_is_a_record_without_file(photo, private_root) -> None:
    item, thumbnail = photo
    (private_root / thumbnail.name).unlink()
    report = orphans("--grace", "0")
    assert f"Records without a file: 1\n  {thumbnail.key} {thumbnail.name} " in report
    assert "Files without a record: 0\n" in report
    assert orphans("--delete", "--grace", "0").endswith("Deleted 0 files and 1 record.\n")
    assert list(StoredFile.objects.values_list("name", flat=True)) == [item.file.name]


@pytest.mark.django_db(transaction=True)
def test_a_thumbnail_file_without_its_record_is_a_file_without_record(photo, private_root) -> None:
    item, thumbnail = photo
    StoredFile.objects.filter(pk=thumbnail.pk).delete()
    report = orphans("--grace", "0")
    assert f"Files without a record: 1\n  {thumbnail.name} (" in report
    assert "Records without a file: 0\n" in report
    orphans("--delete", "--grace", "0")
    assert not (private_root / thumbnail.name).exists()
    assert (private_root / item.file.name).exists()


@pytest.mark.django_db(transaction=True)
def test_deleting_an_originals_fileless_record_takes_its_thumbnails(photo, private_root) -> None:
    item, thumbnail = photo
    (private_root / item.file.name).unlink()
    report = orphans("--grace", "0")
    # The thumbnail's file is there: only the original's record is fileless.
    assert "Files without a record: 0\nRecords without a file: 1\n" in report
    assert orphans("--delete", "--grace", "0").endswith("Deleted 0 files and 1 record.\n")
    assert not StoredFile.objects.exists()
    assert not (private_root / thumbnail.name).exists()
    again = orphans("--grace", "0")
    assert "Files without a record: 0\nRecords without a file: 0\n" in again
