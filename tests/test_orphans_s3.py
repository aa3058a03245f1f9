"""`manage.py protected_media_orphans` with PROTECTED_MEDIA_STORAGE = "s3":
real objects in the session's SeaweedFS bucket, real records in the test
database.

The bucket is shared by the whole session and keeps what earlier tests left
(their records are gone), so each test asserts only about the objects it made.
"""

from __future__ import annotations

import io
import os
import pty
import re
import time
from itertools import takewhile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from gateway.seaweed import s3_client
from protected_media.keys import new_key
from protected_media.models import ProtectedFile, StoredFile
from protected_media.ops.bucket_orphans import Bucket, BucketError
from protected_media.ops.orphans import DiskEntry, Kind, Record
from protected_media.storage import protected_storage

from .conftest import png_bytes
from .stack.harness import free_port
from .store import object_names, read_object, use_store
from .test_orphans import DAY, SOURCE, fileless_record, read_terminal

# Thumbnails' objects go after the commit: the tests commit.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def store(settings, seaweed):
    use_store(settings, seaweed)
    return seaweed


def orphans(*args: str, stderr: io.TextIOBase | None = None) -> str:
    out = io.StringIO()
    call_command("protected_media_orphans", *args, stdout=out, stderr=stderr or io.StringIO())
    return out.getvalue()


def listed(output: str, heading: str) -> list[str]:
    """The lines the report lists under ``heading``, checked against its count."""
    lines = output.splitlines()
    [start] = [i for i, line in enumerate(lines) if line.startswith(f"{heading}: ")]
    items = [line[2:] for line in takewhile(lambda line: line.startswith("  "), lines[start + 1 :])]
    assert int(lines[start].rsplit(": ", 1)[1]) == len(items)
    return items


def put_stray(store, data: bytes = b"lost\n") -> str:
    """An object no record names, as a crash between the upload and its record leaves."""
    name = f"files/{new_key()}.txt"
    s3_client(store).put_object(Bucket=store.bucket, Key=name, Body=data)
    return name


@pytest.fixture
def photo(settings, store, alice):
    settings.PROTECTED_MEDIA_THUMBNAIL_SIZES = (64,)
    item = ProtectedFile(owner=alice)
    item.file.save("photo.png", SimpleUploadedFile("photo.png", png_bytes((400, 300))))
    [thumbnail] = item.file.thumbnails
    return item, thumbnail


def test_an_object_without_a_record_is_reported_then_deleted(settings, store, photo) -> None:
    # The local root is not needed, nor looked at.
    del settings.SENDFILE_ROOT
    item, thumbnail = photo
    stray = put_stray(store)
    report = orphans("--grace", "0")
    assert report.startswith(f"Bucket: {store.bucket} at {store.endpoint_url}\n")
    assert re.search(r"^Scanned \d+ objects in the bucket and 2 records\.$", report, re.M)
    assert f"{stray} (5 bytes)" in listed(report, "Files without a record")
    assert listed(report, "Records without a file") == []
    assert item.file.name not in report and thumbnail.name not in report
    # A bucket has no temporary files nor symlinks: the report does not list them.
    assert "uploads being written" not in report and "Symlinks" not in report
    assert re.search(
        r"^Nothing deleted: run again with --delete to remove \d+ files? and 0 rec", report, re.M
    )
    assert stray in object_names(store)

    deleted = orphans("--delete", "--grace", "0")
    assert re.search(r"\nDeleted \d+ files? and 0 records\.\n$", deleted)
    remaining = object_names(store)
    assert stray not in remaining
    assert {item.file.name, thumbnail.name} <= remaining
    assert read_object(store, item.file.name) == png_bytes((400, 300))
    assert StoredFile.objects.count() == 2
    again = orphans("--grace", "0")
    assert stray not in again
    assert listed(again, "Files without a record") == []


def test_a_record_without_an_object_goes_with_its_thumbnails(store, photo) -> None:
    item, thumbnail = photo
    original = StoredFile.objects.get(name=item.file.name)
    s3_client(store).delete_object(Bucket=store.bucket, Key=item.file.name)
    report = orphans("--grace", "0")
    assert listed(report, "Records without a file") == [
        f"{original.key} {original.name} ({SOURCE})"
    ]
    # The thumbnail's object has its record: it is no orphan.
    assert thumbnail.name not in report

    deleted = orphans("--delete", "--grace", "0")
    assert re.search(r"\nDeleted \d+ files? and 1 record\.\n$", deleted)
    assert not StoredFile.objects.exists()
    assert thumbnail.name not in object_names(store)
    again = orphans("--grace", "0")
    assert listed(again, "Records without a file") == []


def test_the_grace_keeps_a_fresh_object_and_a_fresh_record(store) -> None:
    stray = put_stray(store)
    record = fileless_record(f"files/{new_key()}.txt")
    output = orphans("--delete")
    kept = listed(output, "Kept, newer than 3600 s")
    assert stray in kept
    assert f"{record.key} {record.name} (record)" in kept
    assert stray not in listed(output, "Files without a record")
    assert listed(output, "Records without a file") == []
    assert output.endswith("Deleted 0 files and 0 records.\n")
    assert stray in object_names(store)
    assert StoredFile.objects.filter(pk=record.pk).exists()


def test_the_progress_lines_go_to_the_terminal(store) -> None:
    put_stray(store)
    fileless_record(f"files/{new_key()}.txt")
    plain = orphans("--grace", "0")
    master, replica = pty.openpty()
    try:
        with os.fdopen(replica, "w", closefd=False) as terminal:
            with_bar = orphans("--grace", "0", stderr=terminal)
        bar = read_terminal(master).decode()
        with os.fdopen(replica, "w", closefd=False) as terminal:
            deleted = orphans("--grace", "0", "--delete", stderr=terminal)
        shown = read_terminal(master).decode()
        with os.fdopen(replica, "w", closefd=False) as terminal:
            orphans("--grace", "0", "--no-progress", stderr=terminal)
        quiet = read_terminal(master)
    finally:
        os.close(master)
        os.close(replica)
    assert with_bar == plain
    assert quiet == b""
    scanned = re.search(r"^Scanned (\d+) objects in the bucket", plain, re.M)
    assert scanned is not None
    assert re.fullmatch(
        rf"\rListing the bucket: 0 objects(\r.*)*\rListing the bucket: {scanned[1]} objects "
        r"in \d+\.\d s\r\n",
        bar,
    )
    files = len(listed(deleted, "Files without a record"))
    finals = [line.rsplit("\r", 1)[-1] for line in shown.removesuffix("\r\n").split("\r\n")]
    assert re.fullmatch(r"Listing the bucket: \d+ objects in \d+\.\d s", finals[0])
    assert re.fullmatch(rf"Deleting files: {files}/{files} files in \d+\.\d s", finals[1])
    assert re.fullmatch(r"Deleting records: 1/1 records in \d+\.\d s", finals[2])
    assert len(finals) == 3


@pytest.mark.parametrize(
    ("setting", "value", "said"),
    [
        ("PROTECTED_MEDIA_S3_SECRET_ACCESS_KEY", "not-the-secret", "SignatureDoesNotMatch"),
        ("PROTECTED_MEDIA_S3_BUCKET", "no-such-bucket", "NoSuchBucket"),
        ("PROTECTED_MEDIA_S3_ENDPOINT_URL", "http://127.0.0.1:{port}", "Could not connect"),
    ],
    ids=["wrong-secret", "missing-bucket", "unreachable"],
)
def test_a_store_that_fails_is_a_command_error_and_costs_nothing(
    settings, store, setting, value, said
) -> None:
    stray = put_stray(store)
    record = fileless_record(f"files/{new_key()}.txt")
    setattr(settings, setting, value.format(port=free_port()))
    with pytest.raises(CommandError) as refused:
        orphans("--delete", "--grace", "0")
    message = str(refused.value)
    assert message.startswith(
        f"The store at {settings.PROTECTED_MEDIA_S3_ENDPOINT_URL} failed for bucket "
        f"{settings.PROTECTED_MEDIA_S3_BUCKET}: "
    )
    assert said in message
    assert message.endswith("\nNothing was deleted.")
    assert "not-the-secret" not in message
    assert StoredFile.objects.filter(pk=record.pk).exists()
    assert stray in object_names(store)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("PROTECTED_MEDIA_S3_SECRET_ACCESS_KEY", "not-the-secret"),
        # A HEAD in a missing bucket answers the bare 404 of a missing object.
        ("PROTECTED_MEDIA_S3_BUCKET", "no-such-bucket"),
    ],
    ids=["wrong-secret", "missing-bucket"],
)
def test_a_store_failing_during_the_deletions_costs_no_record(
    settings, store, setting, value
) -> None:
    # The listing succeeded; then the store changes its answers.
    stray = put_stray(store)
    record = fileless_record(f"files/{new_key()}.txt")
    setattr(settings, setting, value)
    bucket = Bucket(protected_storage)
    with pytest.raises(BucketError):
        bucket.delete_record(Record(record.key, record.name, SOURCE, created=0.0))
    with pytest.raises(BucketError):
        bucket.delete_object(DiskEntry(stray, Kind.FILE), now=1e12, grace=0.0)
    assert StoredFile.objects.filter(pk=record.pk).exists()
    assert stray in object_names(store)


def test_the_listing_pages_through_the_bucket(monkeypatch, store) -> None:
    strays = {put_stray(store) for _ in range(3)}
    monkeypatch.setattr("protected_media.ops.bucket_orphans.PAGE_SIZE", 2)
    output = orphans("--grace", "0")
    assert strays <= {line.split(" (")[0] for line in listed(output, "Files without a record")}
    assert f"Scanned {len(object_names(store))} objects in the bucket and 0 records.\n" in output


def test_each_deletion_checks_again_just_before(store, alice, make_file) -> None:
    bucket = Bucket(protected_storage)
    fresh = put_stray(store)
    # Recorded since the scan: the record wins.
    item = make_file(alice)
    # Gone since the scan: nothing to do.
    gone = put_stray(store)
    s3_client(store).delete_object(Bucket=store.bucket, Key=gone)
    now = time.time() + DAY
    assert not bucket.delete_object(DiskEntry(fresh, Kind.FILE), now=now - DAY, grace=3600.0)
    assert not bucket.delete_object(DiskEntry(item.file.name, Kind.FILE), now=now, grace=0.0)
    assert not bucket.delete_object(DiskEntry(gone, Kind.FILE), now=now, grace=0.0)
    # Its object is back since the scan: the record stays.
    record = StoredFile.objects.get(name=item.file.name)
    assert not bucket.delete_record(Record(record.key, record.name, SOURCE, created=0.0))
    assert {fresh, item.file.name} <= object_names(store)
    assert StoredFile.objects.filter(pk=record.pk).exists()
    # And once it is an orphan, it goes.
    assert bucket.delete_object(DiskEntry(fresh, Kind.FILE), now=now, grace=3600.0)
    assert fresh not in object_names(store)


@pytest.mark.parametrize(
    "setting", ["PROTECTED_MEDIA_S3_BUCKET", "PROTECTED_MEDIA_S3_ENDPOINT_URL"]
)
def test_a_bucket_that_is_not_named_is_refused(settings, setting) -> None:
    settings.PROTECTED_MEDIA_STORAGE = "s3"
    settings.PROTECTED_MEDIA_S3_BUCKET = "protected-media"
    settings.PROTECTED_MEDIA_S3_ENDPOINT_URL = "http://127.0.0.1:9"
    setattr(settings, setting, None)
    with pytest.raises(CommandError, match=r"^PROTECTED_MEDIA_S3_BUCKET and PROTECTED_MEDIA_S3_"):
        orphans()
