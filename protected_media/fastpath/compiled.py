"""ORM lookups whose SQL is compiled once and then run with new values.

Building and compiling a queryset costs several times more than running its
SQL (on a small machine, about 0.2 ms against 0.05 ms for a primary-key
lookup), and the media check makes a few such lookups per request. A
``CompiledLookup`` takes the SQL from the ORM's own compiler, so it is exactly
the query the queryset would run, and rebuilds model instances the way the
queryset would (database converters, then ``Model.from_db``).

The compiled form is kept per thread and per database alias, because the
compiler holds the connection it was compiled for. Where the compiled
parameters are not exactly the values given (a lookup that transforms its
value, a manager that adds filters of its own), the lookup says so once and
runs the plain queryset every time instead: slower, never different.

Within ``reading_on_loop`` (``sqlite_reads``, ``postgres_reads``), ``fetch``
runs the same SQL on a connection of the caller's, on the event loop, and
raises ``NeedsThreads`` for anything it cannot answer there.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import threading
from collections.abc import Awaitable, Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model, Q, QuerySet
from django.db.models.sql.compiler import SQLCompiler

logger = logging.getLogger("protected_media")

M = TypeVar("M", bound=Model)
T = TypeVar("T")

# One switch for the whole process, cleared for good by ``run_through_orm``.
_compiling = True


def run_through_orm() -> None:
    """From now on, every lookup runs its plain queryset."""
    global _compiling
    _compiling = False


class Uncompilable(Exception):
    """The queryset's SQL cannot be run again with new values as it stands."""


class NeedsThreads(Exception):
    """What the request needs cannot be read on the event loop: it goes to the
    threads, which answer as they always have."""


# Runs one statement (qmark style) with its parameters and returns its rows.
Execute = Callable[[str, list[Any]], list[tuple[Any, ...]]]


@dataclass(frozen=True)
class LoopReader:
    # The database alias the connection behind ``execute`` reads.
    alias: str
    execute: Execute
    # Whether ``execute`` takes qmark placeholders (sqlite3) rather than the
    # format ones Django's SQL has (psycopg takes those as they are).
    qmark: bool = True
    # What ``execute`` raises for the database's own failures (busy, gone):
    # worth another try later, unlike anything else.
    database_errors: tuple[type[Exception], ...] = ()


_loop_reader: contextvars.ContextVar[LoopReader | None] = contextvars.ContextVar(
    "protected_media_loop_reader", default=None
)


@contextlib.contextmanager
def reading_on_loop(reader: LoopReader) -> Iterator[None]:
    """Within it, lookups run through ``reader`` rather than Django's connection."""
    token = _loop_reader.set(reader)
    try:
        yield
    finally:
        _loop_reader.reset(token)


def on_loop() -> bool:
    """Whether lookups run through a loop reader now (``reading_on_loop``)."""
    return _loop_reader.get() is not None


# Django's SQLite cursor turns its "format" placeholders into "qmark" ones in
# the same way (SQLiteCursorWrapper.convert_query); the probe proves the result.
_FORMAT_PLACEHOLDER = re.compile(r"(?<!%)%s")


def _qmark(sql: str) -> str:
    return _FORMAT_PLACEHOLDER.sub("?", sql).replace("%%", "%")


@dataclass(frozen=True)
class _Compiled:
    sql: str
    # The same SQL for a plain sqlite3 connection.
    qmark_sql: str
    compiler: SQLCompiler
    converters: dict[int, Any]
    attnames: tuple[str, ...]


class Statement(NamedTuple):
    """One run of a compiled lookup: its SQL as Django runs it and for a
    plain sqlite3 connection, the parameters adapted as ``fetch`` adapts
    them, and the attribute each selected column fills, in order."""

    alias: str
    sql: str
    qmark_sql: str
    params: list[Any]
    attnames: tuple[str, ...]


Rows = list[tuple[Any, ...]]
# Reads as steps: a generator that yields the statements it needs next
# (each but the last giving at most one row) and is sent their rows, in the
# same order, until it returns what it read. The database's reads run the
# steps (``sqlite_reads``, ``postgres_reads``); one step is one round trip.
Steps = Generator[list[Statement], list[Rows], T | None]


def run_steps(
    steps: Steps[T], alias: str, run: Callable[[list[Statement]], list[Rows]]
) -> T | None:
    """What ``steps`` read from the database ``alias``, with each step's
    statements run by ``run``; None where a statement reads another database."""
    try:
        statements = next(steps)
        while _all_in(alias, statements):
            statements = steps.send(run(statements))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    steps.close()
    return None


async def arun_steps(
    steps: Steps[T], alias: str, run: Callable[[list[Statement]], Awaitable[list[Rows]]]
) -> T | None:
    """``run_steps`` for a database whose statements are awaited."""
    try:
        statements = next(steps)
        while _all_in(alias, statements):
            statements = steps.send(await run(statements))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    steps.close()
    return None


def _all_in(alias: str, statements: list[Statement]) -> bool:
    return all(statement.alias == alias for statement in statements)


class CompiledLookup(Generic[M]):
    """``model._default_manager.filter(<lookups>=values)[:limit]``, compiled once.

    ``lookups`` are plain field lookups such as ``"pk"`` or
    ``"expire_date__gt"``; ``fetch`` takes their values in the same order.
    """

    def __init__(self, model: type[M], lookups: Sequence[str], *, limit: int) -> None:
        self.model = model
        self.lookups = tuple(lookups)
        self.limit = limit
        self.fields: tuple[Field[Any, Any], ...] = tuple(
            self._field(lookup) for lookup in self.lookups
        )
        self._local = threading.local()
        self._uncompilable = False

    def fetch(self, *values: Any) -> list[M]:
        alias = router.db_for_read(self.model)
        reader = _loop_reader.get()
        if reader is not None:
            compiled = self._compiled(alias, values) if _compiling else None
            if compiled is None:
                raise NeedsThreads(f"{self.model.__name__} runs through the ORM")
            return self._run(compiled, alias, values)
        compiled = self._compiled(alias, values) if _compiling else None
        if compiled is None:
            return list(self.queryset(alias, values))
        return self._run(compiled, alias, values)

    def fetch_compiled(self, *values: Any) -> list[M]:
        """What ``fetch`` answers through SQL compiled afresh, never through the
        queryset: ``Uncompilable`` where ``fetch`` would run the queryset, and
        whatever a changed Django internal raises."""
        alias = router.db_for_read(self.model)
        return self._run(self._compile(alias, values), alias, values)

    def statement(self, *values: Any) -> Statement | None:
        """The SQL ``fetch`` runs for ``values`` and its parameters, for a
        caller that reads the raw rows itself (``lean``); None where ``fetch``
        would run the queryset."""
        alias = router.db_for_read(self.model)
        compiled = self._compiled(alias, values) if _compiling else None
        if compiled is None:
            return None
        return Statement(
            alias=alias,
            sql=compiled.sql,
            qmark_sql=compiled.qmark_sql,
            params=self._params(compiled.compiler.connection, values),
            attnames=compiled.attnames,
        )

    def queryset(self, alias: str, values: Sequence[Any]) -> QuerySet[M]:
        """The queryset this lookup stands for."""
        # One Q per lookup keeps their order in the SQL's parameters (keyword
        # arguments would be sorted by name).
        filters = [Q(**{lookup: value}) for lookup, value in zip(self.lookups, values, strict=True)]
        return self.model._default_manager.using(alias).filter(*filters)[: self.limit]

    def _params(self, connection: BaseDatabaseWrapper, values: Sequence[Any]) -> list[Any]:
        return [
            field.get_db_prep_value(value, connection, prepared=False)
            for field, value in zip(self.fields, values, strict=True)
        ]

    def _run(self, compiled: _Compiled, alias: str, values: Sequence[Any]) -> list[M]:
        reader = _loop_reader.get()
        if reader is not None:
            if alias != reader.alias:
                raise NeedsThreads(f"{self.model.__name__} is not in the loop's database")
            # The values are adapted by the connection the SQL was compiled
            # for, as the converters below are: its operations, not its
            # socket, and no lookup through asgiref's Local on each request.
            params = self._params(compiled.compiler.connection, values)
            rows = reader.execute(compiled.qmark_sql if reader.qmark else compiled.sql, params)
        else:
            # Looked up once: each lookup of a connection goes through asgiref's Local.
            connection = connections[alias]
            params = self._params(connection, values)
            with connection.cursor() as cursor:
                cursor.execute(compiled.sql, params)
                rows = cursor.fetchall()
        converted = (
            compiled.compiler.apply_converters(rows, compiled.converters)
            if compiled.converters
            else rows
        )
        return [self.model.from_db(alias, compiled.attnames, tuple(row)) for row in converted]

    def _compiled(self, alias: str, values: Sequence[Any]) -> _Compiled | None:
        if self._uncompilable:
            return None
        cache: dict[str, _Compiled] = self._local.__dict__.setdefault("by_alias", {})
        if alias in cache:
            return cache[alias]
        try:
            compiled = self._compile(alias, values)
        except Uncompilable:
            self._uncompilable = True
            logger.warning(
                "protected_media: the lookup %s.filter(%s) cannot be compiled once; "
                "it runs through the ORM on every request",
                self.model.__name__,
                ", ".join(self.lookups),
            )
            return None
        cache[alias] = compiled
        return compiled

    def _compile(self, alias: str, values: Sequence[Any]) -> _Compiled:
        queryset = self.queryset(alias, values)
        connection = connections[alias]
        compiler = queryset.query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
        expected = [
            field.get_db_prep_value(value, connection, prepared=False)
            for field, value in zip(self.fields, values, strict=True)
        ]
        klass_info = compiler.klass_info
        if (
            list(params) != expected
            or klass_info is None
            or klass_info.get("related_klass_infos")
            or compiler.annotation_col_map
        ):
            raise Uncompilable(f"{self.model.__name__}.filter({', '.join(self.lookups)})")
        selected = compiler.select[
            klass_info["select_fields"][0] : klass_info["select_fields"][-1] + 1
        ]
        attnames = tuple(column[0].target.attname for column in selected)
        columns = [column[0] for column in compiler.select[: compiler.col_count]]
        return _Compiled(
            sql=sql,
            qmark_sql=_qmark(sql),
            compiler=compiler,
            converters=compiler.get_converters(columns),
            attnames=attnames,
        )

    def _field(self, lookup: str) -> Field[Any, Any]:
        name = lookup.split("__", 1)[0]
        meta = self.model._meta
        field = meta.pk if name == "pk" else meta.get_field(name)
        if not isinstance(field, Field):
            raise TypeError(f"{self.model.__name__}.{name} is not a concrete field")
        return field
