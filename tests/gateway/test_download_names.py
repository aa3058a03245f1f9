"""A download never carries a name that runs.

Whatever name a file was uploaded under, the name it is served under ends in
the extension of the type the server detected (and serves as Content-Type),
read back from Content-Disposition with the standard library's HTTP parser:
for the original, its thumbnail, a share link, and the API's ``name``. The
extension is checked against Python's own MIME table, not the gateway's.
"""

from __future__ import annotations

import email.policy
import io
import mimetypes
import posixpath
from email.message import EmailMessage

import pytest
from django.test import Client
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from protected_media.names import UNSAFE_EXTENSIONS

from ..conftest import png_bytes
from .test_api import PDF, browser, upload

pytestmark = pytest.mark.django_db

# Text that passes the text check and that a browser runs if it is saved as
# an HTML page.
IMG_ONERROR = b"hello <img src=x onerror=alert(document.domain)>\n"
META_REFRESH = b"hi <meta http-equiv=refresh content='0;url=https://evil.example/'>\n"


def image(kind: str, size: tuple[int, int] = (8, 6)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (30, 90, 200)).save(buffer, format=kind)
    return buffer.getvalue()


# Every type the default settings allow, with content of that type.
CONTENTS = {
    "image/png": png_bytes(),
    "image/jpeg": image("JPEG"),
    "image/gif": image("GIF"),
    "image/webp": image("WEBP"),
    "text/plain": IMG_ONERROR,
    "application/pdf": PDF,
}
# What Python's MIME table says a saved file holds, by its name alone
# (Python 3.11's table lacks WebP, which 3.13's has).
MIME_TABLE = mimetypes.MimeTypes()
MIME_TABLE.add_type("image/webp", ".webp")
# Extensions that run or render as documents, and tricks that hide them.
TRICKS = st.sampled_from(
    [
        ".html",
        ".HTML",
        ".htm",
        ".xhtml",
        ".svg",
        ".xml",
        ".js",
        ".mht",
        ".hta",
        ".url",
        ".desktop",
        ".exe",
        ".bat",
        ".html.",
        ".html ",
        ".html%00.pdf",
        ".html\x00.pdf",
        ".html::$DATA",
        "\u202elmth.pdf",
        ".pdf.html",
        ".jpeg",
        ".txt",
        "",
    ]
)
NAMES = st.builds(lambda stem, trick: stem + trick, st.text(max_size=40), TRICKS) | st.text(
    max_size=260
)


@pytest.fixture
def signed_in(alice) -> tuple[Client, dict[str, str]]:
    return browser(alice)


def served(client: Client, url: str) -> tuple[str, str, str | None]:
    """(Content-Type without parameters, disposition, filename) of a served file."""
    response = client.get(url)
    assert response.status_code == 200
    value = response["Content-Disposition"]
    parsed = email.policy.HTTP.header_factory("Content-Disposition", value)
    assert list(parsed.defects) == []
    message = EmailMessage(policy=email.policy.HTTP)
    message["Content-Disposition"] = value
    params = message.get_params(header="Content-Disposition") or []
    assert [key for key, _ in params[1:] if key.startswith("filename")] in (
        ["filename"],
        ["filename*"],
    )
    content_type = response["Content-Type"].partition(";")[0]
    return content_type, params[0][0], message.get_filename()


def assert_named_for(filename: str | None, content_type: str) -> None:
    assert filename is not None
    extension = "." + filename.rpartition(".")[2].lower()
    # By the extension alone: guess_type reads "0:.pdf" as a URL.
    assert MIME_TABLE.guess_type("file" + extension) == (content_type, None), filename
    assert extension not in UNSAFE_EXTENSIONS


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=NAMES, content_type=st.sampled_from(sorted(CONTENTS)))
@example(name="doc.html", content_type="application/pdf")
@example(name="x.html", content_type="text/plain")
@example(name="report", content_type="application/pdf")
@example(name="0:.html", content_type="application/pdf")
def test_a_served_name_ends_in_the_served_types_extension(
    signed_in: tuple[Client, dict[str, str]], name: str, content_type: str
) -> None:
    # A name with nothing in its last path part sends no file at all (the
    # test client will not even build the request).
    assume(posixpath.basename(name.replace("\\", "/")) not in ("", ".", ".."))
    client, headers = signed_in
    response = upload(client, headers, name, CONTENTS[content_type], "text/html")
    assume(response.status_code != 400)
    assert response.status_code == 201
    created = response.json()
    assert created["content_type"] == content_type
    served_type, _, filename = served(client, created["url"])
    assert served_type == content_type
    assert_named_for(filename, content_type)
    assert created["name"] == filename


@pytest.mark.parametrize(
    ("name", "data", "header"),
    [
        # the examples
        ("doc.html", PDF, 'attachment; filename="doc.pdf"'),
        ("x.html", IMG_ONERROR, 'inline; filename="x.txt"'),
        ("refresh.htm", META_REFRESH, 'inline; filename="refresh.txt"'),
        # the tricks around an extension
        ("doc.html.", PDF, 'attachment; filename="doc.pdf"'),
        ("doc.html ", PDF, 'attachment; filename="doc.pdf"'),
        ("doc.HTML", IMG_ONERROR, 'inline; filename="doc.txt"'),
        ("doc.html::$DATA", PDF, 'attachment; filename="doc.pdf"'),
        ("fdp\u202e.html", PDF, 'attachment; filename="fdp.pdf"'),  # shown as "fdplmth.pdf"
        ("x\u202elmth.pdf", IMG_ONERROR, 'inline; filename="xlmth.txt"'),  # shown as "xfdp.html"
        ("doc.pdf.html", PDF, 'attachment; filename="doc.pdf.pdf"'),
        ("setup.exe", IMG_ONERROR, 'inline; filename="setup.txt"'),
        ("image.svg", png_bytes(), 'inline; filename="image.png"'),
        ("photo.png", image("JPEG"), 'inline; filename="photo.jpg"'),
        # percent-escapes, which Chromium decodes in a quoted name, go only as
        # filename*, decoded once: "doc.html%00.pdf" never becomes "doc.html\0.pdf"
        ("doc.html%00.pdf", PDF, "attachment; filename*=utf-8''doc.html%2500.pdf"),
        ("100%.txt", IMG_ONERROR, "inline; filename*=utf-8''100%25.txt"),
        # a name too long for a file system, cut in the stem, not the extension
        ("a" * 250 + ".html", PDF, 'attachment; filename="' + "a" * 195 + '.pdf"'),
        ("\u65e5" * 150 + ".html", IMG_ONERROR, None),
        # extensions the type accepts are kept as the client wrote them
        ("photo.JPEG", image("JPEG"), 'inline; filename="photo.JPEG"'),
        ("notes.txt", IMG_ONERROR, 'inline; filename="notes.txt"'),
        ("report.pdf", PDF, 'attachment; filename="report.pdf"'),
    ],
)
def test_hostile_names_are_served_with_the_types_extension(
    alice, name: str, data: bytes, header: str | None
) -> None:
    client, headers = browser(alice)
    response = upload(client, headers, name, data, "text/html")
    assert response.status_code == 201, response.content
    created = response.json()
    answer = client.get(created["url"])
    content_type = answer["Content-Type"].partition(";")[0]
    _, _, filename = served(client, created["url"])
    assert created["name"] == filename
    assert_named_for(filename, content_type)
    if header is not None:
        assert answer["Content-Disposition"] == header
    else:
        # 150 three-byte characters: cut to fit 200 bytes with the extension.
        assert filename == "\u65e5" * 65 + ".txt"


def test_a_thumbnail_is_served_under_its_own_types_name(alice) -> None:
    client, headers = browser(alice)
    response = upload(client, headers, "pic.svg.html", png_bytes((600, 400)), "image/svg+xml")
    assert response.status_code == 201
    created = response.json()
    assert created["name"] == "pic.svg.png"
    assert created["thumbnail_url"]
    served_type, disposition, filename = served(client, created["thumbnail_url"])
    assert (served_type, disposition, filename) == ("image/png", "inline", "pic.svg-256.png")


def test_a_share_link_serves_the_same_name(alice) -> None:
    client, headers = browser(alice)
    created = upload(client, headers, "doc.html", PDF, "text/html").json()
    link = client.post(
        f"/api/files/{created['id']}/shares/",
        "{}",
        content_type="application/json",
        headers=headers,
    )
    assert link.status_code == 201
    stranger = Client()
    answer = stranger.get(link.json()["url"].removeprefix("http://testserver"))
    assert answer.status_code == 200
    assert answer["Content-Type"] == "application/pdf"
    assert answer["Content-Disposition"] == 'attachment; filename="doc.pdf"'
