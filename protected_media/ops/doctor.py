"""Check a live deployment from outside, as an operator would after a deploy.

Each check is a small function that takes what it needs as keyword arguments
and returns a ``Result``; ``gather`` reads the settings, the database and the
disk once, and ``run`` calls the checks. HTTP goes through ``Site``: one
connection per request, the target sent as written, redirects not followed.
"""

from __future__ import annotations

import difflib
import http.client
import json
import os
import re
import ssl
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from django.conf import settings
from django.core.checks import ERROR, run_checks
from django.core.exceptions import ImproperlyConfigured
from django.shortcuts import resolve_url

from ..conf import conf
from ..keys import new_key
from ..models import StoredFile
from ..names import is_safe_stored_name
from ..nginx.from_settings import render_from_settings
from ..nginx.render import HASHED_STATIC_RE, MEDIA_SECURITY_HEADERS

Status = Literal["PASS", "FAIL", "SKIP"]
MANIFEST_NAME = "staticfiles.json"
# Enough of a private file to recognise it in a response.
HEAD_BYTES = 64 * 1024
# A body this large is not read further: no check needs more of it.
BODY_LIMIT = 8 * 1024 * 1024
# Any values: only the static cache headers are read from this render.
_RENDER_PROBE = {"listen": "127.0.0.1:80", "upstream": "unix:/run/doctor.sock", "server_name": "_"}


@dataclass(frozen=True)
class Result:
    name: str
    status: Status
    reason: str

    @property
    def line(self) -> str:
        return f"{self.status} {self.name}: {self.reason}"


@dataclass(frozen=True)
class Response:
    status: int
    headers: list[tuple[str, str]]  # names lower-cased, in order, repeats kept
    body: bytes

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name.lower()]

    def accel_headers(self) -> list[str]:
        return sorted({key for key, _ in self.headers if key.startswith("x-accel-")})


class Site:
    """The deployment as a client sees it, at ``base_url`` (scheme, host, port)."""

    def __init__(self, base_url: str, *, timeout: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{base_url!r} is not an http:// or https:// address")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"{base_url!r}: give the site's address without a path")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.timeout = timeout

    def get(self, target: str, headers: dict[str, str] | None = None) -> Response:
        connection: http.client.HTTPConnection
        if self.scheme == "https":
            connection = http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            # Verbatim: "/static../x" must reach nginx as written.
            connection.putrequest("GET", target, skip_accept_encoding=True)
            for name, value in (headers or {}).items():
                connection.putheader(name, value)
            connection.endheaders()
            response = connection.getresponse()
            body = response.read(BODY_LIMIT)
            found = [(name.lower(), value) for name, value in response.getheaders()]
            return Response(response.status, found, body)
        finally:
            connection.close()


@dataclass(frozen=True)
class PrivateFile:
    """A file under the private root to probe public locations with."""

    key: str
    name: str
    head: bytes  # its first bytes, to recognise it in a response


@dataclass(frozen=True)
class Inputs:
    static_url: str
    static_root: Path
    private_root: Path
    internal_url: str
    media_url: str
    public_media_url: str | None
    anonymous: str
    login_path: str
    cache_control: str
    probe: PrivateFile | None


# -- the checks ----------------------------------------------------------------


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
    options = rendered_options(text)
    if options is None:
        return Result(name, "FAIL", f"{path} has no listen, server_name or upstream server line")
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


# -- gathering and running ---------------------------------------------------


def gather() -> Inputs:
    if conf.root is None or conf.internal_url is None or not settings.STATIC_ROOT:
        raise ImproperlyConfigured("SENDFILE_ROOT, SENDFILE_URL and STATIC_ROOT must be set.")
    public_media = str(getattr(settings, "MEDIA_URL", "") or "")
    return Inputs(
        static_url=str(settings.STATIC_URL),
        static_root=Path(settings.STATIC_ROOT).resolve(),
        private_root=conf.root.resolve(),
        internal_url=conf.internal_url,
        media_url=conf.url,
        public_media_url=public_media if public_media.startswith("/") else None,
        anonymous=conf.anonymous,
        login_path=urlsplit(resolve_url(settings.LOGIN_URL)).path,
        cache_control=conf.cache_control,
        probe=find_private_file(conf.root.resolve()),
    )


def find_private_file(root: Path, *, candidates: int = 20) -> PrivateFile | None:
    """The newest recorded file that is a regular file on disk."""
    records = StoredFile.objects.order_by("-created").values_list("key", "name")[:candidates]
    for key, name in records:
        if not is_safe_stored_name(name):
            continue
        try:
            if not stat.S_ISREG(os.lstat(root / name).st_mode):
                continue
            with (root / name).open("rb") as handle:
                return PrivateFile(key=key, name=name, head=handle.read(HEAD_BYTES))
        except OSError:
            continue
    return None


def public_targets(inputs: Inputs) -> list[str]:
    """Where a careless nginx location would serve a private file without the check."""
    probe = inputs.probe
    if probe is None:
        return []
    name = quote(probe.name)
    prefixes = [inputs.media_url, inputs.static_url, "/"]
    if inputs.public_media_url:
        prefixes.append(inputs.public_media_url)
    targets = [prefix + name for prefix in dict.fromkeys(prefixes)]
    # A location without its trailing slash ("location /static", alias with
    # one) reads the folder above its alias: "/static../private/<name>".
    for prefix, alias in (
        (inputs.static_url, inputs.static_root),
        (inputs.internal_url, inputs.private_root),
    ):
        path = inputs.private_root / probe.name
        if path.is_relative_to(alias.parent):
            relative = quote(path.relative_to(alias.parent).as_posix())
            targets.append(f"{prefix.rstrip('/')}../{relative}")
    return targets


def run(
    site: Site,
    inputs: Inputs,
    *,
    nginx_config: Path | None,
    media_target: str | None,
    cookie: str | None,
    fail_level: int = ERROR,
) -> list[Result]:
    hashed_cache, default_cache = static_cache_values(render_from_settings(**_RENDER_PROBE))
    probe = inputs.probe
    return [
        _guarded(
            "static",
            check_static,
            site,
            static_url=inputs.static_url,
            static_root=inputs.static_root,
            hashed_cache=hashed_cache,
            default_cache=default_cache,
        ),
        _guarded("internal", check_internal, site, internal_url=inputs.internal_url, probe=probe),
        _guarded(
            "private files", check_private_paths, site, targets=public_targets(inputs), probe=probe
        ),
        _guarded(
            "anonymous media",
            check_refusal,
            site,
            media_url=inputs.media_url,
            anonymous=inputs.anonymous,
            login_path=inputs.login_path,
            probe=probe,
        ),
        _guarded(
            "media headers",
            check_served_headers,
            site,
            target=media_target,
            cookie=cookie,
            cache_control=inputs.cache_control,
        ),
        _guarded("nginx config", check_nginx_config, nginx_config),
        _guarded("system checks", check_system, fail_level=fail_level),
    ]


def _guarded(name: str, check: Callable[..., Result], *args: Any, **kwargs: Any) -> Result:
    try:
        return check(*args, **kwargs)
    except (OSError, http.client.HTTPException) as error:
        # An unreachable site fails every HTTP check, each saying so.
        return Result(name, "FAIL", f"no answer: {error or type(error).__name__}")


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


def static_cache_values(site_config: str) -> tuple[str, str]:
    """The Cache-Control values the rendered map gives hashed and other static names."""
    hashed = re.search(rf'"~{re.escape(HASHED_STATIC_RE)}" "([^"]*)";', site_config)
    default = re.search(r'^\s*default "([^"]*)";', site_config, re.M)
    if hashed is None or default is None:
        raise ValueError("the rendered config has no static cache map")
    return hashed[1], default[1]


@dataclass(frozen=True)
class RenderOptions:
    listen: str
    upstream: str
    server_name: str
    standalone: str | None
    user: str | None


def rendered_options(text: str) -> RenderOptions | None:
    """The protected_media_nginx options that produced ``text``: what it was rendered with
    is the operator's choice; everything else must follow from the settings."""
    listen = re.search(r"^\s*listen ([^;\n]*);", text, re.M)
    server_name = re.search(r"^\s*server_name ([^;\n]*);", text, re.M)
    upstream = re.search(r"^upstream protected_media_app \{\n\s*server ([^;\n]*);", text, re.M)
    if listen is None or server_name is None or upstream is None:
        return None
    state_dir = re.search(r"^pid (.*)/nginx\.pid;$", text, re.M)
    user = re.search(r"^user ([^;\n]*);$", text, re.M)
    return RenderOptions(
        listen=listen[1],
        upstream=upstream[1],
        server_name=server_name[1],
        standalone=state_dir[1] if state_dir else None,
        user=user[1] if user and state_dir else None,
    )


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
