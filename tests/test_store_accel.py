"""The X-Accel-Redirect target for a presigned URL: nginx's one decode must
give the store back exactly the path that was signed, whatever the key."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest
from django.test import override_settings
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from gateway.seaweed import s3_client
from protected_media.storage import protected_storage
from protected_media.storage.accel import local_accel_target, store_accel_target

from .store import STORE_INTERNAL_URL, fetch_as_nginx, use_store

# Presigning needs no network: an address nothing listens on will do.
OFFLINE_STORE = {
    "PROTECTED_MEDIA_STORAGE": "s3",
    "PROTECTED_MEDIA_S3_ENDPOINT_URL": "http://127.0.0.1:9",
    "PROTECTED_MEDIA_S3_BUCKET": "private-bucket",
    "PROTECTED_MEDIA_S3_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "PROTECTED_MEDIA_S3_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
}

# One path segment of a key: any text but "/" (which separates segments) and
# the dot segments, which no store keeps (we never make them: names are ours).
SEGMENT = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="/\\"), min_size=1
).filter(lambda segment: segment not in (".", ".."))
KEYS = st.lists(SEGMENT, min_size=1, max_size=4).map("/".join)


def nginx_view(target: str) -> tuple[str, str]:
    """The path nginx serves (split at the first "?", decoded once) and the query."""
    path, _, query = target.partition("?")
    return unquote(path), query


@override_settings(**OFFLINE_STORE)
# No deadline: the first example loads botocore's S3 model.
@hypothesis_settings(max_examples=300, deadline=None)
@given(key=KEYS, method=st.sampled_from(["GET", "HEAD"]))
def test_one_decode_gives_back_the_signed_path(key: str, method: str) -> None:
    presigned = urlsplit(protected_storage.presign(key, method))
    target = store_accel_target(presigned.geturl(), STORE_INTERNAL_URL)
    path, query = nginx_view(target)
    # The store receives the signed path byte for byte, and the signature untouched.
    assert path == STORE_INTERNAL_URL + presigned.path.removeprefix("/")
    assert query == presigned.query
    # The signed path names the key asked for.
    assert unquote(presigned.path) == f"/private-bucket/{key}"
    # A header value Django sends as is: ASCII, no space, no control character.
    assert target.isascii() and target.isprintable() and " " not in target


# Keys a site's upload_to or a future naming could produce, each of which broke
# a single escape (object-storage.md). Not "a//b" (SeaweedFS folds it) nor dot
# segments (no store keeps them).
AWKWARD_KEYS = [
    "files/with space.txt",  # decoded once: a bare space in the request line
    "files/100%.txt",  # "%" would start an escape after nginx's decode
    "files/100%25.txt",  # an escape-looking key must not be decoded twice
    "files/what?.txt",  # a bare "?" would cut the path there
    "files/hash#tag.txt",  # "#" would end the URL for a client
    "files/plus+sign.txt",  # "+" is a space only in forms: must stay "+"
    "files/semi;colon=eq&amp.txt",  # path parameters and query syntax
    "files/tilde~quote'.txt",
    "files/café.txt",  # UTF-8 in two bytes
    "files/日本語.txt",  # CJK
    "files/emoji😀.txt",  # four bytes
    "files/%2F-not-a-slash.txt",  # an escaped slash stays a character of the name
    "files/deep/er/folder.txt",  # "/" kept as the separator
]


@pytest.mark.parametrize("key", AWKWARD_KEYS)
def test_awkward_keys_reach_the_store_as_signed(settings, seaweed, key: str) -> None:
    use_store(settings, seaweed)
    body = f"bytes of {key}\n".encode()
    client = s3_client(seaweed)
    client.put_object(Bucket=seaweed.bucket, Key=key, Body=body)
    try:
        got = fetch_as_nginx(
            store_accel_target(protected_storage.presign(key, "GET"), STORE_INTERNAL_URL), seaweed
        )
        assert (got.status, got.body) == (200, body)
        head = fetch_as_nginx(
            store_accel_target(protected_storage.presign(key, "HEAD"), STORE_INTERNAL_URL),
            seaweed,
            method="HEAD",
        )
        assert (head.status, head.headers["content-length"], head.body) == (
            200,
            str(len(body)),
            b"",
        )
    finally:
        client.delete_object(Bucket=seaweed.bucket, Key=key)


def test_escaping_once_would_not_do(settings, seaweed) -> None:
    # Why the path is escaped twice: escaped once, nginx's decode hands the
    # store another path than the one signed, and the file is not served.
    use_store(settings, seaweed)
    key = "files/100%25.txt"
    client = s3_client(seaweed)
    client.put_object(Bucket=seaweed.bucket, Key=key, Body=b"the file")
    try:
        presigned = urlsplit(protected_storage.presign(key, "GET"))
        once = f"{STORE_INTERNAL_URL}{presigned.path.removeprefix('/')}?{presigned.query}"
        assert fetch_as_nginx(once, seaweed).status in (400, 403, 404)
        twice = store_accel_target(presigned.geturl(), STORE_INTERNAL_URL)
        assert fetch_as_nginx(twice, seaweed).body == b"the file"
    finally:
        client.delete_object(Bucket=seaweed.bucket, Key=key)


def test_the_target_keeps_only_path_and_query() -> None:
    # The host of the URL is never used: nginx proxies to the configured upstream.
    target = store_accel_target(
        "http://evil.example:1/bucket/files/a%20b.txt?X-Amz-Signature=abc%2F", "/_store/"
    )
    assert target == "/_store/bucket/files/a%2520b.txt?X-Amz-Signature=abc%2F"


# Plain names as the storage makes them (names.stored_name) and as adopted or
# hand-made records may hold them: folders, dots, spaces, "%", "?", "#" and
# any Unicode, but no empty, "." or ".." segment.
PLAIN_SEGMENT = st.text(
    alphabet=st.characters(blacklist_characters="/\\\x00\r\n", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=12,
).filter(lambda segment: segment not in (".", ".."))
INTERNAL_URLS = st.sampled_from(
    ["/_protected/", "/_protected", "/a b/%/", "//double/", "/", "/deep/er/", "/ünï/"]
)


@given(
    internal_url=INTERNAL_URLS,
    name=st.lists(PLAIN_SEGMENT, min_size=1, max_size=4).map("/".join),
)
@hypothesis_settings(max_examples=400, deadline=None)
def test_local_target_is_django_sendfiles_own(internal_url: str, name: str) -> None:
    from django_sendfile.utils import _convert_file_to_url

    with override_settings(SENDFILE_ROOT="/srv/private", SENDFILE_URL=internal_url):
        expected = _convert_file_to_url(f"/srv/private/{name}")
        assert local_accel_target(internal_url, name) == expected


@pytest.mark.parametrize("name", ["", "/etc/passwd", "a/../b", "a//b", "./a", "a/", "a\\b"])
def test_a_name_that_is_not_plain_is_left_to_django_sendfile(name: str) -> None:
    assert local_accel_target("/_protected/", name) is None
