"""What the tests see of the entry point's own connections on the event loop
(``fastpath.sqlite_reads`` and ``fastpath.postgres_reads``): every statement
they run, through the drivers' own hooks, and on PostgreSQL the lean path's,
which go through libpq by name (``fastpath.prepared``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from protected_media.fastpath import sqlite_reads


@contextlib.contextmanager
def traced(record: Callable[[str], None]) -> Iterator[None]:
    """Within it, ``record(sql)`` for each statement a loop connection opened
    meanwhile runs: SQLite's trace (values in place of the placeholders) or
    the statement psycopg is given (placeholders kept)."""

    def on_sqlite(sender: Any, connection: Any, **kwargs: Any) -> None:
        connection.set_trace_callback(record)

    def on_postgres(sender: Any, connection: Any, **kwargs: Any) -> None:
        import psycopg

        class TracedCursor(psycopg.AsyncCursor):  # type: ignore[type-arg]
            async def execute(self, query: Any, params: Any = None, **options: Any) -> Any:
                record(str(query))
                return await super().execute(query, params, **options)

        connection.cursor_factory = TracedCursor

    sqlite_reads.connection_opened.connect(on_sqlite)
    postgres = _postgres_signal()
    if postgres is not None:
        postgres.connect(on_postgres)
    try:
        with _prepared_traced(record):
            yield
    finally:
        sqlite_reads.connection_opened.disconnect(on_sqlite)
        if postgres is not None:
            postgres.disconnect(on_postgres)


def _postgres_signal() -> Any:
    try:
        from protected_media.fastpath import postgres_reads
    except ImportError:  # no psycopg: no PostgreSQL either
        return None
    return postgres_reads.connection_opened


@contextlib.contextmanager
def _prepared_traced(record: Callable[[str], None]) -> Iterator[None]:
    try:
        from protected_media.fastpath import prepared
    except ImportError:
        yield
        return
    fetch = prepared.fetch

    async def traced_fetch(connection: Any, sql: str, params: list[Any]) -> Any:
        record(sql)
        return await fetch(connection, sql, params)

    prepared.fetch = traced_fetch  # type: ignore[assignment]
    try:
        yield
    finally:
        prepared.fetch = fetch  # type: ignore[assignment]
