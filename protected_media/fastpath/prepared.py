"""The lean path's statements on PostgreSQL, run through libpq itself.

For each statement, psycopg's cursor makes a cursor, drives libpq through
generators, arms a timer for each wait and reads the query's placeholders
again: about a quarter of the worker's CPU for a request the lean path
answers, on the loop every request shares (docs/performance.md). The lean
path sends one statement a step, and its SQL is one of the few the ORM
compiled (``compiled``, ``joined``). So here each statement is prepared once
per connection and then sent by name through psycopg's libpq wrapper
(``psycopg.pq``), and the rows are loaded by psycopg's ``Transformer`` with
the connection's own adapters: the values psycopg's cursor would give, for
less work.

Where the database's OPTIONS turn prepared statements off
(``"prepare_threshold": None``, for a pooler that cannot keep them), each
statement goes unnamed, as psycopg's cursor would send it then.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import weakref
from typing import Any

import psycopg
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer

# Statements prepared on one connection at most, counting those the server
# forgot: the lean path's are a few (its steps, joined), each with the
# parameter types it is sent with. Any more go unnamed.
MAX_PREPARED = 64
# SQL strings converted once per connection at most (the same few, in fact).
MAX_QUERIES = 256

Rows = list[tuple[Any, ...]]

# Django's SQL takes "format" placeholders, and a literal % doubled.
_FORMAT_TOKEN = re.compile(r"%[%s]")


class _Prepared:
    """What one connection has prepared, and its adapters."""

    def __init__(self, connection: psycopg.AsyncConnection[Any]) -> None:
        self.transformer = Transformer.from_context(connection)
        self.encoding = connection.info.encoding
        # Each SQL as PostgreSQL takes it, with numbered placeholders.
        self.queries: dict[str, bytes] = {}
        self.names: dict[tuple[bytes, tuple[int, ...]], bytes] = {}
        # Names are never used twice: one the server still knows cannot be
        # prepared again.
        self.named = 0
        self.unnamed = connection.prepare_threshold is None

    def query(self, sql: str) -> bytes:
        query = self.queries.get(sql)
        if query is None:
            numbers = itertools.count(1)

            def placeholder(token: re.Match[str]) -> str:
                return "%" if token[0] == "%%" else f"${next(numbers)}"

            query = _FORMAT_TOKEN.sub(placeholder, sql).encode(self.encoding)
            if len(self.queries) < MAX_QUERIES:
                self.queries[sql] = query
        return query


_by_connection: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], _Prepared] = (
    weakref.WeakKeyDictionary()
)


async def fetch(connection: psycopg.AsyncConnection[Any], sql: str, params: list[Any]) -> Rows:
    """The rows of ``sql`` (Django's placeholders) with ``params``, in binary,
    from ``connection`` (in autocommit, and idle: the caller holds it alone).
    Raises ``psycopg.Error`` for the database's failures, which leave the
    connection idle; cancelled midway, it leaves it busy, for the pool to
    close."""
    prepared = _by_connection.get(connection)
    if prepared is None:
        prepared = _by_connection[connection] = _Prepared(connection)
    pgconn = connection.pgconn
    transformer = prepared.transformer
    query = prepared.query(sql)
    values = transformer.dump_sequence(params, [PyFormat.AUTO] * len(params))
    types = tuple(transformer.types or ())
    formats = transformer.formats
    name = prepared.names.get((query, types))
    if name is None and not prepared.unnamed and prepared.named < MAX_PREPARED:
        name = b"pm_lean_%d" % prepared.named
        prepared.named += 1
        pgconn.send_prepare(name, query, types)
        await _result(pgconn, connection, pq.ExecStatus.COMMAND_OK)
        prepared.names[(query, types)] = name
    try:
        if name is None:
            pgconn.send_query_params(query, values, types, formats, pq.Format.BINARY)
        else:
            pgconn.send_query_prepared(name, values, formats, pq.Format.BINARY)
        result = await _result(pgconn, connection, pq.ExecStatus.TUPLES_OK)
    except psycopg.errors.InvalidSqlStatementName:
        # The server forgot them (DEALLOCATE, or a pooler's new server
        # connection): they are prepared again as they are next needed.
        prepared.names.clear()
        raise
    transformer.set_pgresult(result, format=pq.Format.BINARY)
    return transformer.load_rows(0, result.ntuples, tuple)


async def _result(
    pgconn: pq.abc.PGconn, connection: psycopg.AsyncConnection[Any], expected: pq.ExecStatus
) -> pq.abc.PGresult:
    """The one result of what was just sent, awaited on the loop."""
    loop = asyncio.get_running_loop()
    socket = pgconn.socket
    while pgconn.flush():
        await _ready(loop, socket, loop.add_writer, loop.remove_writer)
    while True:
        pgconn.consume_input()
        if not pgconn.is_busy():
            break
        await _ready(loop, socket, loop.add_reader, loop.remove_reader)
    results = []
    while (result := pgconn.get_result()) is not None:
        results.append(result)
    for result in results:
        if result.status != expected:
            raise psycopg.errors.error_from_result(result, encoding=connection.info.encoding)
    if len(results) != 1:
        raise psycopg.InterfaceError(f"{len(results)} results for one statement")
    return results[0]


async def _ready(loop: asyncio.AbstractEventLoop, socket: int, add: Any, remove: Any) -> None:
    waiter = loop.create_future()
    add(socket, _wake, waiter)
    try:
        await waiter
    finally:
        remove(socket)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
