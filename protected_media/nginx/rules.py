"""What may be written into the nginx config (pure): one rule per kind of
value, used by the renderer, the system checks and, through the renderer,
``protected_media_doctor``."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# What nginx would read as syntax rather than as one plain word: whitespace
# ends a word, ";" a directive, braces open and close blocks, quotes and "\"
# change how a word is read, "$" makes it a variable, "#" comments out the
# rest of the line.
UNSAFE = re.compile(r"[\s;{}\"'$\\#]")
# An nginx rate: requests per second or per minute; nginx refuses "0r/s".
RATE_RE = re.compile(r"[1-9][0-9]*r/[sm]")


def is_writable(value: str) -> bool:
    """A value nginx reads as one plain word (an empty one would be no word)."""
    return bool(value) and UNSAFE.search(value) is None


def require_writable(name: str, value: str) -> None:
    if not is_writable(value):
        raise ValueError(f"{name} {value!r} cannot be written into an nginx config")


def is_count(value: object) -> bool:
    # bool is an int to Python, not to nginx, which refuses "burst=0" as it
    # refuses "0r/s" and 0 connections.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def is_rate_or_none(value: object) -> bool:
    return value is None or (isinstance(value, str) and RATE_RE.fullmatch(value) is not None)


def is_count_or_none(value: object) -> bool:
    return value is None or is_count(value)


@dataclass(frozen=True)
class LimitRule:
    valid: Callable[[object], bool]
    hint: str  # what the value must be, in the operator's words


# Each field of a rate or connection limit (nginx.limits.Limits) and of the
# PROTECTED_MEDIA_{MEDIA,UPLOAD}_{RATE,BURST,CONNECTIONS} settings.
LIMIT_RULES = {
    "rate": LimitRule(
        is_rate_or_none, "An nginx rate such as '30r/s' or '600r/m', or None for no limit."
    ),
    "burst": LimitRule(is_count, "Requests answered at once beyond the rate: an int, 1 or more."),
    "connections": LimitRule(
        is_count_or_none,
        "Requests at once per client address: an int, 1 or more, or None for no limit.",
    ),
}
