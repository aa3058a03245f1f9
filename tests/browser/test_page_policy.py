"""Every page runs under its Content-Security-Policy with nothing refused:
the policy forbids inline script and style, and the pages need none."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from tests.stack.harness import Stack

from .test_demo_in_chromium import picture, sign_in, upload

pytestmark = pytest.mark.browser

POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
ADMIN = ("csp-admin", "csp-admin-pass-5521")
# Chromium's console line for a refused script, style, image or frame.
VIOLATION = "Content Security Policy"


@pytest.fixture
def watched(page: Page) -> Iterator[tuple[Page, list[str]]]:
    """The page, and every CSP violation it reports: console errors, and the
    securitypolicyviolation events (recorded by a script the policy does not
    cover: Playwright injects it)."""
    violations: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if VIOLATION in message.text:
            violations.append(message.text)

    page.on("console", on_console)
    page.add_init_script(
        "window.violations = [];"
        "document.addEventListener('securitypolicyviolation', e => {"
        " window.violations.push(e.violatedDirective);"
        " console.error('" + VIOLATION + " event: ' + e.violatedDirective + ' ' + e.blockedURI);"
        "});"
    )
    yield page, violations


def assert_clean(page: Page, violations: list[str], path: str) -> None:
    response = page.goto(path)
    assert response is not None
    assert response.status == 200, path
    assert response.headers["content-security-policy"] == POLICY, path
    assert set(response.headers["cache-control"].split(", ")) >= {"private", "no-store"}, path
    page.wait_for_load_state("networkidle")
    assert violations == [], path


def test_sign_in_files_and_profile_run_without_a_violation(watched, stack: Stack) -> None:
    page, violations = watched
    assert_clean(page, violations, "/accounts/login/")
    sign_in(page, stack, "alice")
    # The upload script at work, and a thumbnail in the grid.
    upload(page, "policy.png", "image/png", picture(hue=40))
    expect(page.get_by_role("img", name="policy.png").first).to_be_visible()
    assert violations == []
    assert_clean(page, violations, "/files/")
    assert_clean(page, violations, "/profile/")


def test_a_script_planted_inline_is_refused(watched, stack: Stack) -> None:
    # The policy is enforced, not only sent: what an injection would add is refused.
    page, violations = watched
    assert_clean(page, violations, "/accounts/login/")
    page.evaluate(
        "() => { const s = document.createElement('script');"
        " s.textContent = 'window.ran = true'; document.body.append(s); }"
    )
    page.wait_for_function("() => window.violations.length > 0")
    assert page.evaluate("() => window.violations") == ["script-src-elem"]
    assert page.evaluate("() => window.ran === undefined")


def test_the_admin_runs_without_a_violation(watched, stack: Stack) -> None:
    stack.shell(
        "from django.contrib.auth.models import User\n"
        f"User.objects.filter(username={ADMIN[0]!r}).exists() or "
        f"User.objects.create_superuser({ADMIN[0]!r}, password={ADMIN[1]!r})\n"
    )
    page, violations = watched
    assert_clean(page, violations, "/admin/login/")
    page.get_by_label("Username").fill(ADMIN[0])
    page.get_by_label("Password").fill(ADMIN[1])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    for path in (
        "/admin/",
        "/admin/protected_media/protectedfile/",
        "/admin/protected_media/protectedfile/add/",
        "/admin/auth/user/",
        "/admin/auth/user/add/",
        "/admin/auth/group/add/",
    ):
        assert_clean(page, violations, path)
