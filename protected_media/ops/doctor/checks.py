"""The doctor's checks: each takes what it needs as keyword arguments and
returns a ``Result``. Only the nginx config and system checks read the
settings: comparing with them is their job."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit

from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured

from ...keys import new_key
from ...nginx.from_settings import render_from_settings
from ...nginx.render import (
    HASHED_STATIC_RE,
    MEDIA_SECURITY_HEADERS,
    OPTIONS_COMMENT,
    recorded_options,
)
from .client import Site

# WARN: works, but will not for long (a clock drifting away); not a failure.
Status = Literal["PASS", "FAIL", "SKIP", "WARN"]
MANIFEST_NAME = "staticfiles.json"


@dataclass(frozen=True)
class Result:
    name: str
    status: Status
    reason: str

    @property
    def line(self) -> str:
        return f"{self.status} {self.name}: {self.reason}"


@dataclass(frozen=True)
class PrivateFile:
    """A file under the private root to probe public locations with."""

    key: str
    name: str
    head: bytes  # its first bytes, to recognise it in a response


def check_static(
    site: Site, *, static_url: str, static_root: Path, hashed_cache: str, default_cache: str
) -> Result:
    name = "static"
    manifest = static_root / MANIFEST_NAME
    try:
        paths = json.loads(manifest.read_text())["paths"]
        entries = [(str(original), str(hashed)) for original, hashed in paths.items()]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return Result(name, "FAIL", f"no readable {manifest}: run collectstatic")
    original, hashed = _smallest_static_file(static_root, entries) or ("", "")
    if not hashed:
        return Result(name, "FAIL", f"no file named in {manifest} is under {static_root}")
    cases = [(hashed, hashed_cache)]
    if (static_root / original).is_file():
        cases.append((original, default_cache))
    for file_name, cache in cases:
        target = static_url + quote(file_name)
        response = site.get(target)
        if response.status != 200:
            return Result(name, "FAIL", f"GET {target} answered {response.status}, not 200")
        if response.body != (static_root / file_name).read_bytes():
            return Result(name, "FAIL", f"GET {target} did not answer the file in STATIC_ROOT")
        if response.values("cache-control") != [cache]:
            got = response.values("cache-control")
            return Result(name, "FAIL", f"GET {target}: Cache-Control {got}, not [{cache!r}]")
        if response.values("x-content-type-options") != ["nosniff"]:
            return Result(name, "FAIL", f"GET {target}: no X-Content-Type-Options: nosniff")
    served = " and ".join(f"{static_url}{quote(file)} ({cache})" for file, cache in cases)
    return Result(name, "PASS", f"200 with the file's bytes: {served}")


def check_internal(site: Site, *, internal_url: str, probe: PrivateFile | None) -> Result:
    name = "internal"
    # The prefix alone maps to the private root itself: a public alias answers
    # 403 (a folder without an index), so this probe needs no file.
    file_name = probe.name if probe else f"files/{new_key()}.pdf"
    targets = [internal_url + quote(file_name), internal_url]
    for target in targets:
        response = site.get(target)
        if response.status != 404:
            return Result(
                name,
                "FAIL",
                f"GET {hide_key(target, probe)} answered {response.status}, not 404: "
                "the location is not internal",
            )
    which = "a real private file" if probe else "a made-up name; no private file exists yet"
    return Result(name, "PASS", f"404 for {hide_key(' and '.join(targets), probe)} ({which})")


def check_private_paths(site: Site, *, targets: list[str], probe: PrivateFile | None) -> Result:
    name = "private files"
    if probe is None or not probe.head:
        return Result(name, "SKIP", "no private file to look for yet: upload one and run again")
    for target in targets:
        response = site.get(target)
        if 200 <= response.status < 300 and response.body.startswith(probe.head):
            return Result(
                name,
                "FAIL",
                f"GET {hide_key(target, probe)} without a session answered {response.status} with "
                "the private file: a public location reads the private root",
            )
    shown = ", ".join(target.replace(quote(probe.name), "<name>") for target in targets)
    return Result(
        name, "PASS", f"{hide_key(probe.name, probe)} is not served without a session at {shown}"
    )


def check_refusal(
    site: Site, *, media_url: str, anonymous: str, login_path: str, probe: PrivateFile | None
) -> Result:
    name = "anonymous media"
    keys = [probe.key, new_key()] if probe else [new_key()]
    for key in keys:
        target = media_url + quote(key)
        response = site.get(target)
        if accel := response.accel_headers():
            return Result(name, "FAIL", f"GET {target} answered with {', '.join(accel)}")
        if anonymous == "login":
            location = (response.values("location") or [""])[0]
            parts = urlsplit(location)
            if response.status != 302 or parts.path != login_path:
                return Result(
                    name,
                    "FAIL",
                    f"GET {target} answered {response.status} {location!r}, "
                    f"not a redirect to {login_path}",
                )
        elif response.status != 404:
            return Result(name, "FAIL", f"GET {target} answered {response.status}, not 404")
    what = "302 to the login page" if anonymous == "login" else "404"
    which = "a real file's key and an unknown key" if probe else "an unknown key"
    return Result(name, "PASS", f"{what} without a session for {which}, no X-Accel-* header")


def check_served_headers(
    site: Site, *, target: str | None, cookie: str | None, cache_control: str
) -> Result:
    name = "media headers"
    if target is None or cookie is None:
        return Result(
            name,
            "SKIP",
            "nginx adds them to served files only: give --media-url and --session-cookie",
        )
    response = site.get(target, {"Cookie": cookie})
    if response.status != 200:
        return Result(
            name,
            "FAIL",
            f"GET {target} with the session answered {response.status}, not 200: "
            "the session is not signed in, or its user may not read the file",
        )
    if accel := response.accel_headers():
        return Result(name, "FAIL", f"GET {target} answered with {', '.join(accel)}")
    expected = [*MEDIA_SECURITY_HEADERS, ("Cache-Control", cache_control)]
    wrong = [header for header, value in expected if response.values(header) != [value]]
    if wrong:
        return Result(name, "FAIL", f"GET {target} lacks the right {', '.join(wrong)}")
    return Result(name, "PASS", f"GET {target}: 200 with {', '.join(h for h, _ in expected)}")


def check_nginx_config(path: Path | None) -> Result:
    name = "nginx config"
    if path is None:
        return Result(name, "SKIP", "give --nginx-config with the file nginx loads")
    try:
        text = path.read_text()
    except OSError as error:
        return Result(name, "FAIL", f"cannot read {path}: {error.strerror}")
    # What it was rendered with is the operator's choice, recorded in the file;
    # everything else must follow from the settings.
    options = recorded_options(text)
    if options is None:
        return Result(
            name,
            "FAIL",
            f"{path} has no {OPTIONS_COMMENT.strip()!r} line with its listen, upstream and "
            "server name: render it with protected_media_nginx",
        )
    try:
        expected = render_from_settings(
            listen=options.listen,
            upstream=options.upstream,
            server_name=options.server_name,
            standalone=options.standalone,
            user=options.user,
        )
    except (ImproperlyConfigured, ValueError) as error:
        return Result(name, "FAIL", f"the settings cannot be rendered: {error}")
    if text == expected:
        return Result(
            name, "PASS", f"{path} is what protected_media_nginx writes for these settings"
        )
    return Result(
        name, "FAIL", f"{path} differs from a fresh render: {first_difference(text, expected)}"
    )


def check_system(*, fail_level: int) -> Result:
    name = "system checks"
    messages = [
        message
        for message in run_checks(include_deployment_checks=True)
        if not message.is_silenced()
    ]
    failing = sorted(str(message.id) for message in messages if message.level >= fail_level)
    others = sorted(str(message.id) for message in messages if message.level < fail_level)
    if failing:
        return Result(name, "FAIL", f"{len(failing)} at the fail level: {', '.join(failing)}")
    reason = "none at the fail level (deployment checks included)"
    if others:
        reason += f"; below it: {', '.join(others)}"
    return Result(name, "PASS", reason)


# -- small pure helpers ------------------------------------------------------


def _smallest_static_file(root: Path, entries: Iterable[tuple[str, str]]) -> tuple[str, str] | None:
    """The smallest non-empty hashed file the manifest names: cheap to fetch."""
    found = []
    for original, hashed in entries:
        if not re.search(HASHED_STATIC_RE, hashed):
            continue
        try:
            size = (root / hashed).stat().st_size
        except OSError:
            continue
        if size:
            found.append((size, hashed, original))
    if not found:
        return None
    _, hashed, original = min(found)
    return original, hashed


def hide_key(text: str, probe: PrivateFile | None) -> str:
    """The report names a private file without its whole key: reports get pasted."""
    return text.replace(probe.key, f"{probe.key[:4]}...") if probe else text


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
