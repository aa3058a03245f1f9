"""Proof, once per process, that the fast path's copies of Django still agree with Django.

``compiled`` runs SQL compiled by private parts of Django's ORM and rebuilds
rows as a queryset would; ``auth.load_user`` takes the steps of
``django.contrib.auth.get_user`` one by one. A Django release may rename or
reshape what either relies on, and every media request would then fail.
So before the entry point answers its first media request, it runs both on
probes and compares their answers with the ORM's and with ``get_user``'s
(media requests that come meanwhile go to Django). On any difference, or any
error a changed internal raises, it says which once (a warning on the
``protected_media`` logger), and for the life of the process every lookup
runs its plain queryset and the user comes from Django's ``get_user``:
slower, never different. The probes only read. The same lookups prove the
event loop's reads (``sqlite_reads``) through a connection of their kind.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user, get_user_model
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.db import DatabaseError, router
from django.db.models import Model
from django.http import HttpRequest
from django.utils import timezone

from . import compiled
from .compiled import CompiledLookup, LoopReader, reading_on_loop

logger = logging.getLogger("protected_media")

UserLoader = Callable[[HttpRequest], Any]
# Django makes session keys of lowercase letters and digits only, so no
# session can have this one.
MADE_UP_SESSION_KEY = "protected-media-probe"
# A key and a stored name no record holds (keys.py, names.py).
MADE_UP_KEY = "-"
MADE_UP_NAME = "/"

_lock = threading.Lock()
_user_loader: UserLoader | None = None


def user_loader() -> UserLoader | None:
    """How media requests load the user, once the probes have run; else None."""
    return _user_loader


def copies_proven() -> bool:
    """Whether the probes ran and media requests use the compiled lookups and
    ``auth.load_user`` (rather than the ORM and Django's ``get_user``)."""
    return _user_loader is not None and _user_loader is not get_user


def running() -> bool:
    """Whether a thread is running the probes now."""
    return _lock.locked()


def settle() -> UserLoader | None:
    """Run the probes unless they have run (blocking, once per process) and
    return how media requests load the user; None while another thread runs
    them. A database error leaves them to run again on the next call."""
    global _user_loader
    if not _lock.acquire(blocking=False):
        return _user_loader
    try:
        if _user_loader is None:
            failure = disagreement()
            if failure is None:
                _user_loader = _fast_user_loader()
            else:
                logger.warning(
                    "protected_media: the fast path disagrees with this Django (%s); "
                    "media requests take the ORM path and Django's get_user",
                    failure,
                )
                compiled.run_through_orm()
                _user_loader = get_user
        return _user_loader
    finally:
        _lock.release()


def disagreement() -> str | None:
    """What differs from Django's own answer, or None (blocking). Any error but
    the database's counts: a changed internal may raise anything."""
    for name, probe in (("compiled lookups", _lookups), ("user loading", _user_loading)):
        try:
            failure = probe()
        except DatabaseError:
            raise
        except Exception as error:
            failure = f"{type(error).__name__}: {error}"
        if failure is not None:
            return f"{name}: {failure}"
    return None


def loop_disagreement(reader: LoopReader) -> str | None:
    """What the lookups answer through ``reader`` that differs from the
    ORM's answer, or None (blocking). The database's errors, Django's or the
    reader's driver's, are raised: the probe runs again on a later request."""
    try:
        return _lookups(reader)
    except Exception as error:
        if isinstance(error, (DatabaseError, *reader.database_errors)):
            raise
        return f"{type(error).__name__}: {error}"


def _fast_user_loader() -> UserLoader:
    # Imported here: the entry point is imported before Django's app registry
    # is ready, and auth imports the models.
    from .auth import load_user

    return load_user


@dataclass(frozen=True)
class _LookupProbe:
    model: type[Model]
    lookups: tuple[str, ...]
    # The values that find a given row; values that find none, where they can
    # be made up (a primary key of any type cannot).
    values_of: Callable[[Any], tuple[Any, ...]]
    made_up: tuple[Any, ...] | None


def _lookups(reader: LoopReader | None = None) -> str | None:
    """The lookups media requests make, compiled afresh and run for a row of
    each table (or values that find none), against the ORM's answer; through
    ``reader`` where one is given, as on the event loop."""
    now = timezone.now()
    probes = [
        _LookupProbe(apps.get_model("protected_media", "StoredFile"), ("pk",), _pk, (MADE_UP_KEY,)),
        _LookupProbe(
            apps.get_model("protected_media", "ProtectedFile"),
            ("file",),
            lambda row: (row.file.name,),
            (MADE_UP_NAME,),
        ),
        _LookupProbe(get_user_model(), ("pk",), _pk, None),
    ]
    session_model = _session_model()
    if session_model is not None:
        probes.append(
            _LookupProbe(
                session_model,
                ("session_key", "expire_date__gt"),
                lambda row: (row.session_key, now),
                (MADE_UP_SESSION_KEY, now),
            )
        )
    for probe in probes:
        row = probe.model._default_manager.order_by("pk").first()
        values = probe.values_of(row) if row is not None else probe.made_up
        if values is None:
            continue
        lookup = CompiledLookup(probe.model, probe.lookups, limit=1)
        with reading_on_loop(reader) if reader is not None else contextlib.nullcontext():
            ours = [_described(instance) for instance in lookup.fetch_compiled(*values)]
        alias = router.db_for_read(probe.model)
        orms = [_described(instance) for instance in lookup.queryset(alias, values)]
        if ours != orms:
            where = f"{probe.model.__name__}.filter({', '.join(probe.lookups)})"
            return f"{where} does not answer as the ORM does ({_difference(ours, orms)})"
    return None


def _pk(row: Model) -> tuple[Any, ...]:
    return (row.pk,)


def _session_model() -> type[Model] | None:
    store = import_module(settings.SESSION_ENGINE).SessionStore
    if not issubclass(store, DatabaseSessionStore):
        return None
    model: type[Model] = store.get_model_class()
    return model


def _described(instance: Model) -> dict[str, Any]:
    # Every column's value, and what from_db records about the row.
    return {
        "class": type(instance),
        "database": instance._state.db,
        "adding": instance._state.adding,
        **{
            field.attname: field.value_from_object(instance)
            for field in instance._meta.concrete_fields
        },
    }


def _difference(ours: list[dict[str, Any]], orms: list[dict[str, Any]]) -> str:
    # Names only: the values may be password hashes or session data.
    if len(ours) != len(orms):
        return f"{len(ours)} rows where the ORM finds {len(orms)}"
    differing = {
        name
        for mine, theirs in zip(ours, orms, strict=True)
        for name in mine.keys() | theirs.keys()
        if name not in mine or name not in theirs or mine[name] != theirs[name]
    }
    return "differs in " + ", ".join(sorted(differing))


def _user_loading() -> str | None:
    """``load_user`` against ``get_user`` with no session and with a session
    key that names none."""
    load_user = _fast_user_loader()
    engine = import_module(settings.SESSION_ENGINE)
    for session_key, case in ((None, "no session"), (MADE_UP_SESSION_KEY, "an unknown session")):
        ours = load_user(_probe_request(engine, session_key))
        djangos = get_user(_probe_request(engine, session_key))
        if type(ours) is not type(djangos) or ours != djangos:
            return f"load_user and get_user find different users for {case}"
    return None


def _probe_request(engine: Any, session_key: str | None) -> HttpRequest:
    request = HttpRequest()
    request.session = engine.SessionStore(session_key)
    return request
