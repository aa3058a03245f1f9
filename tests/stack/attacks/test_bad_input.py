"""Bad input to the API is a 400, never a 500, through nginx and uvicorn.

The share API's three known cases, as a client sends them to the running
stack: each is a JSON 400 saying what is wrong, no link is made, and nothing
the stack logs holds a traceback. ``tests/gateway/test_api_fuzz.py`` fuzzes every
endpoint in-process.
"""

from __future__ import annotations

import json

import httpx
import pytest

from ..harness import Stack, upload
from .support import get_line, wire

pytestmark = pytest.mark.stack

LIFETIME_ERROR = (
    "'lifetime' must be a whole number of seconds from 1 to 2592000 (leave it out for 604800)."
)


@pytest.fixture(scope="module")
def shared_file(owner: httpx.Client) -> dict[str, str]:
    response = upload(owner, "bad-input.txt", b"bad input\n", "text/plain")
    assert response.status_code == 201, response.text
    return response.json()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # "[" 100,000 times: the JSON parser's recursion ran out (a 500)
        (b"[" * 100_000, "The JSON body nests deeper than 8 levels."),
        (b'{"lifetime": "\xff\xfe60"}', "The body is not valid UTF-8."),
        # past every float: Python reads it as infinity
        (b'{"lifetime": 1e999999}', LIFETIME_ERROR),
        (b'{"lifetime": 18446744073709551616}', LIFETIME_ERROR),
    ],
)
def test_a_malformed_share_request_is_a_json_400(
    stack: Stack, owner: httpx.Client, shared_file: dict[str, str], body: bytes, message: str
) -> None:
    url = f"/api/files/{shared_file['id']}/shares/"
    log_before = len(stack.log_path.read_bytes())
    listed_before = owner.get(url).json()["shares"]
    response = owner.post(
        url,
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-CSRFToken": owner.cookies["csrftoken"],
            "Origin": str(owner.base_url).rstrip("/"),
        },
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert json.loads(response.content) == {"error": message}
    assert owner.get(url).json()["shares"] == listed_before
    logged = stack.log_path.read_bytes()[log_before:].decode(errors="replace")
    assert "Traceback" not in logged
    assert "Internal Server Error" not in logged


@pytest.mark.parametrize(
    ("target", "status"),
    [
        # raw bytes that are not UTF-8: uvicorn refuses them before Django
        (b"/api/files/?\xff\xfe", 400),
        (b"/api/files/\xff/", 400),
        # percent-escaped, they reach Django, which reads them as U+FFFD
        (b"/api/files/?a=%ff", 200),
    ],
)
def test_bytes_that_are_not_utf8_in_the_request_line_are_no_5xx(
    stack: Stack, owner: httpx.Client, target: bytes, status: int
) -> None:
    log_before = len(stack.log_path.read_bytes())
    cookies = "; ".join(f"{name}={value}" for name, value in owner.cookies.items())
    answer = wire(stack, get_line(target, f"Cookie: {cookies}".encode()))
    assert answer is not None
    assert answer.status == status
    logged = stack.log_path.read_bytes()[log_before:].decode(errors="replace")
    assert "Traceback" not in logged
