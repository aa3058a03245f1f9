"""`manage.py protected_media_adopt`: a field that held public files before it
was protected gets them stored through it, on real storages (MEDIA_ROOT on
disk, and a public bucket of the session's SeaweedFS into the protected one).

The rows stand in for a site that had `attachment = FileField(...)` and
changed it into a ProtectedFileField: they name files the field never stored.
"""

from __future__ import annotations

import io
import os
import pty
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.core.management import CommandError, call_command
from django.test import Client

from gateway.seaweed import s3_client
from protected_media.models import Adoption, StoredFile
from protected_media.signals import upload_stored
from protected_media.testing import assert_refused, assert_served
from tests.testapp.models import Report

from .conftest import png_bytes
from .store import object_names, read_object, use_store
from .test_orphans import read_terminal

pytestmark = pytest.mark.django_db(transaction=True)

FIELD = "testapp.Report.attachment"
REFUSED_TEXT = b"<script>alert(1)</script>\n"


@pytest.fixture
def media_root(settings, tmp_path: Path) -> Path:
    root = tmp_path / "public-media"
    root.mkdir()
    settings.MEDIA_ROOT = root
    return root


def old_file(media_root: Path, name: str, data: bytes) -> str:
    path = media_root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return name


def row(author, name: str) -> Report:
    """A row as the migration from FileField left it: its old name, no record."""
    return Report.objects.create(author=author, attachment=name)


def adopt(*args: str, stderr: io.TextIOBase | None = None) -> str:
    out = io.StringIO()
    call_command("protected_media_adopt", FIELD, *args, stdout=out, stderr=stderr or io.StringIO())
    return out.getvalue()


def private_files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_old_rows_break_until_adopted(media_root, alice) -> None:
    report = row(alice, old_file(media_root, "reports/old.txt", b"old notes\n"))
    with pytest.raises(ValueError, match="protected_media_adopt"):
        _ = report.attachment.url
    warnings = [m for m in run_checks(databases=["default"]) if m.id == "protected_media.W003"]
    assert [m.msg.split(":")[0] for m in warnings] == [
        "1 row of testapp.report.attachment name a file stored before the field was protected"
    ]
    assert FIELD in warnings[0].hint


def test_local_files_are_adopted_served_and_their_originals_deleted_on_request(
    settings, media_root, private_root, alice, bob
) -> None:
    settings.PROTECTED_MEDIA_THUMBNAIL_SIZES = (64,)
    notes = row(alice, old_file(media_root, "reports/2020/notes.txt", b"old notes\n"))
    photo_bytes = png_bytes((400, 300))
    photo = row(alice, old_file(media_root, "reports/2020/photo.png", photo_bytes))

    output = adopt()
    assert output.splitlines()[0] == (
        "testapp.report.attachment: 2 rows to adopt from storage 'default'."
    )
    assert "  adopted            2" in output
    assert "Old copies of adopted files still in storage 'default': 2." in output

    notes.refresh_from_db()
    photo.refresh_from_db()
    record = notes.attachment.record
    assert record is not None
    assert (record.original_name, record.content_type, record.size) == (
        "notes.txt",
        "text/plain",
        10,
    )
    assert notes.attachment.url == f"/media/{record.key}"
    assert notes.attachment.name.startswith("reports/") and record.key in notes.attachment.name
    assert (private_root / notes.attachment.name).read_bytes() == b"old notes\n"
    # An image is stored as any upload is: re-encoded, with its thumbnail.
    assert photo.attachment.record.content_type == "image/png"
    assert len(photo.attachment.thumbnails) == 1
    # The owner gets it from the gateway; anyone else gets the one plain 404.
    assert_served(signed_in(alice).get(notes.attachment.url), notes.attachment)
    assert_refused(signed_in(bob).get(notes.attachment.url))

    # The public copies stay until asked: both still under MEDIA_ROOT.
    assert (media_root / "reports/2020/notes.txt").exists()
    again = adopt("--delete-originals")
    assert (
        again.splitlines()[0]
        == "testapp.report.attachment: 0 rows to adopt from storage 'default'."
    )
    assert "Deleted 2 old copies from storage 'default'." in again
    assert not (media_root / "reports/2020/notes.txt").exists()
    assert not (media_root / "reports/2020/photo.png").exists()
    assert Adoption.objects.filter(original_deleted=None).count() == 0
    # Nothing more to do, and nothing in the private root without a record.
    assert "old copies" not in adopt().lower()
    names = set(StoredFile.objects.values_list("name", flat=True))
    assert private_files(private_root) == names
    assert [m for m in run_checks(databases=["default"]) if m.id == "protected_media.W003"] == []


def test_a_refused_or_missing_file_is_reported_and_its_row_left_as_it_was(
    media_root, private_root, alice
) -> None:
    good = row(alice, old_file(media_root, "reports/good.txt", b"fine\n"))
    bad = row(alice, old_file(media_root, "reports/page.txt", REFUSED_TEXT))
    gone = row(alice, "reports/gone.pdf")

    output = adopt("--delete-originals")
    assert "  adopted            1" in output
    assert "  refused            1" in output
    assert "  missing            1" in output
    assert f"  row {bad.pk}: reports/page.txt: refused: This text file contains markup" in output
    assert (
        f"  row {gone.pk}: reports/gone.pdf: missing: no such file in storage 'default'" in output
    )
    bad.refresh_from_db()
    gone.refresh_from_db()
    assert (bad.attachment.name, gone.attachment.name) == ("reports/page.txt", "reports/gone.pdf")
    # Only the adopted file's public copy went.
    assert (media_root / "reports/page.txt").read_bytes() == REFUSED_TEXT
    assert not (media_root / "reports/good.txt").exists()
    good.refresh_from_db()
    assert private_files(private_root) == {good.attachment.name}


def test_a_dry_run_inspects_everything_and_writes_nothing(media_root, private_root, alice) -> None:
    first = row(alice, old_file(media_root, "reports/a.txt", b"a\n"))
    row(alice, old_file(media_root, "reports/page.txt", REFUSED_TEXT))

    output = adopt("--dry-run", "--delete-originals")
    assert "(dry run: nothing is written)" in output
    assert "  would be adopted   1" in output
    assert "  refused            1" in output
    first.refresh_from_db()
    assert first.attachment.name == "reports/a.txt"
    assert StoredFile.objects.count() == Adoption.objects.count() == 0
    assert private_files(private_root) == set()
    assert (media_root / "reports/a.txt").exists()


def test_two_rows_sharing_one_old_file_keep_it_until_both_are_adopted(
    media_root, private_root, alice, bob
) -> None:
    shared = old_file(media_root, "reports/shared.txt", b"shared\n")
    first, second = row(alice, shared), row(bob, shared)
    adopt("--delete-originals")
    first.refresh_from_db()
    second.refresh_from_db()
    # Each row has its own protected copy, and the old one went after both.
    assert first.attachment.name != second.attachment.name
    assert not (media_root / shared).exists()
    for report in (first, second):
        assert (private_root / report.attachment.name).read_bytes() == b"shared\n"


def test_interrupted_half_way_loses_nothing_and_a_rerun_finishes(
    media_root, private_root, alice
) -> None:
    reports = [
        row(alice, old_file(media_root, f"reports/{n}.txt", f"{n}\n".encode())) for n in range(4)
    ]
    stored: list[str] = []

    def interrupt_on_the_third(sender, record, **kwargs) -> None:
        stored.append(record.name)
        if len(stored) == 3:
            raise KeyboardInterrupt  # Ctrl-C, after the file and record were written

    upload_stored.connect(interrupt_on_the_third)
    try:
        with pytest.raises(CommandError, match="Interrupted: every row above is adopted"):
            adopt("--delete-originals")
    finally:
        upload_stored.disconnect(interrupt_on_the_third)

    for report in reports:
        report.refresh_from_db()
    names = [report.attachment.name for report in reports]
    # Two adopted; the third rolled back, its stored copy deleted; the fourth untouched.
    assert names[2:] == ["reports/2.txt", "reports/3.txt"]
    assert private_files(private_root) == set(names[:2])
    assert StoredFile.objects.count() == 2
    # The interrupted run deleted no old copy: the rerun does, for all four.
    assert all((media_root / f"reports/{n}.txt").exists() for n in range(4))

    output = adopt("--delete-originals")
    assert output.splitlines()[0].startswith("testapp.report.attachment: 2 rows to adopt")
    assert "Deleted 4 old copies" in output
    for report in reports:
        report.refresh_from_db()
    assert private_files(private_root) == {report.attachment.name for report in reports}
    assert sorted((private_root / r.attachment.name).read_bytes() for r in reports) == [
        f"{n}\n".encode() for n in range(4)
    ]
    assert not any((media_root / "reports").iterdir())


def test_a_row_changed_while_it_is_adopted_is_left_for_a_rerun(
    media_root, private_root, alice
) -> None:
    report = row(alice, old_file(media_root, "reports/q3.txt", b"q3\n"))

    def rename_the_row(sender, record, **kwargs) -> None:
        # The row names another file by the time the adopter writes it back.
        Report.objects.filter(pk=report.pk).update(attachment="reports/newer.txt")

    upload_stored.connect(rename_the_row)
    try:
        output = adopt("--delete-originals")
    finally:
        upload_stored.disconnect(rename_the_row)

    assert "  changed meanwhile  1" in output
    assert f"  row {report.pk}: reports/q3.txt: changed meanwhile: the row changed" in output
    # Rolled back: no record, no stored copy, and the old file kept.
    assert not StoredFile.objects.exists()
    assert private_files(private_root) == set()
    assert (media_root / "reports/q3.txt").read_bytes() == b"q3\n"

    assert "  adopted            1" in adopt("--delete-originals")
    report.refresh_from_db()
    assert private_files(private_root) == {report.attachment.name}
    assert not (media_root / "reports/q3.txt").exists()


def test_a_public_bucket_is_adopted_into_the_protected_bucket(settings, seaweed, alice) -> None:
    use_store(settings, seaweed)
    legacy = f"legacy-{secrets.token_hex(4)}"
    client = s3_client(seaweed)
    client.create_bucket(Bucket=legacy)
    client.put_object(Bucket=legacy, Key="reports/old.txt", Body=b"from the old bucket\n")
    settings.STORAGES = {
        **settings.STORAGES,
        "legacy": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": legacy,
                "endpoint_url": seaweed.endpoint_url,
                "access_key": seaweed.access_key_id,
                "secret_key": seaweed.secret_access_key,
                "region_name": seaweed.region,
            },
        },
    }
    report = row(alice, "reports/old.txt")
    before = object_names(seaweed)

    output = adopt("--from-storage", "legacy", "--delete-originals")
    assert "  adopted            1" in output
    assert "Deleted 1 old copy from storage 'legacy'." in output
    report.refresh_from_db()
    assert object_names(seaweed) - before == {report.attachment.name}
    assert read_object(seaweed, report.attachment.name) == b"from the old bucket\n"
    assert client.list_objects_v2(Bucket=legacy).get("KeyCount") == 0
    assert report.attachment.url == f"/media/{report.attachment.record.key}"


def test_wrong_names_are_refused_before_anything_is_read(media_root) -> None:
    with pytest.raises(CommandError, match=r"name the field as app_label\.Model\.field"):
        call_command("protected_media_adopt", "testapp.Report")
    with pytest.raises(CommandError, match="has no field 'photo'"):
        call_command("protected_media_adopt", "testapp.Report.photo")
    with pytest.raises(CommandError, match="is a BooleanField: make it a ProtectedFileField"):
        call_command("protected_media_adopt", "testapp.Report.public")
    with pytest.raises(CommandError, match="--from-storage 'nowhere'"):
        call_command("protected_media_adopt", FIELD, "--from-storage", "nowhere")


def test_progress_goes_to_the_terminal_only(media_root, alice) -> None:
    row(alice, old_file(media_root, "reports/a.txt", b"a\n"))
    master, replica = pty.openpty()
    try:
        with os.fdopen(replica, "w", closefd=False) as terminal:
            output = adopt(stderr=terminal)
        bar = read_terminal(master).decode()
    finally:
        os.close(master)
        os.close(replica)
    assert "Adopting: 1/1 rows in " in bar
    assert "Adopting" not in output


# A site's first migrate with protected_media: its tables are made in the
# same run that could count the rows, in a process of its own with a fresh
# database (tests.settings makes one per process).
FIRST_MIGRATE = """
import io
import django
django.setup()
from django.contrib.auth.models import User
from django.core.management import call_command
call_command("migrate", "auth", verbosity=0)
call_command("migrate", "testapp", verbosity=0)
from tests.testapp.models import Report
Report.objects.create(author=User.objects.create(username="alice"), attachment="reports/old.pdf")
out = io.StringIO()
call_command("migrate", stdout=out)
print(out.getvalue())
"""


def test_the_first_migrate_names_the_rows_to_adopt() -> None:
    env = {
        **{k: v for k, v in os.environ.items() if k != "TEST_DATABASE_URL"},
        "DJANGO_SETTINGS_MODULE": "tests.settings",
    }
    done = subprocess.run(
        [sys.executable, "-c", FIRST_MIGRATE],
        cwd=Path(__file__).resolve().parents[1],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Applying protected_media.0001_initial... OK" in done.stdout
    assert (
        "testapp.Report.attachment: (protected_media.W003) 1 row of testapp.report.attachment "
        "name a file stored before the field was protected" in done.stdout
    )
    assert f"HINT: Run: manage.py protected_media_adopt {FIELD}" in done.stdout
