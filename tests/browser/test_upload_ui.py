"""The enhanced "My files" page in a real browser: several files dropped at
once with a progress bar each, refusals that say what is allowed, Cancel,
delete behind a dialog, the keyboard alone, and the plain form without
JavaScript."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Response, expect

from tests.stack.conftest import MAX_UPLOAD, start_stack
from tests.stack.harness import Stack, wait_for

from .conftest import VIEWPORT, create_user
from .test_demo_in_chromium import PDF, assert_media_response, picture, stored, wait_until_shown

pytestmark = pytest.mark.browser

ACCEPTED = "images (PNG, JPEG, GIF, WebP), PDFs and plain text"
MARKUP_REFUSED = (
    "This text file contains markup (HTML or XML); text is accepted only as plain text, "
    "without tags."
)
PASSWORD = "upload-ui-pass-5512"
NBSP = "\u00a0"


@pytest.fixture
def user(stack: Stack) -> str:
    """A user of its own for each test, so each starts with no files."""
    return create_user(stack, "carol", PASSWORD)


@pytest.fixture
def plain_context(browser: Browser, stack: Stack) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=stack.url, viewport=VIEWPORT, java_script_enabled=False)
    context.set_default_timeout(15_000)
    yield context
    context.close()


def sign_in(page: Page, stack: Stack, username: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{stack.url}/files/")


def stored_names(page: Page) -> list[str]:
    """What the server holds for this user, as the JSON API lists it."""
    response = page.request.get("/api/files/")
    assert response.status == 200
    return sorted(item["name"] for item in response.json()["files"])


def drop(page: Page, files: list[tuple[str, str, bytes]]) -> None:
    """Drag files from the desktop onto the drop zone, as the browser reports it."""
    payload = [
        {"name": name, "type": kind, "data": base64.b64encode(data).decode()}
        for name, kind, data in files
    ]
    page.locator(".dropzone").evaluate(
        """(zone, files) => {
            const transfer = new DataTransfer();
            for (const file of files) {
                const bytes = Uint8Array.from(atob(file.data), c => c.charCodeAt(0));
                transfer.items.add(new File([bytes], file.name, {type: file.type}));
            }
            for (const type of ["dragenter", "dragover", "drop"]) {
                zone.dispatchEvent(new DragEvent(type, {
                    bubbles: true, cancelable: true, dataTransfer: transfer,
                }));
            }
        }""",
        payload,
    )


def throttle(page: Page, upload: int) -> None:
    """Chromium's network throttling: ``upload`` bytes a second."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    conditions = {"offline": False, "latency": 0, "downloadThroughput": -1}
    cdp.send("Network.emulateNetworkConditions", {**conditions, "uploadThroughput": upload})


def summary(page: Page):
    """The page's one live region: a batch's summary line once it is over."""
    return page.get_by_role("status")


def upload_row(page: Page, name: str):
    return page.get_by_role("list", name="Uploads").get_by_role("listitem").filter(has_text=name)


def card(page: Page, name: str):
    return page.locator("li.card").filter(has=page.locator("p.name", has_text=name))


def more(page: Page, name: str) -> None:
    """Open a card's disclosure: its sharing, its Delete and its details."""
    card(page, name).locator("summary").click()


def test_dropped_files_upload_with_progress_and_appear_in_the_grid(
    page: Page, stack: Stack, user: str, screenshot
) -> None:
    sign_in(page, stack, user)
    media: list[Response] = []
    page.on("response", lambda r: media.append(r) if "/media/" in r.url else None)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    image, paper = picture((300, 180), hue=30), PDF

    drop(page, [("sunset.png", "image/png", image), ("minutes.pdf", "application/pdf", paper)])

    # One line for the batch; its uploaded rows folded into one that opens.
    expect(summary(page)).to_have_text("2 files uploaded.")
    page.locator("li.upload-fold summary").click()
    for name in ("sunset.png", "minutes.pdf"):
        row = page.get_by_role("list", name="Uploaded files").get_by_role("listitem")
        row = row.filter(has_text=name)
        expect(row).to_contain_text("Uploaded.")
        bar = row.get_by_role("progressbar", name=f"Upload of {name}")
        expect(bar).to_have_count(1)
        value, maximum = bar.evaluate("bar => [bar.value, bar.max]")
        assert value == maximum > 0
        # Done: no Cancel any more.
        expect(row.get_by_role("button")).to_have_count(0)

    # The grid is refreshed in place: a thumbnail for the image (its longest
    # edge brought down to PROTECTED_MEDIA_THUMBNAIL_SIZES' 256), through the gateway.
    thumbnail = page.get_by_role("img", name="sunset.png")
    assert wait_until_shown(page, thumbnail) == (256, 154)
    assert thumbnail.get_attribute("loading") == "lazy"
    assert thumbnail.get_attribute("width") and thumbnail.get_attribute("height")
    src = thumbnail.get_attribute("src")
    assert src is not None
    [response] = [r for r in media if r.url == f"{stack.url}{src}"]
    # 200 image/png from nginx after Django's X-Accel-Redirect, no header of it left.
    assert_media_response(response, "image/png", stored(stack, src)[1])

    # The PDF: an icon; its type and its size in the details.
    pdf = card(page, "minutes.pdf")
    expect(pdf.locator(".icon")).to_have_text("PDF")
    expect(pdf.get_by_role("img")).to_have_count(0)
    more(page, "minutes.pdf")
    expect(pdf.locator("p.meta").first).to_have_text(f"PDF (.pdf) · {len(paper)}{NBSP}bytes")
    href = pdf.get_by_role("link", name="minutes.pdf").get_attribute("href")
    # Sent as an attachment: Download, and no "Open" that would download too.
    expect(pdf.get_by_role("link", name="Open in browser")).to_have_count(0)
    download = pdf.get_by_role("link", name="Download")
    assert download.get_attribute("href") == href
    # No name of the page's own: the browser takes the served one.
    assert download.get_attribute("download") == ""
    with page.expect_download() as info:
        download.click()
    assert info.value.suggested_filename == "minutes.pdf"

    assert stored_names(page) == ["minutes.pdf", "sunset.png"]
    # Every asset the page asked for is ours: no CDN, no other origin.
    assert requests and all(url.startswith(f"{stack.url}/") for url in requests)
    # One script, from our static files under its hashed name, and nothing inline.
    scripts = page.locator("script").evaluate_all(
        "all => all.map(s => [s.getAttribute('src'), s.textContent.trim()])"
    )
    assert len(scripts) == 1 and scripts[0][1] == ""
    assert re.fullmatch(r"/static/demo/files\.[0-9a-f]{12}\.js", scripts[0][0])
    screenshot(page, "upload-grid")


def test_refused_files_say_why_in_words_and_nothing_is_stored(
    page: Page, stack: Stack, user: str
) -> None:
    sign_in(page, stack, user)
    # What may be uploaded, in words, as every refusal below says it.
    expect(page.locator("#upload-hint")).to_have_text(
        f"You can upload {ACCEPTED}. Files may be up to 1.0{NBSP}MB."
    )
    page.get_by_label("Choose a file, or several").set_input_files(
        [
            {
                "name": "huge.pdf",
                "mimeType": "application/pdf",
                "buffer": b"%" * (MAX_UPLOAD * 3 // 2),
            },
            {"name": "page.html", "mimeType": "text/html", "buffer": b"<p>hi</p>\n"},
            # Allowed by its name, refused by the server for its bytes.
            {"name": "fake.png", "mimeType": "image/png", "buffer": b"<html>not a png</html>\n"},
            # Text, which is allowed, refused for the markup in it.
            {
                "name": "notes.txt",
                "mimeType": "text/plain",
                "buffer": b"Minutes\n<script>alert(1)</script>\n",
            },
        ]
    )

    too_big = (
        f"huge.pdf is too large (1.5{NBSP}MB). Files may be up to 1.0{NBSP}MB; "
        "nothing was uploaded."
    )
    # Refused in the browser, in the sentence the server would answer with.
    wrong_type = (
        f"page.html: An HTML page (.html, .htm) is not accepted here; you can upload "
        f"{ACCEPTED}. Nothing was uploaded."
    )
    expect(summary(page)).to_have_text("4 refused: each file below says why.")
    expect(upload_row(page, "huge.pdf")).to_contain_text(too_big)
    expect(upload_row(page, "page.html")).to_contain_text(wrong_type)
    expect(upload_row(page, "fake.png")).to_contain_text(MARKUP_REFUSED)
    expect(upload_row(page, "notes.txt")).to_contain_text(MARKUP_REFUSED)
    for name in ("page.html", "fake.png", "notes.txt"):
        expect(upload_row(page, name)).not_to_contain_text("/")  # no MIME type
    # The two refused in the browser never got a progress bar, nor a request.
    for name in ("huge.pdf", "page.html"):
        expect(upload_row(page, name).get_by_role("progressbar")).to_have_count(0)
    assert stored_names(page) == []
    expect(page.get_by_text("No files yet.")).to_be_visible()


def test_cancel_during_an_upload_stores_nothing(page: Page, stack: Stack, user: str, screenshot):
    sign_in(page, stack, user)
    # Slow the upload down to a crawl, so it can be caught half way.
    throttle(page, 64 * 1024)
    data = b"slow text\n" * (MAX_UPLOAD // 12)
    page.get_by_label("Choose a file, or several").set_input_files(
        [
            {"name": "slow.txt", "mimeType": "text/plain", "buffer": data},
            {"name": "queued.txt", "mimeType": "text/plain", "buffer": b"queued\n"},
        ]
    )

    row = upload_row(page, "slow.txt")
    bar = row.get_by_role("progressbar", name="Upload of slow.txt")
    page.wait_for_function(
        "bar => bar.value > 0 && bar.value < bar.max / 2", arg=bar.element_handle()
    )
    expect(upload_row(page, "queued.txt")).to_contain_text("Waiting…")
    screenshot(page, "upload-in-progress")
    # The queued one is cancelled before it starts, then the one on its way.
    queued = upload_row(page, "queued.txt")
    queued.get_by_role("button", name="Cancel the upload of queued.txt").click()
    expect(queued).to_contain_text("Cancelled; nothing was stored.")
    row.get_by_role("button", name="Cancel the upload of slow.txt").click()

    expect(row).to_contain_text("Cancelled; nothing was stored.")
    expect(row.get_by_role("progressbar")).to_have_count(0)
    expect(summary(page)).to_have_text("2 cancelled.")
    page.wait_for_timeout(1000)  # time for a stray request to land, if there were one
    assert stored_names(page) == []
    on_disk = [path for path in stack.private_root.rglob("*") if path.is_file()]
    assert not any(path.read_bytes() == data for path in on_disk)


def test_delete_asks_first_in_a_dialog(page: Page, stack: Stack, user: str) -> None:
    sign_in(page, stack, user)
    drop(page, [("notes.txt", "text/plain", b"keep me?\n")])
    # A batch of one: its summary is its own message.
    expect(summary(page)).to_have_text("Uploaded notes.txt.")
    more(page, "notes.txt")
    delete = page.get_by_role("button", name="Delete notes.txt")
    dialog = page.get_by_role("dialog", name="Delete this file?")

    delete.click()
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("notes.txt will be deleted for good")
    expect(dialog.get_by_role("button", name="Keep it")).to_be_focused()
    dialog.get_by_role("button", name="Keep it").click()
    expect(dialog).to_be_hidden()
    expect(delete).to_be_focused()
    assert stored_names(page) == ["notes.txt"]

    # Escape is "keep it" too.
    delete.click()
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert stored_names(page) == ["notes.txt"]

    delete.click()
    dialog.get_by_role("button", name="Delete file").click()
    expect(page.get_by_role("status")).to_have_text("Deleted notes.txt.")
    expect(page.get_by_text("No files yet.")).to_be_visible()
    assert stored_names(page) == []


def test_the_keyboard_alone_uploads(page: Page, stack: Stack, user: str) -> None:
    sign_in(page, stack, user)
    # Playwright asks Chromium to hand it file choosers when the first
    # listener is added, without waiting for the answer: a listener added
    # now has long been answered when Space opens the chooser, where one
    # added just before could lose that race on a loaded machine.
    page.on("filechooser", lambda _chooser: None)
    picker = page.get_by_label("Choose a file, or several, to upload")
    expect(page.get_by_role("button", name="Upload", exact=True)).to_be_hidden()
    for _ in range(20):
        page.keyboard.press("Tab")
        if picker.evaluate("input => input === document.activeElement"):
            break
    expect(picker).to_be_focused()
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    assert chooser.value.is_multiple()
    chooser.value.set_files(
        [
            {"name": "one.txt", "mimeType": "text/plain", "buffer": b"one\n"},
            {"name": "two.txt", "mimeType": "text/plain", "buffer": b"two\n"},
        ]
    )
    # Picked, they upload, as dropped files do: the plain form's Upload
    # button is gone, and nothing else needs pressing.
    expect(summary(page)).to_have_text("2 files uploaded.")
    expect(card(page, "two.txt").get_by_role("link", name="Download")).to_be_visible()
    assert stored_names(page) == ["one.txt", "two.txt"]


def test_the_plain_form_works_without_javascript(
    plain_context: BrowserContext, stack: Stack, user: str
) -> None:
    page = plain_context.new_page()
    sign_in(page, stack, user)
    picker = page.get_by_label("Choose a file", exact=True)
    assert picker.get_attribute("multiple") is None
    expect(page.get_by_text("or drop files here")).to_be_hidden()
    picker.set_input_files({"name": "plain.txt", "mimeType": "text/plain", "buffer": b"plain\n"})
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page).to_have_url(f"{stack.url}/files/")
    expect(page.get_by_role("status")).to_have_text("Uploaded plain.txt.")
    expect(card(page, "plain.txt").locator(".icon")).to_have_text("TXT")
    assert stored_names(page) == ["plain.txt"]

    # No script, no dialog: the labelled button deletes at once.
    more(page, "plain.txt")
    page.get_by_role("button", name="Delete plain.txt").click()
    expect(page.get_by_role("status")).to_have_text("Deleted plain.txt.")
    assert stored_names(page) == []


def drop_photos(page: Page, count: int) -> list[str]:
    names = [f"photo-{number:03}.png" for number in range(count)]
    drop(
        page,
        [
            (name, "image/png", picture((40, 30), hue=number * 12))
            for number, name in enumerate(names)
        ],
    )
    return names


def post_statuses(page: Page) -> list[int]:
    """The status of every upload the page sends, as they arrive."""
    statuses: list[int] = []
    page.on(
        "response",
        lambda r: (
            statuses.append(r.status)
            if r.request.method == "POST" and r.url.endswith("/api/files/")
            else None
        ),
    )
    return statuses


def assert_all_uploaded(page: Page, names: list[str], timeout: float = 120_000) -> None:
    # One summary line for the batch, its rows folded into one line that
    # opens to list them: no wall of messages above the files.
    expect(page.get_by_role("status")).to_have_text(
        f"{len(names)} files uploaded.", timeout=timeout
    )
    fold = page.locator("li.upload-fold summary")
    expect(fold).to_have_text(f"{len(names)} files uploaded")
    expect(page.locator("ol.uploads li.error")).to_have_count(0)
    expect(page.get_by_role("button", name="Retry failed uploads")).to_be_hidden()
    # The files start near the top (a 30-file batch once pushed them ~1,700 px down).
    # The list is replaced by a fresh copy once a batch ends (files.js): a
    # box taken while the old copy is detached is None, so take it again.
    region = page.get_by_role("region", name="Your files")
    expect(region).to_be_visible()
    files = wait_for(region.bounding_box, "the files' box", 5)
    assert files["y"] < 900, files
    fold.click()
    rows = page.get_by_role("list", name="Uploaded files").get_by_role("listitem")
    expect(rows.filter(has_text="Uploaded.")).to_have_count(len(names))
    assert stored_names(page) == names


def test_a_hundred_dropped_images_all_upload_with_the_default_limits(
    page: Page, stack: Stack, user: str
) -> None:
    # Two a second after a burst of ten: about 45 s of pacing, no error shown.
    sign_in(page, stack, user)
    statuses = post_statuses(page)
    names = drop_photos(page, 100)
    assert_all_uploaded(page, names, timeout=180_000)
    assert statuses.count(201) == 100


@pytest.fixture(scope="module")
def tight_stack(tmp_path_factory) -> Iterator[Stack]:
    """A stack whose upload limit a batch is sure to meet: one a second after
    a burst of two (Retry-After: 1)."""
    running = start_stack(
        tmp_path_factory, "browser-tight", GATEWAY_UPLOAD_RATE="1r/s", GATEWAY_UPLOAD_BURST="2"
    )
    yield running
    running.stop()


def test_a_batch_over_the_rate_limit_waits_as_retry_after_says(
    browser: Browser, tight_stack: Stack
) -> None:
    # Sent as fast as they came, these once failed with "HTTP 429": each file
    # now waits the 429's Retry-After, says so, and is sent again.
    tight_stack.shell(
        "from django.contrib.auth.models import User\n"
        f"User.objects.create_user('dora', password={PASSWORD!r})\n"
    )
    context = browser.new_context(base_url=tight_stack.url, viewport=VIEWPORT)
    context.set_default_timeout(15_000)
    try:
        page = context.new_page()
        sign_in(page, tight_stack, "dora")
        statuses = post_statuses(page)
        names = drop_photos(page, 10)
        expect(page.locator("ol.uploads").get_by_text("the server is busy")).not_to_have_count(
            0, timeout=30_000
        )
        assert_all_uploaded(page, names)
        assert statuses.count(429) > 0, statuses
        assert statuses.count(201) == 10
    finally:
        context.close()
