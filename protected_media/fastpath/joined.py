"""Several lookups in one statement, for a database a round trip away.

The lean path reads in steps (``compiled.Steps``). On PostgreSQL a step's
statements, each the ORM's own SQL, go as one statement: each becomes a
subquery LEFT JOINed to a single row, so that a step costs one round trip
however many lookups it holds. Every subquery but the last is cut to its
first row (they are lookups by primary key); the last may give several (the
rows holding a file), and the result then has one row for each. A marker
column before each subquery's columns tells a row that is there from one
the LEFT JOIN filled with NULLs.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from .compiled import Rows, Statement


def joined(statements: Sequence[Statement]) -> tuple[str, list[Any]]:
    """One statement (Django's format placeholders) and its parameters for
    ``statements``, whose answer ``split`` takes apart."""
    params: list[Any] = []
    for statement in statements:
        params.extend(statement.params)
    return _joined_sql(tuple(statement.sql for statement in statements)), params


# The lean path's steps are a few combinations of a few compiled lookups:
# the same string each time, whose hash Python keeps.
@functools.lru_cache(maxsize=64)
def _joined_sql(sqls: tuple[str, ...]) -> str:
    last = len(sqls) - 1
    parts = ["SELECT * FROM (SELECT 1) AS pm_one"]
    for index, sql in enumerate(sqls):
        limit = "" if index == last else " LIMIT 1"
        # The ORM's compiled SQL, whose values all go as parameters.
        subquery = f"SELECT 1 AS pm_here, pm_{index}.* FROM ({sql}) AS pm_{index}"  # noqa: S608
        parts.append(f"LEFT JOIN ({subquery}{limit}) AS pm_step_{index} ON TRUE")
    return " ".join(parts)


def split(statements: Sequence[Statement], rows: Rows) -> list[Rows]:
    """Each statement's rows, from the rows of ``joined``'s statement."""
    last = len(statements) - 1
    answers: list[Rows] = []
    # Past the single row's column.
    start = 1
    for index, statement in enumerate(statements):
        width = len(statement.attnames)
        here = [row[start + 1 : start + 1 + width] for row in rows if row[start] is not None]
        answers.append(here if index == last else here[:1])
        start += 1 + width
    return answers
