"""Browser tests: Debian's Chromium, driven by Playwright, against the real
stack (nginx in front of uvicorn) started by the run command."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.stack.conftest import start_stack
from tests.stack.harness import BASE_DIR, Stack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-dev-shm-usage",
    # The browser talks to the stack under test and to nothing else.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
# Artifacts of the run, for a person to look at: full-page screenshots.
SCREENSHOTS = BASE_DIR / "var" / "screenshots"
VIEWPORT = {"width": 1100, "height": 720}


@pytest.fixture(scope="session")
def chromium() -> Iterator[tuple[Browser, asyncio.AbstractEventLoop]]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: the browser tests drive Debian's "
            "package (apt-get install chromium; `make test` installs it)."
        )
    # Chromium's sandbox cannot start as root.
    args = [*CHROMIUM_ARGS, "--no-sandbox"] if os.geteuid() == 0 else CHROMIUM_ARGS
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        # Between its calls, Playwright's sync API marks its event loop as
        # running in this thread. Left so, every async_to_sync in the tests
        # that follow (Django's test client calling an async view) would refuse
        # to run: the mark is set only while a browser test runs.
        loop = asyncio.get_running_loop()
        asyncio._set_running_loop(None)
        yield launched, loop
        asyncio._set_running_loop(loop)
        launched.close()


@pytest.fixture(scope="session")
def browser(chromium: tuple[Browser, asyncio.AbstractEventLoop]) -> Browser:
    return chromium[0]


@pytest.fixture(autouse=True)
def playwright_loop(chromium: tuple[Browser, asyncio.AbstractEventLoop]) -> Iterator[None]:
    asyncio._set_running_loop(chromium[1])
    try:
        yield
    finally:
        asyncio._set_running_loop(None)


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Iterator[Stack]:
    # A stack of their own, so files uploaded here appear in no other test.
    running = start_stack(tmp_path_factory, "browser")
    yield running
    running.stop()


@pytest.fixture
def new_context(browser: Browser, stack: Stack) -> Iterator[Callable[[], BrowserContext]]:
    """Fresh browser contexts (no cookies shared), closed after the test."""
    contexts: list[BrowserContext] = []

    def make() -> BrowserContext:
        context = browser.new_context(base_url=stack.url, viewport=VIEWPORT, accept_downloads=True)
        context.set_default_timeout(15_000)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_context: Callable[[], BrowserContext]) -> Page:
    return new_context().new_page()


@pytest.fixture(scope="session")
def screenshot() -> Callable[[Page, str], Path]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page: Page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=path, full_page=True)
        assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        return path

    return take


_USER_NUMBERS = itertools.count(1)


def create_user(stack: Stack, prefix: str, password: str) -> str:
    """A user of its own for a test (``prefix`` and a number), so that it
    starts with no files."""
    name = f"{prefix}{next(_USER_NUMBERS)}"
    stack.shell(
        "from django.contrib.auth.models import User\n"
        f"User.objects.create_user({name!r}, password={password!r})\n"
    )
    return name
