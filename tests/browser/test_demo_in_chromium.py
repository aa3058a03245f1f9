"""The demo site in a real browser, as a person uses it: sign in, upload through
the form, see the image, download the PDF, and be refused another's file."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import Locator, Page, Response, expect

from tests.stack.conftest import MAX_UPLOAD, USERS
from tests.stack.harness import Stack

from .conftest import VIEWPORT

pytestmark = pytest.mark.browser

MEDIA_URL = re.compile(r"/media/([A-Za-z0-9_-]{22})")
MEDIA_HEADERS = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'; sandbox",
    "cache-control": "private, no-store",
}
PDF = (
    b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n"
    b"trailer\n<< /Root 1 0 R >>\n%%EOF\n"
)


def picture(size: tuple[int, int] = (320, 200), hue: int = 0) -> bytes:
    """A small landscape: sky, sun and sea."""
    width, height = size
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    horizon = height * 2 // 3
    for row in range(height):
        if row < horizon:
            shade = row * 120 // horizon
            color = ((90 + hue + shade) % 256, 150 + shade // 2, 235)
        else:
            color = (20, (90 + hue) % 256, 140 + (row - horizon))
        draw.line((0, row, width, row), fill=color)
    radius = height // 6
    sun = (width * 2 // 3, horizon - radius)
    draw.ellipse(
        (sun[0] - radius, sun[1] - radius, sun[0] + radius, sun[1] + radius), fill=(255, 190, 40)
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def pixels(png: bytes) -> bytes:
    with Image.open(io.BytesIO(png)) as image:
        return image.convert("RGB").tobytes()


def sign_in(page: Page, stack: Stack, username: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(USERS[username])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{stack.url}/files/")
    expect(page.get_by_role("button", name=f"Sign out {username}")).to_be_visible()


def upload(page: Page, name: str, mime_type: str, data: bytes) -> None:
    # The page's script shows the drop hint as it sets up: picking a file
    # before that would post nothing.
    expect(page.get_by_text("or drop files here")).to_be_visible()
    cards = page.locator("section.files > ul.grid > li.card")
    before = cards.count()
    page.get_by_label("Choose a file").set_input_files(
        {"name": name, "mimeType": mime_type, "buffer": data}
    )
    expect(page.get_by_role("status")).to_have_text(f"Uploaded {name}.")
    # The batch ends by fetching the list of files again (or reloading the
    # page): the next upload starts once the new file's card is there.
    expect(cards).to_have_count(before + 1)


def stored(stack: Stack, url: str) -> tuple[dict[str, str], bytes]:
    """The record the server keeps for a gateway URL, and the bytes it stored."""
    match = MEDIA_URL.fullmatch(url)
    assert match, url
    record = json.loads(
        stack.shell(
            "import json\n"
            "from protected_media.models import StoredFile\n"
            f"r = StoredFile.objects.get(pk={match.group(1)!r})\n"
            "print(json.dumps({'name': r.name, 'content_type': r.content_type,"
            " 'original_name': r.original_name}))\n"
        )
    )
    return record, (stack.private_root / record["name"]).read_bytes()


def wait_until_shown(page: Page, image: Locator) -> tuple[int, int]:
    """The natural size of an <img> once the browser has decoded it."""
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
    )
    width, height = image.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    return width, height


def assert_media_response(response: Response, content_type: str, body: bytes) -> None:
    headers = response.all_headers()
    assert response.status == 200
    assert headers["content-type"] == content_type
    assert response.body() == body
    assert headers["server"] == "nginx"
    for name, value in MEDIA_HEADERS.items():
        assert headers[name] == value, name
    assert [name for name in headers if name.startswith("x-accel")] == []


def test_signing_in_through_the_form(page, stack, screenshot) -> None:
    page.goto("/")
    expect(page).to_have_url(f"{stack.url}/accounts/login/")
    expect(page).to_have_title("Sign in · Media gateway")
    expect(page.get_by_label("Username")).to_be_focused()
    screenshot(page, "sign-in")

    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("not her password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Your username and password didn't match.")
    # What she typed is kept, and the fields say they were wrong.
    expect(page.get_by_label("Username")).to_have_value("alice")
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")

    page.get_by_label("Password").fill(USERS["alice"])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{stack.url}/files/")
    expect(page.get_by_role("heading", level=1)).to_have_text("My files")
    expect(page.get_by_role("button", name="Sign out alice")).to_be_visible()


def test_an_uploaded_image_is_shown_through_the_gateway(page, stack) -> None:
    sign_in(page, stack, "alice")
    media: list[Response] = []
    page.on(
        "response", lambda response: media.append(response) if "/media/" in response.url else None
    )
    data = picture()

    # As a person does it: click the field, pick the file in the chooser.
    # (A listener first, so that Chromium hands the chooser to Playwright
    # before the click: tests/browser/test_upload_ui.py says why.)
    page.on("filechooser", lambda _chooser: None)
    with page.expect_file_chooser() as chooser:
        page.get_by_label("Choose a file").click()
    chooser.value.set_files({"name": "holiday.png", "mimeType": "image/png", "buffer": data})
    expect(page.get_by_role("status")).to_have_text("Uploaded holiday.png.")

    # The grid shows the thumbnail (longest edge 256), a private file of its own.
    image = page.get_by_role("img", name="holiday.png")
    assert wait_until_shown(page, image) == (256, 160)
    src = image.get_attribute("src")
    assert src is not None
    record, on_disk = stored(stack, src)
    key = src.removeprefix("/media/")
    assert record == {
        "name": f"files/{key}.png",
        "content_type": "image/png",
        "original_name": "holiday-256.png",
    }
    # The file itself, behind the card's link: stored re-encoded, with the very
    # pixels that were uploaded.
    href = image.locator("xpath=ancestor::a[1]").get_attribute("href")
    assert href is not None and href != src
    original_record, original = stored(stack, href)
    assert original_record["original_name"] == "holiday.png"
    assert pixels(original) == pixels(data)
    [response] = [response for response in media if response.url == f"{stack.url}{src}"]
    assert response.request.resource_type == "image"
    assert_media_response(response, "image/png", on_disk)
    # The same request as Django answers it behind nginx: the handoff, no byte.
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())
    behind = stack.raw_uvicorn("GET", src, headers={"Cookie": cookie})
    assert behind.headers["x-accel-redirect"] == f"/_protected/{record['name']}"
    assert behind.body == b""


def test_a_pdf_is_downloaded_under_its_name(page, stack, screenshot) -> None:
    sign_in(page, stack, "alice")
    if page.get_by_role("img").count() == 0:
        # A picture beside the PDF, for the screenshot, when run on its own.
        upload(page, "holiday.png", "image/png", picture())
    name = "Rapport été 2026.pdf"
    upload(page, name, "application/pdf", PDF)

    link = page.get_by_role("link", name=name)
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.failure() is None
    assert download.suggested_filename == name
    assert Path(download.path()).read_bytes() == PDF
    href = link.get_attribute("href")
    assert href is not None
    record, on_disk = stored(stack, href)
    assert (record["content_type"], record["original_name"], on_disk) == (
        "application/pdf",
        name,
        PDF,
    )
    expect(page).to_have_url(f"{stack.url}/files/")  # a download, not a navigation
    screenshot(page, "files")


def test_another_user_gets_the_same_404_as_for_a_missing_file(new_context, stack) -> None:
    alice = new_context().new_page()
    sign_in(alice, stack, "alice")
    upload(alice, "private.png", "image/png", picture(hue=90))
    src = alice.get_by_role("img", name="private.png").get_attribute("src")
    assert src is not None
    own = alice.request.get(src)
    assert (own.status, own.body()) == (200, stored(stack, src)[1])

    bob = new_context().new_page()
    sign_in(bob, stack, "bob")
    expect(bob.get_by_role("img", name="private.png")).to_have_count(0)
    answers = []
    for url in (src, "/media/AAAAAAAAAAAAAAAAAAAAAA"):  # alice's file, then no file at all
        response = bob.goto(url)
        assert response is not None
        expect(bob.locator("body")).to_have_text("Not Found")
        headers = response.all_headers()
        assert [name for name in headers if name.startswith("x-accel")] == []
        assert "content-disposition" not in headers
        answers.append(
            (response.status, headers["content-type"], headers["content-length"], response.body())
        )
    refused, missing = answers
    assert refused == missing == (404, "text/plain; charset=utf-8", "10", b"Not Found\n")


def test_without_javascript_a_picture_over_the_limit_gets_the_sites_page(browser, stack) -> None:
    # The form's own size check needs JavaScript. Without it the browser sends
    # the file, nginx refuses it before the app reads a byte, and the page that
    # comes back is the site's, in its words, not nginx's bare 413.
    context = browser.new_context(base_url=stack.url, viewport=VIEWPORT, java_script_enabled=False)
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        sign_in(page, stack, "alice")
        page.get_by_role("link", name="Profile").click()
        page.get_by_label("New profile picture").set_input_files(
            {"name": "huge.png", "mimeType": "image/png", "buffer": b"0" * (MAX_UPLOAD * 2)}
        )
        with page.expect_response(lambda response: response.request.method == "POST") as posted:
            page.get_by_role("button", name="Save").click()
        assert posted.value.status == 413
        expect(page.get_by_role("heading", level=1)).to_have_text("File too large")
        expect(page.locator("main")).to_contain_text(
            "The upload is larger than the limit of 1 MiB; nothing was saved."
        )
        expect(page).to_have_title(re.compile("^File too large"))
    finally:
        context.close()


def test_a_profile_picture_over_the_limit_is_refused_before_it_is_sent(page, stack) -> None:
    sign_in(page, stack, "alice")
    page.get_by_role("link", name="Profile").click()
    sent: list[str] = []
    page.on(
        "request", lambda request: sent.append(request.method) if request.method == "POST" else None
    )
    hint = page.locator("#picture-hint")
    expect(hint).to_have_text("An image (PNG, JPEG, GIF or WebP) of up to 1.0\xa0MB.")
    page.get_by_label("New profile picture").set_input_files(
        {"name": "huge.png", "mimeType": "image/png", "buffer": b"\x89PNG" + b"0" * MAX_UPLOAD}
    )
    refusal = "huge.png is larger than the limit of 1.0\xa0MB; nothing was uploaded."
    expect(page.get_by_role("alert")).to_have_text(refusal)
    page.get_by_role("button", name="Save").click()
    # Nothing went up: no nginx 413 page, the form still here with its reason.
    expect(page.get_by_role("heading", level=1)).to_have_text("Profile of alice")
    expect(page.get_by_role("alert")).to_have_text(refusal)
    assert sent == []
    # A file that fits clears the refusal and is saved.
    page.get_by_label("New profile picture").set_input_files(
        {"name": "me.png", "mimeType": "image/png", "buffer": picture((64, 64), hue=20)}
    )
    expect(page.get_by_role("alert")).to_be_hidden()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Profile picture updated.")


def test_a_profile_picture_is_shown_to_its_owner(page, stack, screenshot) -> None:
    sign_in(page, stack, "alice")
    page.get_by_role("link", name="Profile").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Profile of alice")
    data = picture((240, 240), hue=160)
    page.get_by_label("New profile picture").set_input_files(
        {"name": "me.png", "mimeType": "image/png", "buffer": data}
    )
    # Every media response after Save, not just the first: an earlier test's
    # picture of alice may still be loading when Save is clicked.
    media_responses: list[Response] = []
    page.on(
        "response",
        lambda response: media_responses.append(response) if "/media/" in response.url else None,
    )
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Profile picture updated.")
    avatar = page.get_by_role("img", name="Profile picture of alice")
    assert wait_until_shown(page, avatar) == (240, 240)
    src = avatar.get_attribute("src")
    assert src is not None
    new_picture = [response for response in media_responses if response.url == f"{stack.url}{src}"]
    assert new_picture, [response.url for response in media_responses]
    assert_media_response(new_picture[0], "image/png", stored(stack, src)[1])
    screenshot(page, "profile")
