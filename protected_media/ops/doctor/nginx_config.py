"""The doctor's look at the nginx config on disk: the file compared with what
``protected_media_nginx`` writes for these settings and the options the file
records, and the command that writes it again."""

from __future__ import annotations

import difflib
import shlex
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from ...nginx.from_settings import render_from_settings, render_parts_from_settings
from ...nginx.render import (
    HTTP_PART,
    LOCATIONS_PART,
    OPTIONS_COMMENT,
    RenderOptions,
    recorded_options,
)
from .findings import Result, finding


def check_nginx_config(path: Path | None) -> Result:
    name = "nginx config"
    if path is None:
        return finding("D601")
    try:
        text = path.read_text()
    except OSError as error:
        return finding("D602", path=path, error=error.strerror)
    # What it was rendered with is the operator's choice, recorded in the file;
    # everything else must follow from the settings.
    options = recorded_options(text)
    if options is None:
        return finding("D603", path=path, comment=OPTIONS_COMMENT.strip())
    try:
        expected = _expected_config(options)
    except (ImproperlyConfigured, ValueError) as error:
        return finding("D604", error=error)
    if text == expected:
        return Result(
            name, "PASS", f"{path} is what protected_media_nginx writes for these settings"
        )
    return finding(
        "D605",
        path=path,
        difference=first_difference(text, expected),
        command=render_command(options, path),
    )


def _expected_config(options: RenderOptions) -> str:
    if options.part is None:
        return render_from_settings(
            listen=options.listen,
            upstream=options.upstream,
            server_name=options.server_name,
            standalone=options.standalone,
            user=options.user,
        )
    # One file of a split site: the locations do not depend on the upstream.
    parts = render_parts_from_settings(upstream=options.upstream or "127.0.0.1:8000")
    return parts.http if options.part == HTTP_PART else parts.locations


def render_command(options: RenderOptions, path: Path) -> str:
    """The protected_media_nginx command that writes ``path`` again."""
    words = ["manage.py", "protected_media_nginx"]
    if options.part is not None:
        # The other file of the pair is written by the same command.
        files = {
            HTTP_PART: "<http file>",
            LOCATIONS_PART: "<locations file>",
            options.part: str(path),
        }
        upstream = options.upstream or "<address>"
        words += ["--upstream", upstream, "--http", files[HTTP_PART]]
        return shlex.join([*words, "--locations", files[LOCATIONS_PART]])
    words += ["--listen", options.listen]
    words += ["--upstream", options.upstream, "--server-name", options.server_name]
    if options.standalone:
        words += ["--standalone", options.standalone]
    return shlex.join([*words, "-o", str(path)])


def first_difference(actual: str, expected: str) -> str:
    actual_lines, expected_lines = actual.splitlines(), expected.splitlines()
    matcher = difflib.SequenceMatcher(None, actual_lines, expected_lines, autojunk=False)
    for tag, first, last, other_first, other_last in matcher.get_opcodes():
        if tag == "equal":
            continue
        has = actual_lines[first].strip() if first < last else "(nothing)"
        wants = expected_lines[other_first].strip() if other_first < other_last else "(nothing)"
        return f"line {first + 1} is {has!r}, the settings give {wants!r}"
    return "only line endings or a final newline differ"
