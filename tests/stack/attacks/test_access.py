"""Reading what is not yours: other users' files, probes for existence, and
files planted in the private root. Every "no" looks the same."""

from __future__ import annotations

import secrets

import pytest

from ..harness import Stack, cookie_header, upload
from .support import (
    PRIVATE_TEXT,
    accel_headers,
    create_record,
    get_line,
    signature,
    stored_path,
    wire,
)

pytestmark = pytest.mark.stack

MISSING_KEY = "AAAAAAAAAAAAAAAAAAAAAA"  # well formed, never issued


@pytest.fixture(scope="module")
def deleted_file(owner) -> dict[str, str]:
    created = upload(owner, "deleted.txt", b"deleted soon\n", "text/plain").json()
    response = owner.delete(
        f"/api/files/{created['id']}/", headers={"X-CSRFToken": owner.cookies["csrftoken"]}
    )
    assert response.status_code == 204
    return created


def ask(stack: Stack, client, target: str, *extra: str):
    cookie = cookie_header(client)["Cookie"]
    lines = [f"Cookie: {cookie}".encode(), *(line.encode() for line in extra)]
    response = wire(stack, get_line(target.encode(), *lines))
    assert response is not None
    return response


# (who asks, what, extra request headers). Every row must get exactly what
# bob gets for alice's file: status, headers but Date, and body.
REFUSALS = [
    # from security.md: another user's URL
    ("intruder", "{url}", ()),
    # the owner, for a key that was never issued
    ("owner", f"/media/{MISSING_KEY}", ()),
    ("intruder", f"/media/{MISSING_KEY}", ()),
    # from security.md: the same URL after the owner deleted the file
    ("owner", "{deleted}", ()),
    # malformed keys: too short, too long, wrong alphabet, empty
    ("owner", "/media/nope", ()),
    ("owner", "/media/{key}A", ()),
    ("owner", "/media/" + "+" * 22, ()),
    ("owner", "/media/", ()),
    ("intruder", "/media/%2e%2e%2f{key}", ()),
    # a key that differs in case only
    ("intruder", "{swapped}", ()),
    # probes that would reveal the file's existence or size to the intruder
    ("intruder", "{url}", ("Range: bytes=0-0",)),
    ("intruder", "{url}", ("Range: bytes=999999-",)),  # a 416 would reveal the size
    ("intruder", "{url}", ("If-None-Match: *",)),  # a 304 would reveal it exists
    ("intruder", "{url}", ("If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT",)),
    ("intruder", "{url}", ("If-Range: *", "Range: bytes=0-1")),
    ("intruder", "{url}", ("Accept: text/html", "Accept-Encoding: gzip")),
    ("intruder", "{url}", ("X-Requested-With: XMLHttpRequest",)),
    # headers that would make another server serve a file or trust a path
    ("intruder", "{url}", ("X-Accel-Redirect: /_protected/{stored}",)),
    ("intruder", "{url}", ("X-Original-URL: /_protected/{stored}",)),
    ("intruder", "{url}", ("X-Forwarded-For: 127.0.0.1", "X-Forwarded-Host: localhost")),
]


@pytest.mark.parametrize(("who", "target", "extra"), REFUSALS)
def test_every_no_is_the_same_404(
    stack: Stack, owner, intruder, private_file, deleted_file, who, target, extra
) -> None:
    url = private_file["url"]
    key = url.rsplit("/", 1)[1]
    values = {
        "url": url,
        "key": key,
        "deleted": deleted_file["url"],
        "swapped": "/media/" + key.swapcase(),
        "stored": stored_path(stack, url).relative_to(stack.private_root).as_posix(),
    }
    baseline = ask(stack, intruder, url)
    assert (baseline.status, baseline.body) == (404, b"Not Found\n")
    client = owner if who == "owner" else intruder
    filled = [line.format(**values) for line in extra]
    response = ask(stack, client, target.format(**values), *filled)
    assert signature(response) == signature(baseline)
    assert PRIVATE_TEXT not in response.body


@pytest.mark.parametrize(
    "target",
    [
        "{url}",  # another user's file
        f"/media/{MISSING_KEY}",  # a missing file
        "/media/nope",  # a malformed key
        "{deleted}",  # a deleted file
    ],
)
def test_no_refusal_carries_x_accel_at_the_app(
    stack: Stack, intruder, owner, private_file, deleted_file, target
) -> None:
    # Straight from uvicorn, before nginx strips X-Accel-*: a refusal that
    # carried X-Accel-Redirect would make nginx send the file anyway.
    values = {"url": private_file["url"], "deleted": deleted_file["url"]}
    asked = target.format(**values)
    refusals = [
        stack.raw_uvicorn("GET", asked, headers=cookie_header(intruder)),
        stack.raw_uvicorn("HEAD", asked, headers=cookie_header(intruder)),
        stack.raw_uvicorn("GET", asked),  # anonymous
    ]
    if target != "{url}":
        refusals.append(stack.raw_uvicorn("GET", asked, headers=cookie_header(owner)))
    for response in refusals:
        assert response.status in (302, 404)
        assert accel_headers(response) == []
        assert PRIVATE_TEXT not in response.body


def test_the_grant_is_the_only_answer_with_x_accel(stack: Stack, owner, private_file) -> None:
    # The control for the test above: the app does hand the owner's request off.
    response = stack.raw_uvicorn("GET", private_file["url"], headers=cookie_header(owner))
    assert response.status == 200 and response.body == b""
    assert accel_headers(response) == ["x-accel-redirect"]


@pytest.mark.parametrize(
    "target",
    [
        "{url}",  # an existing file
        f"/media/{MISSING_KEY}",  # a missing one
        "/media/nope",  # a malformed key
        "{deleted}",  # a deleted file
    ],
)
def test_anonymous_answers_do_not_depend_on_the_file(
    stack: Stack, private_file, deleted_file, target
) -> None:
    asked = target.format(url=private_file["url"], deleted=deleted_file["url"])
    response = wire(stack, get_line(asked.encode()))
    reference = wire(stack, get_line(private_file["url"].encode()))
    assert response is not None and reference is not None
    assert response.status == 302
    assert response.headers["location"] == f"/accounts/login/?next={asked}"

    def without_location(answer):
        status, headers, body = signature(answer)
        return status, [(name, value) for name, value in headers if name != "location"], body

    assert without_location(response) == without_location(reference)


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_another_users_file_through_the_api(stack: Stack, intruder, owner, private_file, method):
    # The JSON API answers for the caller's own files only.
    response = intruder.request(
        method,
        f"/api/files/{private_file['id']}/",
        headers={"X-CSRFToken": intruder.cookies["csrftoken"]},
    )
    assert response.status_code == 404
    assert private_file["id"] not in response.text
    listing = intruder.get("/api/files/").json()["files"]
    assert private_file["id"] not in [item["id"] for item in listing]
    still = stack.raw("GET", private_file["url"], headers=cookie_header(owner))
    assert (still.status, still.body) == (200, PRIVATE_TEXT)


# -- symlinks planted under the private root ------------------------------------------


def plant(stack: Stack, owner, intruder, target: str) -> tuple[str, bytes]:
    """Replace one of the owner's files (or its folder) by a link; return the
    owner's URL and the bytes the link points at."""
    outside = stack.data_dir / f"outside-{secrets.token_hex(4)}.txt"
    outside.write_bytes(b"outside the private root\n")
    if target == "a folder outside the root":
        folder = stack.data_dir / f"elsewhere-{secrets.token_hex(4)}"
        folder.mkdir()
        key = secrets.token_urlsafe(16)  # 22 characters, a well-formed key
        (folder / f"{key}.txt").write_bytes(b"outside the private root\n")
        linked = f"linked-{secrets.token_hex(4)}"
        (stack.private_root / linked).symlink_to(folder, target_is_directory=True)
        create_record(
            stack,
            key=key,
            name=f"{linked}/{key}.txt",
            owner="alice",
            data=b"outside the private root\n",
        )
        # create_record wrote through the link, into the folder outside.
        assert (folder / f"{key}.txt").exists()
        return f"/media/{key}", b"outside the private root"
    mine = upload(owner, "mine.txt", b"mine\n", "text/plain").json()
    path = stored_path(stack, mine["url"])
    path.unlink()
    if target == "a file outside the root":
        path.symlink_to(outside)
        return mine["url"], b"outside the private root"
    if target == "the secret key":
        path.symlink_to(stack.data_dir / "secret_key")
        return mine["url"], (stack.data_dir / "secret_key").read_bytes().strip()
    theirs = upload(intruder, "theirs.txt", b"bob's secret\n", "text/plain").json()
    path.symlink_to(stored_path(stack, theirs["url"]))
    return mine["url"], b"bob's secret"


SYMLINKS = [
    "a file outside the root",
    "the secret key",
    "another user's file",  # a relative move inside the root
    "a folder outside the root",  # a linked directory on the way to the file
]


@pytest.mark.parametrize("target", SYMLINKS)
def test_nginx_refuses_a_planted_symlink(stack: Stack, owner, intruder, target) -> None:
    url, secret = plant(stack, owner, intruder, target)
    # The app still hands the request off: nginx is what refuses the link.
    handoff = stack.raw_uvicorn("GET", url, headers=cookie_header(owner))
    assert accel_headers(handoff) == ["x-accel-redirect"]
    response = stack.raw("GET", url, headers=cookie_header(owner))
    assert response.status in (403, 404)
    assert secret not in response.body
    assert "x-accel-redirect" not in response.headers


@pytest.fixture(scope="module")
def fallback_pair(fallback_stack, fallback_owner, fallback_intruder):
    return fallback_stack, fallback_owner, fallback_intruder


@pytest.mark.parametrize("target", SYMLINKS)
def test_the_fallback_refuses_a_planted_symlink(fallback_pair, target) -> None:
    stack, owner, intruder = fallback_pair
    url, secret = plant(stack, owner, intruder, target)
    for response in (
        stack.raw("GET", url, headers=cookie_header(owner)),
        stack.raw_uvicorn("GET", url, headers=cookie_header(owner)),
    ):
        assert (response.status, response.body) == (404, b"Not Found\n")
        assert secret not in response.body
