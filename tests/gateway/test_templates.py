"""The site's templates print nothing by mistake: Django's ``{# #}`` comment
ends at the line's end, so one spread over lines is printed on the page as
text (the base template printed one on every page until this test)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
TEMPLATES = sorted(
    path
    for folder in ("gateway", "protected_media")
    for path in (ROOT / folder).rglob("templates/**/*.html")
)
# "{#" with no "#}" before the line ends.
OPEN_COMMENT = re.compile(r"\{#(?:(?!#\}).)*$", re.MULTILINE)


def test_there_are_templates_to_check() -> None:
    assert ROOT / "gateway" / "demo" / "templates" / "demo" / "base.html" in TEMPLATES


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_single_line_comment_spans_lines(path: Path) -> None:
    unclosed = [match.group(0) for match in OPEN_COMMENT.finditer(path.read_text())]
    assert unclosed == [], "use {% comment %} for a comment over several lines"


def test_the_rule_finds_a_comment_over_lines() -> None:
    assert OPEN_COMMENT.search("<p>{# one\n two #}</p>")
    assert not OPEN_COMMENT.search("<p>{# one #}</p>\n{% comment %} a\n b {% endcomment %}")
