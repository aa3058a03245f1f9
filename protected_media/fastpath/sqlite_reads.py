"""The check's reads on the event loop, for a database in one SQLite file.

A thread hop costs more than the reads themselves: SQLite answers a lookup by
primary key in tens of microseconds, in this process. So for the common case
(a session row in Django's database session store, the user through
``ModelBackend``, the record and the row holding its file, the default
policy) the entry point reads on the event loop, through a read-only
connection of its own, the same SQL the threads run (``compiled``).

What keeps the loop from stalling is SQLite's busy timeout: a read that finds
a writer holding the file waits at most
``PROTECTED_MEDIA_FAST_PATH_SQLITE_BUSY_MS`` milliseconds, then gives up, and
the request goes to the threads, which wait for the writer as before. In WAL
mode (``PRAGMA journal_mode=WAL``) readers do not wait for writers at all;
without it, every commit makes the readers of that moment wait.

Whatever the loop cannot answer exactly as the threads would (no session row,
a password changed, another backend, another database, a policy of the
site's, an error of any kind) it hands to the threads untouched: it never
writes, and a request it gave up on starts afresh there.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.db import DatabaseError, connections
from django.dispatch import Signal
from django.http import HttpRequest

from ..conf import conf
from . import probe
from .compiled import LoopReader, NeedsThreads, Rows, Statement, Steps, reading_on_loop, run_steps
from .loop_reads import Proof, common_case, give_up_for_good, load_on_loop, session_alias

if TYPE_CHECKING:
    from ..decision import Found

InThreads = Callable[..., Awaitable[Any]]
T = TypeVar("T")

logger = logging.getLogger("protected_media")

SQLITE_ENGINE = "django.db.backends.sqlite3"
# Sent with ``connection`` (a ``sqlite3.Connection``) each time one is opened,
# as Django's ``connection_created`` is for its own connections.
connection_opened = Signal()


def database_file(alias: str) -> Path | None:
    """The file of a SQLite database alias, or None where there is no plain
    file to open (another engine, an in-memory or URI database)."""
    if alias not in connections.settings:
        return None
    config = connections.settings[alias]
    name = config.get("NAME")
    if config.get("ENGINE") != SQLITE_ENGINE or not name or config.get("OPTIONS", {}).get("uri"):
        return None
    text = str(name)
    if text == ":memory:" or text.startswith("file:"):
        return None
    return Path(text).resolve()


def open_read_only(path: Path, busy_ms: int, *, typed: bool = True) -> sqlite3.Connection:
    """A connection that can only read ``path``, typed as Django's are, or
    (``typed=False``) answering the values as stored."""
    connection = sqlite3.connect(
        f"{path.as_uri()}?mode=ro",
        uri=True,
        # Django's SQLite connections parse declared types with the converters
        # its backend registers on the sqlite3 module: rows come back alike.
        detect_types=sqlite3.PARSE_DECLTYPES | sqlite3.PARSE_COLNAMES if typed else 0,
        isolation_level=None,
        # The probe opens one in a thread; each connection has a single user.
        check_same_thread=False,
    )
    connection.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
    connection_opened.send(sender=open_read_only, connection=connection)
    return connection


def reader_for(connection: sqlite3.Connection, alias: str) -> LoopReader:
    def execute(sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        return connection.execute(sql, params).fetchall()

    return LoopReader(alias=alias, execute=execute, database_errors=(sqlite3.Error,))


class SqliteReads:
    """One entry point's read-only connection, opened on first use and used
    only on its event loop."""

    def __init__(self) -> None:
        self._typed = _Connection(typed=True)
        # Set for good by an error that is not the database's (a Django
        # internal that changed under the loop): the threads answer from then on.
        self._broken = False
        self._proof = Proof()
        # The lean path's (``read_stored``).
        self._stored = _Connection(typed=False)

    async def aload(
        self, request: HttpRequest, key: str, in_threads: InThreads
    ) -> tuple[Any, Found | None] | None:
        """What the entry point's ``_load`` finds, read on the event loop;
        None where the threads must read it. ``in_threads`` runs a blocking
        call in the entry point's threads."""
        busy_ms = conf.fast_path_sqlite_busy_ms
        # Only through the copies the probe proved: they are what runs here.
        if busy_ms is None or not probe.copies_proven() or not enabled():
            return None
        if not await self._proof.established(in_threads, self.prove, busy_ms):
            return None
        return self.load(request, key, busy_ms)

    def load(self, request: HttpRequest, key: str, busy_ms: int) -> tuple[Any, Found | None] | None:
        """The user and what the database holds for ``key``, as the threads'
        ``_load`` finds them; None where the threads must answer."""
        session = getattr(request, "session", None)
        # Django's database store exactly: a subclass may load or decode otherwise.
        if not self._proof.result or self._broken or type(session) is not DatabaseSessionStore:
            return None
        alias = session_alias()
        # A fresh store: the one on the request stays unread if the threads
        # take over, so that they read the session themselves.
        store = DatabaseSessionStore(session.session_key)
        try:
            reader = self._reader(alias, busy_ms)
            if reader is None:
                return None
            with reading_on_loop(reader):
                loaded = load_on_loop(store, key)
        except NeedsThreads:
            return None
        except sqlite3.Error as error:
            # Busy (a writer held the file past the timeout) or worse: a new
            # connection next time, the threads this time.
            if not _is_busy(error):
                self.close()
            return None
        except Exception:
            self._broken = True
            self.close()
            give_up_for_good()
            return None
        request.session = store
        return loaded

    async def aread_stored(self, steps: Steps[T]) -> T | None:
        """What ``steps`` read, in one read transaction, through a connection
        that answers the values as stored (no converters: the lean path reads
        a few columns of each row, not model instances); None where it
        cannot (the loop's reads not proven, a busy file, an error of the
        database's, a statement for another database)."""
        busy_ms = conf.fast_path_sqlite_busy_ms
        if busy_ms is None or not self._proof.result or self._broken:
            return None
        alias = session_alias()
        try:
            connection = self._stored.opened(alias, busy_ms)
            if connection is None:
                return None

            def run(statements: list[Statement]) -> list[Rows]:
                return [
                    connection.execute(statement.qmark_sql, statement.params).fetchall()
                    for statement in statements
                ]

            # One snapshot for every row, and SQLite's locks taken once. The
            # steps run on the loop: each statement takes tens of microseconds.
            connection.execute("BEGIN")
            try:
                return run_steps(steps, alias, run)
            finally:
                connection.execute("ROLLBACK")
        except sqlite3.Error as error:
            if not _is_busy(error):
                self._stored.close()
            return None

    def prove(self, busy_ms: int) -> bool | None:
        """Run the fast path's lookups through a connection like the loop's,
        against the ORM (blocking, in a thread). A busy or failing database
        leaves the question open for the next request."""
        alias = session_alias()
        path = database_file(alias)
        if path is None:
            return False
        try:
            connection = open_read_only(path, busy_ms)
        except sqlite3.Error:
            return None
        try:
            failure = probe.loop_disagreement(reader_for(connection, alias))
        except (DatabaseError, sqlite3.Error):
            return None
        finally:
            connection.close()
        if failure is not None:
            logger.warning(
                "protected_media: reads on the event loop disagree with the ORM (%s); "
                "media requests read in the threads",
                failure,
            )
        return failure is None

    def close(self) -> None:
        self._typed.close()
        self._stored.close()

    async def aclose(self) -> None:
        self.close()

    def _reader(self, alias: str, busy_ms: int) -> LoopReader | None:
        connection = self._typed.opened(alias, busy_ms)
        return reader_for(connection, alias) if connection is not None else None


class _Connection:
    """A read-only connection to the file of one database alias, opened on
    first use and again for another alias."""

    def __init__(self, *, typed: bool) -> None:
        self._typed = typed
        self._connection: sqlite3.Connection | None = None
        self._alias: str | None = None

    def opened(self, alias: str, busy_ms: int) -> sqlite3.Connection | None:
        if self._connection is not None and self._alias != alias:
            self.close()
        if self._connection is None:
            path = database_file(alias)
            if path is None:
                return None
            self._connection = open_read_only(path, busy_ms, typed=self._typed)
            self._alias = alias
        return self._connection

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def _is_busy(error: sqlite3.Error) -> bool:
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(error)


def enabled() -> bool:
    """Whether the settings let media requests read on the loop: the setting
    on, and the common case's settings (``loop_reads.common_case``)."""
    return conf.fast_path_sqlite_busy_ms is not None and common_case()
