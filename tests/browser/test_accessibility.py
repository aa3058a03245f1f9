"""Accessibility in a real browser: axe-core finds no serious or critical
violation on any page of the demo site, in any state a person meets (light
and dark), and a person with only a keyboard signs in, uploads, shares and
deletes."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, Locator, Page, Route, expect

from tests.stack.conftest import MAX_UPLOAD
from tests.stack.harness import Stack

from .axe import assert_accessible
from .conftest import VIEWPORT, create_user
from .test_demo_in_chromium import PDF, picture
from .test_upload_ui import PASSWORD, card, drop, more, sign_in, summary, throttle, upload_row

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 740}
SCHEMES = ["light", "dark"]


@pytest.fixture
def user(stack: Stack) -> str:
    return create_user(stack, "erin", PASSWORD)


@pytest.fixture(params=SCHEMES)
def page(request, browser: Browser, stack: Stack) -> Iterator[Page]:
    # axe is injected as a script of the page: the site's Content-Security-
    # Policy (script-src 'self') would refuse it, so this context sets it aside.
    context = browser.new_context(
        base_url=stack.url,
        viewport=VIEWPORT,
        bypass_csp=True,
        color_scheme=request.param,
    )
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def rendered(stack: Stack, template: str) -> str:
    """An error page as the site renders it when no request can be used."""
    return stack.shell(
        "from django.template import loader\n"
        f"print(loader.render_to_string({template!r}), end='')\n"
    )


def serve(html: str, status: int) -> Callable[[Route], None]:
    def answer(route: Route) -> None:
        route.fulfill(status=status, body=html, content_type="text/html; charset=utf-8")

    return answer


def test_the_pages_of_a_visitor_and_the_error_pages(page: Page, stack: Stack) -> None:
    page.goto("/accounts/login/")
    expect(page.get_by_label("Username")).to_be_visible()
    assert_accessible(page, "The sign-in page")
    page.set_viewport_size(PHONE)
    assert_accessible(page, "The sign-in page on a phone")
    page.set_viewport_size(VIEWPORT)

    page.get_by_label("Username").fill("nobody")
    page.get_by_label("Password").fill("wrong-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Your username and password didn't match.")
    assert_accessible(page, "The sign-in page after a wrong password")

    response = page.goto("/no-such-page/")
    assert response is not None and response.status == 404
    assert_accessible(page, "The 404 page")

    # A form sent with no CSRF cookie: the site's 403 page.
    page.goto("/accounts/login/")
    page.context.clear_cookies()
    page.get_by_label("Username").fill("nobody")
    page.get_by_label("Password").fill("wrong-password")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Sign in").click()
    assert posted.value.status == 403
    assert_accessible(page, "The CSRF 403 page")

    # The pages no request of the test can bring about, served at a path of
    # the site so that its stylesheet loads as it would.
    for status in (400, 403, 413, 500, 503):
        html = rendered(stack, f"demo/{status}.html")
        assert "<h1>" in html
        path = f"/error-page-{status}/"
        page.route(f"{stack.url}{path}", serve(html, status))
        page.goto(path)
        assert_accessible(page, f"The {status} page")


def test_the_files_and_profile_pages_in_every_state(page: Page, stack: Stack, user: str) -> None:
    sign_in(page, stack, user)
    expect(page.get_by_text("No files yet.")).to_be_visible()
    assert_accessible(page, "The files page with no files")

    # A batch with refusals: one refused in the browser for its size, one for
    # its type, one by the server for its bytes.
    drop(
        page,
        [
            ("photo.png", "image/png", picture()),
            ("paper.pdf", "application/pdf", PDF),
            ("notes.txt", "text/plain", b"notes\n"),
            ("huge.pdf", "application/pdf", b"%PDF-1.4\n" + b"0" * (MAX_UPLOAD + 1)),
            ("page.html", "text/html", b"<p>hi</p>\n"),
            ("fake.png", "image/png", b"<html>not a png</html>\n"),
        ],
    )
    expect(summary(page)).to_have_text("3 files uploaded, 3 refused: each file below says why.")
    assert_accessible(page, "The files page after a batch with refusals")

    more(page, "paper.pdf")
    paper = card(page, "paper.pdf")
    expect(paper.get_by_role("button", name="Delete paper.pdf")).to_be_visible()
    assert_accessible(page, "The files page with a card's disclosure open")

    paper.get_by_role("button", name="Delete paper.pdf").click()
    dialog = page.get_by_role("dialog", name="Delete this file?")
    expect(dialog).to_be_visible()
    assert_accessible(page, "The files page with the delete dialog open")
    dialog.get_by_role("button", name="Keep it").click()
    expect(dialog).to_be_hidden()

    paper.get_by_role("button", name="Share paper.pdf", exact=True).click()
    expect(page.get_by_label("Link to paper.pdf", exact=True)).to_be_visible()
    assert_accessible(page, "The files page with a share link created")
    more(page, "paper.pdf")
    expect(card(page, "paper.pdf").get_by_role("button", name="Revoke")).to_be_visible()
    assert_accessible(page, "The files page with a card's active links")

    page.set_viewport_size(PHONE)
    assert_accessible(page, "The files page on a phone")
    page.set_viewport_size(VIEWPORT)

    page.goto("/profile/")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    assert_accessible(page, "The profile page")
    page.set_viewport_size(PHONE)
    assert_accessible(page, "The profile page on a phone")


def test_the_files_page_while_files_upload(page: Page, stack: Stack, user: str) -> None:
    sign_in(page, stack, user)
    throttle(page, 64 * 1024)
    page.get_by_label("Choose a file, or several").set_input_files(
        [
            {"name": "slow.txt", "mimeType": "text/plain", "buffer": b"slow\n" * (MAX_UPLOAD // 6)},
            {"name": "queued.txt", "mimeType": "text/plain", "buffer": b"queued\n"},
        ]
    )
    row = upload_row(page, "slow.txt")
    bar = row.get_by_role("progressbar", name="Upload of slow.txt")
    page.wait_for_function("bar => bar.value > 0", arg=bar.element_handle())
    assert_accessible(page, "The files page with uploads in progress")
    row.get_by_role("button", name="Cancel the upload of slow.txt").click()
    expect(row).to_contain_text("Cancelled; nothing was stored.")
    assert_accessible(page, "The files page after cancelled uploads")


def tab_to(page: Page, target: Locator, presses: int = 40) -> None:
    """Tab forward until ``target`` has the focus, as a person would."""
    for _ in range(presses):
        if target.evaluate("element => element === document.activeElement"):
            break
        page.keyboard.press("Tab")
    expect(target).to_be_focused()


def choose_by_keyboard(page: Page, select: Locator) -> str:
    """Another option of a focused select, by arrow key; its label."""
    before = select.evaluate("select => select.selectedIndex")
    page.keyboard.press("ArrowUp" if before > 0 else "ArrowDown")
    assert select.evaluate("select => select.selectedIndex") != before
    return select.evaluate("select => select.options[select.selectedIndex].text")


def test_the_keyboard_alone_signs_in_uploads_shares_and_deletes(
    page: Page, stack: Stack, user: str
) -> None:
    page.goto("/accounts/login/")
    expect(page.get_by_label("Username")).to_be_focused()
    page.keyboard.type(user)
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{stack.url}/files/")

    # Chromium hands Playwright its file choosers once asked to, early.
    page.on("filechooser", lambda _chooser: None)
    tab_to(page, page.get_by_label("Choose a file, or several"))
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    # Picked, it uploads: no second step.
    chooser.value.set_files({"name": "notes.txt", "mimeType": "text/plain", "buffer": b"n\n"})
    expect(summary(page)).to_have_text("Uploaded notes.txt.")
    notes = card(page, "notes.txt")
    expect(notes.get_by_role("link", name="Download")).to_be_visible()

    # The card's actions: its disclosure, then a link's lifetime and audience.
    disclosure = notes.locator("summary")
    tab_to(page, disclosure)
    page.keyboard.press("Enter")
    lifetime = notes.get_by_label("Link expires after (link to notes.txt)", exact=True)
    tab_to(page, lifetime)
    choose_by_keyboard(page, lifetime)
    audience = notes.get_by_label("Who can open it (link to notes.txt)", exact=True)
    tab_to(page, audience)
    who = choose_by_keyboard(page, audience)
    tab_to(page, notes.get_by_role("button", name="Share notes.txt", exact=True))
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text(
        "Shared notes.txt. Copy the link now: it is shown only once."
    )
    expect(page.get_by_label("Link to notes.txt", exact=True)).to_have_value(
        re.compile(rf"^{re.escape(stack.url)}/media/s/")
    )
    expect(page.locator("#new-share-hint")).to_contain_text(f"{who} can open it until")

    # Delete: the disclosure, its button, then the dialog's own button.
    notes = card(page, "notes.txt")
    tab_to(page, notes.locator("summary"))
    page.keyboard.press("Enter")
    tab_to(page, notes.get_by_role("button", name="Delete notes.txt"))
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Delete this file?")
    expect(dialog.get_by_role("button", name="Keep it")).to_be_focused()
    page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Delete file")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("Deleted notes.txt.")
    expect(page.get_by_text("No files yet.")).to_be_visible()
    response = page.request.get("/api/files/")
    assert response.json()["files"] == []


def test_a_violation_fails_with_what_and_where(browser: Browser) -> None:
    # The check itself: a page with barriers fails, naming each one.
    page = browser.new_page()
    try:
        page.set_content(
            '<html lang="en"><title>Barriers</title><main>'
            '<ul role="status"><li>Uploaded.</li></ul>'
            "<button></button></main></html>"
        )
        with pytest.raises(AssertionError) as failed:
            assert_accessible(page, "A page with barriers")
    finally:
        page.close()
    message = str(failed.value)
    assert message.startswith("A page with barriers (about:blank): 2 serious or critical")
    assert "listitem (serious): <li> elements must be contained in a <ul> or <ol>" in message
    assert "button-name (critical): Buttons must have discernible text" in message
    assert "\n    button: Element does not have inner text that is visible" in message
