"""Hostile uploads through nginx: content meant to run in our origin, bodies
meant to exhaust us, and requests without the CSRF token."""

from __future__ import annotations

import io
import threading
import time

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ..conftest import MAX_UPLOAD
from ..harness import Stack, cookie_header, upload
from .support import (
    MEDIA_SECURITY_HEADERS,
    answered_by_django,
    multipart,
    png,
    png_declaring,
    wire,
)

pytestmark = pytest.mark.stack

SCRIPT = b"<script>alert(document.domain)</script>"


def jpeg_with_comment(comment: bytes) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format="JPEG")
    data = buffer.getvalue()
    segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
    return data[:2] + segment + data[2:]  # a COM segment right after SOI


def png_with_text_chunk(text: bytes) -> bytes:
    info = PngInfo()
    info.add_text("Comment", text.decode())
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def listed(client) -> list[tuple[str, str]]:
    return [(item["id"], item["name"]) for item in client.get("/api/files/").json()["files"]]


REFUSED = "refused at upload"
ATTACHMENT = "served as an attachment"
INLINE = "served inline, harmless"

CONTENT = [
    # from security.md: HTML sent as a PNG, by name and by header
    ("x.png", b"<!doctype html><html>" + SCRIPT, "image/png", REFUSED),
    ("x.html", b"<html><body>" + SCRIPT + b"</body></html>", "text/html", REFUSED),
    ("x.txt", b"<HTML><BODY>" + SCRIPT.upper(), "text/plain", REFUSED),  # upper case
    ("x.txt", b" \r\n\t<html>" + SCRIPT, "text/plain", REFUSED),  # after blanks
    ("x.txt", b"\xef\xbb\xbf<html>" + SCRIPT, "text/plain", REFUSED),  # after a BOM
    ("x.txt", b"a" * 9000 + SCRIPT, "text/plain", REFUSED),  # past the first 8 KiB
    ("x.txt", b"a" * 65535 + SCRIPT, "text/plain", REFUSED),  # across a chunk boundary
    ("x.txt", "<html>".encode("utf-16") + SCRIPT.decode().encode("utf-16"), "text/plain", REFUSED),
    ("x.txt", b"<img src=x onerror=alert(1)>", "text/plain", REFUSED),  # a tag the markers miss
    # from security.md: an SVG with a script
    ("x.svg", b'<svg xmlns="http://www.w3.org/2000/svg">' + SCRIPT + b"</svg>", "image/svg+xml",
     REFUSED),
    ("x.png", b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', "image/png", REFUSED),
    # XML, with and without its declaration (an XHTML script either way)
    ("x.xml", b'<?xml version="1.0"?><x:script xmlns:x="http://www.w3.org/1999/xhtml">alert(1)'
     b"</x:script>", "text/xml", REFUSED),
    ("x.xml", b'<a xmlns:h="http://www.w3.org/1999/xhtml"><h:script>alert(1)</h:script></a>',
     "application/xml", REFUSED),
    ("x.xhtml", b'<html xmlns="http://www.w3.org/1999/xhtml">' + SCRIPT + b"</html>",
     "application/xhtml+xml", REFUSED),
    # PDF, with JavaScript in it, and with HTML inside: only ever an attachment
    ("x.pdf", b"%PDF-1.4\n1 0 obj<</S/JavaScript/JS(app.alert(1))>>endobj\n%%EOF\n",
     "application/pdf", ATTACHMENT),
    ("x.html", b"%PDF-1.4\n<html>" + SCRIPT + b"</html>\n%%EOF\n", "text/html", ATTACHMENT),
    # HTML first, a PDF signature later: not a PDF, and markup
    ("x.pdf", b"<html>" + SCRIPT + b"</html>\n%PDF-1.4\n%%EOF\n", "application/pdf", REFUSED),
    # polyglots: an HTML file with a PNG header, a PNG with HTML after it
    ("x.html", b"\x89PNG\r\n\x1a\n<html>" + SCRIPT, "text/html", REFUSED),
    ("x.png", png() + b"<html>" + SCRIPT + b"</html>", "image/png", INLINE),
    ("x.gif", b"GIF89a/*" + SCRIPT + b"*/=1;", "image/gif", REFUSED),  # a GIF/JS polyglot
    ("x.jpg", jpeg_with_comment(b"<html>" + SCRIPT), "image/jpeg", INLINE),  # HTML in a comment
    ("x.png", png_with_text_chunk(b"<html>" + SCRIPT), "image/png", INLINE),  # HTML in tEXt
    # an archive and an executable
    ("x.zip", b"PK\x03\x04" + bytes(100), "application/zip", REFUSED),
    ("x.exe", b"MZ\x90\x00" + bytes(200), "application/octet-stream", REFUSED),
    # plain text that merely mentions a tag stays plain text
    ("x.txt", b"if a < b and b > c, write <p> in HTML\n", "text/plain", INLINE),
]  # fmt: skip


@pytest.mark.parametrize(("name", "data", "claimed", "expected"), CONTENT)
def test_content_never_runs_in_our_origin(
    stack: Stack, owner, name: str, data: bytes, claimed: str, expected: str
) -> None:
    before = listed(owner)
    response = upload(owner, name, data, claimed)
    if expected == REFUSED:
        assert response.status_code == 415, response.text
        assert listed(owner) == before
        return
    assert response.status_code == 201, response.text
    served = stack.raw("GET", response.json()["url"], headers=cookie_header(owner))
    assert served.status == 200
    content_type = served.headers["content-type"]
    assert "html" not in content_type and "xml" not in content_type
    for header, value in MEDIA_SECURITY_HEADERS.items():
        assert served.headers[header] == value
    disposition = served.headers["content-disposition"]
    if expected == ATTACHMENT:
        assert disposition.startswith("attachment;")
        assert content_type == "application/pdf"
    else:
        assert disposition.startswith("inline;")
        if content_type.startswith("image/"):
            # Re-encoded: whatever rode along with the pixels is gone.
            assert b"<html" not in served.body and b"<script" not in served.body
            Image.open(io.BytesIO(served.body)).verify()
        else:
            assert content_type == "text/plain; charset=utf-8"
            assert served.body == data


# -- bodies ---------------------------------------------------------------------------


def post_head(stack: Stack, client, *headers: str) -> bytes:
    lines = [
        "POST /api/files/ HTTP/1.1",
        f"Host: 127.0.0.1:{stack.port}",
        cookie_header(client)["Cookie"].join(["Cookie: ", ""]),
        f"X-CSRFToken: {client.cookies['csrftoken']}",
        f"Origin: {stack.url}",
        "Content-Type: multipart/form-data; boundary=attack-boundary",
        "Connection: close",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def chunked(body: bytes, size: int = 65536) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


def one_file(size: int, name: str) -> bytes:
    return multipart([(f'filename="{name}"', b"a" * size)])


def many_parts(count: int) -> bytes:
    return multipart([(f'filename="part{index}.txt"', b"x") for index in range(count)])


OVER = MAX_UPLOAD + 256 * 1024  # past nginx's cap (the limit plus 64 KiB)

# (case, framing, body, status, who answers). Framing "length" sends the body
# with its Content-Length, "chunked" in 64 KiB chunks, "raw" with
# Transfer-Encoding: chunked and the bytes as written.
BODIES = [
    # from security.md: over the limit with Content-Length: nginx refuses on
    # the header alone, before a byte of the body is sent, and hands the app
    # a GET with no body to word the refusal (JSON here)
    ("declared", f"Content-Length: {50 * 1024 * 1024}", lambda: b"", 413, "django"),
    ("sent", "length", lambda: one_file(OVER, "big.txt"), 413, "django"),
    # from security.md: over the limit without Content-Length (chunked)
    ("chunked", "chunked", lambda: one_file(OVER, "big.txt"), 413, "django"),
    # one byte over the exact limit: within nginx's framing room, refused by Django
    ("exact", "length", lambda: one_file(MAX_UPLOAD + 1, "big.txt"), 413, "django"),
    ("chunked-exact", "chunked", lambda: one_file(MAX_UPLOAD + 1, "big.txt"), 413, "django"),
    # a chunked body within the limit, in tiny chunks, is an ordinary upload
    ("chunked-small", "chunked", lambda: one_file(100, "chunked.txt"), 201, "django"),
    # request smuggling: both framings at once
    ("both", "Content-Length: 10\r\nTransfer-Encoding: chunked",
     lambda: chunked(one_file(100, "smuggled.txt")), 400, "nginx"),
    # a chunk size that is not hex, and one past any size
    ("bad-size", "raw", lambda: b"zz\r\nabc\r\n0\r\n\r\n", 400, "nginx"),
    ("huge-size", "raw", lambda: b"ffffffffffffffff\r\nabc\r\n0\r\n\r\n", 400, "nginx"),
    # a transfer coding nginx does not speak
    ("gzip", "Transfer-Encoding: gzip, chunked",
     lambda: chunked(one_file(100, "gzip.txt")), 501, "nginx"),
    # from security.md: 1000 parts in one request; and 5000
    ("1000 parts", "length", lambda: many_parts(1000), 400, "django"),
    ("5000 parts", "length", lambda: many_parts(5000), 400, "django"),
    # two files where one is expected
    ("2 files", "length", lambda: many_parts(2), 400, "django"),
]  # fmt: skip


def framed(framing: str, body: bytes) -> tuple[str, bytes]:
    if framing == "length":
        return f"Content-Length: {len(body)}", body
    if framing == "chunked":
        return "Transfer-Encoding: chunked", chunked(body, size=7 if len(body) < 1000 else 65536)
    if framing == "raw":
        return "Transfer-Encoding: chunked", body
    return framing, body


@pytest.mark.parametrize(
    ("case", "framing", "make_body", "status", "answered_by"), BODIES, ids=[r[0] for r in BODIES]
)
def test_bodies_are_bounded(
    stack: Stack, owner, case: str, framing: str, make_body, status: int, answered_by: str
) -> None:
    before = sorted(stack.private_root.rglob("*"))
    names = listed(owner)
    header, body = framed(framing, make_body())
    response = wire(stack, post_head(stack, owner, header) + body)
    assert response is not None
    assert response.status == status
    assert answered_by_django(response) is (answered_by == "django")
    if status == 201:
        assert [name for _, name in set(listed(owner)) - set(names)] == ["chunked.txt"]
        return
    assert listed(owner) == names
    assert sorted(stack.private_root.rglob("*")) == before
    if answered_by == "django":
        assert response.headers["content-type"] == "application/json"


def test_a_slow_body_is_cut_off_by_nginx_before_django_starts(stack: Stack, owner) -> None:
    # A slow-loris upload and a slow-loris request head, side by side: both
    # stall after a first piece. nginx's client timeouts (15 s) close both;
    # Django, behind nginx's buffering, never sees either request.
    tag = f"slow-{time.monotonic_ns()}.txt"
    body = one_file(1000, tag)
    stalls = {
        "body": post_head(stack, owner, f"Content-Length: {len(body)}") + body[:100],
        "head": f"GET /healthz?{tag} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode(),
    }
    answers: dict[str, object] = {}

    def stall(kind: str) -> None:
        started = time.monotonic()
        answers[kind] = (wire(stack, stalls[kind], timeout=40), time.monotonic() - started)

    names = listed(owner)
    threads = [threading.Thread(target=stall, args=(kind,)) for kind in stalls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for kind in stalls:
        response, waited = answers[kind]  # type: ignore[misc]
        assert response is None, kind  # closed without an answer
        assert 14 <= waited < 30, (kind, waited)
    access_log = (stack.data_dir / "nginx" / "access.log").read_text()
    assert '"POST /api/files/ HTTP/1.1" 408 ' in access_log
    assert f'"GET /healthz?{tag} HTTP/1.1" 408 ' in access_log
    assert listed(owner) == names


# -- images ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (50000, 50000),  # from security.md: a PNG declaring 2.5 billion pixels
        (10000, 10000),  # past Pillow's own warning
        (7000, 7000),  # under Pillow's limit, over the site's (40 million)
        (1, 2**31 - 1),  # one very tall column
    ],
)
def test_a_decompression_bomb_is_refused_before_decoding(
    stack: Stack, owner, width: int, height: int
) -> None:
    before = listed(owner)
    started = time.monotonic()
    response = upload(owner, "bomb.png", png_declaring(width, height), "image/png")
    assert response.status_code in (413, 415), response.text
    assert time.monotonic() - started < 5
    assert listed(owner) == before


# -- CSRF -----------------------------------------------------------------------------


CSRF = [
    # from security.md: no token at all
    ({}, "cookie"),
    # a token that is not the cookie's
    ({"X-CSRFToken": "a" * 32}, "cookie"),
    # the right token from another origin (a cross-site form)
    ({"X-CSRFToken": "{token}", "Origin": "http://evil.example"}, "cookie"),
    ({"X-CSRFToken": "{token}", "Origin": "null"}, "cookie"),
    # the token as a form field of a cross-site form
    ({"Origin": "http://evil.example"}, "field"),
]


@pytest.mark.parametrize(("extra", "token_in"), CSRF)
def test_uploads_need_the_csrf_token(stack: Stack, owner, extra: dict, token_in: str) -> None:
    token = owner.cookies["csrftoken"]
    headers = {name: value.replace("{token}", token) for name, value in extra.items()}
    data = {"csrfmiddlewaretoken": token} if token_in == "field" else None
    names = listed(owner)
    response = owner.post(
        "/api/files/", files={"file": ("csrf.txt", b"forged\n", "text/plain")}, data=data,
        headers=headers,
    )  # fmt: skip
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]
    assert listed(owner) == names


def test_delete_needs_the_csrf_token(stack: Stack, owner) -> None:
    created = upload(owner, "keep.txt", b"keep me\n", "text/plain").json()
    for headers in (
        {},
        {"X-CSRFToken": owner.cookies["csrftoken"], "Origin": "http://evil.example"},
    ):
        response = owner.delete(f"/api/files/{created['id']}/", headers=headers)
        assert response.status_code == 403
    served = stack.raw("GET", created["url"], headers=cookie_header(owner))
    assert (served.status, served.body) == (200, b"keep me\n")
