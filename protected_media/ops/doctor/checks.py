"""The doctor's checks: each takes what it needs as keyword arguments and
returns a ``Result``. Only the nginx config and system checks read the
settings: comparing with them is their job."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from django.core.checks import CheckMessage, run_checks

from ...keys import new_key
from ...nginx.render import (
    HASHED_STATIC_RE,
    MEDIA_SECURITY_HEADERS,
)
from .client import Site
from .findings import Result, Status, finding

__all__ = ["PrivateFile", "PublicTarget", "Result", "StaticStorage", "Status"]


@dataclass(frozen=True)
class PrivateFile:
    """A file under the private root to probe public locations with."""

    key: str
    name: str
    head: bytes  # its first bytes, to recognise it in a response


@dataclass(frozen=True)
class PublicTarget:
    """Where a careless nginx location would serve a private file."""

    url: str
    prefix: str  # the location's prefix, as written in nginx (STATIC_URL, "/", ...)


@dataclass(frozen=True)
class StaticStorage:
    """STORAGES["staticfiles"] as the settings give it."""

    backend: str  # its dotted path
    manifest: Path | None  # where it keeps its manifest; None: it keeps none


def check_static(
    site: Site,
    *,
    static_url: str,
    static_root: Path,
    storage: StaticStorage,
    hashed_cache: str,
    default_cache: str,
) -> Result:
    name = "static"
    if storage.manifest is None:
        return finding("D101", backend=storage.backend)
    manifest = storage.manifest
    try:
        paths = json.loads(manifest.read_text())["paths"]
        entries = [(str(original), str(hashed)) for original, hashed in paths.items()]
    except OSError as error:
        return finding("D102", manifest=manifest, error=error.strerror, backend=storage.backend)
    except (ValueError, KeyError, TypeError, AttributeError):
        error_text = "not a manifest collectstatic wrote"
        return finding("D102", manifest=manifest, error=error_text, backend=storage.backend)
    original, hashed = _smallest_static_file(static_root, entries) or ("", "")
    if not hashed:
        return finding("D103", manifest=manifest, static_root=static_root)
    cases = [(hashed, hashed_cache)]
    if (static_root / original).is_file():
        cases.append((original, default_cache))
    where: dict[str, Any] = {"static_url": static_url, "static_root": static_root}
    for file_name, cache in cases:
        target = static_url + quote(file_name)
        response = site.get(target)
        if response.status != 200:
            return finding("D104", target=target, status=response.status, **where)
        if response.body != (static_root / file_name).read_bytes():
            return finding("D105", target=target, **where)
        if response.values("cache-control") != [cache]:
            got = response.values("cache-control")
            return finding("D106", target=target, got=got, cache=cache, **where)
        if response.values("x-content-type-options") != ["nosniff"]:
            return finding("D107", target=target, **where)
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
            shown = hide_key(target, probe)
            return finding("D201", target=shown, status=response.status, internal_url=internal_url)
    which = "a real private file" if probe else "a made-up name; no private file exists yet"
    return Result(name, "PASS", f"404 for {hide_key(' and '.join(targets), probe)} ({which})")


def check_private_paths(
    site: Site, *, targets: list[PublicTarget], internal_url: str, probe: PrivateFile | None
) -> Result:
    name = "private files"
    if probe is None or not probe.head:
        return finding("D301")
    for target in targets:
        response = site.get(target.url)
        if 200 <= response.status < 300 and response.body.startswith(probe.head):
            # "/static../private/x": the location lost its trailing slash.
            which = "D303" if target.url.startswith(target.prefix + "../") else "D302"
            return finding(
                which,
                target=hide_key(target.url, probe),
                status=response.status,
                prefix=target.prefix,
                internal_url=internal_url,
            )
    shown = ", ".join(target.url.replace(quote(probe.name), "<name>") for target in targets)
    return Result(
        name, "PASS", f"{hide_key(probe.name, probe)} is not served without a session at {shown}"
    )


def check_refusal(
    site: Site, *, media_url: str, anonymous: str, login_path: str, probe: PrivateFile | None
) -> Result:
    name = "anonymous media"
    keys = [probe.key, new_key()] if probe else [new_key()]
    expected = f"a 302 to {login_path}" if anonymous == "login" else "404"
    for key in keys:
        target = media_url + quote(key)
        response = site.get(target)
        if accel := response.accel_headers():
            return finding(
                "D002", check=name, target=target, accel=", ".join(accel), media_url=media_url
            )
        if 200 <= response.status < 300:
            return finding("D401", target=target, status=response.status, media_url=media_url)
        location = (response.values("location") or [""])[0]
        if anonymous == "login":
            refused = response.status == 302 and urlsplit(location).path == login_path
        else:
            refused = response.status == 404
        if not refused:
            return finding(
                "D402",
                target=target,
                status=response.status,
                location=location,
                expected=expected,
                anonymous=anonymous,
                login_path=login_path,
            )
    what = "302 to the login page" if anonymous == "login" else "404"
    which = "a real file's key and an unknown key" if probe else "an unknown key"
    return Result(name, "PASS", f"{what} without a session for {which}, no X-Accel-* header")


def check_served_headers(
    site: Site,
    *,
    target: str | None,
    cookie: str | None,
    cache_control: str,
    media_url: str,
    internal_url: str,
) -> Result:
    name = "media headers"
    if target is None or cookie is None:
        return finding("D501")
    response = site.get(target, {"Cookie": cookie})
    if response.status != 200:
        return finding("D502", check=name, target=target, status=response.status)
    if accel := response.accel_headers():
        return finding(
            "D002", check=name, target=target, accel=", ".join(accel), media_url=media_url
        )
    expected = [*MEDIA_SECURITY_HEADERS, ("Cache-Control", cache_control)]
    wrong = [(header, value) for header, value in expected if response.values(header) != [value]]
    if wrong:
        # nginx keeps the app's Cache-Control on the redirect and adds the others.
        lines = [
            f'add_header {header} "{value}" always; in location ^~ {internal_url}'
            for header, value in wrong
            if header != "Cache-Control"
        ]
        if any(header == "Cache-Control" for header, _ in wrong):
            lines.append(
                f"PROTECTED_MEDIA_CACHE_CONTROL = {cache_control!r} for the site, and no "
                f"add_header Cache-Control in location ^~ {internal_url}"
            )
        return finding(
            "D503",
            target=target,
            wrong=", ".join(header for header, _ in wrong),
            means="nginx's internal location does not add them as the settings say",
            lines="; ".join(lines),
        )
    return Result(name, "PASS", f"GET {target}: 200 with {', '.join(h for h, _ in expected)}")


def check_system(*, fail_level: int) -> Result:
    name = "system checks"
    messages = [
        message
        for message in run_checks(include_deployment_checks=True)
        if not message.is_silenced()
    ]
    failing = sorted(
        (message for message in messages if message.level >= fail_level), key=_message_id
    )
    others = sorted(_message_id(message) for message in messages if message.level < fail_level)
    if failing:
        return finding(
            "D701",
            count=len(failing),
            ids=", ".join(_message_id(message) for message in failing),
            hints="; ".join(_message_text(message) for message in failing),
        )
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


def _message_id(message: CheckMessage) -> str:
    return str(message.id)


def _message_text(message: CheckMessage) -> str:
    hint = f" {message.hint}" if message.hint else ""
    return f"{_message_id(message)}: {str(message.msg).rstrip('.')}.{hint}"


def hide_key(text: str, probe: PrivateFile | None) -> str:
    """The report names a private file without its whole key: reports get pasted."""
    return text.replace(probe.key, f"{probe.key[:4]}...") if probe else text
