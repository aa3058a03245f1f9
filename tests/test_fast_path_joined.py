"""Several lookups in one statement (``fastpath.joined``) answer what each
answers alone: a row that is missing stays missing, the last lookup keeps
all its rows, and the others their first."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from protected_media.fastpath.compiled import CompiledLookup, Rows, Statement
from protected_media.fastpath.joined import joined, split

pytestmark = pytest.mark.django_db


def run(sql: str, params: list[Any]) -> Rows:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [tuple(row) for row in cursor.fetchall()]


def alone(statement: Statement) -> Rows:
    return run(statement.sql, statement.params)


def together(*statements: Statement) -> list[Rows]:
    return split(statements, run(*joined(statements)))


@pytest.fixture
def lookups() -> dict[str, Statement]:
    users = get_user_model()
    alice = users.objects.create_user("alice", password="a", last_name="Liddell")
    users.objects.create_user("lorina", password="b", last_name="Liddell")
    users.objects.create_user("carol", password="c", last_name="Carroll")
    by_pk = CompiledLookup(users, ["pk"], limit=21)
    by_last_name = CompiledLookup(users, ["last_name"], limit=21)
    statements = {
        "alice": by_pk.statement(alice.pk),
        "nobody": by_pk.statement(alice.pk + 1000),
        "liddells": by_last_name.statement("Liddell"),
    }
    assert all(statement is not None for statement in statements.values())
    return statements  # type: ignore[return-value]


def test_each_lookup_answers_as_it_does_alone(lookups) -> None:
    alice, nobody, liddells = lookups["alice"], lookups["nobody"], lookups["liddells"]
    assert len(alone(liddells)) == 2 and len(alone(alice)) == 1 and alone(nobody) == []

    found_alice, found_nobody, found_liddells = together(alice, nobody, liddells)

    assert found_alice == alone(alice)
    assert found_nobody == []
    # The rows of the last lookup, each once, in whatever order the join gives.
    assert sorted(found_liddells) == sorted(alone(liddells))


def test_a_missing_last_row_and_a_first_row_cut_to_one(lookups) -> None:
    alice, nobody, liddells = lookups["alice"], lookups["nobody"], lookups["liddells"]

    assert together(alice, nobody) == [alone(alice), []]
    # Not the last: its first row only, and the others' rows not repeated.
    first_liddell, found_alice = together(liddells, alice)
    assert len(first_liddell) == 1 and first_liddell[0] in alone(liddells)
    assert found_alice == alone(alice)
    assert together(nobody, nobody) == [[], []]
