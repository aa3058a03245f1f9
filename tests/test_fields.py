"""Protected fields and storage: files follow their rows, atomically."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, transaction

from protected_media.inspection import UploadRefused
from protected_media.models import ProtectedFile, StoredFile
from protected_media.storage import protected_storage
from tests.testapp.models import Report

from .conftest import png_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def replace(item: ProtectedFile, data: bytes) -> None:
    item.file = SimpleUploadedFile("new.txt", data)
    item.save()


def test_replacing_deletes_the_old_file_after_commit(alice, make_file, private_root) -> None:
    item = make_file(alice, "old.txt", b"old\n")
    old_name = item.file.name
    replace(item, b"new\n")
    assert not (private_root / old_name).exists()
    assert not StoredFile.objects.filter(name=old_name).exists()
    assert (private_root / item.file.name).read_bytes() == b"new\n"


def test_a_rolled_back_replacement_keeps_the_old_file(alice, make_file, private_root) -> None:
    item = make_file(alice, "old.txt", b"old\n")
    old_name = item.file.name
    with pytest.raises(RuntimeError), transaction.atomic():
        replace(item, b"new\n")
        raise RuntimeError("the rest of the request failed")
    assert (private_root / old_name).read_bytes() == b"old\n"
    assert StoredFile.objects.filter(name=old_name).exists()
    assert ProtectedFile.objects.get(pk=item.pk).file.name == old_name


def test_a_rolled_back_delete_keeps_the_file(alice, make_file, private_root) -> None:
    item = make_file(alice)
    with pytest.raises(RuntimeError), transaction.atomic():
        item.delete()
        raise RuntimeError("rolled back")
    assert (private_root / item.file.name).exists()
    assert StoredFile.objects.filter(name=item.file.name).exists()


def test_deleting_a_user_deletes_their_files(alice, make_file, private_root) -> None:
    item = make_file(alice)
    report = Report(author=alice)
    report.attachment.save("r.txt", SimpleUploadedFile("r.txt", b"r\n"))
    alice.delete()
    assert not (private_root / item.file.name).exists()
    assert not (private_root / report.attachment.name).exists()
    assert StoredFile.objects.count() == 0


def test_a_refused_upload_stores_nothing(alice, private_root) -> None:
    item = ProtectedFile(owner=alice, file=SimpleUploadedFile("x.png", b"<html>"))
    with pytest.raises(UploadRefused):
        item.save()
    assert not ProtectedFile.objects.exists()
    assert not StoredFile.objects.exists()
    assert not list(private_root.rglob("*.*"))


def test_record_keeps_the_metadata(alice, make_file) -> None:
    item = make_file(alice, "C:\\Users\\me\\Résumé.txt", b"cv\n")
    record = item.file.record
    assert (record.original_name, record.size, record.content_type) == (
        "Résumé.txt",
        3,
        "text/plain",
    )
    assert record.source == "protected_media.protectedfile.file"
    assert (item.original_name, item.size, item.content_type) == ("Résumé.txt", 3, "text/plain")


class FailingContent(ContentFile):
    def chunks(self, chunk_size=None):
        yield b"first part"
        raise OSError("disk full")


def test_a_failed_write_leaves_no_file(private_root) -> None:
    with pytest.raises(OSError, match="disk full"):
        protected_storage.save("files/AAAAAAAAAAAAAAAAAAAAAA.txt", FailingContent(b""))
    assert not [path for path in private_root.rglob("*") if path.is_file()]


def test_storage_never_overwrites(private_root) -> None:
    protected_storage._save("files/k.txt", ContentFile(b"first"))
    with pytest.raises(FileExistsError):
        protected_storage._save("files/k.txt", ContentFile(b"second"))
    assert (private_root / "files" / "k.txt").read_bytes() == b"first"


def test_only_our_names_have_gateway_urls() -> None:
    assert protected_storage.url("x/AAAAAAAAAAAAAAAAAAAAAA.png") == "/media/AAAAAAAAAAAAAAAAAAAAAA"
    for name in ("x/report.pdf", "", "x/AAAA.png"):
        with pytest.raises(ValueError):
            protected_storage.url(name)


def test_storage_follows_the_setting(settings, tmp_path) -> None:
    settings.SENDFILE_ROOT = str(tmp_path / "elsewhere")
    assert protected_storage.location == str(tmp_path / "elsewhere")


@pytest.fixture
def umask_077():
    # Process-wide, as a service manager's UMask= would set it; put back after.
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_folders_get_their_mode_whatever_the_umask(
    settings, alice, private_root, umask_077
) -> None:
    settings.FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o750
    settings.FILE_UPLOAD_PERMISSIONS = 0o640
    report = Report(author=alice)
    report.attachment.save("r.txt", SimpleUploadedFile("r.txt", b"r\n"))
    stored = private_root / report.attachment.name
    # Every level this save created: the root, reports/ and the year.
    created = [stored.parent, stored.parent.parent, private_root]
    assert [mode(folder) for folder in created] == [0o750, 0o750, 0o750]
    assert mode(stored) == 0o640
    assert stored.read_bytes() == b"r\n"


def test_a_folder_that_was_there_keeps_its_mode(settings, private_root, umask_077) -> None:
    settings.FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o750
    (private_root / "files").mkdir(parents=True, mode=0o700)
    os.chmod(private_root, 0o711)
    protected_storage.save("files/new/AAAAAAAAAAAAAAAAAAAAAA.txt", ContentFile(b"x"))
    assert mode(private_root) == 0o711
    assert mode(private_root / "files") == 0o700
    assert mode(private_root / "files" / "new") == 0o750


# -- the file, its records and the holding row are one unit ----------------------------


def files_on_disk(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


def big_png() -> SimpleUploadedFile:
    # Large enough for thumbnails: more files to leave behind.
    return SimpleUploadedFile("photo.png", png_bytes((900, 600)), content_type="image/png")


@pytest.mark.parametrize("upload", [lambda: SimpleUploadedFile("n.txt", b"n\n"), big_png])
def test_a_holder_whose_insert_fails_leaves_no_file_and_no_record(private_root, upload) -> None:
    # No owner: the database refuses the row (NOT NULL), after the field has
    # stored the file and made its records, in autocommit.
    item = ProtectedFile(file=upload())
    with pytest.raises(IntegrityError):
        item.save()
    assert not ProtectedFile.objects.exists()
    assert not StoredFile.objects.exists()
    assert files_on_disk(private_root) == []


def test_a_failed_field_save_with_save_true_leaves_nothing(private_root) -> None:
    item = ProtectedFile()
    with pytest.raises(IntegrityError):
        item.file.save("photo.png", big_png())
    assert not StoredFile.objects.exists()
    assert files_on_disk(private_root) == []


def test_the_upload_can_be_saved_again_after_a_failed_insert(alice, private_root) -> None:
    item = ProtectedFile(file=SimpleUploadedFile("n.txt", b"n\n"))
    with pytest.raises(IntegrityError):
        item.save()
    item.owner = alice
    item.save()
    saved = ProtectedFile.objects.get()
    assert (private_root / saved.file.name).read_bytes() == b"n\n"
    assert list(StoredFile.objects.values_list("name", flat=True)) == [saved.file.name]
    assert files_on_disk(private_root) == [private_root / saved.file.name]


def test_a_replacement_whose_update_fails_keeps_the_old_file(alice, make_file, private_root):
    item = make_file(alice, "old.txt", b"old\n")
    old_name = item.file.name
    item.file = SimpleUploadedFile("new.txt", b"new\n")
    item.owner_id = None  # the UPDATE fails (NOT NULL)
    with pytest.raises(IntegrityError):
        item.save()
    assert list(StoredFile.objects.values_list("name", flat=True)) == [old_name]
    assert files_on_disk(private_root) == [private_root / old_name]
    assert (private_root / old_name).read_bytes() == b"old\n"


def test_a_failed_insert_inside_a_transaction_leaves_nothing(alice, private_root) -> None:
    with transaction.atomic():
        kept = ProtectedFile.objects.create(owner=alice, file=SimpleUploadedFile("k.txt", b"k\n"))
        with pytest.raises(IntegrityError):
            ProtectedFile.objects.create(file=SimpleUploadedFile("n.txt", b"n\n"))
    assert list(StoredFile.objects.values_list("name", flat=True)) == [kept.file.name]
    assert files_on_disk(private_root) == [private_root / kept.file.name]
