"""The gateway project's demo site and API, tested on its own URLconf (with its
error handlers) and its CSRF failure page; the app's tests use ``tests.urls``."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.path).parents:
            item.add_marker(pytest.mark.urls("gateway.urls"))


@pytest.fixture(autouse=True)
def _gateway_csrf_failure_page(settings) -> None:
    settings.CSRF_FAILURE_VIEW = "gateway.demo.api.csrf_failure"
