"""What every page of the demo site shares, in Chromium: a favicon, the
visitor's colour scheme, and a header that fits a phone without wrapping
word by word or scrolling sideways."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.stack.harness import Stack

from .conftest import create_user
from .test_upload_ui import PASSWORD, sign_in

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 740}
PAGES = ["/files/", "/profile/", "/no-such-page/"]


@pytest.fixture
def user(stack: Stack) -> str:
    # A long name: "Sign out" with it is the widest thing in the header.
    return create_user(stack, "alexandrina", PASSWORD)


def page_in(browser: Browser, stack: Stack, **options) -> Iterator[Page]:
    context = browser.new_context(base_url=stack.url, **options)
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def phone(browser: Browser, stack: Stack) -> Iterator[Page]:
    yield from page_in(browser, stack, viewport=PHONE)


def luminance(page: Page, selector: str, prop: str) -> float:
    """The relative luminance (0 black, 1 white) of a computed colour."""
    return page.locator(selector).first.evaluate(
        """(element, prop) => {
            const [r, g, b] = getComputedStyle(element)[prop].match(/[0-9.]+/g).map(Number);
            const linear = c => (c /= 255) <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
            return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
        }""",
        prop,
    )


def test_every_page_has_a_favicon_served_as_a_static_file(page: Page, stack: Stack) -> None:
    page.goto("/accounts/login/")
    icon = page.locator("link[rel=icon]")
    expect(icon).to_have_attribute("type", "image/svg+xml")
    href = icon.get_attribute("href")
    assert href is not None and href.startswith("/static/")
    response = page.request.get(href)
    assert response.status == 200
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.body().startswith(b"<svg ")


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_the_visitors_colour_scheme(browser: Browser, stack: Stack, user: str, scheme) -> None:
    for page in page_in(browser, stack, viewport=PHONE, color_scheme=scheme):
        sign_in(page, stack, user)
        page.get_by_role("link", name="Profile").click()
        for selector in ("body", ".bar", "form.upload"):
            background = luminance(page, selector, "backgroundColor")
            text = luminance(page, selector, "color")
            if scheme == "dark":
                assert background < 0.05 and text > 0.5, (selector, background, text)
            else:
                assert background > 0.8 and text < 0.05, (selector, background, text)


def test_the_header_fits_a_phone(phone: Page, stack: Stack, user: str) -> None:
    sign_in(phone, stack, user)
    sign_out = phone.get_by_role("button", name=f"Sign out {user}")
    profile = phone.get_by_role("link", name="Profile")
    for path in PAGES:
        phone.goto(path)
        if path != "/no-such-page/":  # the error pages have no navigation
            # One line each: as tall as a link's single line plus the
            # button's padding, not two or three lines of text.
            line = profile.bounding_box()["height"]
            assert sign_out.bounding_box()["height"] < 2 * line, path
            for link in phone.get_by_role("navigation", name="Main").get_by_role("link").all():
                assert link.bounding_box()["height"] < 1.5 * line, (path, link)
        # Nothing wider than the screen: no sideways scrolling.
        width = phone.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (path, width)
