"""Hostile file names, uploaded through nginx and served back by it.

A name is data: whatever the client sends, the served Content-Disposition
must parse, with the standard library's HTTP header parser, to exactly one
filename: the sanitised name the API reported, with the extension of the
type the server detected. The name never becomes a path, and never names a
file that runs once saved.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import quote, urlsplit

import pytest

from ..harness import Stack, cookie_header
from .support import multipart, parse_disposition

pytestmark = pytest.mark.stack

TEXT = b"named file\n"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\n%%EOF\n"

NAMES = [
    # from security.md, each with what is kept
    ("My report (final).pdf", "My report (final).txt"),  # text, served as .txt
    ("\u00e9t\u00e9.txt", "\u00e9t\u00e9.txt"),  # NFC
    ("e\u0301te\u0301.txt", "\u00e9t\u00e9.txt"),  # NFD, kept as NFC
    ("日本語.txt", "日本語.txt"),
    ("日本語.png", "日本語.txt"),  # text, whatever the name says
    ("a;b.txt", "a;b.txt"),  # a parameter separator
    ('"quoted".txt', '"quoted".txt'),  # quotes that would end the parameter
    ("back\\slash.txt", "slash.txt"),  # a Windows path: its last part
    ("new\r\nline.txt", "newline.txt"),  # header injection
    ("n" * 296 + ".txt", "n" * 196 + ".txt"),  # 300 characters: capped, extension kept
    # a second parameter smuggled into the name
    ('x; filename="evil.html"', 'x; filename="evil.txt'),  # the extension is the type's
    ("a\"; filename*=utf-8''evil.html", "a\"; filename*=utf-8''evil.txt"),
    ('semi;colon="x".txt', 'semi;colon="x".txt'),
    # an RFC 2047 encoded word that parsers (and browsers) decode to "evil.html"
    ("=?utf-8?q?evil=2Ehtml?=", "=?utf-8?q?evil=2Ehtml?=.txt"),
    ("=?utf-8?b?ZXZpbC5odG1s?=.txt", "=?utf-8?b?ZXZpbC5odG1s?=.txt"),
    # a name ending in a backslash: its last part is empty, so no file
    ("a\\\\b\\", None),
    # percent-encoding a client might expect us to decode
    ("%22q%22%0D%0A.txt", "%22q%22%0D%0A.txt"),
    # paths
    ("../../etc/passwd", "passwd.txt"),
    ("C:\\Users\\me\\cv.pdf", "cv.txt"),
    ("/etc/passwd", "passwd.txt"),
    # invisible characters: NUL, tab, the right-to-left override disguising ".exe"
    ("a\x00b.txt", "ab.txt"),
    ("tab\there.txt", "tabhere.txt"),
    ("\u202egnp.exe", "gnp.txt"),
    ("photo\u202egnp.exe", "photognp.txt"),
    # dots and spaces at the ends
    ("  ..hidden..  ", "hidden.txt"),
    ("...", "file.txt"),  # nothing left once trimmed: the fallback name
    # from security.md: names the multipart parser drops, so no file arrives
    ("", None),
    (".", None),
    ("..", None),
]


def send(client, disposition: str, data: bytes = TEXT):
    body = multipart([(disposition, data)])
    return client.post(
        "/api/files/",
        content=body,
        headers={
            "Content-Type": "multipart/form-data; boundary=attack-boundary",
            "X-CSRFToken": client.cookies["csrftoken"],
            "Origin": str(client.base_url).rstrip("/"),
        },
    )


def assert_served_as(stack: Stack, client, url: str, name: str, disposition: str) -> None:
    response = stack.raw("GET", url, headers=cookie_header(client))
    assert response.status == 200
    value = response.headers["content-disposition"]
    assert [n for n, _ in response.header_list].count("content-disposition") == 1
    kind, parameters, filename, defects = parse_disposition(value)
    assert (kind, len(parameters), filename, defects) == (disposition, 1, name, [])


@pytest.mark.parametrize(("sent", "kept"), NAMES)
def test_a_hostile_name_comes_back_as_one_clean_filename(
    stack: Stack, owner, sent: str, kept: str | None
) -> None:
    # RFC 2231 (filename*) carries every character to the server unchanged.
    response = send(owner, f"filename*=UTF-8''{quote(sent, safe='')}")
    if kept is None:
        # Django's parser drops a part whose name is "", "." or ".." (or
        # whose last path part is empty): no file arrives, nothing is stored.
        assert response.status_code == 400, response.text
        listed = [item["name"] for item in owner.get("/api/files/").json()["files"]]
        assert sent not in listed
        return
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["name"] == kept
    assert unicodedata.is_normalized("NFC", kept)
    assert_served_as(stack, owner, created["url"], kept, "inline")


@pytest.mark.parametrize(
    ("disposition", "kept"),
    [
        # the same names as a browser's quoted form sends them
        ('filename="\\"quoted\\".txt"', '"quoted".txt'),
        ('filename="a;b.txt"', "a;b.txt"),
        ('filename="back\\\\slash.txt"', "slash.txt"),
        ('filename="%22quoted%22.txt"', "%22quoted%22.txt"),
        # two filename parameters: the parser keeps one, and one goes back
        ('filename="a.txt"; filename="b.html"', "b.txt"),
        # both forms at once, disagreeing
        ("filename=\"plain.txt\"; filename*=UTF-8''evil%0D%0A.html", "evil.txt"),
        # an unquoted name
        ("filename=bare.txt", "bare.txt"),
    ],
)
def test_names_in_the_quoted_form(stack: Stack, owner, disposition: str, kept: str) -> None:
    response = send(owner, disposition)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["name"] == kept
    assert_served_as(stack, owner, created["url"], kept, "inline")


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        # an attachment's header carries the same names safely
        ('x; filename="evil.html".pdf', 'x; filename="evil.html".pdf'),
        ("=?utf-8?q?evil=2Ehtml?=", "=?utf-8?q?evil=2Ehtml?=.pdf"),
        ("r\u00e9sum\u00e9\r\n.pdf", "r\u00e9sum\u00e9.pdf"),
        ("p" * 300 + ".pdf", "p" * 196 + ".pdf"),
    ],
)
def test_hostile_names_on_attachments(stack: Stack, owner, sent: str, kept: str) -> None:
    response = send(owner, f"filename*=UTF-8''{quote(sent, safe='')}", PDF)
    assert response.status_code == 201, response.text
    created = response.json()
    assert (created["name"], created["content_type"]) == (kept, "application/pdf")
    assert_served_as(stack, owner, created["url"], kept, "attachment")


@pytest.mark.parametrize(
    "sent",
    [
        "../../../secret_key",  # the name never becomes the stored path
        "..\\..\\db.sqlite3",
        "files/../../nginx/nginx.conf",
    ],
)
def test_the_stored_name_is_the_servers(stack: Stack, owner, sent: str) -> None:
    before = set(stack.data_dir.iterdir())
    response = send(owner, f"filename*=UTF-8''{quote(sent, safe='')}")
    assert response.status_code == 201, response.text
    key = response.json()["url"].rsplit("/", 1)[1]
    [stored] = stack.private_root.glob(f"**/{key}.*")
    assert stored.relative_to(stack.private_root).as_posix() == f"files/{key}.txt"
    assert stored.read_bytes() == TEXT
    assert set(stack.data_dir.iterdir()) == before
    assert b"named file" not in (stack.data_dir / "secret_key").read_bytes()


# Text that passes the text check and runs once saved as an HTML page.
IMG_ONERROR = b"hello <img src=x onerror=alert(document.domain)>\n"


@pytest.mark.parametrize(
    ("sent", "data", "content_type", "header"),
    [
        # the examples that were saved under the uploader's ".html" before
        ("doc.html", PDF, "application/pdf", 'attachment; filename="doc.pdf"'),
        ("x.html", IMG_ONERROR, "text/plain; charset=utf-8", 'inline; filename="x.txt"'),
        (
            "doc.html%00.pdf",
            PDF,
            "application/pdf",
            "attachment; filename*=utf-8''doc.html%2500.pdf",
        ),
        ("fdp\u202e.html", PDF, "application/pdf", 'attachment; filename="fdp.pdf"'),
    ],
)
def test_a_download_never_carries_a_name_that_runs(
    stack: Stack, owner, sent: str, data: bytes, content_type: str, header: str
) -> None:
    response = send(owner, f"filename*=UTF-8''{quote(sent, safe='')}", data)
    assert response.status_code == 201, response.text
    created = response.json()
    served = stack.raw("GET", created["url"], headers=cookie_header(owner))
    assert served.status == 200
    assert served.body == data
    assert (served.headers["content-type"], served.headers["content-disposition"]) == (
        content_type,
        header,
    )
    assert created["name"] == parse_disposition(header)[2]
    # A share link serves the same name to anyone who holds it.
    link = owner.post(
        f"/api/files/{created['id']}/shares/",
        json={},
        headers={
            "X-CSRFToken": owner.cookies["csrftoken"],
            "Origin": str(owner.base_url).rstrip("/"),
        },
    )
    assert link.status_code == 201, link.text
    shared = stack.raw("GET", urlsplit(link.json()["url"]).path)
    assert shared.status == 200
    assert shared.body == data
    assert shared.headers["content-disposition"] == header
