"""Who is asking: Django's session and user, read with SQL compiled once.

``load_user`` takes the same steps as ``django.contrib.auth.get_user``: the
same session keys, the backend named in the session and still listed in
``AUTHENTICATION_BACKENDS``, the session hash checked against the current
secret key and then the fallbacks (a match on a fallback rotates the session;
no match flushes it, which is what logs a session out after a password
change). The one difference is where the rows come from: a database-backed
session store loads its row, and Django's ``ModelBackend`` (when a subclass
keeps its ``get_user``) the user's row, through lookups compiled once
(``compiled``). Any other backend's ``get_user`` runs as Django would run it.

On the event loop (``compiled.reading_on_loop``), ``load_user`` answers only
the common case: a session row that is there, the user through
``ModelBackend``, the hash matching the current secret key. Anything else (a
missing or expired row, another backend, a hash to rotate or a session to
flush, which write) raises ``NeedsThreads`` before it changes anything, and
the threads answer it as Django would.
Django's own tests of these rules run against Django's code; ours hold
``load_user`` to ``get_user`` and ``aget_user`` for every state a session can
be in (``tests/test_fast_path_probe.py``), and at startup ``probe`` checks it
against the Django that runs it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
    load_backend,
)
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from . import session_data as session_data_cache
from .compiled import CompiledLookup, NeedsThreads, on_loop

_SESSION_LOOKUPS: dict[type[Any], CompiledLookup[Any]] = {}
_USER_LOOKUPS: dict[type[Any], CompiledLookup[Any]] = {}


def load_user(request: HttpRequest) -> Any:
    """``django.contrib.auth.get_user(request)``, blocking, with compiled SQL."""
    session = request.session
    if isinstance(session, DatabaseSessionStore):
        _compile_session_query(session)
    user = None
    try:
        user_id = get_user_model()._meta.pk.to_python(session[SESSION_KEY])
        backend_path = session[BACKEND_SESSION_KEY]
    except KeyError:
        pass
    else:
        if backend_path in settings.AUTHENTICATION_BACKENDS:
            backend = load_backend(backend_path)
            user = _backend_user(backend, user_id)
            if hasattr(user, "get_session_auth_hash"):
                session_hash = session.get(HASH_SESSION_KEY)
                if not session_hash:
                    session_hash_verified = False
                else:
                    session_auth_hash = user.get_session_auth_hash()
                    session_hash_verified = constant_time_compare(session_hash, session_auth_hash)
                if not session_hash_verified:
                    if on_loop():
                        # Rotating or flushing the session writes.
                        raise NeedsThreads("the session hash does not match the current key")
                    if session_hash and any(
                        constant_time_compare(session_hash, fallback_auth_hash)
                        for fallback_auth_hash in user.get_session_auth_fallback_hash()
                    ):
                        session.cycle_key()
                        session[HASH_SESSION_KEY] = session_auth_hash
                    else:
                        session.flush()
                        user = None
    return user or AnonymousUser()


def _backend_user(backend: Any, user_id: Any) -> Any:
    if type(backend).get_user is not ModelBackend.get_user:
        if on_loop():
            raise NeedsThreads("a backend of its own loads the user")
        return backend.get_user(user_id)
    # ModelBackend.get_user: the row by primary key, if it may authenticate.
    rows = user_lookup(get_user_model()).fetch(user_id)
    if not rows:
        return None
    return rows[0] if backend.user_can_authenticate(rows[0]) else None


def _compile_session_query(store: DatabaseSessionStore) -> None:
    # Only the query and the decoding change (the decoded data is remembered
    # per signed text: ``session_data``): Django's ``load`` still runs, and a
    # missing or expired row goes through Django's own lookup, which also
    # forgets the key.
    lookup = session_lookup(store.model)
    django_lookup = store._get_session_from_db  # type: ignore[attr-defined]

    def get_session_from_db() -> Any:
        rows = lookup.fetch(store.session_key, timezone.now()) if store.session_key else []
        if not rows and on_loop():
            # Django's lookup forgets the key and may log: the threads do it.
            raise NeedsThreads("no live session row")
        return rows[0] if rows else django_lookup()

    def decode(session_data: str) -> dict[str, Any]:
        return session_data_cache.decode(store, session_data)

    # Attributes on this one store object; the class is left alone.
    setattr(store, "_get_session_from_db", get_session_from_db)  # noqa: B010
    setattr(store, "decode", decode)  # noqa: B010


def user_lookup(model: type[Any]) -> CompiledLookup[Any]:
    """``ModelBackend.get_user``'s row by primary key, compiled once."""
    lookup = _USER_LOOKUPS.get(model)
    if lookup is None:
        lookup = _USER_LOOKUPS.setdefault(model, CompiledLookup(model, ["pk"], limit=1))
    return lookup


def session_lookup(model: type[Any]) -> CompiledLookup[Any]:
    """The database session store's live row by key, compiled once."""
    lookup = _SESSION_LOOKUPS.get(model)
    if lookup is None:
        lookup = _SESSION_LOOKUPS.setdefault(
            model, CompiledLookup(model, ["session_key", "expire_date__gt"], limit=1)
        )
    return lookup
