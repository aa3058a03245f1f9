"""On PostgreSQL, the lean path's statements go through libpq by name
(``fastpath.prepared``): the rows are psycopg's own, each statement is
prepared once per connection (and again if the server forgot it), a failure
is psycopg's error and leaves the connection idle, and a site whose pooler
cannot keep prepared statements gets none."""

from __future__ import annotations

import asyncio
import datetime
import decimal
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from django.db import connection

from tests.test_fast_path import fetch, world
from tests.test_fast_path_lean import OWNER, entry_point, teach

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="libpq's prepared statements: PostgreSQL's own"
    ),
]
__all__ = ["entry_point", "world"]  # fixtures, used by name

if connection.vendor == "postgresql":
    import psycopg

    from protected_media.fastpath import postgres_reads, prepared

# Each kind of value the ORM's lookups hand over and read back, a literal
# percent sign, and a parameter sent as NULL.
VALUES_SQL = (
    "SELECT %s::text AS key, %s::timestamptz AS moment, %s::uuid AS id, %s::bigint AS pk, "
    "%s::boolean AS flag, %s::numeric AS size, '100%%' AS literal, %s::text AS missing "
    "FROM generate_series(1, 3)"
)
VALUES = [
    "ÿ-key-\u2603",
    datetime.datetime(2026, 12, 4, 12, 30, 1, 123456, tzinfo=datetime.UTC),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    2**40,
    True,
    decimal.Decimal("12.50"),
    None,
]


@pytest.fixture
async def loop_connection() -> AsyncIterator[Any]:
    """A connection made as the entry point's pool makes them."""
    parameters = postgres_reads.connection_parameters(connection.alias)
    opened = await psycopg.AsyncConnection.connect(**parameters)
    yield opened
    await opened.close()


async def prepared_here(opened: Any) -> list[str]:
    cursor = await opened.execute(
        "SELECT name FROM pg_prepared_statements WHERE name LIKE 'pm\\_lean\\_%%' ORDER BY name"
    )
    return [name for (name,) in await cursor.fetchall()]


async def test_the_rows_are_those_psycopgs_cursor_gives(loop_connection) -> None:
    by_cursor = await (await loop_connection.execute(VALUES_SQL, VALUES, binary=True)).fetchall()

    first = await prepared.fetch(loop_connection, VALUES_SQL, VALUES)
    again = await prepared.fetch(loop_connection, VALUES_SQL, VALUES)

    assert first == again == by_cursor
    assert first[0][-2:] == ("100%", None) and len(first) == 3
    assert [type(value) for value in first[0]] == [type(value) for value in by_cursor[0]]


async def test_each_statement_is_prepared_once_and_no_more_than_the_bound(
    loop_connection,
) -> None:
    for _ in range(3):
        assert await prepared.fetch(loop_connection, "SELECT %s::int + 1", [1]) == [(2,)]
    assert await prepared_here(loop_connection) == ["pm_lean_0"]

    many = prepared.MAX_PREPARED + 6
    for number in range(many):
        sql = f"SELECT %s::int + {number}"
        assert await prepared.fetch(loop_connection, sql, [1]) == [(1 + number,)]

    # The bound's worth of statements, then the rest unnamed.
    assert len(await prepared_here(loop_connection)) == prepared.MAX_PREPARED
    assert await prepared.fetch(loop_connection, "SELECT %s::int + 1", [2]) == [(3,)]


async def test_statements_the_server_forgot_are_prepared_again(loop_connection) -> None:
    assert await prepared.fetch(loop_connection, "SELECT %s::text", ["a"]) == [("a",)]
    await loop_connection.execute("DEALLOCATE ALL")

    with pytest.raises(psycopg.errors.InvalidSqlStatementName):
        await prepared.fetch(loop_connection, "SELECT %s::text", ["b"])

    assert loop_connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert await prepared.fetch(loop_connection, "SELECT %s::text", ["c"]) == [("c",)]
    assert await prepared_here(loop_connection) == ["pm_lean_1"]


async def test_a_failing_statement_raises_psycopgs_error_and_leaves_the_connection_idle(
    loop_connection,
) -> None:
    with pytest.raises(psycopg.errors.DivisionByZero):
        await prepared.fetch(loop_connection, "SELECT 1 / %s::int", [0])

    assert loop_connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert await prepared.fetch(loop_connection, "SELECT 1 / %s::int", [1]) == [(1,)]


async def running_on_the_server(parameters: dict[str, Any], backend_pid: int) -> None:
    """Until the server says the backend runs a statement (not after a guessed delay)."""
    async with await psycopg.AsyncConnection.connect(**parameters) as watcher:
        for _ in range(500):
            cursor = await watcher.execute(
                "SELECT state FROM pg_stat_activity WHERE pid = %s", [backend_pid]
            )
            if await cursor.fetchone() == ("active",):
                return
            await asyncio.sleep(0.01)
    raise AssertionError(f"backend {backend_pid} never ran its statement")


async def test_a_statement_cancelled_midway_costs_its_connection_and_nothing_else() -> None:
    # As a request whose client went away: the pool closes the connection
    # it gets back busy, and the next statement runs on another.
    from psycopg_pool import AsyncConnectionPool

    parameters = postgres_reads.connection_parameters(connection.alias)
    async with AsyncConnectionPool(kwargs=parameters, min_size=1, max_size=1) as pool:
        busy = await pool.getconn()
        waiting = asyncio.ensure_future(prepared.fetch(busy, "SELECT pg_sleep(%s)", [5]))
        await running_on_the_server(parameters, busy.info.backend_pid)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert busy.info.transaction_status == psycopg.pq.TransactionStatus.ACTIVE
        await pool.putconn(busy)

        async with pool.connection(timeout=5) as fresh:
            assert fresh is not busy
            assert await prepared.fetch(fresh, "SELECT %s::int", [7]) == [(7,)]
        assert busy.closed


async def test_a_connection_that_keeps_no_prepared_statements_gets_none(
    loop_connection,
) -> None:
    parameters = {**postgres_reads.connection_parameters(connection.alias)}
    parameters["prepare_threshold"] = None
    async with await psycopg.AsyncConnection.connect(**parameters) as unprepared:
        for value in ("a", "b"):
            assert await prepared.fetch(unprepared, "SELECT %s::text", [value]) == [(value,)]
        assert await prepared_here(unprepared) == []


async def test_the_lean_path_answers_again_once_the_server_forgot_its_statements(
    world, entry_point, lean_answers
) -> None:
    opened: list[Any] = []

    def remember(sender: Any, connection: Any, **kwargs: Any) -> None:
        opened.append(connection)

    postgres_reads.connection_opened.connect(remember)
    try:
        await teach(entry_point, world)
        answered, _ = await fetch(entry_point, OWNER, world)
        assert answered.status_code == 200 and len(lean_answers) == 1
        # An administrator's DEALLOCATE ALL, or a pooler handing over a new
        # server connection.
        for pooled in opened:
            await pooled.execute("DEALLOCATE ALL")

        after = [(await fetch(entry_point, OWNER, world))[0] for _ in range(3)]
    finally:
        postgres_reads.connection_opened.disconnect(remember)

    assert [response.status_code for response in after] == [200] * 3
    assert {response.headers["X-Accel-Redirect"] for response in after} == {
        answered.headers["X-Accel-Redirect"]
    }
    # The first found its statement gone and went the usual path; the lean
    # path prepared it again for the next.
    assert len(lean_answers) == 3
