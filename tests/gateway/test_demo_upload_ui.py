"""What "My files" renders for its script and for people: the upload limits
as data attributes, one external script and nothing inline, a thumbnail or an
icon with type and size per file, Open and Download links, the delete dialog,
and the one live region."""

from __future__ import annotations

import json
import re
from datetime import datetime

import pytest
from django.test import override_settings

from gateway.demo.views import file_kind

from ..conftest import png_bytes
from .test_demo_site import PDF, Element, Page, page, signed_in

pytestmark = pytest.mark.django_db

NBSP = "\u00a0"


def card(html: Page, name: str) -> Element:
    [found] = [
        c for c in html.find_all("li", class_="card") if c.find("p", class_="name").text == name
    ]
    return found


def test_the_upload_form_tells_the_script_the_limits(alice) -> None:
    html = page(signed_in(alice).get("/files/"))
    form = html.find("form", class_="upload")
    assert form["data-api-url"] == "/api/files/"
    assert form["data-max-size"] == "10485760"
    assert form["data-max-size-label"] == f"10.0{NBSP}MB"
    kinds = json.loads(form["data-kinds"])
    assert kinds["allowed"] == [
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "text/plain",
        "application/pdf",
    ]
    assert set(kinds["markup"]) >= {"text/html", "image/svg+xml", "text/xml"}
    # The script refuses in the server's words, with no MIME type in them.
    accepted = "images (PNG, JPEG, GIF, WebP), PDFs and plain text"
    assert kinds["refusals"]["text/html"] == (
        f"An HTML page (.html, .htm) is not accepted here; you can upload {accepted}."
    )
    assert kinds["otherwise"] == (
        f"This kind of file is not accepted here; you can upload {accepted}."
    )
    assert "image/png" not in kinds["refusals"]
    # The plain form stays a one-file post until the script enhances it.
    picker = form.find("input", name="file")
    assert "multiple" not in picker.attrs
    assert "hidden" in form.find("p", class_="drop-hint").attrs
    rows = html.find("ol", class_="uploads")
    assert rows["aria-label"] == "Uploads"
    assert "hidden" in rows.attrs


@override_settings(
    PROTECTED_MEDIA_MAX_UPLOAD_SIZE=2048, PROTECTED_MEDIA_ALLOWED_TYPES=("text/plain",)
)
def test_the_limits_follow_the_settings(alice) -> None:
    html = page(signed_in(alice).get("/files/"))
    form = html.find("form", class_="upload")
    assert (form["data-max-size"], form["data-max-size-label"]) == ("2048", f"2.0{NBSP}KB")
    kinds = json.loads(form["data-kinds"])
    assert kinds["allowed"] == ["text/plain"]
    assert kinds["refusals"]["image/png"] == (
        "A PNG image (.png) is not accepted here; you can upload plain text."
    )
    assert form.find("p", class_="hint").text == (
        f"You can upload plain text. Files may be up to 2.0{NBSP}KB."
    )


def test_one_script_from_static_files_and_nothing_inline(alice) -> None:
    html = page(signed_in(alice).get("/files/"))
    [script] = html.find_all("script")
    assert re.fullmatch(r"/static/demo/files(\.[0-9a-f]{12})?\.js", script["src"])
    assert "defer" in script.attrs
    assert script.text.strip() == ""
    # Every stylesheet and script is ours, from /static/.
    for element in [*html.find_all("link", rel="stylesheet"), script]:
        url = element["href"] if element.tag == "link" else element["src"]
        assert url.startswith("/static/demo/")


def test_one_live_region_even_without_messages(alice) -> None:
    html = page(signed_in(alice).get("/files/"))
    # Not a list: role="status" would take away its items' role (axe: listitem).
    [region] = html.find_all("div", role="status")
    assert region["id"] == "messages"
    assert region.find_all("p") == []
    assert html.messages() == []


def test_cards_show_a_thumbnail_or_an_icon_with_type_and_size(alice, make_file) -> None:
    photo = make_file(alice, "photo.png", png_bytes())
    paper = make_file(alice, "paper.pdf", PDF)
    notes = make_file(alice, "notes.txt", b"notes\n")
    html = page(signed_in(alice).get("/files/"))

    image = card(html, "photo.png").find("img")
    assert image.attrs == {
        "src": photo.file.url,
        "alt": "photo.png",
        "width": "240",
        "height": "160",
        "loading": "lazy",
    }
    # The shared table's words, as in the hint and the refusals.
    for item, label, kind in ((paper, "PDF", "PDF (.pdf)"), (notes, "TXT", "Plain text (.txt)")):
        found = card(html, item.original_name)
        assert found.find_all("img") == []
        icon = found.find("span", class_="icon")
        assert (icon.text, icon["aria-hidden"]) == (label, "true")
        meta = found.find("p", class_="meta")
        assert meta.find("span", class_="kind")["title"] == item.content_type
        assert meta.text == f"{kind} · {item.size}{NBSP}bytes"
    meta = card(html, "photo.png").find("p", class_="meta")
    assert meta.text.startswith("PNG image (.png) · ")


def test_each_card_opens_downloads_and_asks_before_deleting(alice, make_file) -> None:
    paper = make_file(alice, "paper.pdf", PDF)
    notes = make_file(alice, "notes.txt", b"notes\n")
    html = page(signed_in(alice).get("/files/"))
    # Text is served inline: it opens in the browser, or downloads.
    found = card(html, "notes.txt")
    name = found.find("p", class_="name")
    assert name["id"] == f"name-{notes.pk}"
    links = {a.text.strip(): a for a in found.find("p", class_="actions").find_all("a")}
    assert set(links) == {"Open in browser", "Download"}
    for link in links.values():
        assert link["href"] == notes.file.url
        assert link["aria-describedby"] == name["id"]
    assert "download" not in links["Open in browser"].attrs
    # A bare attribute: the browser takes the served Content-Disposition name,
    # which carries the extension of the detected type.
    assert "download" in links["Download"].attrs
    assert links["Download"]["download"] in (None, "")
    assert "download" not in found.find("a", class_="preview").attrs
    # A PDF is an attachment: no link promises to open it, the preview downloads.
    found = card(html, "paper.pdf")
    links = {a.text.strip(): a for a in found.find("p", class_="actions").find_all("a")}
    assert set(links) == {"Download"}
    assert links["Download"]["href"] == paper.file.url
    assert "download" in found.find("a", class_="preview").attrs
    # Sharing, deleting and the details behind one disclosure, closed.
    details = found.find("details", class_="more")
    assert "open" not in details.attrs
    summary = details.find("summary")
    assert " ".join(summary.text.split()) == "Share, delete, details of paper.pdf"
    assert details.find("form", class_="share") is not None
    assert details.find("form", class_="delete") is not None
    assert datetime.fromisoformat(details.find("time")["datetime"]) == paper.created
    delete = found.find("form", class_="delete")
    assert delete["action"] == f"/files/{paper.pk}/delete/"
    assert delete["data-name"] == "paper.pdf"
    assert delete.find("button")["aria-label"] == "Delete paper.pdf"

    dialog = html.find("dialog", class_="confirm")
    assert "open" not in dialog.attrs
    assert html.find("h2", id=dialog["aria-labelledby"]).text == "Delete this file?"
    assert dialog.find("form")["method"] == "dialog"
    buttons = [(b["value"], b.text.strip()) for b in dialog.find_all("button")]
    assert buttons == [("cancel", "Keep it"), ("delete", "Delete file")]
    assert "autofocus" in dialog.find("button", value="cancel").attrs


@override_settings(PROTECTED_MEDIA_INLINE_TYPES=("text/plain", "application/pdf"))
def test_open_in_browser_follows_the_inline_types(alice, make_file) -> None:
    make_file(alice, "paper.pdf", PDF)
    html = page(signed_in(alice).get("/files/"))
    found = card(html, "paper.pdf")
    links = [a.text.strip() for a in found.find("p", class_="actions").find_all("a")]
    assert links == ["Open in browser", "Download"]
    assert "download" not in found.find("a", class_="preview").attrs


def test_the_thumbnail_url_is_set_in_one_place() -> None:
    from django.template.loader import get_template

    source = get_template("demo/files.html").template.source
    assert source.count("thumbnail_url=") == 1
    assert source.count("{{ thumbnail_url }}") == 1


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("image/png", {"label": "PNG", "name": "PNG image (.png)", "is_image": True}),
        ("image/webp", {"label": "WebP", "name": "WebP image (.webp)", "is_image": True}),
        ("application/pdf", {"label": "PDF", "name": "PDF (.pdf)", "is_image": False}),
        ("text/plain", {"label": "TXT", "name": "Plain text (.txt)", "is_image": False}),
        # Allowed by a project's settings: named by the shared table.
        ("application/zip", {"label": "ZIP", "name": "ZIP archive (.zip)", "is_image": False}),
        ("image/avif", {"label": "AVIF", "name": "AVIF image (.avif)", "is_image": True}),
        (
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            {"label": "DOCX", "name": "Word document (.docx)", "is_image": False},
        ),
        # A type the table does not know: as itself.
        (
            "application/x-thing",
            {"label": "X-TH", "name": "application/x-thing", "is_image": False},
        ),
        ("", {"label": "FILE", "name": "Unknown type", "is_image": False}),
    ],
)
def test_file_kind(content_type, expected) -> None:
    assert file_kind(content_type) == expected
