"""Methods other than GET and HEAD, byte ranges, conditional requests, and
whether any media answer could be stored by a shared cache."""

from __future__ import annotations

import pytest

from ..harness import Stack, cookie_header, upload
from .support import PRIVATE_TEXT, accel_headers, answered_by_django, wire

pytestmark = pytest.mark.stack

DATA = bytes(range(256)).hex().encode() * 4  # 2048 bytes, every offset distinct


@pytest.fixture(scope="module")
def data_file(owner) -> dict[str, str]:
    response = upload(owner, "ranges.txt", DATA, "text/plain")
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="module")
def fallback_data_file(fallback_owner) -> dict[str, str]:
    response = upload(fallback_owner, "ranges.txt", DATA, "text/plain")
    assert response.status_code == 201, response.text
    return response.json()


def headers_of(client) -> dict[str, str]:
    return cookie_header(client) if client is not None else {}


# -- methods --------------------------------------------------------------------------

METHODS = [
    # from security.md: POST, PUT and DELETE on a media URL
    "POST",
    "PUT",
    "DELETE",
    "OPTIONS",  # a CORS preflight
    "PATCH",
    # WebDAV verbs a proxy might pass on
    "PROPFIND",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
]


@pytest.mark.parametrize("who", ["owner", "intruder", "anonymous"])
@pytest.mark.parametrize("method", METHODS)
def test_only_get_and_head(stack: Stack, request, private_file, method: str, who: str) -> None:
    # nginx turns any method into GET on the redirect: the app must refuse
    # every other method before it decides anything.
    client = None if who == "anonymous" else request.getfixturevalue(who)
    body = b"x" * 100
    response = stack.raw(method, private_file["url"], headers=headers_of(client), body=body)
    assert response.status == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert PRIVATE_TEXT not in response.body
    app = stack.raw_uvicorn(method, private_file["url"], headers=headers_of(client))
    assert app.status == 405
    assert accel_headers(app) == []


@pytest.mark.parametrize(
    ("request_line", "extra", "status"),
    [
        # methods nginx answers itself
        ("TRACE {url} HTTP/1.1", "", 405),
        ("CONNECT {url} HTTP/1.1", "", 405),
        # a lower-case method
        ("get {url} HTTP/1.1", "", 400),
        # a body over the media location's 1 KiB cap
        ("POST {url} HTTP/1.1", "Content-Length: 2048\r\n", 413),
        ("PUT {url} HTTP/1.1", "Transfer-Encoding: chunked\r\n", 413),
    ],
)
def test_methods_nginx_refuses(stack: Stack, owner, private_file, request_line, extra, status):
    cookie = cookie_header(owner)["Cookie"]
    head = f"{request_line.format(url=private_file['url'])}\r\nHost: 127.0.0.1\r\n"
    head += f"Cookie: {cookie}\r\n{extra}Connection: close\r\n\r\n"
    body = b""
    if "Content-Length" in extra:
        body = b"x" * 2048
    elif "chunked" in extra:
        body = b"800\r\n" + b"x" * 2048 + b"\r\n0\r\n\r\n"
    response = wire(stack, head.encode() + body)
    assert response is not None
    assert response.status == status
    assert not answered_by_django(response)
    assert PRIVATE_TEXT not in response.body
    if status == 413:
        assert response.body == b"Request Entity Too Large: a media URL takes no request body.\n"


@pytest.mark.parametrize(
    "override",
    [
        # method-override headers some frameworks honour: a GET stays a GET
        {"X-HTTP-Method-Override": "DELETE"},
        {"X-HTTP-Method": "PUT"},
        {"X-Method-Override": "DELETE"},
    ],
)
def test_method_override_headers_change_nothing(stack: Stack, owner, data_file, override):
    response = stack.raw("GET", data_file["url"], headers={**cookie_header(owner), **override})
    assert (response.status, response.body) == (200, DATA)
    again = stack.raw("GET", data_file["url"], headers=cookie_header(owner))
    assert (again.status, again.body) == (200, DATA)


@pytest.mark.parametrize(("who", "status"), [("owner", 200), ("intruder", 404)])
def test_head_answers_like_get_without_a_body(stack: Stack, request, data_file, who, status):
    client = request.getfixturevalue(who)
    head = stack.raw("HEAD", data_file["url"], headers=cookie_header(client))
    get = stack.raw("GET", data_file["url"], headers=cookie_header(client))
    assert (head.status, head.body) == (status, b"")
    drop = {"date"}
    assert [h for h in head.header_list if h[0] not in drop] == [
        h for h in get.header_list if h[0] not in drop
    ]
    assert head.headers["content-length"] == str(len(get.body))


# -- ranges ---------------------------------------------------------------------------

RANGES = [
    # from security.md: many ranges; max_ranges 1 answers with the whole file
    (lambda etag: {"Range": "bytes=" + ",".join(f"{i}-{i}" for i in range(0, 400, 2))}, 200),
    # overlapping ranges that would multiply the response
    (lambda etag: {"Range": "bytes=" + ",".join(["0-"] * 100)}, 200),
    (lambda etag: {"Range": "bytes=0-1, 3-4"}, 200),
    (lambda etag: {"Range": "bytes=0-0,-1"}, 200),
    # one range: the normal case
    (lambda etag: {"Range": "bytes=10-19"}, 206),
    (lambda etag: {"Range": "bytes=-5"}, 206),
    # past the end
    (lambda etag: {"Range": "bytes=99999-"}, 416),
    # a unit nobody speaks
    (lambda etag: {"Range": "items=0-1"}, 200),
    # If-Range with the current ETag, a stale one, a weak one
    (lambda etag: {"Range": "bytes=10-19", "If-Range": etag}, 206),
    (lambda etag: {"Range": "bytes=10-19", "If-Range": '"0-0"'}, 200),
    (lambda etag: {"Range": "bytes=10-19", "If-Range": "W/" + etag}, 200),
]
RANGE_IDS = [
    "200 ranges",
    "100 overlapping",
    "two ranges",
    "first and last byte",
    "one range",
    "suffix",
    "past the end",
    "other unit",
    "if-range current",
    "if-range stale",
    "if-range weak",
]


def check_range(response, headers: dict[str, str], status: int) -> None:
    assert response.status == status
    if status == 200:
        assert response.body == DATA
        assert "multipart" not in response.headers["content-type"]
    elif status == 206:
        first, last = response.headers["content-range"].split()[1].split("/")[0].split("-")
        assert response.body == DATA[int(first) : int(last) + 1]
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
    else:
        assert response.headers["content-range"] == f"bytes */{len(DATA)}"
        assert DATA not in response.body
    assert "private" in response.headers["cache-control"]


@pytest.mark.parametrize(("make", "status"), RANGES, ids=RANGE_IDS)
def test_ranges_through_nginx(stack: Stack, owner, data_file, make, status) -> None:
    etag = stack.raw("HEAD", data_file["url"], headers=cookie_header(owner)).headers["etag"]
    headers = make(etag)
    response = stack.raw("GET", data_file["url"], headers={**cookie_header(owner), **headers})
    check_range(response, headers, status)


@pytest.mark.parametrize(("make", "status"), RANGES, ids=RANGE_IDS)
def test_ranges_on_the_fallback(
    fallback_stack: Stack, fallback_owner, fallback_data_file, make, status
) -> None:
    # The Python fallback must give the same answers as nginx.
    url = fallback_data_file["url"]
    etag = fallback_stack.raw("HEAD", url, headers=cookie_header(fallback_owner)).headers["etag"]
    headers = make(etag)
    response = fallback_stack.raw_uvicorn("GET", url, {**cookie_header(fallback_owner), **headers})
    check_range(response, headers, status)


# -- caching --------------------------------------------------------------------------

SHARED_CACHE_WORDS = ("public", "s-maxage", "proxy-revalidate", "immutable")

ANSWERS = [
    # (who, method, extra headers, expected status)
    ("owner", "GET", {}, 200),  # the grant
    ("owner", "HEAD", {}, 200),
    ("owner", "GET", {"Range": "bytes=0-9"}, 206),
    ("owner", "GET", {"Range": "bytes=99999-"}, 416),
    ("owner", "GET", {"If-None-Match": "{etag}"}, 304),
    ("owner", "GET", {"If-Modified-Since": "{last_modified}"}, 304),
    ("intruder", "GET", {}, 404),  # the refusal
    ("intruder", "HEAD", {}, 404),
    ("intruder", "GET", {"Range": "bytes=0-9"}, 404),
    ("anonymous", "GET", {}, 302),  # the login redirect
    ("anonymous", "HEAD", {}, 302),
]


@pytest.mark.parametrize(("who", "method", "extra", "status"), ANSWERS)
def test_no_media_answer_is_cacheable_by_a_shared_cache(
    stack: Stack, request, data_file, who, method, extra, status
) -> None:
    client = None if who == "anonymous" else request.getfixturevalue(who)
    owner = request.getfixturevalue("owner")
    reference = stack.raw("HEAD", data_file["url"], headers=cookie_header(owner))
    values = {
        "etag": reference.headers["etag"],
        "last_modified": reference.headers["last-modified"],
    }
    headers = {name: value.format(**values) for name, value in extra.items()}
    response = stack.raw(method, data_file["url"], headers={**headers_of(client), **headers})
    assert response.status == status
    cache_control = response.headers["cache-control"]
    assert "private" in cache_control and "no-store" in cache_control
    assert not any(word in cache_control for word in SHARED_CACHE_WORDS)
    assert [value for name, value in response.header_list if name == "cache-control"] == [
        cache_control
    ]
    assert "expires" not in response.headers
    assert accel_headers(response) == []
    # What nginx decided on: only the redirect itself, no X-Accel-Expires
    # (which would override no-store in nginx's own cache) nor any other.
    app = stack.raw_uvicorn(method, data_file["url"], headers={**headers_of(client), **headers})
    assert accel_headers(app) == (["x-accel-redirect"] if who == "owner" else [])
    assert "private" in app.headers["cache-control"]
    assert "expires" not in app.headers


@pytest.mark.parametrize("method", ["POST", "OPTIONS"])
def test_the_405_is_not_cacheable_either(stack: Stack, owner, data_file, method) -> None:
    response = stack.raw(method, data_file["url"], headers=cookie_header(owner), body=b"")
    assert response.status == 405
    assert "private" in response.headers.get("cache-control", "")
