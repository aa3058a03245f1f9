"""Who the stored rows grant a file to, and what that grant answers, for
the lean path (``lean``, which imports this module once the models are).

The rows the media check reads (the session, the user, the file's record and
a thumbnail's original, the row holding the file) are read as stored values
in steps (``compiled.Steps``, which the database's reads run), through the
SQL the ORM compiles for the usual path (``compiled``), and only for the
grants the default policy makes without another query: to the file's
owner, and to staff where ``PROTECTED_MEDIA_ALLOW_STAFF`` says so. For
anything else the answer is None, and the usual path decides.
"""

from __future__ import annotations

import functools
import time
from typing import Any, NamedTuple

from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db.models import ForeignKey
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from .. import audit
from ..decision import (
    RECORD_LOOKUP,
    STAND_IN_NAME,
    STAND_IN_SOURCE,
    holder_field,
    holder_lookup,
    served_headers,
)
from ..fields import ProtectedFieldMixin
from ..names import is_safe_stored_name
from ..policy import OWNER, STAFF
from ..responses import database_answered
from ..storage import protected_storage
from ..storage.accel import local_accel_target, store_accel_target
from ..views import X_ACCEL_REDIRECT
from . import session_data
from .auth import session_lookup, user_lookup
from .compiled import CompiledLookup, Rows, Statement, Steps
from .guesses import Guesses, JudgedFile, StatementId, Statements, UncompiledLookup, read_step
from .lean_plan import MODEL_BACKEND, Plan


class Grantee(NamedTuple):
    """Whom the file is granted to, why, and what the answer names."""

    user_id: Any
    reason: str
    content_type: str
    original_name: str
    name: str


def user_model_allows(model: type[Any]) -> bool:
    """Whether ``grantee`` reads users of ``model`` as Django would."""
    # The session hash from the stored password alone, by Django's own code,
    # and the columns ModelBackend and the policy read.
    if model.get_session_auth_hash is not _StoredPassword.get_session_auth_hash:
        return False
    if model._get_session_auth_hash is not _StoredPassword._get_session_auth_hash:
        return False
    concrete = {field.attname for field in model._meta.concrete_fields}
    return {"password", "is_active"} <= concrete


def grantee(key: str, store: DatabaseSessionStore, plan: Plan, guesses: Guesses) -> Steps[Grantee]:
    """Who the default policy grants the file ``key`` to, among the signed-in
    user and the rules the lean path answers; None for the usual path.

    The reads go in steps: the session and the record, which need nothing
    else; then the user the session names, and the row holding the file the
    record names (a thumbnail's original first). Where an earlier request of
    the same session showed which user it names and which row holds the
    file (``guesses``, which it adds to), the first step reads those too, so
    that one step (one round trip, on PostgreSQL) answers; the rows it finds
    decide whether the guess was right, and a wrong one only costs the steps
    it would have taken. A request the rows decline is remembered as
    declined for the session (``Guesses.declined``); a grant's statements,
    to be made no more (``Guesses.statements``)."""
    session_key = store.session_key
    if session_key is None:
        return None
    made = Statements(guesses.statements.get((session_key, key)))
    try:
        granted = yield from _granted(key, session_key, store, plan, guesses, made)
    except UncompiledLookup:
        return None
    if granted is None:
        guesses.remember_declined(session_key, key)
    elif made.made_new:
        # The session's next request for the file makes the same statements.
        guesses.remember_statements(session_key, key, made.kept())
    return granted


def _granted(
    key: str,
    session_key: str,
    store: DatabaseSessionStore,
    plan: Plan,
    guesses: Guesses,
    made: Statements,
) -> Steps[Grantee]:
    user_model = plan.user_model
    pk = user_model._meta.pk
    read: dict[StatementId, Rows] = {}
    session_statement = made.of(
        session_lookup(plan.session_model), session_key, timezone.now(), kept=False
    )
    record_statement = made.of(RECORD_LOOKUP, key)
    guessed = [
        *_user_statements(made, guesses.session_users.get(session_key), user_model),
        *_file_statements(made, guesses.judged_files.get((session_key, key)), user_model),
    ]
    session_rows, record_rows = yield from read_step(
        [session_statement, record_statement], read, guessed
    )
    session = _first(session_statement, session_rows)
    if session is None:
        return None
    data = session_data.decode(store, session["session_data"])
    try:
        user_id = pk.to_python(data[SESSION_KEY])
        backend = data[BACKEND_SESSION_KEY]
    except (KeyError, ValidationError):
        return None
    session_hash = data.get(HASH_SESSION_KEY)
    if backend != MODEL_BACKEND or not session_hash:
        return None
    guesses.remember_user(session_key, user_id)
    (user_statement,) = _user_statements(made, user_id, user_model)
    found = _first(record_statement, record_rows)
    safe = is_safe_stored_name(found["name"] if found is not None else STORED_NAME_SHAPE)
    # A key that names no file goes on as another user's file does (rule 2),
    # with a stand-in record whose holder's statement asks for a name no row
    # holds, as ``decision.find`` does.
    record: dict[str, Any] = found if found is not None and safe else dict(_STAND_IN_RECORD)
    judged = record
    if record["original_id"] is not None:
        # A thumbnail is judged as its original.
        original_statement = made.of(RECORD_LOOKUP, record["original_id"])
        _, original_rows = yield from read_step([user_statement, original_statement], read)
        original = _first(original_statement, original_rows)
        if original is None or original["original_id"] is not None:
            return None
        judged = original
    judged_file = JudgedFile(record["original_id"], judged["source"], judged["name"])
    guesses.remember_file(session_key, key, judged_file)
    holder_statements = _holder_statements(made, judged["source"], judged["name"], user_model)
    user_rows, *holder_rows = yield from read_step([user_statement, *holder_statements], read)
    user = _first(user_statement, user_rows)
    # ModelBackend refuses an inactive user, and so does the policy.
    if user is None or not user["is_active"]:
        return None
    computed = _session_auth_hash(user["password"], plan.secret_key)
    if not constant_time_compare(session_hash, computed):
        return None
    # Exactly one row holds a file, and it decides.
    held = None
    if holder_statements and len(holder_rows[0]) == 1:
        held = _first(holder_statements[0], holder_rows[0])
    holding = _holding(judged["source"], user_model)
    owner = holding.owner_attname if holding is not None else None
    reason: str | None = None
    if held is not None and owner is not None and held[owner] == user[pk.attname]:
        reason = OWNER
    elif plan.allow_staff and user.get("is_staff"):
        reason = STAFF
    if found is None or record is not found or held is None or reason is None:
        return None
    return Grantee(user_id, reason, found["content_type"], found["original_name"], found["name"])


def _user_statements(made: Statements, user_id: Any, user_model: type[Any]) -> list[Statement]:
    """The lookup of the user ``user_id``; none where no user is known."""
    return [] if user_id is None else [made.of(user_lookup(user_model), user_id)]


def _file_statements(
    made: Statements, judged: JudgedFile | None, user_model: type[Any]
) -> list[Statement]:
    """The original's lookup (for a thumbnail), then the holder's, for a
    file judged as ``judged``; none where no file is known."""
    if judged is None:
        return []
    statements = []
    if judged.original_id is not None:
        statements.append(made.of(RECORD_LOOKUP, judged.original_id))
    return statements + _holder_statements(made, judged.source, judged.name, user_model)


def _holder_statements(
    made: Statements, source: str, name: str, user_model: type[Any]
) -> list[Statement]:
    """The lookup of the rows holding the file ``name`` of ``source``; none
    where the source names no protected field."""
    holding = _holding(source, user_model)
    return [made.of(holding.lookup, name)] if holding is not None else []


def _first(statement: Statement, rows: Rows) -> dict[str, Any] | None:
    return dict(zip(statement.attnames, rows[0], strict=True)) if rows else None


# A stored name's shape ("files/<key>.<extension>"), checked for a key that
# names no file as a found record's name is.
STORED_NAME_SHAPE = "files/" + "A" * 22 + ".bin"
# The stored values of ``decision.stand_in_record()`` that the lean path reads.
_STAND_IN_RECORD = {"name": STAND_IN_NAME, "source": STAND_IN_SOURCE, "original_id": None}


class _StoredPassword:
    """A stand-in for a user that holds only the stored password, with the
    methods of Django's own that turn it into the session hash."""

    def __init__(self, password: str) -> None:
        self.password = password

    get_session_auth_hash = AbstractBaseUser.get_session_auth_hash
    _get_session_auth_hash = AbstractBaseUser._get_session_auth_hash  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=4096)
def _session_auth_hash(password: str, secret_key: str) -> str:
    """The user's session hash, by Django's own method, remembered for the
    users of the last requests (an HMAC costs as much as a statement).
    ``secret_key`` is the current key, which the method reads itself: a new
    key computes afresh."""
    return _StoredPassword(password).get_session_auth_hash()  # type: ignore[misc]


class _Holding(NamedTuple):
    """How the rows holding files of one source are read."""

    lookup: CompiledLookup[Any]
    # The column holding the owner's primary key, where the protected field
    # names an owner through a foreign key to the user's primary key (so
    # that stored values compare as the policy compares them); else None.
    owner_attname: str | None


# By (source, user model); only sources that name a protected field, so at
# most one entry per such field.
_holdings: dict[tuple[str, type[Any]], _Holding] = {}


def _holding(source: str, user_model: type[Any]) -> _Holding | None:
    """How the rows holding a file of ``source`` are read; None where the
    source names no protected field."""
    key = (source, user_model)
    holding = _holdings.get(key)
    if holding is not None:
        return holding
    try:
        model, field = holder_field(source)
    except (LookupError, FieldDoesNotExist, ValueError):
        return None
    if not isinstance(field, ProtectedFieldMixin):
        return None
    attname = None
    owner_field = getattr(field, "owner_field", None)
    if owner_field is not None:
        owner = model._meta.get_field(owner_field)
        if (
            isinstance(owner, ForeignKey)
            and owner.remote_field.model is user_model
            and owner.target_field is user_model._meta.pk
        ):
            attname = owner.attname
    holding = _holdings.setdefault(key, _Holding(holder_lookup(model, field), attname))
    return holding


def answer_headers(grantee: Grantee, plan: Plan, *, head: bool) -> list[tuple[bytes, bytes]] | None:
    """The headers the view sets on the handoff of a GET (or ``head``), in
    its order; None where a value is not one Django would send as it stands."""
    if plan.store_internal_url is not None:
        # nginx fetches the object with a URL signed for this method.
        presigned = protected_storage.presign(grantee.name, "HEAD" if head else "GET")
        return _encoded(grantee, store_accel_target(presigned, plan.store_internal_url))
    # On disk, the same for every request for the file (a gallery's
    # thumbnails come again and again): worked out once per plan.
    seen = plan.local_headers
    file = (grantee.name, grantee.content_type, grantee.original_name)
    headers = seen.get(file)
    if headers is None:
        headers = _encoded(grantee, local_accel_target(plan.internal_url, grantee.name))
        if headers is None:
            return None
        if len(seen) >= MAX_LOCAL_HEADERS:
            seen.clear()
        seen[file] = headers
    return list(headers)


# Files whose headers a plan keeps at most; then it starts afresh.
MAX_LOCAL_HEADERS = 1024


def _encoded(grantee: Grantee, target: str | None) -> list[tuple[bytes, bytes]] | None:
    if target is None:
        return None
    served = served_headers(grantee.content_type, grantee.original_name)
    # HttpResponse starts with Content-Type; the view sets the redirect, then
    # the served headers (Content-Type keeps its place), then the length.
    ordered = {"Content-Type": served.pop("Content-Type")}
    ordered[X_ACCEL_REDIRECT] = target
    ordered.update(served)
    ordered["Content-Length"] = "0"
    headers: list[tuple[bytes, bytes]] = []
    for name, value in ordered.items():
        if "\n" in value or "\r" in value:
            return None
        try:
            headers.append((name.encode("ascii"), value.encode("latin-1")))
        except UnicodeEncodeError:
            return None
    return headers


def record_served(reason: str, user_id: Any, key: str, started: float) -> None:
    """The audit line and the counters of a grant, as the view records them
    where nothing listens to ``file_served``."""
    latency = time.perf_counter() - started
    audit.write_line(audit.SERVED, reason, user_id, key, None, latency)
    audit.count(audit.SERVED, reason, latency)
    database_answered()
