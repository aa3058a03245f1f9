"""The rendered nginx config: read back block by block, and checked by nginx itself."""

from __future__ import annotations

import dataclasses
import io
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import certifi
import pytest
from django.core.management import CommandError, call_command
from hypothesis import given
from hypothesis import strategies as st

from protected_media.nginx.render import (
    REFUSAL_HEADER,
    Limits,
    RenderOptions,
    SiteConfig,
    StoreConfig,
    recorded_options,
    render_site,
    render_site_parts,
    render_standalone,
)
from protected_media.nginx.rules import is_writable
from protected_media.ops.doctor.nginx_config import check_nginx_config
from tests.stack.harness import free_port
from tests.test_security_tools import GIXY_SKIPS, gixy

LIMIT = 10 * 1024 * 1024
SITE = SiteConfig(
    listen="127.0.0.1:8080",
    upstream="unix:/run/gateway/uvicorn.sock",
    server_name="files.example.org",
    static_url="/static/",
    static_root="/srv/gateway/static",
    media_url="/media/",
    internal_url="/_protected/",
    private_root="/srv/gateway/private",
    max_body_size=LIMIT,
)
# Written out here, not imported: the test states what nginx must do.
ACCEL_HEADERS = {
    "X-Accel-Redirect",
    "X-Accel-Expires",
    "X-Accel-Limit-Rate",
    "X-Accel-Buffering",
    "X-Accel-Charset",
}
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; sandbox",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}


# The access log's masks: the request's path, then its Referer.
LOG_MAPS = ["$request_uri", "$http_referer"]


# -- a small reader for nginx's config syntax -----------------------------------------


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = None

    def all(self, name: str) -> list[Directive]:
        return [d for d in self.block or [] if d.name == name]

    def one(self, name: str) -> Directive:
        found = self.all(name)
        assert len(found) == 1, f"{len(found)} {name!r} directives in {self.name} {self.args}"
        return found[0]

    def location(self, path: str) -> Directive:
        found = [d for d in self.all("location") if d.args[-1] == path]
        assert len(found) == 1, f"{len(found)} locations for {path!r}"
        return found[0]


def tokenize(text: str) -> list[tuple[str, bool]]:
    """(token, quoted) pairs; '{', '}' and ';' come out unquoted."""
    out: list[tuple[str, bool]] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char.isspace():
            i += 1
        elif char == "#":
            i = text.find("\n", i)
            i = len(text) if i < 0 else i
        elif char in "{};":
            out.append((char, False))
            i += 1
        elif char in "\"'":
            end = i + 1
            while text[end] != char:
                end += 2 if text[end] == "\\" else 1
            out.append((text[i + 1 : end], True))
            i = end + 1
        else:
            end = i
            while end < len(text) and not text[end].isspace() and text[end] not in "{};":
                end += 1
            out.append((text[i:end], False))
            i = end
    return out


def parse(text: str) -> Directive:
    tokens = tokenize(text)
    position = 0

    def block(closing: bool) -> list[Directive]:
        nonlocal position
        directives: list[Directive] = []
        words: list[str] = []
        while position < len(tokens):
            token, quoted = tokens[position]
            position += 1
            if quoted:
                words.append(token)
            elif token == ";":
                directives.append(Directive(words[0], words[1:]))
                words = []
            elif token == "{":
                directives.append(Directive(words[0], words[1:], block(closing=True)))
                words = []
            elif token == "}":
                assert closing and not words, "unbalanced '}'"
                return directives
            else:
                words.append(token)
        assert not closing and not words, "unterminated block or directive"
        return directives

    return Directive("main", [], block(closing=False))


def server_of(text: str) -> Directive:
    return parse(text).one("server")


# -- render_site ----------------------------------------------------------------------


def test_reader_reads_what_it_should() -> None:
    # The reader is the tool of every test below: it must see blocks and quotes.
    conf = parse('a 1;\nb { c "d; e" f; } # g;\n')
    assert conf.one("a").args == ["1"]
    assert conf.one("b").one("c").args == ["d; e", "f"]
    assert conf.all("g") == []


def test_internal_location_is_internal() -> None:
    location = server_of(render_site(SITE)).location("/_protected/")
    assert location.args == ["^~", "/_protected/"]
    assert location.one("internal").args == []
    assert location.all("proxy_pass") == []


@pytest.mark.parametrize("private_root", ["/srv/gateway/private", "/srv/gateway/private/"])
@pytest.mark.parametrize("internal_url", ["/_protected/", "/internal/files/"])
def test_internal_location_and_alias_both_end_with_a_slash(private_root, internal_url) -> None:
    site = dataclasses.replace(SITE, private_root=private_root, internal_url=internal_url)
    server = server_of(render_site(site))
    locations = [d for d in server.all("location") if d.all("internal")]
    assert len(locations) == 1
    location = locations[0]
    assert location.args[-1] == internal_url
    assert location.args[-1].endswith("/")
    assert location.one("alias").args == ["/srv/gateway/private/"]


@pytest.mark.parametrize("private_root", ["/srv/gateway/private", "/srv/gateway/private/"])
def test_internal_location_refuses_symlinks_from_the_root(private_root) -> None:
    site = dataclasses.replace(SITE, private_root=private_root)
    location = server_of(render_site(site)).location("/_protected/")
    assert location.one("disable_symlinks").args == ["on", "from=/srv/gateway/private"]


def test_internal_location_allows_one_range_only() -> None:
    location = server_of(render_site(SITE)).location("/_protected/")
    assert location.one("max_ranges").args == ["1"]


def test_internal_location_adds_every_security_header_always() -> None:
    location = server_of(render_site(SITE)).location("/_protected/")
    added = {d.args[0]: d.args[1:] for d in location.all("add_header")}
    assert added == {name: [value, "always"] for name, value in SECURITY_HEADERS.items()}
    assert "sandbox" in added["Content-Security-Policy"][0].split("; ")


def test_accel_headers_are_ignored_everywhere_but_the_gateway() -> None:
    server = server_of(render_site(SITE))
    ignored = server.location("/").one("proxy_ignore_headers").args
    assert set(ignored) == ACCEL_HEADERS
    assert len(ignored) == len(ACCEL_HEADERS)
    # The gateway location must keep them: that is how the file gets served.
    # Nor may server level set them: the media location would inherit them.
    assert server.location("/media/").all("proxy_ignore_headers") == []
    assert server.all("proxy_ignore_headers") == []


def test_only_the_gateway_and_the_rest_proxy_to_the_app() -> None:
    server = server_of(render_site(SITE))
    proxied = {d.args[-1] for d in server.all("location") if d.all("proxy_pass")}
    assert proxied == {"/media/", "/", "@protected_media_too_large"}
    assert server.location("/media/").args == ["^~", "/media/"]


def test_an_upload_refused_for_its_size_is_answered_by_the_app_without_its_body() -> None:
    server = server_of(render_site(SITE))
    pages = {d.args[0]: d.args[1] for d in server.all("error_page")}
    assert pages["413"] == "@protected_media_too_large"
    handover = server.location("@protected_media_too_large")
    assert handover.one("proxy_method").args == ["GET"]
    assert handover.one("proxy_pass_request_body").args == ["off"]
    sent = [d.args for d in handover.all("proxy_set_header")]
    assert ["Content-Length", ""] in sent and ["Content-Type", ""] in sent
    assert [REFUSAL_HEADER, "too-large"] in sent and [REFUSAL_HEADER, ""] not in sent
    # The page it gets back may not hand nginx a file.
    assert set(handover.one("proxy_ignore_headers").args) == ACCEL_HEADERS
    # Every other request to the app drops a client's own copy of the header.
    assert [REFUSAL_HEADER, ""] in [d.args for d in server.all("proxy_set_header")]


def test_a_body_sent_to_a_media_url_is_refused_in_text_by_nginx() -> None:
    server = server_of(render_site(LIMITED))
    media = server.location("/media/")
    pages = {d.args[0]: d.args[1] for d in media.all("error_page")}
    # Its own 413, and the server's other pages again (an error_page of its
    # own stops it inheriting them).
    assert pages == {
        "413": "@protected_media_body_refused",
        "429": "@protected_media_too_many",
        "502": "@protected_media_bad_gateway",
        "504": "@protected_media_gateway_timeout",
    }
    refused = server.location("@protected_media_body_refused")
    assert refused.one("return").args == [
        "413",
        "Request Entity Too Large: a media URL takes no request body.\\n",
    ]
    assert refused.all("proxy_pass") == []


@pytest.mark.parametrize("limit", [LIMIT, 1, 123_456_789])
def test_body_size_limits(limit) -> None:
    server = server_of(render_site(dataclasses.replace(SITE, max_body_size=limit)))
    assert server.one("client_max_body_size").args == [str(limit + 65536)]
    # The gateway takes no bodies worth the name.
    assert server.location("/media/").one("client_max_body_size").args == ["1k"]
    # Uploads go through "/", which inherits the server's limit.
    assert server.location("/").all("client_max_body_size") == []


@pytest.mark.parametrize("static_root", ["/srv/gateway/static", "/srv/gateway/static/"])
def test_static_location_aliases_static_root_with_a_slash(static_root) -> None:
    site = dataclasses.replace(SITE, static_root=static_root, static_url="/assets/")
    location = server_of(render_site(site)).location("/assets/")
    assert location.args == ["^~", "/assets/"]
    assert location.one("alias").args == ["/srv/gateway/static/"]
    assert location.all("proxy_pass") == []


def test_server_takes_listen_and_names_from_the_config() -> None:
    conf = parse(render_site(SITE))
    server = conf.one("server")
    assert server.one("listen").args == ["127.0.0.1:8080"]
    assert server.one("server_name").args == ["files.example.org"]
    assert conf.one("upstream").one("server").args == ["unix:/run/gateway/uvicorn.sock"]


# Each row: the field, the hostile value, and what it tries.
HOSTILE = [
    ("server_name", "example.org; include /etc/shadow", "';' ends the directive, adds another"),
    ("server_name", "example.org default_server", "a space adds a parameter"),
    ("server_name", "example.org#", "'#' comments out the rest of the line"),
    ("listen", "8080;} server { listen 9090", "closes the server block, opens another"),
    ("listen", '127.0.0.1:8080 "', "an unbalanced double quote"),
    ("upstream", "127.0.0.1:8000 backup", "a space adds a parameter"),
    ("upstream", "unix:/run/u.sock;\n    server 203.0.113.9:80", "a newline adds a backend"),
    ("static_url", "/static/ {} location / {", "'{' opens a block of its own"),
    ("static_url", "/static/\nlocation /", "a newline starts a directive"),
    ("static_root", "/srv/static/}", "'}' closes the location early"),
    ("static_root", "/srv/my static", "a space: two arguments to alias"),
    ("media_url", "/media/{", "'{' opens the location body early"),
    ("media_url", "/media/'", "an unbalanced single quote"),
    ("internal_url", "/_protected/ { } location /x/", "replaces the internal location"),
    ("internal_url", "/_protected/\t", "a tab is whitespace too"),
    ("private_root", "/srv/private; autoindex on", "lists the private folder"),
    ("private_root", "/srv/$host/", "'$' makes the alias a variable"),
    ("private_root", "/srv/private\r\n", "a CRLF line break"),
    ("private_root", '/srv/"private"', "quotes change how nginx reads the word"),
    ("private_root", "/srv/private\\", "a backslash escapes what follows"),
    ("private_root", "", "an empty alias"),
    ("server_name", "", "an empty directive"),
]


@pytest.mark.parametrize(
    ("name", "value"), [row[:2] for row in HOSTILE], ids=[row[2] for row in HOSTILE]
)
def test_render_site_refuses_config_injection(name, value) -> None:
    site = dataclasses.replace(SITE, **{name: value})
    with pytest.raises(ValueError, match=name):
        render_site(site)


# -- rate and connection limits -------------------------------------------------------

MEDIA_LIMITS = Limits(rate="30r/s", burst=200, connections=64)
UPLOAD_LIMITS = Limits(rate="2r/s", burst=10, connections=4)
LIMITED = dataclasses.replace(SITE, media_limits=MEDIA_LIMITS, upload_limits=UPLOAD_LIMITS)
LIMIT_DIRECTIVES = {
    "limit_req",
    "limit_conn",
    "limit_req_zone",
    "limit_conn_zone",
    "limit_req_status",
    "limit_conn_status",
}


def test_the_access_log_never_holds_a_share_token() -> None:
    conf = parse(render_site(SITE))
    server = conf.one("server")
    assert server.one("access_log").args == ["/var/log/nginx/access.log", "protected_media"]
    log_format = conf.one("log_format")
    assert log_format.args[0] == "protected_media"
    fields = "".join(log_format.args[1:])
    # The request line, rebuilt from its parts with the path masked: never
    # $request, $request_uri, $uri or $http_referer themselves.
    assert '"$request_method $protected_media_log_uri $server_protocol"' in fields
    assert '"$protected_media_log_referer"' in fields
    for raw in ("$request ", "$request_uri", "$uri", "$http_referer", "$args", "$query_string"):
        assert raw not in fields
    path, referer = conf.all("map")[1:]
    assert path.args == ["$request_uri", "$protected_media_log_uri"]
    assert [(d.name, d.args) for d in path.block or []] == [
        ("~^/media/[A-Za-z0-9_-]*$", ["$request_uri"]),
        ("~^/media/s/", ["/media/s/<redacted>"]),
        ("~^/*media/", ["/media/<redacted>"]),
        ("default", ["$request_uri"]),
    ]
    assert referer.args == ["$http_referer", "$protected_media_log_referer"]
    assert [(d.name, d.args) for d in referer.block or []] == [
        ("~/media/", ["/media/<redacted>"]),
        ("default", ["$http_referer"]),
    ]


def test_locations_a_share_link_reaches_write_only_critical_errors() -> None:
    # nginx's error lines copy the request line, which it cannot mask.
    server = server_of(render_site(dataclasses.replace(SITE, log_dir="/var/log/gw/")))
    assert server.one("access_log").args[0] == "/var/log/gw/access.log"
    media = server.location("/media/")
    share = media.location("/media/s/")
    assert share.args == ["^~", "/media/s/"]
    assert share.one("error_log").args == ["/var/log/gw/error.log", "crit"]
    assert share.one("proxy_pass").args == ["http://protected_media_app"]
    internal = server.location("/_protected/")
    assert internal.one("error_log").args == ["/var/log/gw/error.log", "crit"]
    # Key requests keep the server's error log.
    assert media.all("error_log") == []


def all_directives(directive: Directive) -> list[Directive]:
    found = []
    for child in directive.block or []:
        found += [child, *all_directives(child)]
    return found


def test_no_limits_no_limit_directives() -> None:
    # SiteConfig's default, and every limit set to None.
    for site in (SITE, dataclasses.replace(SITE, media_limits=Limits(burst=5))):
        conf = parse(render_site(site))
        assert {d.name for d in all_directives(conf)} & LIMIT_DIRECTIVES == set()
        assert [d.args[0] for d in conf.all("map")] == ["$uri", *LOG_MAPS]
        server = conf.one("server")
        assert all(d.args[-1] != "@protected_media_too_many" for d in server.all("location"))
        assert [d.args[0] for d in server.all("error_page")] == ["502", "504", "413"]


def test_media_limits_per_client_address_in_the_media_location() -> None:
    conf = parse(render_site(LIMITED))
    zones = {d.args[1]: d.args for d in conf.all("limit_req_zone")}
    assert zones["zone=protected_media_media:10m"] == [
        "$binary_remote_addr",
        "zone=protected_media_media:10m",
        "rate=30r/s",
    ]
    conn_zones = {d.args[1]: d.args for d in conf.all("limit_conn_zone")}
    assert conn_zones["zone=protected_media_media_conn:10m"] == [
        "$binary_remote_addr",
        "zone=protected_media_media_conn:10m",
    ]
    media = conf.one("server").location("/media/")
    assert media.one("limit_req").args == ["zone=protected_media_media", "burst=200", "nodelay"]
    assert media.one("limit_conn").args == ["protected_media_media_conn", "64"]


def test_upload_limits_count_only_write_methods() -> None:
    conf = parse(render_site(LIMITED))
    [upload_map] = [d for d in conf.all("map") if d.args[0] == "$request_method"]
    assert upload_map.args == ["$request_method", "$protected_media_upload_client"]
    keys = {d.name: d.args for d in upload_map.block or []}
    # An empty key is not counted: GET, HEAD and OPTIONS pass freely.
    assert keys == {
        "POST": ["$binary_remote_addr"],
        "PUT": ["$binary_remote_addr"],
        "PATCH": ["$binary_remote_addr"],
        "DELETE": ["$binary_remote_addr"],
        "default": [""],
    }
    zones = {d.args[1]: d.args[0] for d in conf.all("limit_req_zone")}
    assert zones["zone=protected_media_upload:10m"] == "$protected_media_upload_client"
    [upload_zone] = [d for d in conf.all("limit_req_zone") if "upload" in d.args[1]]
    assert upload_zone.args[2] == "rate=2r/s"
    conn_zones = {d.args[1]: d.args[0] for d in conf.all("limit_conn_zone")}
    assert conn_zones["zone=protected_media_upload_conn:10m"] == "$protected_media_upload_client"
    rest = conf.one("server").location("/")
    assert rest.one("limit_req").args == ["zone=protected_media_upload", "burst=10", "nodelay"]
    assert rest.one("limit_conn").args == ["protected_media_upload_conn", "4"]


def test_static_internal_and_error_locations_are_never_limited() -> None:
    server = server_of(render_site(LIMITED))
    # The internal location serves the media request nginx already counted;
    # static files cost no Python. Only server level and two locations hold limits.
    for location in server.all("location"):
        if location.args[-1] not in ("/media/", "/"):
            assert {d.name for d in all_directives(location)} & LIMIT_DIRECTIVES == set(), location
    assert server.all("limit_req") == server.all("limit_conn") == []


def test_limits_answer_429_with_retry_after() -> None:
    server = server_of(render_site(LIMITED))
    assert server.one("limit_req_status").args == ["429"]
    assert server.one("limit_conn_status").args == ["429"]
    pages = {d.args[0]: d.args[1] for d in server.all("error_page")}
    assert pages == {
        "413": "@protected_media_too_large",
        "429": "@protected_media_too_many",
        "502": "@protected_media_bad_gateway",
        "504": "@protected_media_gateway_timeout",
    }
    location = server.location("@protected_media_too_many")
    assert location.one("default_type").args == ["text/plain; charset=utf-8"]
    added = {d.args[0]: d.args[1:] for d in location.all("add_header")}
    assert added == {"Cache-Control": ["no-store", "always"], "Retry-After": ["1", "always"]}
    assert location.one("return").args == [
        "429",
        "Too Many Requests: slow down and try again shortly.\\n",
    ]


# Each row: media rate, upload rate, the Retry-After the 429 page gives.
RETRY_AFTER = [
    ("30r/s", "2r/s", "1"),
    ("30r/s", None, "1"),
    (None, None, "1"),  # connection limits only
    ("600r/m", "2r/m", "30"),
    ("7r/m", "1r/s", "9"),  # 60/7 rounded up
    (None, "1r/m", "60"),
]


@pytest.mark.parametrize(("media_rate", "upload_rate", "seconds"), RETRY_AFTER)
def test_retry_after_lets_the_slower_zone_refill(media_rate, upload_rate, seconds) -> None:
    site = dataclasses.replace(
        LIMITED,
        media_limits=dataclasses.replace(MEDIA_LIMITS, rate=media_rate),
        upload_limits=dataclasses.replace(UPLOAD_LIMITS, rate=upload_rate),
    )
    location = server_of(render_site(site)).location("@protected_media_too_many")
    added = {d.args[0]: d.args[1] for d in location.all("add_header")}
    assert added["Retry-After"] == seconds


@given(count=st.integers(1, 10**6), unit=st.sampled_from("sm"), burst=st.integers(1, 10**6))
def test_any_rate_is_rendered_as_given_with_a_long_enough_retry_after(count, unit, burst) -> None:
    rate = f"{count}r/{unit}"
    site = dataclasses.replace(SITE, media_limits=Limits(rate=rate, burst=burst))
    conf = parse(render_site(site))
    assert conf.one("limit_req_zone").args[2] == f"rate={rate}"
    media = conf.one("server").location("/media/")
    assert media.one("limit_req").args[1] == f"burst={burst}"
    location = conf.one("server").location("@protected_media_too_many")
    retry_after = int({d.args[0]: d.args[1] for d in location.all("add_header")}["Retry-After"])
    period = 60 if unit == "m" else 1
    # Never less than one request's share of the period, and never over a second more.
    assert 1 <= retry_after and retry_after * count >= period
    assert retry_after == 1 or (retry_after - 1) * count < period


# Each row: which limit is turned off, and the directives that must go with it.
ONE_OFF = [
    ("media", "rate", {("/media/", "limit_req"), ("http", "limit_req_zone media")}),
    ("media", "connections", {("/media/", "limit_conn"), ("http", "limit_conn_zone media")}),
    ("upload", "rate", {("/", "limit_req"), ("http", "limit_req_zone upload")}),
    ("upload", "connections", {("/", "limit_conn"), ("http", "limit_conn_zone upload")}),
]


def limit_lines(text: str) -> set[tuple[str, str]]:
    conf = parse(text)
    found = set()
    for zone in conf.all("limit_req_zone") + conf.all("limit_conn_zone"):
        kind = "upload" if "upload" in zone.args[1] else "media"
        found.add(("http", f"{zone.name} {kind}"))
    for location in conf.one("server").all("location"):
        for directive in location.block or []:
            if directive.name in ("limit_req", "limit_conn"):
                found.add((location.args[-1], directive.name))
    return found


@pytest.mark.parametrize(
    ("which", "field", "removed"), ONE_OFF, ids=[f"{row[0]} {row[1]}" for row in ONE_OFF]
)
def test_none_removes_one_limit_and_keeps_the_others(which, field, removed) -> None:
    limits = {"media": MEDIA_LIMITS, "upload": UPLOAD_LIMITS}
    limits[which] = dataclasses.replace(limits[which], **{field: None})
    site = dataclasses.replace(SITE, media_limits=limits["media"], upload_limits=limits["upload"])
    every = limit_lines(render_site(LIMITED))
    assert len(every) == 8
    assert limit_lines(render_site(site)) == every - removed


def test_upload_map_only_with_an_upload_limit() -> None:
    site = dataclasses.replace(LIMITED, upload_limits=Limits(burst=10))
    conf = parse(render_site(site))
    assert [d.args[0] for d in conf.all("map")] == ["$uri", *LOG_MAPS]
    assert server_of(render_site(site)).one("limit_req_status").args == ["429"]
    # No connection limit left anywhere: no status for it either.
    site = dataclasses.replace(site, media_limits=Limits(rate="30r/s", burst=200))
    assert server_of(render_site(site)).all("limit_conn_status") == []


# Each row: the field, the bad value, and why nginx (or the config) cannot take it.
BAD_LIMITS = [
    ("rate", "30r/s; include /etc/shadow", "';' ends the directive"),
    ("rate", "30r/s burst=9", "a space adds a parameter"),
    ("rate", "30 r/s", "nginx reads two words"),
    ("rate", "0r/s", "nginx refuses a zero rate"),
    ("rate", "30r/h", "per second or per minute only"),
    ("rate", "30", "no unit"),
    ("rate", "", "an empty rate"),
    ("rate", 30, "a number, not a rate"),
    ("burst", 0, "nginx refuses burst=0"),
    ("burst", -1, "a negative burst"),
    ("burst", "10", "a string"),
    ("burst", True, "a bool is not a count"),
    ("burst", None, "None is for rates and connections"),
    ("connections", 0, "nginx refuses zero connections"),
    ("connections", -4, "a negative count"),
    ("connections", "4; x", "a string"),
    ("connections", 2.5, "a float"),
]


@pytest.mark.parametrize("which", ["media", "upload"])
@pytest.mark.parametrize(
    ("field", "value"), [row[:2] for row in BAD_LIMITS], ids=[row[2] for row in BAD_LIMITS]
)
def test_render_site_refuses_bad_limits(which, field, value) -> None:
    limits = dataclasses.replace(Limits(rate="30r/s", burst=5, connections=4), **{field: value})
    site = dataclasses.replace(SITE, **{f"{which}_limits": limits})
    with pytest.raises(ValueError, match=f"{which} {field}"):
        render_site(site)


# -- render_standalone ----------------------------------------------------------------


def test_standalone_keeps_its_files_in_the_state_dir() -> None:
    conf = parse(render_standalone(render_site(SITE), state_dir="/var/lib/gw", user=None))
    assert conf.one("pid").args == ["/var/lib/gw/nginx.pid"]
    assert conf.one("error_log").args[0] == "/var/lib/gw/error.log"
    assert conf.one("daemon").args == ["off"]
    assert conf.all("user") == []
    http = conf.one("http")
    assert http.one("access_log").args == ["/var/lib/gw/access.log"]
    temp = [d for d in http.block or [] if d.name.endswith("_temp_path")]
    assert {d.name for d in temp} == {
        f"{kind}_temp_path" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    }
    assert all(d.args[0].startswith("/var/lib/gw/tmp/") for d in temp)
    # The site sits inside http, whole.
    assert http.one("server").location("/_protected/").all("internal")


def test_standalone_names_the_worker_user_when_given() -> None:
    conf = parse(render_standalone(render_site(SITE), state_dir="/var/lib/gw", user="gateway"))
    assert conf.one("user").args == ["gateway"]


HOSTILE_STANDALONE = [
    ({"state_dir": "/var/lib/gw; include /etc/shadow"}, "';' ends the pid directive"),
    ({"state_dir": "/var/lib/my gw"}, "a space splits every path in two"),
    ({"state_dir": "/var/lib/gw\nuser root"}, "a newline starts a directive"),
    ({"state_dir": "/var/lib/$gw"}, "'$' is a variable"),
    ({"state_dir": "/var/lib/gw}"}, "'}' closes the http block"),
    ({"user": "nobody; include /etc/shadow"}, "the user line is config too"),
    ({"user": "root root"}, "a space gives user a group argument"),
]


@pytest.mark.parametrize(
    "overrides", [row[0] for row in HOSTILE_STANDALONE], ids=[row[1] for row in HOSTILE_STANDALONE]
)
def test_render_standalone_refuses_config_injection(overrides) -> None:
    arguments = {"state_dir": "/var/lib/gw", "user": None, **overrides}
    with pytest.raises(ValueError):
        render_standalone(render_site(SITE), **arguments)


# -- the management command and the real nginx ----------------------------------------


def nginx_test(nginx: str, state: Path, text: str) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` on ``text`` written as ``state``/nginx.conf."""
    config = state / "nginx.conf"
    config.write_text(text)
    return subprocess.run(
        [nginx, "-t", "-p", str(state), "-e", str(state / "error.log"), "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None
    )
    if found is None:
        pytest.fail("nginx is not installed: run `make nginx` (scripts/ensure-debian-packages)")
    return found


def render_command(*args: str) -> str:
    out = io.StringIO()
    call_command("protected_media_nginx", *args, stdout=out)
    return out.getvalue()


def test_rendered_standalone_config_passes_nginx_test(settings, tmp_path, private_root) -> None:
    nginx = nginx_binary()
    state = tmp_path / "nginx"
    # The run command creates these before it starts nginx.
    (state / "tmp").mkdir(parents=True)
    port = free_port()
    text = render_command(
        "--standalone", str(state),
        "--listen", f"127.0.0.1:{port}",
        "--upstream", f"unix:{tmp_path}/u.sock",
    )  # fmt: skip
    server = parse(text).one("http").one("server")
    assert server.one("listen").args == [f"127.0.0.1:{port}"]
    internal = server.location(settings.SENDFILE_URL)
    assert internal.one("alias").args == [f"{private_root.resolve()}/"]
    static = server.location(settings.STATIC_URL)
    assert static.one("alias").args == [f"{Path(settings.STATIC_ROOT).resolve()}/"]

    result = nginx_test(nginx, state, text)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@pytest.mark.parametrize(
    "site",
    [
        LIMITED,
        dataclasses.replace(LIMITED, upload_limits=Limits()),
        dataclasses.replace(LIMITED, media_limits=Limits()),
        dataclasses.replace(
            LIMITED, media_limits=Limits(connections=1), upload_limits=Limits(rate="1r/m")
        ),
    ],
    ids=["all", "media only", "upload only", "one of each kind"],
)
def test_nginx_accepts_the_limits(tmp_path, site) -> None:
    # The zones follow the server that uses them: nginx resolves them once the
    # whole http block is read.
    (tmp_path / "tmp").mkdir()
    text = render_standalone(render_site(site), state_dir=str(tmp_path), user=None)
    result = nginx_test(nginx_binary(), tmp_path, text)
    assert result.returncode == 0, result.stderr
    assert "[warn]" not in result.stderr


def test_command_renders_the_limit_settings(settings) -> None:
    settings.PROTECTED_MEDIA_MEDIA_RATE = "5r/m"
    settings.PROTECTED_MEDIA_MEDIA_BURST = 7
    settings.PROTECTED_MEDIA_MEDIA_CONNECTIONS = None
    settings.PROTECTED_MEDIA_UPLOAD_RATE = None
    settings.PROTECTED_MEDIA_UPLOAD_CONNECTIONS = 3
    conf = parse(render_command())
    assert [d.args for d in conf.all("limit_req_zone")] == [
        ["$binary_remote_addr", "zone=protected_media_media:10m", "rate=5r/m"]
    ]
    assert [d.args[1] for d in conf.all("limit_conn_zone")] == [
        "zone=protected_media_upload_conn:10m"
    ]
    server = conf.one("server")
    assert server.location("/media/").one("limit_req").args[1] == "burst=7"
    assert server.location("/media/").all("limit_conn") == []
    assert server.location("/").all("limit_req") == []
    assert server.location("/").one("limit_conn").args == ["protected_media_upload_conn", "3"]


def test_command_renders_the_default_limits() -> None:
    conf = parse(render_command())
    assert {d.args[2] for d in conf.all("limit_req_zone")} == {"rate=30r/s", "rate=2r/s"}
    server = conf.one("server")
    assert server.location("/media/").one("limit_req").args[1] == "burst=200"
    assert server.location("/media/").one("limit_conn").args[1] == "64"
    assert server.location("/").one("limit_req").args[1] == "burst=10"
    assert server.location("/").one("limit_conn").args[1] == "4"


def test_nginx_test_fails_on_a_broken_config(tmp_path) -> None:
    # The control for the test above: `nginx -t` does reject what it should.
    nginx = nginx_binary()
    (tmp_path / "tmp").mkdir()
    text = render_standalone(
        render_site(SITE).replace("internal;", "internal on;"), state_dir=str(tmp_path), user=None
    )
    result = nginx_test(nginx, tmp_path, text)
    assert result.returncode != 0
    assert "internal" in result.stderr


def test_command_writes_the_site_to_a_file(tmp_path) -> None:
    output = tmp_path / "site.conf"
    assert render_command("--output", str(output)) == ""
    server = parse(output.read_text()).one("server")
    assert server.location("/_protected/").all("internal")


@pytest.mark.parametrize("setting", ["SENDFILE_URL", "SENDFILE_ROOT"])
def test_command_refuses_without_the_sendfile_settings(settings, setting) -> None:
    setattr(settings, setting, None)
    with pytest.raises(CommandError, match=setting):
        render_command()


def test_command_refuses_a_root_nginx_cannot_read(settings, tmp_path) -> None:
    settings.SENDFILE_ROOT = str(tmp_path / "my files")
    with pytest.raises(CommandError, match="private_root"):
        render_command()


def test_command_refuses_a_hostile_option() -> None:
    with pytest.raises(CommandError, match="server_name"):
        render_command("--server-name", "x; include /etc/shadow")


def test_rendering_needs_no_django_settings() -> None:
    # The renderer has a template engine of its own, as startproject does: a
    # tool may render without a settings module.
    code = (
        "from protected_media.nginx.render import Limits, SiteConfig, render_site, "
        f"render_standalone\nprint(render_standalone(render_site({LIMITED!r}), "
        "state_dir='/var/lib/gw', user='gateway'), end='')"
    )
    env = {name: value for name, value in os.environ.items() if name != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == render_standalone(
        render_site(LIMITED), state_dir="/var/lib/gw", user="gateway"
    )
    # Numbers as nginx reads them, whatever the locale settings would say.
    assert "limit_req zone=protected_media_media burst=200 nodelay;" in done.stdout


# -- the options a file records, and the doctor that reads them ------------------------


def test_the_site_records_the_options_it_was_rendered_with() -> None:
    text = render_site(SITE)
    assert text.splitlines()[1] == (
        '# Rendered with: {"listen": "127.0.0.1:8080", '
        '"upstream": "unix:/run/gateway/uvicorn.sock", "server_name": "files.example.org"}'
    )
    assert recorded_options(text) == RenderOptions(
        listen="127.0.0.1:8080",
        upstream="unix:/run/gateway/uvicorn.sock",
        server_name="files.example.org",
    )


@pytest.mark.parametrize(
    ("user", "recorded"),
    [(None, '{"standalone": "/var/lib/gw", "user": null}'),
     ("gateway", '{"standalone": "/var/lib/gw", "user": "gateway"}')],
)  # fmt: skip
def test_a_standalone_file_records_its_state_folder_and_user_too(user, recorded) -> None:
    text = render_standalone(render_site(SITE), state_dir="/var/lib/gw", user=user)
    assert text.splitlines()[1] == f"# Rendered with: {recorded}"
    assert recorded_options(text) == RenderOptions(
        listen="127.0.0.1:8080",
        upstream="unix:/run/gateway/uvicorn.sock",
        server_name="files.example.org",
        standalone="/var/lib/gw",
        user=user,
    )


writable = st.text(min_size=1).filter(is_writable)


@given(listen=writable, upstream=writable, server_name=writable)
def test_any_option_the_renderer_takes_comes_back_as_written(listen, upstream, server_name) -> None:
    site = dataclasses.replace(SITE, listen=listen, upstream=upstream, server_name=server_name)
    text = render_site(site)
    # nginx reads the value as one word, and the header gives it back as written.
    assert parse(text).one("server").one("server_name").args == [server_name]
    assert recorded_options(text) == RenderOptions(listen, upstream, server_name)


OPTIONS_LINE = render_site(SITE).splitlines()[1]
# Each row: the file's options line replaced by this, and why it records nothing.
NO_OPTIONS = [
    ("", "the line is gone"),
    ("# Rendered with: listen 127.0.0.1:8080", "not JSON"),
    ('# Rendered with: ["127.0.0.1:8080"]', "JSON, but not an object"),
    ('# Rendered with: {"upstream": "unix:/u.sock", "server_name": "_"}', "no listen"),
    (
        '# Rendered with: {"listen": 8080, "upstream": "unix:/u.sock", "server_name": "_"}',
        "a number",
    ),
]


@pytest.mark.parametrize("line", [row[0] for row in NO_OPTIONS], ids=[row[1] for row in NO_OPTIONS])
def test_a_file_without_its_options_records_none(line) -> None:
    assert recorded_options(render_site(SITE).replace(OPTIONS_LINE, line)) is None


def test_doctor_renders_again_with_the_recorded_options(tmp_path) -> None:
    path = tmp_path / "site.conf"
    render_command(
        "--listen", "127.0.0.1:9999", "--server-name", "files.example.org", "-o", str(path)
    )
    assert check_nginx_config(path).status == "PASS"
    text = path.read_text()

    # A listen line edited by hand is not what the recorded options give.
    path.write_text(text.replace("listen 127.0.0.1:9999;", "listen 127.0.0.1:8888;"))
    result = check_nginx_config(path)
    assert result.status == "FAIL"
    assert result.reason.endswith(
        "is 'listen 127.0.0.1:8888;', the settings give 'listen 127.0.0.1:9999;'"
    )

    # Without its options line, nothing says what the file was rendered with.
    path.write_text(text.replace("# Rendered with: ", "# "))
    result = check_nginx_config(path)
    assert (result.status, result.reason) == (
        "FAIL",
        f"{path} has no '# Rendered with:' line with its listen, upstream and server name: "
        "nothing says what it was rendered with",
    )
    assert result.fix.startswith("manage.py protected_media_nginx --listen <address>")


def test_doctor_checks_each_file_of_a_split_site(tmp_path) -> None:
    http, locations = tmp_path / "gateway_http.conf", tmp_path / "gateway_locations.conf"
    render_command(
        "--upstream", "127.0.0.1:7000", "--http", str(http), "--locations", str(locations)
    )
    assert check_nginx_config(http).status == "PASS"
    assert check_nginx_config(locations).status == "PASS"

    # A location edited by hand is named, with the command that writes the pair again.
    text = locations.read_text()
    locations.write_text(text.replace("internal;", "# internal;", 1))
    result = check_nginx_config(locations)
    assert result.status == "FAIL"
    assert "differs from a fresh render" in result.reason
    assert result.fix.startswith(
        "manage.py protected_media_nginx --upstream '<address>' --http '<http file>' "
        f"--locations {locations}"
    )
    http.write_text(http.read_text() + "map $host $added_by_hand { default 1; }\n")
    assert check_nginx_config(http).status == "FAIL"


# -- the object store (PROTECTED_MEDIA_STORAGE = "s3") --------------------------------

STORE_SITE = dataclasses.replace(SITE, store=StoreConfig("http://127.0.0.1:8333"))
STORE_LOCATION = "^/_protected_store(?<protected_media_store_path>/.*)$"
STORE_PASS = "protected_media_store$protected_media_store_path$is_args$args"
# Written out here, not imported: what the store must never tell the client.
STORE_HEADERS_HIDDEN = {
    # the gateway's decisions, which arrive with the redirect
    "content-type", "content-disposition", "cache-control", "expires", "set-cookie", "vary",
    # added by nginx in the location
    *(name.lower() for name in SECURITY_HEADERS),
    # CORS
    "access-control-allow-origin", "access-control-allow-credentials",
    "access-control-expose-headers",
    # S3's own
    "x-amz-request-id", "x-amz-id-2", "x-amz-version-id", "x-amz-storage-class",
    "x-amz-server-side-encryption", "x-amz-checksum-sha256", "x-amz-checksum-crc32",
    "x-amz-expiration", "x-amz-tagging-count", "x-amz-mp-parts-count",
    # SeaweedFS's
    "seaweed-x-amz-etag", "seaweed-x-amz-owner",
}  # fmt: skip
# What the client may get from the store, as a local file's own headers.
STORE_HEADERS_PASSED = {
    "content-length", "content-range", "etag", "last-modified", "accept-ranges",
}  # fmt: skip
# Every line of the location but the hidden headers, for the store above.
STORE_LOCATION_LINES = [
    ("internal", []),
    ("proxy_pass", [f"http://{STORE_PASS}"]),
    ("proxy_pass_request_headers", ["off"]),
    ("proxy_pass_request_body", ["off"]),
    ("proxy_set_header", ["Host", "127.0.0.1:8333"]),
    ("proxy_set_header", ["Connection", ""]),
    ("proxy_set_header", ["Content-Length", ""]),
    ("proxy_set_header", ["Range", "$protected_media_store_range"]),
    ("proxy_set_header", ["If-Range", "$http_if_range"]),
    ("proxy_set_header", ["If-None-Match", "$http_if_none_match"]),
    ("proxy_set_header", ["If-Modified-Since", "$http_if_modified_since"]),
    ("proxy_headers_hash_bucket_size", ["128"]),
    ("proxy_ignore_headers", [
        "X-Accel-Redirect", "X-Accel-Expires", "X-Accel-Limit-Rate", "X-Accel-Buffering",
        "X-Accel-Charset", "Set-Cookie", "Cache-Control", "Expires", "Vary"]),
    ("proxy_max_temp_file_size", ["0"]),
    ("proxy_buffer_size", ["64k"]),
    ("proxy_buffers", ["8", "64k"]),
    ("proxy_busy_buffers_size", ["128k"]),
    ("proxy_connect_timeout", ["5s"]),
    ("proxy_send_timeout", ["10s"]),
    ("proxy_read_timeout", ["30s"]),
    ("error_log", ["/var/log/nginx/error.log", "crit"]),
    *(("add_header", [name, value, "always"]) for name, value in SECURITY_HEADERS.items()),
    ("proxy_intercept_errors", ["on"]),
    ("error_page", ["403", "404", "=404", "@protected_media_not_found"]),
    ("error_page", ["416", "@protected_media_range_not_satisfiable"]),
    ("error_page", [
        "301", "302", "303", "307", "308",
        "400", "401", "405", "409", "411", "412", "413", "414", "429",
        "500", "501", "502", "503",
        "=502", "@protected_media_bad_gateway"]),
    ("error_page", ["504", "@protected_media_gateway_timeout"]),
]  # fmt: skip


def store_location(text: str) -> Directive:
    return server_of(text).location(STORE_LOCATION)


def test_the_local_disk_renders_no_store() -> None:
    for site in (SITE, LIMITED, dataclasses.replace(SITE, metrics_url="/metrics")):
        text = render_site(site)
        assert "protected_media_store" not in text
        assert [d.args[-1] for d in server_of(text).all("location") if d.all("internal")] == [
            "/_protected/"
        ]


def test_the_store_location_line_by_line() -> None:
    location = store_location(render_site(STORE_SITE))
    assert location.args == ["~", STORE_LOCATION]
    lines = [(d.name, d.args) for d in location.block or [] if d.name != "proxy_hide_header"]
    assert lines == STORE_LOCATION_LINES


def test_the_store_upstream_keeps_connections_open() -> None:
    conf = parse(render_site(STORE_SITE))
    upstreams = {d.args[0]: d for d in conf.all("upstream")}
    assert set(upstreams) == {"protected_media_app", "protected_media_store"}
    store = upstreams["protected_media_store"]
    assert [(d.name, d.args) for d in store.block or []] == [
        ("server", ["127.0.0.1:8333"]),
        ("keepalive", ["32"]),
    ]
    # keepalive needs HTTP/1.1 and no "Connection: close": the server's
    # proxy_http_version reaches the location, and the location clears Connection.
    assert conf.one("server").one("proxy_http_version").args == ["1.1"]


def test_the_store_never_tells_the_client_its_own_headers() -> None:
    location = store_location(render_site(STORE_SITE))
    hidden = [d.args for d in location.all("proxy_hide_header")]
    assert all(len(args) == 1 for args in hidden)
    names = {args[0].lower() for args in hidden}
    assert len(names) == len(hidden)  # one line each
    assert STORE_HEADERS_HIDDEN <= names
    assert not names & STORE_HEADERS_PASSED
    assert not {name for name in names if name.startswith("x-accel")}  # nginx's own rule


def test_the_store_gets_one_range_at_most() -> None:
    # A local file is served with `max_ranges 1`; a store would answer
    # "bytes=0-,0-,0-" with the whole file once per range.
    conf = parse(render_site(STORE_SITE))
    [ranges] = [d for d in conf.all("map") if d.args[0] == "$http_range"]
    assert ranges.args == ["$http_range", "$protected_media_store_range"]
    assert [(d.name, d.args) for d in ranges.block or []] == [
        ("~,", [""]),
        ("default", ["$http_range"]),
    ]


# Each row: an answer a store gives, and the status the client gets instead
# (None: the store's answer passes, body and all).
STORE_STATUSES = [
    (200, None), (206, None), (304, None),
    (301, 502), (302, 502), (307, 502),  # another region or endpoint
    (400, 502), (405, 502), (411, 502), (412, 502), (501, 502),  # a request it cannot take
    (403, 404), (404, 404),  # a refused signature, an expired URL, a missing object
    (416, 416),  # the client's range is past the end
    (500, 502), (502, 502), (503, 502),  # its failures and its "slow down"
    (504, 504),  # nginx's timeout, or the store's
]  # fmt: skip


def test_every_store_error_becomes_the_sites_own_answer() -> None:
    server = server_of(render_site(STORE_SITE))
    pages = {}
    for page in store_location(render_site(STORE_SITE)).all("error_page"):
        *codes, target = page.args
        answer = codes.pop()[1:] if codes[-1].startswith("=") else None
        for code in codes:
            assert code not in pages, code
            pages[int(code)] = (int(answer) if answer else int(code), target)
    for status, answer in STORE_STATUSES:
        if answer is None:
            assert status not in pages
        else:
            assert pages[status][0] == answer, status
            # to a page of the site's own, the same text as its other refusals
            assert server.location(pages[status][1]).all("return")
    assert {target for _, target in pages.values()} == {
        "@protected_media_not_found",
        "@protected_media_range_not_satisfiable",
        "@protected_media_bad_gateway",
        "@protected_media_gateway_timeout",
    }


def test_a_local_file_gets_the_same_416_as_a_stored_object() -> None:
    # Not nginx's HTML page (tests/stack/test_stack.py sends the range).
    location = server_of(render_site(SITE)).location("/_protected/")
    assert [d.args for d in location.all("error_page")] == [
        ["404", "@protected_media_not_found"],
        ["416", "@protected_media_range_not_satisfiable"],
    ]


@pytest.mark.parametrize("site", [SITE, STORE_SITE], ids=["local", "store"])
def test_a_range_past_the_end_is_a_short_416(site) -> None:
    location = server_of(render_site(site)).location("@protected_media_range_not_satisfiable")
    # Not the type of the key's extension (an empty `types`), one charset.
    assert location.one("types").block == []
    assert location.one("default_type").args == ["text/plain"]
    assert location.one("charset").args == ["utf-8"]
    added = {d.args[0]: d.args[1:] for d in location.all("add_header")}
    assert added == {
        # no Cache-Control: the gateway's is kept from the redirect
        "X-Content-Type-Options": ["nosniff", "always"],
        # the store's "bytes */<size>", when it sends one
        "Content-Range": ["$upstream_http_content_range", "always"],
    }
    assert location.one("return").args == ["416", "Range Not Satisfiable\\n"]


def test_only_the_store_location_proxies_to_the_store() -> None:
    server = server_of(render_site(STORE_SITE))
    passes = {
        location.args[-1]: location.one("proxy_pass").args[0]
        for location in server.all("location")
        if location.all("proxy_pass")
    }
    assert passes == {
        "/media/": "http://protected_media_app",
        "/": "http://protected_media_app",
        "@protected_media_too_large": "http://protected_media_app",
        STORE_LOCATION: f"http://{STORE_PASS}",
    }
    # The gateway's location still follows X-Accel-Redirect; the store's does not.
    assert server.location("/media/").all("proxy_ignore_headers") == []
    ignored = store_location(render_site(STORE_SITE)).one("proxy_ignore_headers").args
    assert ACCEL_HEADERS <= set(ignored)


# Each row: the endpoint URL, the upstream's server, the Host header, the
# name TLS checks (None: plain http), and what the row shows.
ENDPOINTS = [
    ("http://127.0.0.1:8333", "127.0.0.1:8333", "127.0.0.1:8333", None, "SeaweedFS here"),
    ("https://s3.eu-west-1.amazonaws.com", "s3.eu-west-1.amazonaws.com:443",
     "s3.eu-west-1.amazonaws.com", "s3.eu-west-1.amazonaws.com", "a default port is not signed"),
    ("https://minio.internal:9000", "minio.internal:9000", "minio.internal:9000",
     "minio.internal", "another port is"),
    ("http://store.example:80/", "store.example:80", "store.example", None,
     "port 80 written out, a slash after it"),
    ("http://seaweed_s3:8333", "seaweed_s3:8333", "seaweed_s3:8333", None, "a compose service"),
    ("http://[::1]:9000", "[::1]:9000", "[::1]:9000", None, "IPv6"),
    ("https://[2001:db8::7]", "[2001:db8::7]:443", "[2001:db8::7]", "2001:db8::7", "IPv6, https"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("endpoint_url", "server", "host", "tls_name"),
    [row[:4] for row in ENDPOINTS],
    ids=[row[4] for row in ENDPOINTS],
)
def test_the_store_is_reached_as_the_endpoint_says(endpoint_url, server, host, tls_name) -> None:
    from botocore.auth import _host_from_url  # an optional dependency (the s3 extra)

    store = StoreConfig(endpoint_url, ca_file="/etc/ssl/certs/ca-certificates.crt")
    conf = parse(render_site(dataclasses.replace(SITE, store=store)))
    [upstream] = [d for d in conf.all("upstream") if d.args == ["protected_media_store"]]
    assert upstream.one("server").args == [server]
    location = conf.one("server").location(STORE_LOCATION)
    headers = {d.args[0]: d.args[1] for d in location.all("proxy_set_header")}
    assert headers["Host"] == host
    # The Host botocore signs, or the store refuses every request.
    assert host == _host_from_url(endpoint_url)
    scheme = "https" if tls_name else "http"
    assert location.one("proxy_pass").args == [f"{scheme}://{STORE_PASS}"]
    tls = [(d.name, d.args) for d in location.block or [] if d.name.startswith("proxy_ssl")]
    if tls_name is None:
        assert tls == []
    else:
        assert tls == [
            ("proxy_ssl_server_name", ["on"]),
            ("proxy_ssl_name", [tls_name]),
            ("proxy_ssl_verify", ["on"]),
            ("proxy_ssl_verify_depth", ["2"]),
            ("proxy_ssl_trusted_certificate", ["/etc/ssl/certs/ca-certificates.crt"]),
        ]


store_label = st.from_regex(r"[a-z0-9_](?:[a-z0-9_-]{0,8}[a-z0-9_])?", fullmatch=True)


@given(
    scheme=st.sampled_from(["http", "https"]),
    labels=st.lists(store_label, min_size=1, max_size=4),
    port=st.one_of(st.none(), st.integers(1, 65535)),
)
def test_the_host_header_is_always_the_one_botocore_signs(scheme, labels, port) -> None:
    from botocore.auth import _host_from_url  # an optional dependency (the s3 extra)

    host = ".".join(labels)
    if all(label.isdigit() for label in labels):
        host = "n" + host  # digits and dots only must be an IPv4 address
    url = f"{scheme}://{host}" + (f":{port}" if port else "")
    location = store_location(render_site(dataclasses.replace(SITE, store=StoreConfig(url))))
    headers = {d.args[0]: d.args[1] for d in location.all("proxy_set_header")}
    assert headers["Host"] == _host_from_url(url)


@pytest.mark.parametrize(
    "internal_url", ["/_protected_store/", "/internal/store.files/", "/a-b~c_d/"]
)
def test_the_store_location_matches_its_prefix_only(internal_url) -> None:
    store = StoreConfig("http://127.0.0.1:8333", internal_url=internal_url)
    server = server_of(render_site(dataclasses.replace(SITE, store=store)))
    [location] = [d for d in server.all("location") if d.args[0] == "~"]
    # nginx's PCRE, read by Python's re: a named group is spelled (?P<...>).
    pattern = re.compile(location.args[1].replace("(?<", "(?P<"))
    match = pattern.match(f"{internal_url}bucket/a%20b.txt")
    assert match is not None
    assert match["protected_media_store_path"] == "/bucket/a%20b.txt"
    # The prefix whole, and a dot in it is a dot.
    assert pattern.match(internal_url.rstrip("/") + "x/bucket/k") is None
    if "." in internal_url:
        assert pattern.match(internal_url.replace(".", "X") + "bucket/k") is None


# Each row: the StoreConfig field, the hostile or broken value, and what it tries.
HOSTILE_STORE = [
    ("endpoint_url", "http://127.0.0.1:8333; include /etc/shadow", "';' ends the directive"),
    ("endpoint_url", "http://127.0.0.1:8333 backup", "a space adds a parameter"),
    ("endpoint_url", "http://s3.example}", "'}' closes the upstream"),
    ("endpoint_url", "http://$host:8333", "'$' makes Host the client's"),
    ("endpoint_url", "http://s3.example\n", "a newline starts a directive"),
    ("endpoint_url", "http://s3.example#", "'#' comments out the rest"),
    ("endpoint_url", "http://user:secret@s3.example", "credentials in the URL"),
    ("endpoint_url", "http://s3.example/bucket", "a path: nginx passes the signed path whole"),
    ("endpoint_url", "http://s3.example?x=1", "a query"),
    ("endpoint_url", "ftp://s3.example", "not http or https"),
    ("endpoint_url", "s3.example:8333", "no scheme"),
    ("endpoint_url", "HTTP://s3.example", "a scheme botocore lowercases"),
    ("endpoint_url", "http://S3.Example", "a host botocore signs lowercase"),
    ("endpoint_url", "http://s3.example:0", "port 0"),
    ("endpoint_url", "http://s3.example:70000", "a port past 65535"),
    ("endpoint_url", "http://s3.example:", "an empty port"),
    ("endpoint_url", "http://s3..example", "an empty label"),
    ("endpoint_url", "http://300.1.1.1", "not an IPv4 address"),
    ("endpoint_url", "http://[fe80::1%25eth0]:9000", "an IPv6 zone names this machine"),
    ("endpoint_url", "http://[::1", "an unclosed bracket"),
    ("endpoint_url", "", "empty"),
    ("internal_url", "/_protected_store", "no trailing slash: '/_protected_store../'"),
    ("internal_url", "_protected_store/", "no leading slash"),
    ("internal_url", "/", "every path"),
    ("internal_url", "/store(.*)/", "regex syntax in the location"),
    ("internal_url", "/store$/", "'$' in the location"),
    ("internal_url", "/media/store/", "inside the media URL: the gateway would get it"),
    ("internal_url", "/_protected/", "the local files' location"),
    ("internal_url", "/_protected/store/", "inside the local files' location"),
    ("internal_url", "/static/x/", "inside the static URL"),
    ("ca_file", "/etc/ssl/my certs.pem", "a space: two arguments"),
    ("ca_file", "/etc/ssl/certs.pem;", "';' ends the directive"),
]


@pytest.mark.parametrize(
    ("name", "value"), [row[:2] for row in HOSTILE_STORE], ids=[row[2] for row in HOSTILE_STORE]
)
def test_render_site_refuses_a_store_it_cannot_write(name, value) -> None:
    store = dataclasses.replace(StoreConfig("https://s3.example.com"), **{name: value})
    with pytest.raises(ValueError, match=f"^store {name} "):
        render_site(dataclasses.replace(SITE, store=store))


@pytest.mark.parametrize("endpoint_url", ["http://127.0.0.1:8333", "https://127.0.0.1:9443"])
def test_nginx_accepts_the_store(tmp_path, endpoint_url) -> None:
    # IP addresses: nginx resolves a name in an upstream when it reads the config.
    (tmp_path / "tmp").mkdir()
    store = StoreConfig(endpoint_url, ca_file=certifi.where())
    site = dataclasses.replace(LIMITED, store=store, metrics_url="/metrics")
    text = render_standalone(render_site(site), state_dir=str(tmp_path), user=None)
    result = nginx_test(nginx_binary(), tmp_path, text)
    assert result.returncode == 0, result.stderr
    assert "[warn]" not in result.stderr


GUIDE = Path(__file__).resolve().parent.parent / "docs" / "deployment.md"
STORE_GUIDE_HEADING = "## Private files in object storage: the store location"


def config_lines(text: str) -> set[str]:
    lines = (line.strip() for line in text.splitlines())
    return {line for line in lines if line and not line.startswith("#") and line != "}"}


def test_the_guide_explains_every_line_the_store_adds() -> None:
    # As tests/test_deploy.py holds the guide's table to deploy/nginx/gateway.conf.
    site = dataclasses.replace(SITE, store=StoreConfig("https://s3.eu-west-1.amazonaws.com"))
    added = config_lines(render_site(site)) - config_lines(render_site(SITE))
    hidden = {line for line in added if line.startswith("proxy_hide_header ")}
    section = GUIDE.read_text().split(STORE_GUIDE_HEADING, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    documented = {re.findall(r"`([^`]+)`", row)[0] for row in rows}
    assert added - hidden == documented
    # The hidden headers, each named in the section (one line each in the file).
    named = set(re.findall(r"`([^`\s]+)`", section))
    assert {line.split()[1].removesuffix(";") for line in hidden} <= named


def use_store_settings(settings, endpoint_url: str = "http://127.0.0.1:8333") -> None:
    settings.PROTECTED_MEDIA_STORAGE = "s3"
    settings.PROTECTED_MEDIA_S3_ENDPOINT_URL = endpoint_url


def test_command_renders_the_store_from_the_settings(settings) -> None:
    use_store_settings(settings)
    settings.PROTECTED_MEDIA_S3_INTERNAL_URL = "/_store/"
    conf = parse(render_command())
    [store] = [d for d in conf.all("upstream") if d.args == ["protected_media_store"]]
    assert store.one("server").args == ["127.0.0.1:8333"]
    location = conf.one("server").location("^/_store(?<protected_media_store_path>/.*)$")
    headers = {d.args[0]: d.args[1] for d in location.all("proxy_set_header")}
    assert headers["Host"] == "127.0.0.1:8333"
    # The local files' location stays: SENDFILE_URL is still served.
    assert conf.one("server").location("/_protected/").all("internal")


def test_command_renders_no_store_for_the_local_disk(settings) -> None:
    settings.PROTECTED_MEDIA_S3_ENDPOINT_URL = "http://127.0.0.1:8333"  # read only with "s3"
    assert "protected_media_store" not in render_command()


def test_command_refuses_a_store_without_an_endpoint(settings) -> None:
    settings.PROTECTED_MEDIA_STORAGE = "s3"
    with pytest.raises(CommandError, match="PROTECTED_MEDIA_S3_ENDPOINT_URL"):
        render_command()


def test_command_refuses_a_store_it_cannot_write(settings) -> None:
    use_store_settings(settings, "http://127.0.0.1:8333; include /etc/shadow")
    with pytest.raises(CommandError, match="store endpoint_url"):
        render_command()


def test_doctor_compares_the_store_too(settings, tmp_path) -> None:
    # The store comes from the settings, not from the recorded options: a file
    # rendered before the store was configured differs from a fresh render.
    path = tmp_path / "site.conf"
    render_command("-o", str(path))
    use_store_settings(settings)
    result = check_nginx_config(path)
    assert result.status == "FAIL"
    assert "differs from a fresh render" in result.reason
    render_command("-o", str(path))
    assert check_nginx_config(path).status == "PASS"


def test_gixy_finds_nothing_in_the_store_location(tmp_path) -> None:
    store = StoreConfig("https://127.0.0.1:9443", ca_file=certifi.where())
    site = dataclasses.replace(LIMITED, store=store, metrics_url="/metrics")
    path = tmp_path / "nginx.conf"
    path.write_text(render_standalone(render_site(site), state_dir=str(tmp_path), user=None))
    # missing_resolver: nginx resolves the store's name when it starts or
    # reloads, which the keepalive upstream needs (docs/deployment.md, "DNS").
    assert gixy(path, *GIXY_SKIPS, "missing_resolver") == []
    assert {issue["plugin"] for issue in gixy(path, *GIXY_SKIPS)} == {"missing_resolver"}


# -- a server block of the site's own: the http file and the locations file ----------

# Everything at once: limits, metrics and the store.
FULL_SITE = dataclasses.replace(
    LIMITED, metrics_url="/metrics", store=StoreConfig("https://127.0.0.1:9443")
)
SPLIT_SITES = [SITE, LIMITED, FULL_SITE]
SPLIT_IDS = ["plain", "limited", "limits, metrics and store"]
# What the site's own server block decides: written in the whole server only.
SERVER_ONLY = {"listen", "server_name", "server_tokens", "client_header_timeout"}
TO_APP = {"proxy_http_version", "proxy_set_header", "proxy_redirect"}
BODY = {"client_max_body_size", "client_body_timeout"}
LIMIT_STATUSES = {"limit_req_status", "limit_conn_status"}
# What a location of the whole server inherits from it but never uses, so it
# need not carry it into a server of the site's own. Written out here: the
# test states why each location can do without each line.
UNUSED = {
    # From disk: no upstream, no body kept, never limited.
    "static": TO_APP | BODY | LIMIT_STATUSES | {"error_page"},
    # Reached by a redirect from the media location, whose body and limits
    # were already checked; sends a file, proxies nothing.
    "internal": TO_APP | BODY | LIMIT_STATUSES,
    # Sends no body to the store, hides its Location; limits were the media
    # location's. It does need HTTP/1.1 for the store's keepalive upstream.
    "store": {"proxy_redirect"} | BODY | LIMIT_STATUSES,
    # GET for a scraper on this machine, never limited.
    "metrics": BODY | LIMIT_STATUSES,
    # They only return their short text.
    "named": TO_APP | BODY | LIMIT_STATUSES | {"error_page"},
}


def location_kind(location: Directive, site: SiteConfig) -> str | None:
    if location.args[0].startswith("@"):
        return "named"
    if location.args[0] == "~":
        return "store"
    if location.args[0] == "=":
        return "metrics"
    return {site.static_url: "static", site.internal_url: "internal"}.get(location.args[-1])


def effective(location: Directive, inherited: list[Directive]) -> list[Directive]:
    """A location's directives as nginx applies them: its own, and those of
    its server (or parent location) whose name it does not set itself."""
    own = [d for d in location.block or [] if d.name != "location"]
    names = {d.name for d in own}
    return [*own, *(d for d in inherited if d.name not in names)]


def lines_of(directives: list[Directive], leave_out: set[str]) -> list[tuple[str, ...]]:
    return sorted((d.name, *d.args) for d in directives if d.name not in leave_out)


def flat(directives: list[Directive]) -> list[tuple[str, ...]]:
    found = []
    for directive in directives:
        found.append((directive.name, *directive.args))
        found += flat(directive.block or [])
    return found


def assert_same_locations(
    whole: list[Directive],
    whole_inherited: list[Directive],
    split: list[Directive],
    split_inherited: list[Directive],
    site: SiteConfig,
) -> None:
    whole_locations = [d for d in whole if d.name == "location"]
    split_locations = [d for d in split if d.name == "location"]
    assert [d.args for d in split_locations] == [d.args for d in whole_locations]
    for in_whole, in_split in zip(whole_locations, split_locations, strict=True):
        kind = location_kind(in_whole, site)
        leave_out = SERVER_ONLY | UNUSED.get(kind or "", set())
        whole_applied = effective(in_whole, whole_inherited)
        split_applied = effective(in_split, split_inherited)
        assert lines_of(split_applied, leave_out) == lines_of(whole_applied, leave_out), (
            in_whole.args
        )
        # Nested locations (share links) inherit from theirs, in both.
        assert_same_locations(
            in_whole.block or [], whole_applied, in_split.block or [], split_applied, site
        )


@pytest.mark.parametrize("site", SPLIT_SITES, ids=SPLIT_IDS)
def test_the_http_file_is_the_whole_sites_http_lines(site) -> None:
    parts = render_site_parts(site)
    whole = parse(render_site(site))
    http = parse(parts.http)
    assert http.block == [d for d in whole.block or [] if d.name != "server"]
    assert http.all("server") == [] and http.all("location") == []


@pytest.mark.parametrize("site", SPLIT_SITES, ids=SPLIT_IDS)
def test_the_locations_file_holds_only_the_servers_locations(site) -> None:
    locations = parse(render_site_parts(site).locations)
    server = server_of(render_site(site))
    # Nothing at server level: it could clash with the including server's own.
    assert {d.name for d in locations.block or []} == {"location"}
    assert [d.args for d in locations.block or []] == [d.args for d in server.all("location")]


@pytest.mark.parametrize("site", SPLIT_SITES, ids=SPLIT_IDS)
def test_the_two_files_hold_every_line_of_the_whole_site_and_no_other(site) -> None:
    parts = render_site_parts(site)
    split = {*flat(parse(parts.http).block or []), *flat(parse(parts.locations).block or [])}
    whole = flat(parse(render_site(site)).block or [])
    # The server block's own line ("server {") is the site's too.
    assert split == {line for line in whole if line[0] not in SERVER_ONLY and line != ("server",)}


@pytest.mark.parametrize("around", ["an empty server", "a server with lines of its own"])
@pytest.mark.parametrize("site", SPLIT_SITES, ids=SPLIT_IDS)
def test_each_location_takes_what_the_whole_server_gave_it(site, around) -> None:
    server = server_of(render_site(site))
    at_server_level = [d for d in server.block or [] if d.name != "location"]
    # The site's server sets each of the same directives, to its own values.
    site_server = (
        []
        if around == "an empty server"
        else [Directive(d.name, [*d.args, "site-value"]) for d in at_server_level]
    )
    locations = parse(render_site_parts(site).locations)
    assert_same_locations(
        server.block or [], at_server_level, locations.block or [], site_server, site
    )


def test_the_parts_record_what_they_were_rendered_with() -> None:
    parts = render_site_parts(SITE)
    assert parts.http.splitlines()[1] == (
        '# Rendered with: {"part": "http", "upstream": "unix:/run/gateway/uvicorn.sock"}'
    )
    assert parts.locations.splitlines()[1] == '# Rendered with: {"part": "locations"}'


SITE_SERVER = """{user_line}
daemon off;
pid {state}/nginx.pid;
events {{}}
http {{
    include /etc/nginx/mime.types;
{temp_paths}
    include {state}/http.conf;
    server {{
        listen 127.0.0.1:{port};
        server_name files.example.org;
        # The site's own server-level lines: none may clash with the locations'.
        client_max_body_size 1m;
        client_header_timeout 30s;
        access_log {state}/site.log;
        add_header X-Site "own" always;
        error_page 404 /404.html;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        limit_req_status 503;
        location = /hello {{ return 200 "hi"; }}
        include {state}/locations.conf;
    }}
}}
"""


def site_server_config(state: Path, port: int, user: str | None = None) -> str:
    """An nginx.conf of the site's own, with the two files included from
    ``state``; ``user`` is its ``user`` line."""
    temp_paths = "\n".join(
        f"    {kind}_temp_path {state}/tmp/{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user_line = f"user {user};" if user else ""
    return SITE_SERVER.format(state=state, port=port, temp_paths=temp_paths, user_line=user_line)


@pytest.mark.parametrize("site", SPLIT_SITES, ids=SPLIT_IDS)
def test_nginx_accepts_the_two_files_in_a_server_of_its_own(tmp_path, site) -> None:
    (tmp_path / "tmp").mkdir()
    site = dataclasses.replace(site, log_dir=str(tmp_path))
    if site.store is not None:
        site = dataclasses.replace(
            site, store=dataclasses.replace(site.store, ca_file=certifi.where())
        )
    parts = render_site_parts(site)
    (tmp_path / "http.conf").write_text(parts.http)
    (tmp_path / "locations.conf").write_text(parts.locations)
    result = nginx_test(nginx_binary(), tmp_path, site_server_config(tmp_path, free_port()))
    assert result.returncode == 0, result.stderr
    assert "[warn]" not in result.stderr


def test_command_writes_the_two_files(tmp_path) -> None:
    http, locations = tmp_path / "http.conf", tmp_path / "locations.conf"
    out = render_command(
        "--http", str(http), "--locations", str(locations), "--upstream", "unix:/run/a.sock"
    )
    assert out == ""
    assert parse(http.read_text()).one("upstream").one("server").args == ["unix:/run/a.sock"]
    located = parse(locations.read_text())
    assert located.location("/_protected/").all("internal")
    assert located.location("/").one("proxy_pass").args == ["http://protected_media_app"]


@pytest.mark.parametrize(
    "extra",
    [
        ["--listen", "127.0.0.1:9000"],
        ["--server-name", "files.example.org"],
        ["--standalone", "/tmp/state"],
        ["--output", "/tmp/site.conf"],
    ],
    ids=["listen", "server name", "standalone", "output"],
)
def test_command_refuses_what_a_server_of_the_sites_own_does_not_use(tmp_path, extra) -> None:
    http, locations = tmp_path / "http.conf", tmp_path / "locations.conf"
    with pytest.raises(CommandError, match="cannot go with --http and --locations"):
        render_command("--http", str(http), "--locations", str(locations), *extra)
    assert not http.exists() and not locations.exists()


@pytest.mark.parametrize("given", ["--http", "--locations"])
def test_command_wants_both_files(tmp_path, given) -> None:
    with pytest.raises(CommandError, match="go together"):
        render_command(given, str(tmp_path / "one.conf"))
    assert not (tmp_path / "one.conf").exists()


# -- --standalone makes the folders its config names ---------------------------------


def named_folders(conf: Directive) -> set[Path]:
    """The folders nginx must find: those of the files the config writes, and
    the parents of its temp folders (nginx makes only their last level)."""
    http = conf.one("http")
    server = http.one("server")
    files = [conf.one("pid"), conf.one("error_log"), http.one("access_log")]
    files += [
        server.one("access_log"),
        *(d for d in flat_directives(server) if d.name == "error_log"),
    ]
    temps = [d for d in http.block or [] if d.name.endswith("_temp_path")]
    return {Path(d.args[0]).parent for d in [*files, *temps]}


def flat_directives(directive: Directive) -> list[Directive]:
    found = []
    for child in directive.block or []:
        found += [child, *flat_directives(child)]
    return found


def test_standalone_makes_the_folders_it_names_then_nginx_starts(tmp_path) -> None:
    state = tmp_path / "fresh" / "state"
    port = free_port()
    config = tmp_path / "nginx.conf"
    render_command(
        "--standalone", str(state), "--listen", f"127.0.0.1:{port}",
        "--upstream", f"unix:{tmp_path}/u.sock", "-o", str(config),
    )  # fmt: skip
    folders = named_folders(parse(config.read_text()))
    assert state in folders and state / "tmp" in folders
    for folder in folders:
        assert folder.is_dir(), folder
        # The access log and the uploads being received are nobody else's.
        assert folder.stat().st_mode & 0o777 == 0o700, folder
    result = subprocess.run(
        [nginx_binary(), "-t", "-c", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_standalone_leaves_a_folder_that_exists_as_it_was(tmp_path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o750)
    render_command("--standalone", str(state), "-o", str(tmp_path / "nginx.conf"))
    assert state.stat().st_mode & 0o777 == 0o750
    assert (state / "tmp" / "client_body").is_dir()


def test_standalone_refuses_a_state_folder_it_cannot_make(tmp_path) -> None:
    (tmp_path / "taken").write_text("a file, not a folder")
    with pytest.raises(CommandError, match="cannot create"):
        render_command("--standalone", str(tmp_path / "taken" / "state"))
