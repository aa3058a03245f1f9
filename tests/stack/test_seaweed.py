"""The store the S3 tests run against verifies what a real provider verifies:
a presigned URL opens one object, for its own method, until it expires, and
nothing else gets in. A store that let these through would let the tests
pass on wrongly signed URLs."""

from __future__ import annotations

import calendar
import http.client
import time
import urllib.parse

import pytest

from gateway.seaweed import Seaweed, SeaweedStore, s3_client

pytestmark = pytest.mark.stack

KEY = "checks/notes one.txt"
OTHER_KEY = "checks/other.txt"
BODY = b"only for the signed\n"


@pytest.fixture(scope="module")
def client(seaweed: SeaweedStore):
    client = s3_client(seaweed)
    client.put_object(Bucket=seaweed.bucket, Key=KEY, Body=BODY)
    client.put_object(Bucket=seaweed.bucket, Key=OTHER_KEY, Body=b"another object\n")
    return client


def presign(client, store: SeaweedStore, method: str = "GET", expires: int = 60) -> str:
    operation = {"GET": "get_object", "HEAD": "head_object"}[method]
    return client.generate_presigned_url(
        operation, Params={"Bucket": store.bucket, "Key": KEY}, ExpiresIn=expires
    )


def send(url: str, method: str = "GET") -> tuple[int, bytes]:
    """The status and body the store answers, the URL sent exactly as given."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, target)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def with_query(url: str, name: str, change) -> str:
    """``url`` with the query parameter ``name`` replaced by ``change(value)``."""
    parts = urllib.parse.urlsplit(url)
    query = [
        (key, change(value) if key == name else value)
        for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    ]
    encoded = urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
    return parts._replace(query=encoded).geturl()


def other_hex_digit(signature: str) -> str:
    return signature[:-1] + ("0" if signature[-1] != "0" else "1")


def test_a_presigned_url_opens_the_object_for_its_method(seaweed, client) -> None:
    assert send(presign(client, seaweed)) == (200, BODY)
    assert send(presign(client, seaweed, "HEAD"), "HEAD") == (200, b"")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/{bucket}/checks/notes%20one.txt"),  # read an object
        ("HEAD", "/{bucket}/checks/notes%20one.txt"),  # learn that it exists
        ("GET", "/{bucket}"),  # list the bucket
        ("GET", "/{bucket}?list-type=2&prefix=checks/"),  # list it, v2
        ("GET", "/"),  # list the buckets
    ],
)
def test_unsigned_requests_are_refused(seaweed, client, method, path) -> None:
    status, body = send(seaweed.endpoint_url + path.format(bucket=seaweed.bucket), method)
    assert status == 403
    assert BODY not in body
    # The refusal may repeat the key asked for, but lists none.
    assert OTHER_KEY.encode() not in body


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("X-Amz-Signature", other_hex_digit),  # one character of the signature
        ("X-Amz-Expires", lambda value: str(int(value) + 1)),  # a longer life
        ("X-Amz-Credential", lambda value: value.replace("us-east-1", "eu-west-1")),  # scope
    ],
)
def test_a_changed_query_is_refused(seaweed, client, name, change) -> None:
    url = presign(client, seaweed)
    changed = with_query(url, name, change)
    assert changed != url
    status, body = send(changed)
    assert status == 403
    assert BODY not in body


def test_a_url_signed_for_one_object_does_not_open_another(seaweed, client) -> None:
    url = presign(client, seaweed)
    other = url.replace("notes%20one.txt", "other.txt", 1)
    assert other != url
    assert send(other)[0] == 403


def test_a_url_signed_for_get_is_refused_for_head_and_back(seaweed, client) -> None:
    assert send(presign(client, seaweed, "GET"), "HEAD")[0] == 403
    assert send(presign(client, seaweed, "HEAD"), "GET")[0] == 403


def test_an_expired_url_is_refused(seaweed, client) -> None:
    url = presign(client, seaweed, expires=2)
    assert send(url) == (200, BODY)
    # X-Amz-Date has whole seconds: the URL dies 2 s after that second began.
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    signed = calendar.timegm(time.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ"))
    time.sleep(max(0.0, signed + 2 + 1 - time.time()))
    status, body = send(url)
    assert status == 403
    assert BODY not in body


def test_a_restarted_store_keeps_its_objects_and_credentials(tmp_path) -> None:
    # The run command keeps its store in the data folder between runs, on
    # other ports each time.
    with Seaweed(tmp_path / "store") as first:
        s3_client(first).put_object(Bucket=first.bucket, Key=KEY, Body=BODY)
    with Seaweed(tmp_path / "store") as second:
        assert (second.access_key_id, second.secret_access_key) == (
            first.access_key_id,
            first.secret_access_key,
        )
        assert s3_client(second).get_object(Bucket=second.bucket, Key=KEY)["Body"].read() == BODY
