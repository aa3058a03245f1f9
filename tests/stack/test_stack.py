"""The real stack, as a user meets it: nginx in front (rendered config),
uvicorn behind it, everything spoken to over HTTP on loopback."""

from __future__ import annotations

import io
import json
import os
import signal
import unicodedata
from email.message import EmailMessage
from urllib.parse import quote

import pytest
from PIL import Image

from protected_media.inspection import human_size
from protected_media.nginx.render import REFUSAL_HEADER

from .conftest import MAX_UPLOAD, USERS
from .harness import cookie_header, upload

pytestmark = pytest.mark.stack

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'; sandbox",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
}
TEXT = b"private notes\n" * 1000


def png(size=(16, 12), color=(10, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def static_name(stack, original: str) -> str:
    manifest = json.loads((stack.data_dir / "static" / "staticfiles.json").read_text())
    return manifest["paths"][original]


def parse_disposition(value: str) -> tuple[str, str]:
    message = EmailMessage()
    message["Content-Disposition"] = value
    return message.get_content_disposition(), message.get_filename()


@pytest.fixture(scope="module")
def text_file(stack):
    client = stack.login("alice", USERS["alice"])
    response = upload(client, "notes.txt", TEXT, "text/plain")
    client.close()
    assert response.status_code == 201, response.text
    return response.json()


# static: nginx alone


def test_static_is_served_by_nginx_even_with_uvicorn_stopped(stack) -> None:
    hashed = static_name(stack, "demo/site.css")
    pids = stack.uvicorn_pids()
    assert pids, "uvicorn is not running"
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        response = stack.raw("GET", f"/static/{hashed}")
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    assert response.status == 200
    assert response.body == (stack.data_dir / "static" / hashed).read_bytes()
    assert response.headers["content-type"] == "text/css"
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["server"] == "nginx"  # no version: server_tokens off


def test_unhashed_static_names_are_cached_briefly(stack) -> None:
    response = stack.raw("GET", "/static/demo/site.css")
    assert response.status == 200
    assert response.headers["cache-control"] == "public, max-age=3600"


# media: the owner gets the bytes from nginx


def test_owner_gets_exact_bytes_with_type_and_security_headers(stack, alice, text_file) -> None:
    response = stack.raw("GET", text_file["url"], headers=cookie_header(alice))
    assert response.status == 200
    assert response.body == TEXT
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-length"] == str(len(TEXT))
    assert response.headers["cache-control"] == "private, no-store"
    assert parse_disposition(response.headers["content-disposition"]) == ("inline", "notes.txt")
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value
    assert not [name for name in response.headers if name.startswith("x-accel")]
    assert "etag" in response.headers and "last-modified" in response.headers


def test_images_inline_and_pdfs_as_attachments(stack, alice) -> None:
    image = upload(alice, "photo.png", png(), "image/png").json()
    pdf = upload(
        alice, "paper.pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\n%%EOF\n", "application/pdf"
    ).json()
    got_image = stack.raw("GET", image["url"], headers=cookie_header(alice))
    assert got_image.headers["content-type"] == "image/png"
    assert got_image.headers["content-disposition"] == 'inline; filename="photo.png"'
    assert Image.open(io.BytesIO(got_image.body)).size == (16, 12)
    got_pdf = stack.raw("GET", pdf["url"], headers=cookie_header(alice))
    assert got_pdf.headers["content-type"] == "application/pdf"
    assert got_pdf.headers["content-disposition"] == 'attachment; filename="paper.pdf"'
    assert got_pdf.body.startswith(b"%PDF-1.4")


def test_uvicorn_itself_answers_with_an_empty_body(stack, alice, text_file) -> None:
    # Straight to uvicorn's socket: the handoff must declare Content-Length 0,
    # or uvicorn fails the response ("shorter than Content-Length").
    response = stack.raw_uvicorn("GET", text_file["url"], headers=cookie_header(alice))
    assert response.status == 200
    assert response.body == b""
    assert response.headers["content-length"] == "0"
    assert response.headers["x-accel-redirect"].startswith("/_protected/files/")
    assert "Content-Length" not in stack.log()


# media: everybody else gets nothing


def test_another_user_and_a_stranger_get_nothing(stack, bob, text_file) -> None:
    as_bob = stack.raw("GET", text_file["url"], headers=cookie_header(bob))
    assert (as_bob.status, as_bob.body) == (404, b"Not Found\n")
    stranger = stack.raw("GET", text_file["url"])
    assert stranger.status == 302
    assert stranger.headers["location"] == f"/accounts/login/?next={quote(text_file['url'])}"
    assert b"private notes" not in as_bob.body + stranger.body


def test_refusals_are_byte_identical_through_nginx(stack, bob, text_file) -> None:
    def answer(target: str):
        response = stack.raw("GET", target, headers=cookie_header(bob))
        headers = [(k, v) for k, v in response.header_list if k != "date"]
        return response.status, headers, response.body

    forbidden = answer(text_file["url"])
    assert forbidden[0] == 404
    for target in ("/media/AAAAAAAAAAAAAAAAAAAAAA", "/media/nope", "/media/a/..%2F..%2F.env"):
        assert answer(target) == forbidden


@pytest.mark.parametrize(
    "target",
    [
        "/_protected/files/",  # the internal location asked directly
        "/_protected../secret_key",  # off-by-slash on the internal location
        "/static../secret_key",  # off-by-slash on the static location
        "/static/../secret_key",
        "/static/..%2fsecret_key",
    ],
)
def test_no_url_skips_the_check(stack, alice, text_file, target) -> None:
    secret = (stack.data_dir / "secret_key").read_bytes()
    response = stack.raw("GET", target, headers=cookie_header(alice))
    assert response.status in (400, 404)
    assert secret not in response.body and b"private notes" not in response.body


def test_internal_location_by_the_files_real_name(stack, alice, text_file) -> None:
    name = next((stack.private_root / "files").glob(text_file["url"].rsplit("/", 1)[1] + ".*"))
    response = stack.raw("GET", f"/_protected/files/{name.name}", headers=cookie_header(alice))
    assert response.status == 404
    assert b"private notes" not in response.body


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_405_and_serve_nothing(stack, alice, text_file, method) -> None:
    response = stack.raw(method, text_file["url"], headers=cookie_header(alice), body=b"")
    assert response.status == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert b"private notes" not in response.body


# nginx's own HTTP features on the handoff


def test_range_and_conditional_requests(stack, alice, text_file) -> None:
    headers = cookie_header(alice)
    partial = stack.raw("GET", text_file["url"], headers={**headers, "Range": "bytes=8-12"})
    assert partial.status == 206
    assert partial.body == TEXT[8:13]
    assert partial.headers["content-range"] == f"bytes 8-12/{len(TEXT)}"
    whole = stack.raw("GET", text_file["url"], headers=headers)
    cached = stack.raw(
        "GET", text_file["url"], headers={**headers, "If-None-Match": whole.headers["etag"]}
    )
    assert (cached.status, cached.body) == (304, b"")
    many = stack.raw("GET", text_file["url"], headers={**headers, "Range": "bytes=0-1,3-4,6-7"})
    assert many.status == 200 and many.body == TEXT  # max_ranges 1
    past = stack.raw("GET", text_file["url"], headers={**headers, "Range": f"bytes={len(TEXT)}-"})
    # The site's short 416, as for a stored object: text, not nginx's page,
    # with the size the client may know.
    assert (past.status, past.body) == (416, b"Range Not Satisfiable\n")
    assert past.headers["content-type"] == "text/plain; charset=utf-8"
    assert past.headers["content-range"] == f"bytes */{len(TEXT)}"
    assert past.headers["x-content-type-options"] == "nosniff"


def test_head_sends_no_body(stack, alice, text_file) -> None:
    response = stack.raw("HEAD", text_file["url"], headers=cookie_header(alice))
    assert response.status == 200
    assert response.body == b""
    assert response.headers["content-length"] == str(len(TEXT))


# uploads


def test_upload_over_the_limit_is_413(stack, alice) -> None:
    slightly = upload(alice, "big.txt", b"a" * (MAX_UPLOAD + 1), "text/plain")
    assert slightly.status_code == 413
    assert "error" in slightly.json()
    far = upload(alice, "huge.txt", b"a" * (MAX_UPLOAD + 512 * 1024), "text/plain")
    # nginx refuses before Django reads it; the app words the refusal.
    assert far.status_code == 413
    assert far.headers["content-type"] == "application/json"
    assert far.json() == {"error": TOO_LARGE}
    listing = alice.get("/api/files/").json()["files"]
    assert not [item for item in listing if item["name"] in ("big.txt", "huge.txt")]


TOO_LARGE = f"The upload is larger than the limit of {human_size(MAX_UPLOAD)}; nothing was saved."


@pytest.mark.parametrize(("path", "field"), [("/profile/", "profile_picture"), ("/files/", "file")])
def test_a_form_far_over_the_limit_gets_the_sites_page(stack, alice, path, field) -> None:
    # As a browser without JavaScript sends the profile form or the plain
    # upload form: nginx refuses the body, and the site says why on its page.
    response = alice.post(
        path,
        files={field: ("huge.png", b"a" * (MAX_UPLOAD + 512 * 1024), "image/png")},
        data={"csrfmiddlewaretoken": alice.cookies["csrftoken"]},
        headers={"Accept": "text/html,*/*;q=0.8", "Origin": str(alice.base_url).rstrip("/")},
    )
    assert response.status_code == 413
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "<h1>File too large</h1>" in response.text
    assert TOO_LARGE in response.text
    assert "Request Entity Too Large" not in response.text  # not nginx's page
    assert response.headers["cache-control"] == "private, no-store"
    assert "default-src 'self'" in response.headers["content-security-policy"]
    # The form itself is still there, and nothing was saved.
    assert alice.get(path).status_code == 200
    assert all(item["name"] != "huge.png" for item in alice.get("/api/files/").json()["files"])


def test_a_client_cannot_ask_for_the_refusal_itself(stack, alice) -> None:
    # Only nginx marks a request as a refused upload: a client's own mark is
    # dropped, and the page answers as usual.
    response = alice.get("/files/", headers={REFUSAL_HEADER: "too-large"})
    assert response.status_code == 200
    assert "File too large" not in response.text


@pytest.mark.parametrize(
    "name",
    [
        "a b.txt",
        "100%.txt",
        "what?.txt",
        "#1.txt",
        "a+b.txt",
        "a;b.txt",
        # '"quoted".txt' is left out: clients send '"' as %22 in multipart names
        # (as the HTML standard tells browsers to); tests/test_view.py covers it.
        "\u00e9t\u00e9.txt",  # NFC
        "e\u0301te\u0301.txt",  # NFD: kept as NFC
        "日本語.txt",
    ],
)
def test_original_names_round_trip(stack, alice, name) -> None:
    created = upload(alice, name, b"named\n", "text/plain").json()
    assert created["name"] == unicodedata.normalize("NFC", name)
    response = stack.raw("GET", created["url"], headers=cookie_header(alice))
    assert response.body == b"named\n"
    assert parse_disposition(response.headers["content-disposition"]) == (
        "inline",
        unicodedata.normalize("NFC", name),
    )


STORED_NAMES = [
    "odd/a b.txt",
    "odd/100%.txt",
    "odd/what?.txt",
    "odd/#hash.txt",
    "odd/a+b.txt",
    "odd/a;b.txt",
    "odd/\u00e9t\u00e9.txt",
    "odd/e\u0301te\u0301.txt",
    "odd/日本語.txt",
]


def test_stored_names_nginx_must_decode_once(stack, alice) -> None:
    # A site's upload_to may produce such names; nginx must find each exact file.
    script = "\n".join(
        [
            "from pathlib import Path",
            "from django.conf import settings",
            "from django.contrib.auth.models import User",
            "from protected_media.models import ProtectedFile, StoredFile",
            "alice = User.objects.get(username='alice')",
            f"names = {STORED_NAMES!r}",
            "for index, name in enumerate(names):",
            "    path = Path(settings.SENDFILE_ROOT) / name",
            # As the site's storage writes them: nothing for other users
            # (tests/stack/attacks/test_configuration.py checks the root).
            "    path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)",
            "    path.write_bytes(('content %d' % index).encode())",
            "    path.chmod(0o640)",
            "    key = ('odd%02d' % index).ljust(22, 'x')",
            "    StoredFile.objects.create(key=key, name=name, original_name='f.txt', size=9,",
            "        content_type='text/plain', source='protected_media.protectedfile.file')",
            "    ProtectedFile.objects.create(owner=alice, file=name)",
        ]
    )
    stack.shell(script)
    for index, _ in enumerate(STORED_NAMES):
        key = f"odd{index:02d}".ljust(22, "x")
        response = stack.raw("GET", f"/media/{key}", headers=cookie_header(alice))
        assert (response.status, response.body) == (200, f"content {index}".encode())


def test_deleted_file_is_gone(stack, alice) -> None:
    created = upload(alice, "temp.txt", b"temporary\n", "text/plain").json()
    assert (
        alice.delete(
            f"/api/files/{created['id']}/", headers={"X-CSRFToken": alice.cookies["csrftoken"]}
        ).status_code
        == 204
    )
    response = stack.raw("GET", created["url"], headers=cookie_header(alice))
    assert (response.status, response.body) == (404, b"Not Found\n")


@pytest.mark.parametrize("target", ["outside the root", "another user's file"])
def test_nginx_refuses_a_symlink_planted_under_the_root(stack, alice, bob, target) -> None:
    mine = upload(alice, "mine.txt", b"mine\n", "text/plain").json()
    theirs = upload(bob, "theirs.txt", b"bob's secret\n", "text/plain").json()
    secret = stack.data_dir / "outside-secret.txt"
    secret.write_bytes(b"outside secret\n")

    def stored(url: str):
        key = url.rsplit("/", 1)[1]
        return next((stack.private_root / "files").glob(f"{key}.*"))

    path = stored(mine["url"])
    path.unlink()
    path.symlink_to(secret if target == "outside the root" else stored(theirs["url"]))
    response = stack.raw("GET", mine["url"], headers=cookie_header(alice))
    assert response.status in (403, 404)
    assert b"secret" not in response.body


def test_each_media_decision_is_one_audit_line_in_the_log(stack, alice, bob) -> None:
    created = upload(alice, "audited.txt", b"on the record\n", "text/plain").json()
    key = created["url"].rsplit("/", 1)[1]
    assert stack.raw("GET", created["url"], headers=cookie_header(alice)).status == 200
    assert stack.raw("GET", created["url"], headers=cookie_header(bob)).status == 404
    assert stack.raw("GET", created["url"]).status == 302
    lines = [line for line in stack.log().splitlines() if f"key={key}" in line]
    decisions = [line.split("media ", 1)[1].split(" user=")[0] for line in lines]
    assert decisions == [
        "decision=served reason=owner",
        "decision=denied reason=policy_denied",
        "decision=denied reason=anonymous",
    ], lines
