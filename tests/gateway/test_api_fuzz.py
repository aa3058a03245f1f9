"""Bad input to the API is a 400, never a 500.

Every endpoint of the JSON API (as ``gateway/urls.py`` lists them) and the
demo's HTML forms get any method, body, query string and headers: none
answers 5xx, none logs an error or a traceback, and every refusal from the
API is JSON naming what is wrong. The share API's known cases (nesting that
would exhaust the parser's recursion, bytes that are not UTF-8, numbers out
of every range) are written out with their exact answers.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, get_resolver
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gateway.demo.api import MAX_JSON_BODY, MAX_JSON_DEPTH, json_depth
from protected_media.models import ShareLink

from .test_api import assert_json_error, browser

pytestmark = pytest.mark.django_db

NESTED = b"[" * 100_000
LIFETIME_ERROR = (
    "'lifetime' must be a whole number of seconds from 1 to 2592000 (leave it out for 604800)."
)
AUDIENCE_ERROR = "'audience' must be one of: anyone, signed_in."
NESTING_ERROR = f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels."
NOT_UTF8 = "The body is not valid UTF-8."
NOT_JSON = "The body is not valid JSON."
NOT_AN_OBJECT = "Send the fields as a JSON object."
UNREADABLE_FIELDS = "Send the fields as a form or as a JSON object."
TOO_LARGE = f"The body is larger than {MAX_JSON_BODY} bytes."

# Each placeholder of an API route, filled with an id the signed-in user owns.
ROUTE_IDS = {"<uuid:file_id>": "file", "<uuid:share_id>": "share"}
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-16",
    "Application/JSON",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=fuzz-boundary",
    "multipart/form-data",
    "text/plain",
    "",
]
# Headers a client controls and the stack passes on. Not Host: a host outside
# ALLOWED_HOSTS is Django's own 400, logged as a security event, and nginx
# answers it before Django in a deployment. Not Content-Length: the test
# client frames the body itself.
HEADER_NAMES = [
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Authorization",
    "Content-Encoding",
    "Cookie",
    "If-None-Match",
    "Origin",
    "Range",
    "Referer",
    "X-CSRFToken",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-HTTP-Method-Override",
    "X-Requested-With",
]
# What ASGI and WSGI carry in a header value: latin-1 without controls.
HEADER_VALUES = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=40,
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["anyone", "signed_in", "60", "2592000"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=12,
)
SHARE_FIELDS = st.fixed_dictionaries(
    {},
    optional={"lifetime": JSON_VALUES, "audience": JSON_VALUES, "extra": JSON_VALUES},
)
HOSTILE_BODIES = st.sampled_from(
    [
        NESTED,
        b'{"a":' * 100_000,
        b'{"lifetime": "\xff\xfe"}',
        b'{"lifetime": 1e999999}',
        b'{"lifetime": ' + b"9" * 5000 + b"}",
        b'{"lifetime": NaN}',
        b"\xef\xbb\xbf{}",  # a UTF-8 byte order mark
        '{"audience": "anyone"}'.encode("utf-16"),
        b'{"a": "\\ud800"}',  # a lone surrogate, escaped
        b"--fuzz-boundary\r\nContent-Disposition: form-data\r\n\r\nx\r\n--fuzz-boundary--\r\n",
        b"--fuzz-boundary\r\n\r\n",
        b"lifetime=%ff%fe&audience=%00",
        b"\x00" * 64,
    ]
)
BODIES = st.one_of(
    st.binary(max_size=300),
    HOSTILE_BODIES,
    SHARE_FIELDS.map(lambda fields: json.dumps(fields).encode()),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=4).map(
        lambda fields: urlencode(fields).encode()
    ),
)
QUERIES = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="#"), max_size=60
)
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def api_routes() -> list[str]:
    return [
        str(pattern.pattern)
        for pattern in get_resolver("gateway.urls").url_patterns
        if isinstance(pattern, URLPattern) and str(pattern.pattern).startswith("api/")
    ]


@pytest.fixture
def owned(alice, make_file) -> dict[str, str]:
    item = make_file(alice, "notes.txt", b"notes\n")
    client, headers = browser(alice)
    created = client.post(
        f"/api/files/{item.pk}/shares/", "{}", content_type="application/json", headers=headers
    )
    assert created.status_code == 201
    return {"file": str(item.pk), "share": created.json()["id"]}


@pytest.fixture
def signed_in(alice) -> tuple[Client, dict[str, str]]:
    client, headers = browser(alice)
    # A 500 must come back as a response here, as it would to a client.
    client.raise_request_exception = False
    return client, headers


@pytest.fixture
def no_errors_logged(caplog) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    yield
    assert_nothing_logged_as_an_error(caplog)


def assert_nothing_logged_as_an_error(caplog) -> None:
    errors = [
        record
        for record in caplog.records
        if record.levelno >= logging.ERROR or record.exc_info or "Traceback" in record.getMessage()
    ]
    assert errors == []


def send(client: Client, method: str, path: str, body: bytes, content_type: str, headers):
    return client.generic(method, path, body, content_type=content_type, headers=headers)


def send_undone(caplog, client: Client, method: str, path: str, body: bytes, content_type, headers):
    """``send`` with a fresh log capture, in a transaction rolled back after:
    each example undoes what it did (a deleted file, a new link), so the next
    one still finds the user's file and link."""
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    with transaction.atomic():
        response = send(client, method, path, body, content_type, headers)
        transaction.set_rollback(True)
    return response


# -- the share API's known cases ---------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        # the three: a 500 with a traceback before
        (NESTED, 400, NESTING_ERROR),
        (b'{"lifetime": "\xff\xfe"}', 400, NOT_UTF8),
        (b'{"lifetime": 1e999999}', 400, LIFETIME_ERROR),  # parses as infinity
        # the same kinds, other ways
        (b'{"a":' * 100_000, 400, NESTING_ERROR),
        (b'{"a": [[[[[[[[[1]]]]]]]]]}', 400, NESTING_ERROR),  # nine levels
        (b'{"a": "[[[[[[[[[[[[["}', 201, None),  # brackets in a string do not nest
        (b'{"lifetime": ' + b"9" * 5000 + b"}", 400, NOT_JSON),  # past Python's digit limit
        (b'{"lifetime": 18446744073709551616}', 400, LIFETIME_ERROR),  # 2**64
        (b'{"lifetime": -1e308}', 400, LIFETIME_ERROR),
        (b'{"lifetime": NaN}', 400, NOT_JSON),
        (b'{"lifetime": Infinity}', 400, NOT_JSON),
        ('{"audience": "anyone"}'.encode("utf-16"), 400, NOT_UTF8),
        (b"\xef\xbb\xbf{}", 400, NOT_JSON),  # a byte order mark
        (b'{"audience": 0}', 400, AUDIENCE_ERROR),
        (b'{"audience": {}}', 400, AUDIENCE_ERROR),  # was the default audience
        (b'{"audience": ["anyone"]}', 400, AUDIENCE_ERROR),
        (b"[]", 400, NOT_AN_OBJECT),
        (b"null", 400, NOT_AN_OBJECT),
        (b"{", 400, NOT_JSON),
        (b'{"audience": "anyone", "pad": "' + b"x" * MAX_JSON_BODY + b'"}', 413, TOO_LARGE),
    ],
)
def test_a_malformed_json_body_is_a_json_400(
    alice, owned, signed_in, no_errors_logged, body: bytes, status: int, message: str | None
) -> None:
    client, headers = signed_in
    before = ShareLink.objects.count()
    path = f"/api/files/{owned['file']}/shares/"
    response = send(client, "POST", path, body, "application/json", headers)
    if message is None:
        assert response.status_code == status
        assert ShareLink.objects.count() == before + 1
        return
    assert assert_json_error(response, status) == message
    assert ShareLink.objects.count() == before


@pytest.mark.parametrize(
    ("content_type", "body", "status", "message"),
    [
        ("text/plain", b"lifetime=60", 400, UNREADABLE_FIELDS),
        ("application/xml", b"<share/>", 400, UNREADABLE_FIELDS),
        ("", b"\xff", 400, UNREADABLE_FIELDS),
        ("application/x-www-form-urlencoded", b"lifetime=%ff", 400, LIFETIME_ERROR),
        ("application/x-www-form-urlencoded", b"audience=%ff%fe", 400, AUDIENCE_ERROR),
        ("application/x-www-form-urlencoded", b"lifetime=999999999999", 400, LIFETIME_ERROR),
        ("application/x-www-form-urlencoded", b"lifetime=1e3", 400, LIFETIME_ERROR),
    ],
)
def test_a_body_that_is_not_a_form_or_json_is_a_json_400(
    owned, signed_in, no_errors_logged, content_type: str, body: bytes, status: int, message: str
) -> None:
    client, headers = signed_in
    path = f"/api/files/{owned['file']}/shares/"
    response = send(client, "POST", path, body, content_type, headers)
    assert assert_json_error(response, status) == message
    assert ShareLink.objects.count() == 1  # the fixture's own


@given(text=st.text(max_size=200))
@example(text='"[[["')
@example(text='"\\"[[["')
@example(text='"\\\\"[[["')
def test_json_depth_is_the_parsers_nesting(text: str) -> None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return
    assert json_depth(text) == nesting(value)


def nesting(value: object) -> int:
    if isinstance(value, list):
        return 1 + max(map(nesting, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(nesting, value.values()), default=0)
    return 0


# -- every endpoint, any request -----------------------------------------------------


def test_the_fuzz_covers_every_api_route() -> None:
    routes = api_routes()
    assert routes == [
        "api/files/",
        "api/files/<uuid:file_id>/",
        "api/files/<uuid:file_id>/shares/",
        "api/shares/<uuid:share_id>/",
    ]
    assert all(
        set(part for part in route.split("/") if "<" in part) <= set(ROUTE_IDS) for route in routes
    )


@FUZZ
@given(
    route=st.sampled_from(api_routes()),
    own_ids=st.booleans(),
    method=st.sampled_from(METHODS),
    content_type=st.one_of(st.sampled_from(CONTENT_TYPES), QUERIES),
    body=BODIES,
    query=QUERIES,
    extra_headers=st.dictionaries(st.sampled_from(HEADER_NAMES), HEADER_VALUES, max_size=3),
)
@example(
    route="api/files/<uuid:file_id>/shares/",
    own_ids=True,
    method="POST",
    content_type="application/json",
    body=NESTED,
    query="",
    extra_headers={},
)
def test_no_api_request_is_answered_with_a_5xx(
    owned, signed_in, caplog, route, own_ids, method, content_type, body, query, extra_headers
) -> None:
    client, csrf = signed_in
    path = "/" + route
    for placeholder, kind in ROUTE_IDS.items():
        path = path.replace(placeholder, owned[kind] if own_ids else str(uuid.uuid4()))
    response = send_undone(
        caplog, client, method, f"{path}?{query}", body, content_type, {**csrf, **extra_headers}
    )
    assert response.status_code < 500, response.content[:200]
    if response.status_code >= 400:
        assert response["Content-Type"] == "application/json"
        if method != "HEAD":
            assert_json_error(response, response.status_code)
    assert_nothing_logged_as_an_error(caplog)


FORM_ROUTES = [
    "/files/",
    "/files/{file}/delete/",
    "/files/{file}/share/",
    "/shares/{share}/revoke/",
    "/profile/",
    "/accounts/login/",
]


@settings(FUZZ, max_examples=100)
@given(
    route=st.sampled_from(FORM_ROUTES),
    method=st.sampled_from(["GET", "POST"]),
    content_type=st.sampled_from(CONTENT_TYPES[3:]),
    body=BODIES,
    query=QUERIES,
    extra_headers=st.dictionaries(st.sampled_from(HEADER_NAMES), HEADER_VALUES, max_size=2),
)
def test_no_form_request_is_answered_with_a_5xx(
    owned, signed_in, caplog, route, method, content_type, body, query, extra_headers
) -> None:
    client, csrf = signed_in
    path = route.format(**owned)
    response = send_undone(
        caplog, client, method, f"{path}?{query}", body, content_type, {**csrf, **extra_headers}
    )
    assert response.status_code < 500, response.content[:200]
    assert_nothing_logged_as_an_error(caplog)
