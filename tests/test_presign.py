"""The presigner: the same URL botocore's client would give, for every key;
reused only while most of its lifetime is left; GET and HEAD apart; a
bounded cache. That the store accepts what it signs is proven against the
verifying store (tests/stack/test_store_location.py signs with it, and
tests/test_s3_storage.py hands its URLs to the store as nginx would)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import botocore.session
import pytest
from botocore.config import Config

from protected_media.storage import presign
from protected_media.storage.presign import Presigner

from .store import AWKWARD_KEYS

STORE = {
    "endpoint_url": "https://store.example:8333",
    "bucket": "private-files",
    "region": "eu-west-3",
    "access_key_id": "AKIDEXAMPLE",
    "secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
}
KEYS = ["files/notes.txt", "deep/er/still.bin", *AWKWARD_KEYS]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def botocore_url(key: str, method: str, lifetime: int) -> str:
    client = botocore.session.get_session().create_client(
        "s3",
        endpoint_url=STORE["endpoint_url"],
        region_name=STORE["region"],
        aws_access_key_id=STORE["access_key_id"],
        aws_secret_access_key=STORE["secret_access_key"],
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    operation = {"GET": "get_object", "HEAD": "head_object"}[method]
    return str(
        client.generate_presigned_url(
            operation,
            Params={"Bucket": STORE["bucket"], "Key": key},
            ExpiresIn=lifetime,
            HttpMethod=method,
        )
    )


def date_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["X-Amz-Date"][0]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("key", KEYS)
def test_the_url_is_botocores_byte_for_byte(key: str, method: str) -> None:
    signer = Presigner(**STORE, lifetime=60)
    # Both sign with the current second: try again if a second went by between.
    for _ in range(5):
        ours, theirs = signer.sign(key, method), botocore_url(key, method, 60)
        if date_of(ours) == date_of(theirs):
            break
    assert ours == theirs


def test_a_url_is_reused_while_three_quarters_of_its_lifetime_are_left() -> None:
    clock = Clock()
    signer = Presigner(**STORE, lifetime=60, clock=clock)
    signed: list[str] = []
    sign = signer.sign
    signer.sign = lambda key, method: signed.append(key) or sign(key, method)  # type: ignore[method-assign]
    first = signer.url("files/notes.txt", "GET")
    clock.now += 14.9
    assert signer.url("files/notes.txt", "GET") == first
    assert signed == ["files/notes.txt"]
    clock.now += 0.2  # 15.1 s: a quarter of 60 is gone, so it is signed again
    fresh = signer.url("files/notes.txt", "GET")
    assert signed == ["files/notes.txt", "files/notes.txt"]
    assert signer.url("files/notes.txt", "GET") == fresh
    assert len(signed) == 2


def test_get_and_head_and_each_key_have_their_own_url() -> None:
    signer = Presigner(**STORE, lifetime=60, clock=Clock())
    get = signer.url("files/notes.txt", "GET")
    head = signer.url("files/notes.txt", "HEAD")
    other = signer.url("files/other.txt", "GET")
    assert len({get, head, other}) == 3
    assert urlsplit(get).path == urlsplit(head).path != urlsplit(other).path


@pytest.mark.parametrize("method", ["PUT", "DELETE", "POST", "get"])
def test_only_get_and_head_are_signed(method: str) -> None:
    with pytest.raises(ValueError, match="only GET and HEAD"):
        Presigner(**STORE, lifetime=60).url("files/notes.txt", method)


def test_the_cache_keeps_the_most_recently_used_urls_only(monkeypatch) -> None:
    monkeypatch.setattr(presign, "CACHE_ENTRIES", 3)
    clock = Clock()
    signer = Presigner(**STORE, lifetime=60, clock=clock)
    kept = signer.url("k/1", "GET")
    for name in ("k/2", "k/3"):
        signer.url(name, "GET")
    signer.url("k/1", "GET")  # used again: now the newest
    signer.url("k/4", "GET")  # pushes out k/2, the oldest
    assert len(signer._cache) == 3
    assert set(signer._cache) == {("k/1", "GET"), ("k/3", "GET"), ("k/4", "GET")}
    assert signer.url("k/1", "GET") == kept
