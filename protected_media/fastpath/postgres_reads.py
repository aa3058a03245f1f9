"""The check's reads on the event loop, for PostgreSQL.

A thread hop costs about as much as the reads themselves, and the threads
contend with the loop for the interpreter. So for the common case (a session
row in Django's database session store, the user through ``ModelBackend``,
the record and the row holding its file, the default policy) the entry
point reads through psycopg's async connection pool, on the loop: the same
SQL the threads run (``compiled``), run by the same functions
(``loop_reads.load_on_loop``), whose statements ``bridge`` awaits, so other
requests go on while the database answers. Each statement is prepared once
per connection. They go one at a time, not in pipeline mode: sending the
record's lookup with the session's saves one round trip of four, but
leaving the pipeline waits for a sync of its own, and psycopg's pipeline
exchanges cost more CPU than the round trip they save (measured in
docs/performance.md). The lean path's steps (``aread_stored``) are plain
generators, driven here without a greenlet, and each step's one statement
goes through libpq by name (``prepared``).

The pool's connections are made with Django's own connection parameters and
adapters (``DatabaseWrapper.get_connection_params``), in autocommit, and
before the first read on the loop the entry point proves, in its threads,
that a connection made so answers the lookups as the ORM does
(``probe.loop_disagreement``).

Whatever the loop cannot answer exactly as the threads would (no session
row, a password changed, another backend or database, a policy of the
site's) goes to the threads untouched, and so does a request that finds no
free connection within ``POOL_WAIT`` seconds or meets any error of the
database's: the loop never writes, and a request it gave up on starts afresh
there.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.db import DatabaseError, connections
from django.dispatch import Signal
from django.http import HttpRequest
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ..conf import conf
from . import bridge, prepared, probe
from .compiled import LoopReader, NeedsThreads, Rows, Statement, Steps, arun_steps, reading_on_loop
from .joined import joined, split
from .loop_reads import Proof, common_case, give_up_for_good, load_on_loop, session_alias

if TYPE_CHECKING:
    from ..decision import Found
    from .sqlite_reads import InThreads

logger = logging.getLogger("protected_media")
T = TypeVar("T")

# Seconds a request waits for a free connection of the loop's pool before it
# goes to the threads (which have their own): a burst overflows there
# rather than queueing behind the loop's few connections.
POOL_WAIT = 0.5
# Sent with ``connection`` (a ``psycopg.AsyncConnection``) each time the
# pool opens one, as Django's ``connection_created`` is for its own.
connection_opened = Signal()


def connection_parameters(alias: str) -> dict[str, Any]:
    """What Django connects ``alias`` with (its adapters and time zone
    among them), for a connection that only reads, in autocommit, and
    prepares each statement on its first use: the check runs the same four
    again and again. A site whose pooler cannot keep prepared statements
    (PgBouncer in transaction mode before 1.21) says so as it does for
    Django, with ``"prepare_threshold": None`` in the database's OPTIONS."""
    connection = connections[alias]
    parameters = dict(connection.get_connection_params())
    # Django's cursor classes are synchronous; psycopg's defaults fit each kind.
    parameters.pop("cursor_factory", None)
    parameters["autocommit"] = True
    parameters["prepare_threshold"] = connection.settings_dict["OPTIONS"].get(
        "prepare_threshold", 0
    )
    return parameters


def enabled() -> bool:
    """Whether the settings let media requests read PostgreSQL on the loop."""
    return conf.fast_path_postgres_connections is not None and common_case()


class PostgresReads:
    """One entry point's pool, opened on its first read on the loop."""

    def __init__(self) -> None:
        self._pool: AsyncConnectionPool | None = None
        self._alias: str | None = None
        self._parameters: dict[str, Any] | None = None
        # Set for good by an error that is not the database's (a Django
        # internal that changed under the loop): the threads answer from then on.
        self._broken = False
        self._proof = Proof()

    async def aload(
        self, request: HttpRequest, key: str, in_threads: InThreads
    ) -> tuple[Any, Found | None] | None:
        """What the entry point's ``_load`` finds, read on the event loop;
        None where the threads must read it."""
        if not probe.copies_proven() or not enabled() or self._broken:
            return None
        session = getattr(request, "session", None)
        # Django's database store exactly: a subclass may load or decode otherwise.
        if type(session) is not DatabaseSessionStore:
            return None
        if not await self._proof.established(in_threads, self.prove):
            return None
        # A fresh store: the one on the request stays unread if the threads
        # take over, so that they read the session themselves.
        store = DatabaseSessionStore(session.session_key)
        try:
            pool = await self._opened_pool()
            async with pool.connection(timeout=POOL_WAIT) as connection:
                reader = LoopReader(
                    alias=session_alias(),
                    execute=lambda sql, params: bridge.await_(_fetch(connection, sql, params)),
                    qmark=False,
                    database_errors=(psycopg.Error,),
                )
                loaded = await bridge.run(_load, reader, store, key)
        except NeedsThreads:
            return None
        except (psycopg.Error, PoolTimeout):
            # Busy, restarting or gone: the threads this time (and the pool
            # replaces a connection that broke).
            return None
        except Exception:
            self._broken = True
            give_up_for_good()
            return None
        request.session = store
        return loaded

    async def aread_stored(self, steps: Steps[T]) -> T | None:
        """What ``steps`` read as stored values (psycopg's types), each step
        in one statement (``joined``) and so one round trip, on the loop;
        None where it cannot (the loop's reads not proven, no free
        connection, an error of the database's, a statement for another
        database)."""
        if not self._proof.result or self._broken or not enabled():
            return None
        try:
            pool = await self._opened_pool()
            # Not ``pool.connection()``: the connection's own context would
            # end a transaction that autocommit never opens.
            connection = await pool.getconn(timeout=POOL_WAIT)
            try:
                # The steps are plain generators: no greenlet needed to await them.
                return await arun_steps(
                    steps, session_alias(), lambda statements: _fetch_joined(connection, statements)
                )
            finally:
                await pool.putconn(connection)
        except (psycopg.Error, PoolTimeout):
            return None

    def prove(self) -> bool | None:
        """Run the fast path's lookups through a connection made as the pool's
        are, against the ORM (blocking, in a thread). A failing database
        leaves the question open for the next request."""
        alias = session_alias()
        parameters = connection_parameters(alias)
        try:
            with psycopg.Connection.connect(**parameters) as connection:

                def execute(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
                    return connection.execute(sql, params).fetchall()

                reader = LoopReader(
                    alias=alias, execute=execute, qmark=False, database_errors=(psycopg.Error,)
                )
                failure = probe.loop_disagreement(reader)
        except (DatabaseError, psycopg.Error):
            return None
        if failure is not None:
            logger.warning(
                "protected_media: reads on the event loop disagree with the ORM (%s); "
                "media requests read in the threads",
                failure,
            )
        self._alias, self._parameters = alias, parameters
        return failure is None

    async def _opened_pool(self) -> AsyncConnectionPool:
        if self._pool is None:
            size = conf.fast_path_postgres_connections or 1
            pool = AsyncConnectionPool(
                kwargs=self._parameters,
                min_size=1,
                max_size=size,
                open=False,
                name="protected-media-loop",
                configure=_configured,
            )
            # Connections are made in the background; a request waits for
            # one at most POOL_WAIT seconds.
            await pool.open(wait=False)
            self._pool = pool
        return self._pool

    async def aclose(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()


async def _configured(connection: psycopg.AsyncConnection[Any]) -> None:
    connection_opened.send(sender=PostgresReads, connection=connection)


async def _fetch(
    connection: psycopg.AsyncConnection[Any], sql: str, params: list[Any]
) -> list[tuple[Any, ...]]:
    cursor = await connection.execute(sql, params)
    return await cursor.fetchall()


async def _fetch_joined(
    connection: psycopg.AsyncConnection[Any], statements: list[Statement]
) -> list[Rows]:
    if len(statements) == 1:
        sql, params = statements[0].sql, statements[0].params
    else:
        sql, params = joined(statements)
    rows = await prepared.fetch(connection, sql, params)
    return [rows] if len(statements) == 1 else split(statements, rows)


def _load(reader: LoopReader, store: DatabaseSessionStore, key: str) -> tuple[Any, Found | None]:
    with reading_on_loop(reader):
        return load_on_loop(store, key)
