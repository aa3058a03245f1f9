"""The cards of "My files" in a real browser: Open and Download at hand;
sharing, deleting and the details behind one disclosure that works without
JavaScript; no text cut off; "Open in browser" only where the served headers
let the browser show the file; and a short page on a phone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect

from tests.stack.harness import Stack

from .conftest import create_user
from .test_demo_in_chromium import MEDIA_HEADERS, PDF, picture
from .test_upload_ui import PASSWORD, card, sign_in, stored_names

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 720}
DESKTOP = {"width": 1100, "height": 720}

# The elements of a card that Tab stops on, as the browser lays it out now:
# focusable, not taken out of the order, and rendered (a closed <details>
# renders nothing but its summary).
TAB_STOPS = """card => Array.from(card.querySelectorAll(
    "a[href], button, input, select, textarea, summary, [tabindex]"
)).filter(element =>
    element.tabIndex >= 0 && !element.disabled && element.checkVisibility()
).map(element => (
    element.getAttribute("aria-label") || (element.labels && element.labels.length
        ? element.labels[0].textContent : element.textContent)
).trim())"""

# Text that does not fit where it is shown: an element wider than its box
# (clipped or spilling over the card), and a select whose longest option is
# wider than the room the select leaves for it (options never wrap).
CUT_OFF = """card => {
    const problems = [];
    const edge = card.getBoundingClientRect();
    for (const element of card.querySelectorAll("*")) {
        if (!element.checkVisibility() || element.closest(".visually-hidden")) {
            continue;
        }
        const box = element.getBoundingClientRect();
        if (box.left < edge.left - 0.5 || box.right > edge.right + 0.5) {
            problems.push(element.tagName + " outside the card: " + element.textContent.trim());
        }
        if (element.tagName !== "SELECT" && element.scrollWidth > element.clientWidth + 1
                && getComputedStyle(element).overflowX !== "visible") {
            problems.push(element.tagName + " clipped: " + element.textContent.trim());
        }
    }
    const context = document.createElement("canvas").getContext("2d");
    for (const select of card.querySelectorAll("select")) {
        if (!select.checkVisibility()) {
            continue;
        }
        const style = getComputedStyle(select);
        context.font = style.font;
        // What the select leaves for its text: its width less the padding
        // and the drop-down arrow.
        const room = select.clientWidth - parseFloat(style.paddingLeft)
            - parseFloat(style.paddingRight) - 20;
        for (const option of select.options) {
            if (context.measureText(option.text).width > room) {
                problems.push("option cut off: " + option.text);
            }
        }
    }
    return problems;
}"""


def give(stack: Stack, username: str, files: list[tuple[str, bytes]]) -> None:
    """Files stored for a user as an upload stores them (inspected, keyed)."""
    stack.shell(
        "from django.contrib.auth.models import User\n"
        "from django.core.files.base import ContentFile\n"
        "from protected_media.models import ProtectedFile\n"
        f"owner = User.objects.get(username={username!r})\n"
        f"for name, data in {files!r}:\n"
        "    ProtectedFile(owner=owner, file=ContentFile(data, name=name)).save()\n"
    )


@pytest.fixture
def user(stack: Stack) -> str:
    """A user of its own for each test, so each starts with no files."""
    return create_user(stack, "dora", PASSWORD)


def tab_stops(card: Locator) -> list[str]:
    return card.evaluate(TAB_STOPS)


@pytest.fixture
def phone(browser: Browser, stack: Stack) -> Iterator[Page]:
    context = browser.new_context(base_url=stack.url, viewport=PHONE)
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def plain_page(browser: Browser, stack: Stack) -> Iterator[Page]:
    context: BrowserContext = browser.new_context(
        base_url=stack.url, viewport=DESKTOP, java_script_enabled=False
    )
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def test_a_closed_card_stops_tab_only_at_its_links_and_its_disclosure(
    page: Page, stack: Stack, user: str
) -> None:
    give(stack, user, [("photo.png", picture()), ("notes.txt", b"notes\n"), ("paper.pdf", PDF)])
    sign_in(page, stack, user)
    more = "Share, delete, details of {}"
    assert tab_stops(card(page, "photo.png")) == [
        "Open in browser",
        "Download",
        more.format("photo.png"),
    ]
    assert tab_stops(card(page, "notes.txt")) == [
        "Open in browser",
        "Download",
        more.format("notes.txt"),
    ]
    # A PDF is sent as an attachment: nothing offers to open it in the page.
    assert tab_stops(card(page, "paper.pdf")) == ["Download", more.format("paper.pdf")]
    paper = card(page, "paper.pdf")
    for hidden in ("Delete paper.pdf", "Share paper.pdf"):
        expect(paper.get_by_role("button", name=hidden, exact=True)).to_be_hidden()
    expect(paper.get_by_text("PDF (.pdf) · ")).to_be_hidden()

    # The keyboard opens it: Tab from Download, then Enter.
    paper.get_by_role("link", name="Download").focus()
    page.keyboard.press("Tab")
    summary = paper.locator("summary")
    expect(summary).to_be_focused()
    page.keyboard.press("Enter")
    expect(paper.get_by_role("button", name="Share paper.pdf", exact=True)).to_be_visible()
    expect(paper.get_by_role("button", name="Delete paper.pdf", exact=True)).to_be_visible()
    # The details in the words of the hint and the refusals, and the date.
    expect(paper.locator(".meta").first).to_have_text(f"PDF (.pdf) · {len(PDF)}\u00a0bytes")
    expect(paper.locator(".uploaded")).to_contain_text("Uploaded ")
    assert tab_stops(paper) == [
        "Download",
        more.format("paper.pdf"),
        "Link expires after (link to paper.pdf)",
        "Who can open it (link to paper.pdf)",
        "Share paper.pdf",
        "Delete paper.pdf",
    ]
    page.keyboard.press("Enter")
    expect(paper.get_by_role("button", name="Share paper.pdf", exact=True)).to_be_hidden()


def test_open_shows_what_the_headers_let_the_browser_show_and_the_rest_downloads(
    page: Page, stack: Stack, user: str
) -> None:
    give(stack, user, [("notes.txt", b"plain notes\n"), ("paper.pdf", PDF)])
    sign_in(page, stack, user)
    paper = card(page, "paper.pdf")
    expect(paper.get_by_role("link", name="Open", exact=False)).to_have_count(0)
    url = paper.get_by_role("link", name="Download").get_attribute("href")
    # Through nginx: a PDF is an attachment, under the media security headers.
    served = page.request.get(url)
    assert served.headers["content-disposition"].startswith("attachment;")
    for name, value in MEDIA_HEADERS.items():
        assert served.headers[name] == value, name
    with page.expect_download() as download:
        paper.get_by_role("link", name="Download").click()
    assert download.value.suggested_filename == "paper.pdf"
    # The preview downloads too, rather than promising a page.
    with page.expect_download() as download:
        paper.locator("a.preview").click()
    assert download.value.suggested_filename == "paper.pdf"

    notes = card(page, "notes.txt")
    with page.expect_navigation() as opened:
        notes.get_by_role("link", name="Open in browser").click()
    response = opened.value
    assert response is not None
    assert response.headers["content-disposition"].startswith("inline;")
    expect(page.locator("body")).to_have_text("plain notes")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE, {"width": 800, "height": 720}])
def test_no_text_is_cut_off_in_an_open_card(
    page: Page, stack: Stack, user: str, viewport, screenshot
) -> None:
    give(stack, user, [("a-rather-long-name-for-a-photo.png", picture()), ("paper.pdf", PDF)])
    page.set_viewport_size(viewport)
    sign_in(page, stack, user)
    for name in ("a-rather-long-name-for-a-photo.png", "paper.pdf"):
        found = card(page, name)
        found.locator("summary").click()
        expect(found.get_by_role("button", name=f"Share {name}", exact=True)).to_be_visible()
        assert found.evaluate(CUT_OFF) == []
    screenshot(page, f"cards-open-{viewport['width']}")


def test_eighteen_files_make_a_short_page_on_a_phone(
    phone: Page, stack: Stack, user: str, screenshot
) -> None:
    files = []
    for number in range(6):
        files += [
            (f"photo-{number:02}.png", picture((160, 100), hue=number * 20)),
            (f"paper-{number:02}.pdf", PDF),
            (f"notes-{number:02}.txt", f"notes {number}\n".encode()),
        ]
    give(stack, user, files)
    phone.goto("/accounts/login/")
    sign_in(phone, stack, user)
    cards = phone.locator("li.card")
    expect(cards).to_have_count(18)
    # Each card is a row: thumbnail, name, links and the disclosure, no
    # wider than the screen and no taller than two lines of links.
    heights = cards.evaluate_all("cards => cards.map(card => card.getBoundingClientRect().height)")
    assert max(heights) <= 130, heights
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"]
    # The whole page: the part above the grid, then 18 such rows (it was
    # 9,500 px with every control shown).
    top = phone.locator("ul.grid").evaluate("grid => grid.getBoundingClientRect().top")
    height = phone.evaluate("document.documentElement.scrollHeight")
    assert height < top + 18 * (130 + 16) + 100, height
    assert height < 4000, height
    assert len(stored_names(phone)) == 18
    screenshot(phone, "cards-phone")


def test_sharing_and_deleting_from_a_closed_card_work_without_javascript(
    plain_page: Page, stack: Stack, user: str
) -> None:
    give(stack, user, [("plain.txt", b"plain\n")])
    sign_in(plain_page, stack, user)
    found = card(plain_page, "plain.txt")
    share = found.get_by_role("button", name="Share plain.txt", exact=True)
    expect(share).to_be_hidden()
    found.get_by_text("Share, delete, details").click()
    share.click()
    expect(plain_page.get_by_label("Link to plain.txt", exact=True)).to_be_visible()

    found = card(plain_page, "plain.txt")
    found.get_by_text("Share, delete, details").click()
    expect(found.get_by_role("heading", name="Active links to plain.txt")).to_be_visible()
    found.get_by_role("button", name="Delete plain.txt", exact=True).click()
    expect(plain_page.get_by_role("status")).to_have_text("Deleted plain.txt.")
    assert stored_names(plain_page) == []
