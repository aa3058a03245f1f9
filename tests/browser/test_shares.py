"""A share link in a real browser: alice shares a file from "My files", a
visitor with no session opens the link and gets the file, and after alice
revokes it the visitor is refused."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, Response, expect

from tests.stack.harness import Stack

from .test_demo_in_chromium import picture, sign_in, stored, upload

pytestmark = pytest.mark.browser

SHARE_URL = re.compile(r"/media/s/[A-Za-z0-9_\-:]+")


def more(page: Page, name: str) -> None:
    """Open the file's card disclosure, where its Share form and links are."""
    page.locator("li.card").filter(has=page.locator("p.name", has_text=name)).locator(
        "summary"
    ).click()


def open_link(page: Page, url: str) -> Response:
    response = page.goto(url)
    assert response is not None
    return response


def test_a_shared_file_opens_without_a_session_until_revoked(
    new_context, stack: Stack, screenshot
) -> None:
    alice = new_context().new_page()
    sign_in(alice, stack, "alice")
    name = "shared view.png"
    upload(alice, name, "image/png", picture(hue=40))
    # The file itself: the card's link (its image is the thumbnail).
    href = alice.get_by_role("img", name=name).locator("xpath=ancestor::a[1]").get_attribute("href")
    assert href is not None
    record, on_disk = stored(stack, href)

    # As a person does it: choose the lifetime and who may open it, then Share.
    more(alice, name)
    alice.get_by_label(f"Link expires after (link to {name})", exact=True).select_option(
        label="1 day"
    )
    alice.get_by_label(f"Who can open it (link to {name})", exact=True).select_option(
        label="Anyone with the link"
    )
    alice.get_by_role("button", name=f"Share {name}", exact=True).click()
    expect(alice).to_have_url(f"{stack.url}/files/")
    expect(alice.get_by_role("status")).to_have_text(
        f"Shared {name}. Copy the link now: it is shown only once."
    )
    field = alice.get_by_label(f"Link to {name}", exact=True)
    expect(field).to_have_attribute("readonly", "")
    link = field.input_value()
    assert link.startswith(f"{stack.url}/media/s/")
    assert SHARE_URL.fullmatch(link.removeprefix(stack.url))
    revoke = alice.get_by_role("button", name=re.compile(rf"^Revoke the link to {name} "))
    more(alice, name)
    expect(revoke).to_have_count(1)
    expect(revoke).to_be_visible()
    screenshot(alice, "shares")

    # A visitor with no session at all: a fresh browser context.
    visitor = new_context().new_page()
    assert visitor.context.cookies() == []
    response = open_link(visitor, link)
    headers = response.all_headers()
    assert response.status == 200
    assert headers["content-type"] == record["content_type"] == "image/png"
    assert response.body() == on_disk
    assert headers["referrer-policy"] == "no-referrer"
    assert [header for header in headers if header.startswith("x-accel")] == []
    # The file, not the login page: the visitor never signed in.
    assert visitor.url == link

    # Shown once: alice's next visit lists the link but no longer shows it.
    alice.reload()
    expect(alice.get_by_label(f"Link to {name}", exact=True)).to_have_count(0)
    assert link.removeprefix(stack.url) not in alice.content()
    more(alice, name)
    alice.get_by_role("button", name=re.compile(rf"^Revoke the link to {name} ")).click()
    expect(alice.get_by_role("status")).to_have_text(f"Revoked a share link to {name}.")
    expect(
        alice.get_by_role("button", name=re.compile(rf"^Revoke the link to {name} "))
    ).to_have_count(0)

    refused = open_link(visitor, link)
    assert refused.status == 404
    expect(visitor.locator("body")).to_have_text("Not Found")
    refused_headers = refused.all_headers()
    assert [header for header in refused_headers if header.startswith("x-accel")] == []
    assert "content-disposition" not in refused_headers
    assert refused.body() == b"Not Found\n"


def test_a_new_link_is_copied_and_its_times_are_the_visitors_own(browser, stack: Stack) -> None:
    context = browser.new_context(
        base_url=stack.url,
        locale="en-GB",
        timezone_id="Asia/Tokyo",
        permissions=["clipboard-read", "clipboard-write"],
    )
    try:
        page = context.new_page()
        sign_in(page, stack, "alice")
        name = "for the team.png"
        upload(page, name, "image/png", picture(hue=200))
        more(page, name)
        page.get_by_label(f"Link expires after (link to {name})", exact=True).select_option(
            label="7 days"
        )
        page.get_by_role("button", name=f"Share {name}", exact=True).click()
        link = page.get_by_label(f"Link to {name}", exact=True).input_value()

        page.get_by_role("button", name="Copy link").click()
        expect(page.get_by_role("status")).to_have_text("Link copied to the clipboard.")
        assert page.evaluate("navigator.clipboard.readText()") == link

        # The server writes UTC; the visitor in Tokyo reads Tokyo's time, and
        # how far off it is.
        expires = page.locator("#new-share-hint time")
        written = datetime.fromisoformat(expires.get_attribute("datetime") or "")
        local = written.astimezone(ZoneInfo("Asia/Tokyo"))
        expect(expires).to_have_text(
            f"{local.day} {local:%b} {local.year}, {local:%H:%M} (in 7 days)"
        )
    finally:
        context.close()
