"""No share token ever reaches a log, whatever the request does to the link.

One stack (on a PostgreSQL database of its own, so that it can be taken
down) gets a link and then every way a request can go wrong on it: each
method, a host Django refuses, bodies nginx or Django refuse, a database
outage. Then everything the stack wrote is read: the run command's output
(uvicorn's and Django's logs, the audit trail), nginx's error log and nginx's
access log. The token is in none of them, and the lines that stand for the
requests are there, with the share path masked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from .conftest import USERS, postgres_stack
from .harness import RawResponse, Stack, cookie_header, postgres_admin, upload, wait_for
from .test_database_down import take_down

pytestmark = pytest.mark.stack

MASKED = "/media/s/<redacted>"
JSON = "application/json"
MULTIPART = "multipart/form-data; boundary=x"
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "FROB"]
# (what the case is, method, extra headers, body)
BODIES = [
    ("a JSON body nested 100,000 deep", "POST", {"Content-Type": JSON}, b"[" * 100_000),
    ("invalid UTF-8", "POST", {"Content-Type": "text/plain; charset=utf-8"}, b"\xff\xfe\xfa"),
    ("a broken multipart body", "POST", {"Content-Type": MULTIPART}, b"--x\r\n"),
    ("a body on a GET", "GET", {"Content-Type": JSON}, b'{"a": 1}'),
    ("a body over nginx's 1k", "PUT", {"Content-Type": "application/octet-stream"}, b"x" * 4096),
]


@pytest.fixture(scope="module")
def outage_stack(tmp_path_factory) -> Iterator[tuple[Stack, str]]:
    with postgres_stack(tmp_path_factory, "token-logs") as (stack, database, _):
        try:
            yield stack, database
        finally:
            postgres_admin("ALTER DATABASE {name} ALLOW_CONNECTIONS true", database)


def make_link(stack: Stack) -> tuple[str, bytes]:
    alice = stack.login("alice", USERS["alice"])
    try:
        data = b"%PDF-1.4\n% never in a log\n%%EOF\n"
        created = upload(alice, "Ledger.pdf", data, "application/pdf")
        assert created.status_code == 201, created.text
        response = alice.post(
            f"/api/files/{created.json()['id']}/shares/",
            content=json.dumps({"lifetime": 3600}),
            headers={
                "Content-Type": "application/json",
                "X-CSRFToken": alice.cookies["csrftoken"],
                "Origin": stack.url,
            },
        )
        assert response.status_code == 201, response.text
    finally:
        alice.close()
    url = str(response.json()["url"])
    return url[url.index("/media/s/") :], data


def everything_logged(stack: Stack) -> dict[str, str]:
    nginx = stack.data_dir / "nginx"
    return {
        "run command (uvicorn, Django)": stack.log(),
        "nginx error log": (nginx / "error.log").read_text(errors="replace"),
        "nginx access log": (nginx / "access.log").read_text(errors="replace"),
    }


def test_no_request_on_a_link_puts_its_token_in_a_log(outage_stack) -> None:
    stack, database = outage_stack
    path, data = make_link(stack)
    token = path.rsplit("/", 1)[1]
    bob = stack.login("bob", USERS["bob"])
    bob.close()
    answers: dict[str, RawResponse] = {}

    served = stack.raw("GET", path)
    assert (served.status, served.body) == (200, data)
    for method in METHODS:
        answers[method] = stack.raw(method, path)
        answers[f"{method}, signed in"] = stack.raw(method, path, headers=cookie_header(bob))
    answers["host not allowed"] = stack.raw("GET", path, headers={"Host": "evil.example"})
    for case, method, headers, body in BODIES:
        answers[case] = stack.raw(method, path, headers=headers, body=body)
    take_down(database)
    try:
        answers["database down"] = stack.raw("GET", path)
        answers["database down, OPTIONS"] = stack.raw("OPTIONS", path)
    finally:
        postgres_admin("ALTER DATABASE {name} ALLOW_CONNECTIONS true", database)

    # What each request was answered, so that the logs below cover real refusals.
    statuses = {case: answer.status for case, answer in answers.items()}
    assert statuses["GET"] == statuses["GET, signed in"] == 200
    assert statuses["HEAD"] == 200
    for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"):
        assert statuses[method] == 405, method
    assert statuses["FROB"] in (400, 405)
    assert statuses["host not allowed"] == 400
    assert statuses["a body over nginx's 1k"] == 413
    assert statuses["database down"] == 503
    assert statuses["database down, OPTIONS"] == 405
    assert answers["database down"].body == b"Service Unavailable\n"

    logs = everything_logged(stack)
    for where, text in logs.items():
        assert token not in text, where
        # Nor its signature alone: the part that makes the link work.
        assert token.rsplit(":", 1)[1] not in text, where
    # The refusals Django used to log with the path are logged, masked.
    django = logs["run command (uvicorn, Django)"]
    assert f"Method Not Allowed: {MASKED}" in django
    assert f"Service Unavailable: {MASKED}" in django
    # nginx logged every request on the link, with the path masked.
    access = logs["nginx access log"].splitlines()
    masked = [line for line in access if f" {MASKED} HTTP/1.1" in line]
    assert len(masked) >= len(answers) + 1
    assert any(f'"GET {MASKED} HTTP/1.1" 200 {len(data)} ' in line for line in masked)
    assert any(f'"TRACE {MASKED} HTTP/1.1" 405 ' in line for line in masked)
    assert any(f'"GET {MASKED} HTTP/1.1" 503 ' in line for line in masked)


def test_media_keys_are_still_logged_as_they_are(outage_stack) -> None:
    # Only share paths are masked: a key in the access log is what the audit
    # log already names, and operators follow requests by it.
    stack, _ = outage_stack
    alice = stack.login("alice", USERS["alice"])
    try:
        created = upload(alice, "plain.txt", b"plain\n", "text/plain").json()
        assert stack.raw("GET", created["url"], headers=cookie_header(alice)).status == 200
    finally:
        alice.close()
    # nginx writes a request's line once it has finished with it, which can
    # be just after the client has read the response.
    line = f'"GET {created["url"]} HTTP/1.1" 200 6 '
    wait_for(lambda: line in everything_logged(stack)["nginx access log"], "the line", 5)
