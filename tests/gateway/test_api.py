"""The demo's JSON API, driven the way a browser script drives it: session
cookie, the csrftoken cookie read from a page, and the X-CSRFToken header."""

from __future__ import annotations

import html
import io
import json
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from protected_media.models import ProtectedFile, StoredFile

from ..conftest import png_bytes

pytestmark = pytest.mark.django_db

API = "/api/files/"
KEY_URL = re.compile(r"/media/([A-Za-z0-9_-]{22})")
PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
HTML_AS_PNG = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>\n"
SVG_WITH_SCRIPT = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b"<script>alert(document.cookie)</script></svg>\n"
)
GATEWAY_NOT_FOUND = (404, b"Not Found\n")
NOT_SHARED = {"groups": [], "users": [], "links": 0, "staff": False}


def browser(user=None) -> tuple[Client, dict[str, str]]:
    """A client that enforces CSRF, signed in as ``user``, and the header a
    script would send: the csrftoken cookie's value, read after loading a page."""
    client = Client(enforce_csrf_checks=True)
    if user is not None:
        client.force_login(user)
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    return client, {"X-CSRFToken": client.cookies["csrftoken"].value}


def upload(client: Client, headers: dict[str, str], name: str, data: bytes, content_type: str):
    return client.post(
        API, {"file": SimpleUploadedFile(name, data, content_type=content_type)}, headers=headers
    )


def assert_json_error(response, status: int) -> str:
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"]
    assert isinstance(body["error"], str)
    assert body["error"]
    return body["error"]


def files_on_disk(root: Path) -> frozenset[str]:
    if not root.exists():
        return frozenset()
    return frozenset(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def state(root: Path) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    return (
        files_on_disk(root),
        frozenset(StoredFile.objects.values_list("pk", flat=True)),
        frozenset(str(pk) for pk in ProtectedFile.objects.values_list("pk", flat=True)),
    )


@contextmanager
def nothing_written(root: Path) -> Iterator[None]:
    """Nothing is half-written: no new file (temporary or final) under the
    private root, no new record, no new row."""
    before = state(root)
    yield
    assert state(root) == before


@pytest.fixture
def existing(alice, make_file) -> ProtectedFile:
    # One file already stored, so "nothing new" is checked against a non-empty store.
    return make_file(alice, "already-here.txt", b"already here\n")


# -- uploads that are accepted ---------------------------------------------------


def test_upload_png_is_stored_as_a_decodable_png(alice, private_root) -> None:
    client, headers = browser(alice)
    response = upload(client, headers, "holiday photo.png", png_bytes((13, 7)), "image/png")

    assert response.status_code == 201
    assert response["Content-Type"] == "application/json"
    body = response.json()
    item = ProtectedFile.objects.get()
    record = StoredFile.objects.get()
    assert item.owner == alice
    key = KEY_URL.fullmatch(body["url"]).group(1)
    assert record.key == key
    assert record.name == f"files/{key}.png"
    stored = (private_root / record.name).read_bytes()
    assert body == {
        "id": str(item.pk),
        "name": "holiday photo.png",
        "size": len(stored),
        "content_type": "image/png",
        "url": f"/media/{key}",
        "thumbnail_url": None,  # small images get none
        "shared_with": NOT_SHARED,  # no grant on a new file
    }
    assert files_on_disk(private_root) == {record.name}
    with Image.open(io.BytesIO(stored)) as image:
        assert image.format == "PNG"
        assert image.size == (13, 7)
        image.load()
        assert image.convert("RGB").getpixel((0, 0)) == (200, 30, 30)
    # The URL it handed back is the gateway's, and it opens for the owner.
    served = client.get(body["url"])
    assert served.status_code == 200
    assert served["X-Accel-Redirect"] == f"/_protected/{record.name}"
    assert served["Content-Type"] == "image/png"


@pytest.mark.parametrize(
    ("sent_name", "kept_name"),
    [
        ("Grüße 日本語.txt", "Grüße 日本語.txt"),
        ("e\u0301te\u0301.txt", "\u00e9t\u00e9.txt"),  # NFD is kept as NFC
    ],
)
def test_upload_text_with_a_non_ascii_name(alice, private_root, sent_name, kept_name) -> None:
    data = "héllo wörld, こんにちは\n".encode()
    client, headers = browser(alice)
    response = upload(client, headers, sent_name, data, "text/plain")

    assert response.status_code == 201
    body = response.json()
    record = StoredFile.objects.get()
    assert body == {
        "id": str(ProtectedFile.objects.get().pk),
        "name": kept_name,
        "size": len(data),
        "content_type": "text/plain",
        "url": f"/media/{record.key}",
        "thumbnail_url": None,  # small images get none
        "shared_with": NOT_SHARED,  # no grant on a new file
    }
    assert record.original_name == kept_name
    assert record.name == f"files/{record.key}.txt"
    assert (private_root / record.name).read_bytes() == data


def test_upload_pdf(alice, private_root) -> None:
    client, headers = browser(alice)
    # The client's type and extension are ignored; the magic bytes decide.
    response = upload(client, headers, "paper", PDF, "application/octet-stream")

    assert response.status_code == 201
    record = StoredFile.objects.get()
    assert response.json() == {
        "id": str(ProtectedFile.objects.get().pk),
        "name": "paper.pdf",  # served with the extension of its detected type
        "size": len(PDF),
        "content_type": "application/pdf",
        "url": f"/media/{record.key}",
        "thumbnail_url": None,  # small images get none
        "shared_with": NOT_SHARED,  # no grant on a new file
    }
    assert record.name == f"files/{record.key}.pdf"
    assert (private_root / record.name).read_bytes() == PDF


def test_a_file_exactly_at_the_limit_is_accepted(settings, alice) -> None:
    settings.PROTECTED_MEDIA_MAX_UPLOAD_SIZE = 64
    client, headers = browser(alice)
    response = upload(client, headers, "full.txt", b"x" * 63 + b"\n", "text/plain")
    assert response.status_code == 201
    assert response.json()["size"] == 64


# -- uploads that are refused -----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "content_type"),
    [
        ("cat.png", HTML_AS_PNG, "image/png"),  # HTML disguised as a PNG
        ("logo.svg", SVG_WITH_SCRIPT, "image/svg+xml"),  # SVG that runs a script
        ("logo.png", SVG_WITH_SCRIPT, "image/png"),  # ... and disguised as a PNG
        ("page.html", HTML_AS_PNG, "text/html"),
        ("truncated.png", png_bytes()[:40], "image/png"),  # PNG magic, broken data
    ],
)
def test_unsafe_content_is_refused_with_415(
    alice, existing, private_root, name, data, content_type
):
    client, headers = browser(alice)
    with nothing_written(private_root):
        response = upload(client, headers, name, data, content_type)
    assert_json_error(response, 415)


def docx_bytes() -> bytes:
    """A Word document as far as the type sniffer reads one: a ZIP holding word/."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document/>")
    return buffer.getvalue()


ACCEPTED = "images (PNG, JPEG, GIF, WebP), PDFs and plain text"


@pytest.mark.parametrize(
    ("name", "data", "content_type", "message"),
    [
        # A kind of file the gateway names, in the words people use for it.
        (
            "report.docx",
            docx_bytes(),
            "application/msword",
            f"A Word document (.docx) is not accepted here; you can upload {ACCEPTED}.",
        ),
        # A kind it does not know: no MIME type, only what may be uploaded.
        (
            "game.png",
            b"NES\x1a" + bytes(64),
            "image/png",
            f"This kind of file is not accepted here; you can upload {ACCEPTED}.",
        ),
        # Text is allowed: text refused for its markup says so.
        (
            "x.png",
            HTML_AS_PNG,
            "image/png",
            "This text file contains markup (HTML or XML); text is accepted only as plain "
            "text, without tags.",
        ),
        (
            "notes.txt",
            b"Meeting notes\n<script>alert(1)</script>\n",
            "text/plain",
            "This text file contains markup (HTML or XML); text is accepted only as plain "
            "text, without tags.",
        ),
        (
            "colours.txt",
            b"\x1b[31mred\x1b[0m\n",
            "text/plain",
            "This text file contains control characters (such as terminal colour codes); "
            "text is accepted only as plain text.",
        ),
        (
            "cafe.txt",
            b"caf\xe9\n",
            "text/plain",
            "This text file is not in UTF-8; save it as UTF-8 and upload it again.",
        ),
    ],
    ids=["word", "unknown-kind", "html-as-png", "txt-with-markup", "controls", "latin-1"],
)
def test_a_refusal_names_the_kind_of_file_and_what_is_accepted(
    alice, private_root, name, data, content_type, message
) -> None:
    client, headers = browser(alice)
    with nothing_written(private_root):
        response = upload(client, headers, name, data, content_type)
    assert assert_json_error(response, 415) == message


def test_the_page_refuses_a_kind_in_the_words_of_the_api(alice, private_root) -> None:
    # The page's script refuses a Word document before sending it; the
    # sentence it shows is the one the API answers for the same file.
    client, headers = browser(alice)
    page = client.get("/files/").content.decode()
    [kinds] = re.findall(r'data-kinds="([^"]*)"', page)
    refusals = json.loads(html.unescape(kinds))["refusals"]
    response = upload(client, headers, "report.docx", docx_bytes(), "application/msword")
    sent = refusals["application/vnd.openxmlformats-officedocument.wordprocessingml.document"]
    assert assert_json_error(response, 415) == sent


@pytest.mark.parametrize(
    "size",
    [
        65,  # one byte over: refused after parsing
        200 * 1024,  # far over: refused on Content-Length alone
    ],
)
def test_over_the_limit_is_refused_with_413(settings, alice, existing, private_root, size):
    settings.PROTECTED_MEDIA_MAX_UPLOAD_SIZE = 64
    client, headers = browser(alice)
    with nothing_written(private_root):
        response = upload(client, headers, "big.txt", b"x" * (size - 1) + b"\n", "text/plain")
    message = assert_json_error(response, 413)
    assert "64 bytes" in message


def test_an_empty_file_is_refused_with_400(alice, existing, private_root) -> None:
    client, headers = browser(alice)
    with nothing_written(private_root):
        response = upload(client, headers, "empty.txt", b"", "text/plain")
    assert assert_json_error(response, 400) == "The file is empty."


@pytest.mark.parametrize(
    "data",
    [
        {},  # no field at all
        {"other": "value"},  # a field, but not a file
        {"attachment": SimpleUploadedFile("a.txt", b"a\n")},  # a file under another name
        {"file": "just text"},  # the field, but as a plain value
    ],
)
def test_no_file_field_is_refused_with_400(alice, existing, private_root, data) -> None:
    client, headers = browser(alice)
    with nothing_written(private_root):
        response = client.post(API, data, headers=headers)
    assert_json_error(response, 400)


def test_two_files_in_the_field_are_refused_with_400(alice, existing, private_root) -> None:
    client, headers = browser(alice)
    two = [SimpleUploadedFile("a.txt", b"a\n"), SimpleUploadedFile("b.txt", b"b\n")]
    with nothing_written(private_root):
        response = client.post(API, {"file": two}, headers=headers)
    assert_json_error(response, 400)


def test_too_many_parts_are_refused_with_400(alice, existing, private_root) -> None:
    # Security rule 7: the number of files per request is bounded (Django's
    # DATA_UPLOAD_MAX_NUMBER_FILES, 100 by default), and the API answers in JSON.
    client, headers = browser(alice)
    many = [SimpleUploadedFile(f"{n}.txt", b"x\n") for n in range(101)]
    with nothing_written(private_root):
        response = client.post(API, {"file": many}, headers=headers)
    assert_json_error(response, 400)


def test_missing_csrf_token_is_refused_with_403_json(alice, existing, private_root) -> None:
    client, _ = browser(alice)
    with nothing_written(private_root):
        response = upload(client, {}, "photo.png", png_bytes(), "image/png")
    assert "CSRF" in assert_json_error(response, 403)


def test_a_wrong_csrf_token_is_refused_with_403_json(alice, existing, private_root) -> None:
    client, _ = browser(alice)
    with nothing_written(private_root):
        response = upload(client, {"X-CSRFToken": "x" * 32}, "photo.png", png_bytes(), "image/png")
    assert "CSRF" in assert_json_error(response, 403)


def test_anonymous_upload_is_refused_with_403_json(alice, existing, private_root) -> None:
    client, headers = browser(None)
    with nothing_written(private_root):
        response = upload(client, headers, "photo.png", png_bytes(), "image/png")
    assert_json_error(response, 403)


def test_anonymous_listing_is_refused_with_403_json(alice, existing) -> None:
    client, _ = browser(None)
    response = client.get(API)
    assert_json_error(response, 403)
    assert existing.original_name not in response.content.decode()


def test_anonymous_delete_is_refused_with_403_json(alice, existing, private_root) -> None:
    client, headers = browser(None)
    with nothing_written(private_root):
        response = client.delete(f"{API}{existing.pk}/", headers=headers)
    assert_json_error(response, 403)


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_wrong_method_on_the_list_is_405_with_allow(alice, existing, private_root, method):
    client, headers = browser(alice)
    with nothing_written(private_root):
        response = getattr(client, method)(API, headers=headers)
    assert_json_error(response, 405)
    assert response["Allow"] == "GET, HEAD, POST"


@pytest.mark.parametrize("method", ["put", "patch", "post"])
def test_wrong_method_on_a_file_is_405_with_allow(alice, existing, private_root, method):
    client, headers = browser(alice)
    with nothing_written(private_root):
        response = getattr(client, method)(f"{API}{existing.pk}/", headers=headers)
    assert_json_error(response, 405)
    assert response["Allow"] == "GET, HEAD, DELETE"


# -- listing ----------------------------------------------------------------------


def test_listing_shows_only_the_callers_files(alice, bob, make_file) -> None:
    notes = make_file(alice, "notes.txt", b"notes\n")
    photo = make_file(alice, "photo.png", png_bytes())
    theirs = make_file(bob, "bob.txt", b"bob's\n")

    client, _ = browser(alice)
    response = client.get(API)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    listed = response.json()
    assert list(listed) == ["files"]
    assert sorted(listed["files"], key=lambda entry: entry["name"]) == [
        {
            "id": str(notes.pk),
            "name": "notes.txt",
            "size": 6,
            "content_type": "text/plain",
            "url": notes.file.url,
            "thumbnail_url": None,  # small images get none
            "shared_with": NOT_SHARED,  # no grant on a new file
        },
        {
            "id": str(photo.pk),
            "name": "photo.png",
            "size": photo.record.size,
            "content_type": "image/png",
            "url": photo.file.url,
            "thumbnail_url": None,  # small images get none
            "shared_with": NOT_SHARED,  # no grant on a new file
        },
    ]
    assert theirs.file.url not in response.content.decode()

    bob_client, _ = browser(bob)
    assert [entry["id"] for entry in bob_client.get(API).json()["files"]] == [str(theirs.pk)]


def test_listing_is_empty_for_a_user_without_files(alice, bob, make_file) -> None:
    make_file(alice)
    client, _ = browser(bob)
    assert client.get(API).json() == {"files": []}


def test_an_uploaded_file_appears_in_the_listing(alice) -> None:
    client, headers = browser(alice)
    created = upload(client, headers, "a.txt", b"a\n", "text/plain").json()
    assert client.get(API).json() == {"files": [created]}
    assert client.get(f"{API}{created['id']}/").json() == created


# -- deleting ---------------------------------------------------------------------


def test_another_users_delete_is_404_and_the_file_stays(alice, bob, make_file, private_root):
    item = make_file(alice, "mine.txt", b"mine\n")
    client, headers = browser(bob)
    with nothing_written(private_root):
        other = client.delete(f"{API}{item.pk}/", headers=headers)
        missing = client.delete(f"{API}00000000-0000-4000-8000-000000000000/", headers=headers)
    assert_json_error(other, 404)
    # One answer for "no": someone else's file looks exactly like no file.
    assert (other.status_code, other.content) == (missing.status_code, missing.content)
    assert (private_root / item.file.name).read_bytes() == b"mine\n"
    owner, _ = browser(alice)
    assert owner.get(item.file.url)["X-Accel-Redirect"] == f"/_protected/{item.file.name}"


def test_another_users_file_detail_is_404(alice, bob, make_file) -> None:
    item = make_file(alice, "mine.txt", b"mine\n")
    client, _ = browser(bob)
    assert_json_error(client.get(f"{API}{item.pk}/"), 404)


@pytest.mark.django_db(transaction=True)
def test_owner_delete_removes_row_record_and_file(alice, private_root) -> None:
    client, headers = browser(alice)
    created = upload(client, headers, "gone soon.png", png_bytes(), "image/png").json()
    record = StoredFile.objects.get()
    path = private_root / record.name
    assert path.is_file()

    response = client.delete(f"{API}{created['id']}/", headers=headers)

    assert response.status_code == 204
    assert response.content == b""
    assert not StoredFile.objects.filter(pk=record.pk).exists()
    assert not ProtectedFile.objects.filter(pk=created["id"]).exists()
    assert not path.exists()
    assert files_on_disk(private_root) == frozenset()
    old = client.get(created["url"])
    assert (old.status_code, old.content) == GATEWAY_NOT_FOUND
    assert "X-Accel-Redirect" not in old.headers
    assert_json_error(client.delete(f"{API}{created['id']}/", headers=headers), 404)


def test_delete_removes_the_file_only_when_the_transaction_commits(
    alice, make_file, private_root, django_capture_on_commit_callbacks
) -> None:
    item = make_file(alice, "later.txt", b"later\n")
    path = private_root / item.file.name
    client, headers = browser(alice)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.delete(f"{API}{item.pk}/", headers=headers)
        assert response.status_code == 204
        # Still inside the test's transaction: a rollback would need the file.
        assert path.read_bytes() == b"later\n"
    for callback in callbacks:
        callback()
    assert not path.exists()


def test_delete_without_csrf_token_is_403_and_the_file_stays(alice, make_file, private_root):
    item = make_file(alice, "mine.txt", b"mine\n")
    client, _ = browser(alice)
    with nothing_written(private_root):
        response = client.delete(f"{API}{item.pk}/")
    assert "CSRF" in assert_json_error(response, 403)
