"""What the lean path remembers between requests to read in fewer steps.

``stored_grant.grantee`` reads in steps (``compiled.Steps``); each step is a
round trip on PostgreSQL. Its second step reads what the first showed: the
user a session names, the row holding the file a record names. Where an
earlier request of the same session showed those, the first step reads them
beside its own statements (``read_step``), and the rows read then decide as
on any request: a guess that no longer holds costs the step it would have
saved, never the answer. A request its session was declined before goes
straight to the usual path, which decides it as it decides every request.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any, NamedTuple

from .compiled import CompiledLookup, Rows, Statement

# Statements made, by their lookup and its values.
MadeStatements = dict[tuple[CompiledLookup[Any], tuple[Any, ...]], Statement]


class JudgedFile(NamedTuple):
    """What a key's record showed of the file it is judged as: its
    original's key (a thumbnail's), and the source and name of the file."""

    original_id: Any
    source: str
    name: str


class Guesses:
    """What earlier requests showed: the user each session named, what the
    record of each file key a session asked for showed (``JudgedFile``), and
    the keys each session was declined (the rows granted nothing the lean
    path answers: another user's file, a key that names no file, a grant of
    the site's policy). A session key is remembered only once its row named
    a user; a file key, for that session alone, once its record (or its
    absence) was read. So a session's first request for a key takes the same
    steps whether or not a file by that key exists, and whoever else asked
    for it: the steps tell a client only what it asked for before."""

    # Entries each keeps at most; the oldest goes first.
    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self.session_users: dict[str, Any] = {}
        self.judged_files: dict[tuple[str, str], JudgedFile] = {}
        # (session key, file key): the usual path decides these from then on,
        # without the lean path's reads before it.
        self.declined: dict[tuple[str, str], bool] = {}
        # (session key, file key): the statements its last request made, to
        # make them no more (each is a few microseconds of adapting values).
        self.statements: dict[tuple[str, str], MadeStatements] = {}

    def remember_user(self, session_key: str, user_id: Any) -> None:
        self._remember(self.session_users, session_key, user_id)

    def remember_file(self, session_key: str, key: str, judged: JudgedFile) -> None:
        self._remember(self.judged_files, (session_key, key), judged)

    def remember_declined(self, session_key: str, key: str) -> None:
        self._remember(self.declined, (session_key, key), True)

    def remember_statements(self, session_key: str, key: str, made: MadeStatements) -> None:
        self._remember(self.statements, (session_key, key), made)

    def _remember(self, guesses: dict[Any, Any], key: Any, value: Any) -> None:
        if guesses.get(key) == value:
            return
        guesses.pop(key, None)
        if len(guesses) >= self.MAX_ENTRIES:
            del guesses[next(iter(guesses))]
        guesses[key] = value


class Statements:
    """One request's statements, each made once (a guessed one is the same
    statement when the guess holds), starting from those ``earlier`` kept."""

    def __init__(self, earlier: MadeStatements | None) -> None:
        self._made: MadeStatements = dict(earlier) if earlier else {}
        # Whether this request made a statement to keep that ``earlier`` lacked.
        self.made_new = False

    def of(self, lookup: CompiledLookup[Any], *values: Any, kept: bool = True) -> Statement:
        """``lookup``'s statement for ``values``, made afresh and not kept
        where ``kept`` says the values hold the moment of the request; where
        the lookup runs through the ORM, ``UncompiledLookup`` (``grantee``
        leaves the request to the usual path)."""
        statement = self._made.get((lookup, values)) if kept else None
        if statement is None:
            statement = lookup.statement(*values)
            if statement is None:
                raise UncompiledLookup
            if kept:
                self._made[lookup, values] = statement
                self.made_new = True
        return statement

    def kept(self) -> MadeStatements:
        """The statements made to keep, earlier ones among them."""
        return self._made


class UncompiledLookup(Exception):
    """A lookup the lean path cannot run as the usual path would."""


# A statement as run: its SQL and parameters.
StatementId = tuple[str, tuple[Any, ...]]


def read_step(
    statements: list[Statement],
    read: dict[StatementId, Rows],
    guessed: Sequence[Statement] = (),
) -> Generator[list[Statement], list[Rows], list[Rows]]:
    """The rows of ``statements``: those already ``read`` as they are, the
    rest (and the ``guessed``, read beside them) in one step. Only the last
    of ``statements`` and ``guessed`` together may give several rows (a
    holder's), and it stays last."""
    unread = {identity(statement): statement for statement in [*statements, *guessed]}
    for done in read:
        unread.pop(done, None)
    if unread:
        step = list(unread.values())
        rows = yield step
        read.update(zip(unread, rows, strict=True))
    return [read[identity(statement)] for statement in statements]


def identity(statement: Statement) -> StatementId:
    """What tells a statement read in an earlier step from another."""
    return statement.sql, tuple(statement.params)
