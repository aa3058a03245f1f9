"""Paths that try to reach a file without the check, through the real nginx.

A media URL carries an opaque key; whatever else a client writes into it must
end in the one refusal, byte for byte. Paths outside the media prefix must
never reach the private root, the data folder or the internal location.
"""

from __future__ import annotations

import pytest

from ..harness import Stack, cookie_header
from .support import (
    PRIVATE_TEXT,
    WireResponse,
    accel_headers,
    answered_by_django,
    get_line,
    signature,
    stored_path,
    wire,
)

pytestmark = pytest.mark.stack

# What each row expects:
SAME = "the media refusal, byte for byte"
NOT_FOUND = "a 404 that serves nothing"
BAD = "refused as a bad request (400) before any lookup"
TOO_LONG = "nginx refuses the request line (414)"
EITHER = "the media refusal, or a 400 before any lookup"

# "{key}" is the key of alice's file.
MEDIA_PATHS = [
    # from security.md: encoded slashes climbing out of the media prefix
    (b"/media/a/..%2F..%2F.env", SAME),
    # from security.md: an absolute path, encoded
    (b"/media/%2Fetc%2Fpasswd", SAME),
    # from security.md: encoded backslashes, Windows style
    (b"/media/..%5C..%5Cwin.ini", SAME),
    # raw dots: nginx merges them and the request leaves /media/ altogether
    (b"/media/../secret_key", NOT_FOUND),
    (b"/media/a/../../secret_key", NOT_FOUND),
    # percent-encoded dots, decoded and merged by nginx
    (b"/media/%2e%2e/secret_key", NOT_FOUND),
    (b"/media/%2E%2E%2Fsecret_key", NOT_FOUND),
    # dots and slashes encoded twice: Django sees "%2e%2e%2f", a malformed key
    (b"/media/%252e%252e%252fsecret_key", SAME),
    (b"/media/%252E%252E%255Csecret_key", SAME),
    # encoded three times
    (b"/media/%25252e%25252e%25252fsecret_key", SAME),
    # raw backslashes
    (b"/media/..\\..\\secret_key", SAME),
    (b"/media/\\..\\private\\files", SAME),
    # absolute paths after the prefix
    (b"/media//etc/passwd", SAME),
    (b"/media/C:%5CWindows%5Cwin.ini", SAME),
    (b"/media/file:%2F%2F%2Fetc%2Fpasswd", SAME),
    # NUL, encoded and raw: nginx refuses it before any lookup
    (b"/media/{key}%00", BAD),
    (b"/media/{key}%00.txt", BAD),
    (b"/media/{key}\x00", BAD),
    # overlong: a long malformed key is just malformed; past nginx's buffers, 414
    (b"/media/" + b"a" * 4000, SAME),
    (b"/media/" + b"a/" * 2000, SAME),
    (b"/media/" + b"..%2F" * 800 + b"secret_key", BAD),  # above nginx's root
    (b"/media/" + b"a" * 20000, TOO_LONG),
    # unicode look-alikes of "/" and ".", percent-encoded
    (b"/media/%E2%88%95etc%E2%88%95passwd", SAME),  # U+2215 DIVISION SLASH
    (b"/media/%EF%BC%8F..%EF%BC%8Fsecret_key", SAME),  # U+FF0F FULLWIDTH SOLIDUS
    (b"/media/%E2%81%84..%E2%81%84secret_key", SAME),  # U+2044 FRACTION SLASH
    (b"/media/%EF%BC%8E%EF%BC%8E/secret_key", SAME),  # U+FF0E FULLWIDTH FULL STOP
    (b"/media/%E2%80%A4%E2%80%A4/secret_key", SAME),  # U+2024 ONE DOT LEADER
    # overlong UTF-8 encodings of "." and "/" (invalid UTF-8)
    (b"/media/%C0%AE%C0%AE%C0%AFsecret_key", SAME),
    (b"/media/%E0%80%AE%E0%80%AE%E0%80%AFsecret_key", SAME),
    # the look-alikes as raw UTF-8 bytes in the request line (uvicorn's parser
    # refuses them today; a parser that let them through must give the refusal)
    (b"/media/\xe2\x88\x95etc\xe2\x88\x95passwd", EITHER),
    (b"/media/\xef\xbc\x8e\xef\xbc\x8e\xef\xbc\x8fsecret_key", EITHER),
    # the real key, dressed up
    (b"/media/{key}/", SAME),  # a trailing slash
    (b"/media/{key}%2F", SAME),  # an encoded trailing slash
    (b"/media/{key}/..", SAME),  # merged back to "/media/": an empty key
    (b"/media/{key}%2F..%2F{key}", SAME),  # a key followed by a path
    (b"/media/{key};.txt", SAME),  # a matrix parameter
    (b"/media/{key}.txt", SAME),  # the stored extension guessed
    (b"/media/files%2F{key}.txt", SAME),  # the stored name guessed
    (b"/media/%20{key}", SAME),  # padding
    # encoded line breaks: "." in the URL pattern stopped at them, and Django's
    # own HTML 404 answered instead of the refusal
    (b"/media/{key}%0D%0A", SAME),
    (b"/media/%0A{key}", SAME),
    (b"/media/s/%0A", SAME),  # the share prefix, same answer
    (b"/media/s/..%2F{key}", SAME),
]


@pytest.fixture(scope="module")
def baseline(stack: Stack, intruder, private_file) -> tuple:
    """The refusal every malformed path must equal: bob asking for alice's file."""
    return refusal(stack, intruder, private_file["url"])


def refusal(stack: Stack, client, url: str) -> tuple:
    cookie = cookie_header(client)["Cookie"].encode()
    response = wire(stack, get_line(url.encode(), b"Cookie: " + cookie))
    assert response is not None
    assert (response.status, response.body) == (404, b"Not Found\n")
    return signature(response)


def secrets_of(stack: Stack) -> list[bytes]:
    return [
        (stack.data_dir / "secret_key").read_bytes().strip(),
        PRIVATE_TEXT,
        b"SQLite format 3",
        b"upstream protected_media_app",  # the nginx config
    ]


def assert_serves_nothing(stack: Stack, response: WireResponse) -> None:
    for secret in secrets_of(stack):
        assert secret not in response.body
    assert accel_headers(response) == []


def fill(target: bytes, url: str, name: str = "") -> bytes:
    key = url.rsplit("/", 1)[1]
    return target.replace(b"{key}", key.encode()).replace(b"{stored}", name.encode())


@pytest.mark.parametrize(("target", "expected"), MEDIA_PATHS)
def test_media_paths_get_the_one_refusal(
    stack: Stack, owner, private_file, baseline, target: bytes, expected: str
) -> None:
    # Asked by the file's owner: even she may not step outside the root.
    cookie = cookie_header(owner)["Cookie"].encode()
    response = wire(stack, get_line(fill(target, private_file["url"]), b"Cookie: " + cookie))
    assert response is not None
    assert_serves_nothing(stack, response)
    if expected == SAME:
        assert signature(response) == baseline
    elif expected == NOT_FOUND:
        assert response.status == 404
    elif expected == EITHER and response.status != 400:
        assert signature(response) == baseline
    elif expected in (BAD, EITHER):
        assert response.status == 400
        assert not answered_by_django(response)
    else:
        assert response.status == 414
        assert not answered_by_django(response)


# The same paths on the stack whose Python fallback sends the files: the
# fallback joins the stored name to the root, so it must never see a path.
@pytest.mark.parametrize(
    "target", [target for target, expected in MEDIA_PATHS if expected == SAME][:16]
)
def test_media_paths_on_the_fallback_stack(
    fallback_stack: Stack, fallback_owner, fallback_intruder, fallback_private_file, target
) -> None:
    url = fallback_private_file["url"]
    refused = refusal(fallback_stack, fallback_intruder, url)
    cookie = cookie_header(fallback_owner)["Cookie"].encode()
    response = wire(fallback_stack, get_line(fill(target, url), b"Cookie: " + cookie))
    assert response is not None
    assert signature(response) == refused
    assert PRIVATE_TEXT not in response.body


# "{stored}" is the storage-relative name of alice's file, "files/<key>.txt".
OTHER_PATHS = [
    # the internal location asked for directly, by the file's real name
    (b"/_protected/{stored}", "nginx"),
    (b"/_protected//{stored}", "nginx"),
    (b"/_protected/./{stored}", "nginx"),
    (b"/%5Fprotected/{stored}", "nginx"),  # the prefix percent-encoded
    (b"/_protected%2F{stored}", "nginx"),  # the slash after it percent-encoded
    (b"/media/../_protected/{stored}", "nginx"),  # merged into the internal location
    (b"/static/../_protected/{stored}", "nginx"),
    (b"/static/..%2F_protected%2F{stored}", "nginx"),
    (b"http://127.0.0.1/_protected/{stored}", "nginx"),  # absolute-form request target
    (b"http://localhost/_protected/{stored}", "nginx"),
    # the internal location in another case, or without its slash
    (b"/_PROTECTED/{stored}", "any"),
    (b"/_protected", "any"),
    # off-by-slash on the internal location: one folder above the private root
    (b"/_protected../secret_key", "any"),
    (b"/_protected..%2Fsecret_key", "any"),
    (b"/_protected../private/{stored}", "any"),
    (b"/_protected/../secret_key", "any"),
    (b"/_protected/%2e%2e/secret_key", "any"),
    # from security.md: off-by-slash on the static location
    (b"/static../secret_key", "any"),
    (b"/static..%2Fsecret_key", "any"),
    (b"/static../private/{stored}", "any"),
    (b"/static../db.sqlite3", "any"),
    (b"/static../nginx/nginx.conf", "any"),
    # dots inside the static location
    (b"/static/../secret_key", "any"),
    (b"/static/..%2Fsecret_key", "any"),
    (b"/static/%2e%2e/private/{stored}", "any"),
    (b"/static/%252e%252e/secret_key", "any"),
    (b"/static/..\\secret_key", "any"),
    (b"/static/..%5Csecret_key", "any"),
    # the data folder's files by their names, from the site's root
    (b"/secret_key", "any"),
    (b"/db.sqlite3", "any"),
    (b"/private/{stored}", "any"),
    (b"/public-media/../private/{stored}", "any"),
    (b"/nginx/nginx.conf", "any"),
]


@pytest.mark.parametrize(("target", "who"), OTHER_PATHS)
def test_no_other_location_reaches_a_file(
    stack: Stack, owner, private_file, target: bytes, who: str
) -> None:
    name = stored_path(stack, private_file["url"]).relative_to(stack.private_root).as_posix()
    cookie = cookie_header(owner)["Cookie"].encode()
    for method in (b"GET", b"HEAD"):
        request = get_line(fill(target, private_file["url"], name), b"Cookie: " + cookie)
        response = wire(stack, method + request[3:])
        assert response is not None
        assert response.status in (400, 404)
        assert_serves_nothing(stack, response)
        if who == "nginx":
            # The internal location answers for itself: Django never saw it.
            assert response.status == 404
            assert not answered_by_django(response)
