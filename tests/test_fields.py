"""Protected fields and storage: files follow their rows, atomically."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction

from protected_media.inspection import UploadRefused
from protected_media.models import ProtectedFile, StoredFile
from protected_media.storage import protected_storage
from tests.testapp.models import Report

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
