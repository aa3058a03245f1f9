"""axe-core in the page under test: the accessibility checks of the browser
tests. axe-core comes from npm, pinned in package-lock.json next to this file;
`make test` installs it (`cd tests/browser && npm ci`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
# What fails a test: the impacts that keep a person from using the page.
FAILING_IMPACTS = ("serious", "critical")
# Every rule axe runs by default (WCAG 2.0 to 2.2, A and AA, and its best
# practices), and target sizes (WCAG 2.2 AA), which axe leaves off by default.
RUN_OPTIONS = {"resultTypes": ["violations"], "rules": {"target-size": {"enabled": True}}}


def axe_script() -> Path:
    if not AXE.is_file():
        pytest.fail(
            f"axe-core is not installed ({AXE} is missing): the accessibility checks "
            "need it. Run `make test-system` (or `cd tests/browser && npm ci`)."
        )
    return AXE


def serious_violations(page: Page) -> list[dict[str, Any]]:
    """axe's serious and critical violations on the page as it is now."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=axe_script())
    violations: list[dict[str, Any]] = page.evaluate(
        "options => axe.run(document, options).then(results => results.violations)",
        RUN_OPTIONS,
    )
    return [v for v in violations if v["impact"] in FAILING_IMPACTS]


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for violation in violations:
        lines.append(
            f"{violation['id']} ({violation['impact']}): {violation['help']} "
            f"<{violation['helpUrl']}>"
        )
        for node in violation["nodes"]:
            target = " ".join(str(part) for part in node["target"])
            # "Fix any of the following:" then one check a line: the checks.
            checks = [
                line.strip() for line in node["failureSummary"].splitlines() if line.startswith(" ")
            ]
            lines.append(f"    {target}: {'; '.join(checks)}")
    return "\n".join(lines)


def assert_accessible(page: Page, state: str) -> None:
    """No serious or critical violation on the page, in the state named."""
    found = serious_violations(page)
    assert not found, (
        f"{state} ({page.url}): {len(found)} serious or critical accessibility "
        f"violation(s):\n{describe(found)}"
    )
