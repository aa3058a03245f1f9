"""The database goes away under a running stack, for real: PostgreSQL stops
taking connections to the stack's database and drops the ones it has. Media
answers 503 with Retry-After (never a traceback, never a file), static files
keep flowing from nginx, and the app recovers by itself when the database is
back. Always on PostgreSQL, whichever database the rest of the suite uses."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from .conftest import USERS, postgres_stack
from .harness import ADMIN_URL, Stack, cookie_header, postgres_admin, upload

pytestmark = pytest.mark.stack

RECOVERY_TIMEOUT = 60.0
RECOVERED_IN_A_ROW = 10


def take_down(database: str) -> None:
    postgres_admin("ALTER DATABASE {name} ALLOW_CONNECTIONS false", database)
    with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
        connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (database,),
        )


@pytest.fixture(scope="module")
def down_stack(tmp_path_factory) -> Iterator[tuple[Stack, str]]:
    with postgres_stack(tmp_path_factory, "database-down") as (stack, database, _):
        try:
            yield stack, database
        finally:
            postgres_admin("ALTER DATABASE {name} ALLOW_CONNECTIONS true", database)


def test_media_answers_503_while_the_database_is_down_and_recovers(down_stack) -> None:
    stack, database = down_stack
    alice = stack.login("alice", USERS["alice"])
    try:
        created = upload(alice, "ledger.txt", b"balanced\n", "text/plain").json()
        headers = cookie_header(alice)
        assert stack.raw("GET", created["url"], headers=headers).status == 200

        take_down(database)
        try:
            answers = [stack.raw("GET", created["url"], headers=headers) for _ in range(5)]
            static = stack.raw("GET", "/static/demo/site.css")
        finally:
            postgres_admin("ALTER DATABASE {name} ALLOW_CONNECTIONS true", database)

        for answer in answers:
            assert answer.status == 503
            assert answer.body == b"Service Unavailable\n"
            assert answer.headers["retry-after"] == "5"
            assert answer.headers["content-type"] == "text/plain; charset=utf-8"
            assert not [name for name in answer.headers if name.startswith("x-accel")]
        assert static.status == 200
        # One line for the outage, not one per request.
        assert stack.log().count("the database cannot answer") == 1

        # Recovered: ten answers in a row are the file. The database's pool
        # reconnects with a backoff, so a request may still wait out its pool
        # timeout (a 503) while the pool refills.
        deadline = time.monotonic() + RECOVERY_TIMEOUT
        in_a_row = 0
        while in_a_row < RECOVERED_IN_A_ROW:
            assert time.monotonic() < deadline, f"no recovery:\n{stack.log()[-3000:]}"
            response = stack.raw("GET", created["url"], headers=headers)
            assert response.status in (200, 503)
            if response.status == 200:
                assert response.body == b"balanced\n"
                in_a_row += 1
            else:
                in_a_row = 0
                time.sleep(0.2)
        assert "the database answers again" in stack.log()
    finally:
        alice.close()
