"""What the S3 tests share: the real store selected for one test, the
bucket's contents, and the request nginx would make for an X-Accel-Redirect."""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from gateway.seaweed import SeaweedStore, s3_client

STORE_INTERNAL_URL = "/_protected_store/"
# Keys no URL carries as written: each must reach the store as it was signed.
AWKWARD_KEYS = [
    "files/a b.txt",
    "files/100%.txt",
    "files/what?.txt",
    "files/c#sharp.txt",
    "files/a+b.txt",
    "files/x&y=z;w.txt",
    "files/%2F%41 escaped.txt",
    "files/café ñ.txt",
    "files/数据.txt",
    "files/😀.txt",
    'files/quote\'d "name".txt',
    "files/tilde~ (1)[2].txt",
]


def use_store(settings, store: SeaweedStore) -> None:
    """PROTECTED_MEDIA_STORAGE = "s3" on ``store``, for the test that asks."""
    settings.PROTECTED_MEDIA_STORAGE = "s3"
    settings.PROTECTED_MEDIA_S3_ENDPOINT_URL = store.endpoint_url
    settings.PROTECTED_MEDIA_S3_BUCKET = store.bucket
    settings.PROTECTED_MEDIA_S3_ACCESS_KEY_ID = store.access_key_id
    settings.PROTECTED_MEDIA_S3_SECRET_ACCESS_KEY = store.secret_access_key
    settings.PROTECTED_MEDIA_S3_REGION = store.region


def object_names(store: SeaweedStore) -> set[str]:
    """Every object in the bucket (shared by the session: compare before and after)."""
    pages = s3_client(store).get_paginator("list_objects_v2").paginate(Bucket=store.bucket)
    return {entry["Key"] for page in pages for entry in page.get("Contents", ())}


def read_object(store: SeaweedStore, name: str) -> bytes:
    return s3_client(store).get_object(Bucket=store.bucket, Key=name)["Body"].read()


@dataclass(frozen=True)
class StoreAnswer:
    status: int
    headers: dict[str, str]
    body: bytes


def fetch_as_nginx(
    target: str, store: SeaweedStore, *, method: str = "GET", internal_url: str = STORE_INTERNAL_URL
) -> StoreAnswer:
    """What the store answers nginx for an X-Accel-Redirect ``target``: nginx
    splits the value at its first "?", decodes the path once, and its
    internal location proxies it with the prefix stripped and the query as
    it came. Sent byte for byte (http.client encodes nothing)."""
    path, separator, query = target.partition("?")
    assert separator, "a presigned target always has a query"
    assert path.startswith(internal_url)
    upstream = "/" + unquote(path).removeprefix(internal_url)
    endpoint = urlsplit(store.endpoint_url)
    connection = http.client.HTTPConnection(endpoint.hostname, endpoint.port, timeout=10)
    try:
        connection.request(method, f"{upstream}?{query}")
        response = connection.getresponse()
        return StoreAnswer(
            response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        )
    finally:
        connection.close()
