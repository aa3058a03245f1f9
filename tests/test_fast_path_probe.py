"""The fast path's copies of Django hold, or it takes the ORM path, loudly.

Before its first media request, the entry point proves that its compiled
lookups and its user loading answer as the ORM and ``get_user`` do
(``fastpath.probe``). Here: the probe passes on this Django; an internal
renamed under it (gone for the fast path's code, still there for Django's
own) is named in one warning, and media requests are still answered right,
through the ORM; and ``load_user`` gives the answer Django's ``get_user`` and
``aget_user`` give for every state a session can be in, on whichever Django
version runs the suite.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    aget_user,
    get_user,
    get_user_model,
)
from django.contrib.auth.backends import BaseBackend
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.core.asgi import get_asgi_application
from django.core.signals import request_started
from django.db import OperationalError
from django.db.models import Model
from django.db.models.sql.compiler import SQLCompiler
from django.http import HttpRequest
from django.test import Client, override_settings

from protected_media.asgi import ProtectedMediaASGI
from protected_media.fastpath import compiled, probe
from protected_media.fastpath.auth import load_user
from protected_media.records import StoredFile

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def new_process(monkeypatch) -> None:
    # As in a process whose entry point has not yet run the probe; whatever
    # a test decides is undone after it.
    monkeypatch.setattr(probe, "_user_loader", None)
    monkeypatch.setattr(compiled, "_compiling", True)


class Changed:
    """A method as a Django release might leave it: gone (renamed), or
    answering otherwise, for the code of one module of ours; as it was for
    Django's own code."""

    def __init__(
        self, owner: type, name: str, module: str, changed: Callable[[Any], Any] | None = None
    ) -> None:
        self.original = owner.__dict__[name]
        self.name = name
        self.module = module
        self.changed = changed
        self.looked_up = 0

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        original = self.original.__get__(instance, owner)
        if sys._getframe(1).f_globals.get("__name__") != self.module:
            return original
        self.looked_up += 1
        if self.changed is None:
            raise AttributeError(f"{owner.__name__!r} object has no attribute {self.name!r}")
        return self.changed(original)


RENAMED = {
    "compiled lookups": (SQLCompiler, "get_converters", "protected_media.fastpath.compiled"),
    "user loading": (
        DatabaseSessionStore,
        "_get_session_from_db",
        "protected_media.fastpath.auth",
    ),
}


@pytest.fixture(params=list(RENAMED))
def renamed(request, monkeypatch) -> Changed:
    owner, name, module = RENAMED[request.param]
    attribute = Changed(owner, name, module)
    monkeypatch.setattr(owner, name, attribute)
    return attribute


def signed_in(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


async def get(application: Any, url: str, cookie: str) -> tuple[httpx.Response, int]:
    """The answer, and how many requests Django's own handler took."""
    started = []

    def count(**kwargs: Any) -> None:
        started.append(1)

    request_started.connect(count)
    try:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.get(url, headers={"Cookie": f"sessionid={cookie}"})
    finally:
        request_started.disconnect(count)
    return response, len(started)


def warnings_in(caplog) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "protected_media" and record.levelno >= logging.WARNING
    ]


async def test_the_probe_finds_this_django_in_agreement(alice, make_file, caplog) -> None:
    # A row in every table the probe reads: each lookup runs on a real row.
    await sync_to_async(make_file)(alice)
    await sync_to_async(signed_in)(alice)
    with caplog.at_level(logging.WARNING, logger="protected_media"):
        assert await sync_to_async(probe.settle)() is load_user
    assert warnings_in(caplog) == []
    assert compiled._compiling


async def test_a_renamed_internal_sends_media_requests_down_the_orm_path(
    alice, bob, make_file, renamed, caplog
) -> None:
    item = await sync_to_async(make_file)(alice, "notes.txt")
    owner = await sync_to_async(signed_in)(alice)
    stranger = await sync_to_async(signed_in)(bob)
    application = ProtectedMediaASGI(get_asgi_application())
    try:
        with caplog.at_level(logging.WARNING, logger="protected_media"):
            served, owner_requests = await get(application, item.file.url, owner)
            refused, stranger_requests = await get(application, item.file.url, stranger)
            again, _ = await get(application, item.file.url, owner)
    finally:
        await application.aclose()
    by_django, _ = await get(get_asgi_application(), item.file.url, owner)

    (warning,) = warnings_in(caplog)
    assert "the fast path disagrees with this Django" in warning
    assert f"object has no attribute {renamed.name!r}" in warning
    assert served.status_code == again.status_code == 200
    assert served.headers["X-Accel-Redirect"].endswith(item.file.name)
    assert served.headers.multi_items() == by_django.headers.multi_items()
    assert (refused.status_code, refused.content) == (404, b"Not Found\n")
    # The entry point answered, not Django's handler; only the probe reached
    # for the renamed method, never a request.
    assert owner_requests == stranger_requests == 0
    assert renamed.looked_up == 1


async def test_the_probe_names_what_answers_otherwise_but_no_value(
    alice, make_file, monkeypatch
) -> None:
    await sync_to_async(make_file)(alice, "ledger.txt")

    def rows_with_another_name(from_db: Callable[..., Any]) -> Callable[..., Any]:
        def changed(*args: Any) -> Any:
            row = from_db(*args)
            if isinstance(row, StoredFile):
                row.original_name = "another name.txt"
            return row

        return changed

    changed = Changed(Model, "from_db", "protected_media.fastpath.compiled", rows_with_another_name)
    monkeypatch.setattr(Model, "from_db", changed)
    assert await sync_to_async(probe.disagreement)() == (
        "compiled lookups: StoredFile.filter(pk) does not answer as the ORM does "
        "(differs in original_name)"
    )


async def test_until_the_probe_has_run_media_requests_go_to_django(
    alice, make_file, monkeypatch, caplog
) -> None:
    item = await sync_to_async(make_file)(alice)
    cookie = await sync_to_async(signed_in)(alice)
    disagreement = probe.disagreement

    def database_down_at_first() -> str | None:
        monkeypatch.setattr(probe, "disagreement", disagreement)
        raise OperationalError("connection refused")

    monkeypatch.setattr(probe, "disagreement", database_down_at_first)
    application = ProtectedMediaASGI(get_asgi_application())
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    try:
        with caplog.at_level(logging.WARNING, logger="protected_media"):
            # The server starts without a word to the database (it may be
            # down, or a table locked by a migration).
            await application({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
            assert probe.user_loader() is None
            # The probe meets a database error: Django answers this one.
            first, by_django = await get(application, item.file.url, cookie)
            # It runs again, passes, and the entry point answers.
            second, by_django_then = await get(application, item.file.url, cookie)
    finally:
        await application.aclose()
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]
    assert first.status_code == second.status_code == 200
    assert first.headers.multi_items() == second.headers.multi_items()
    assert (by_django, by_django_then) == (1, 0)
    assert probe.user_loader() is load_user
    assert warnings_in(caplog) == []


async def test_media_requests_do_not_wait_for_a_probe_that_is_running(
    alice, make_file, monkeypatch
) -> None:
    item = await sync_to_async(make_file)(alice)
    cookie = await sync_to_async(signed_in)(alice)
    disagreement = probe.disagreement
    running, release = threading.Event(), threading.Event()

    def slow_disagreement() -> str | None:
        # As on a table locked by a migration.
        running.set()
        assert release.wait(timeout=30)
        return disagreement()

    monkeypatch.setattr(probe, "disagreement", slow_disagreement)
    application = ProtectedMediaASGI(get_asgi_application())
    loop = asyncio.get_running_loop()
    started = []

    def count(**kwargs: Any) -> None:
        started.append(1)

    request_started.connect(count)
    try:
        first = asyncio.ensure_future(get(application, item.file.url, cookie))
        assert await loop.run_in_executor(None, running.wait, 30)
        meanwhile, _ = await get(application, item.file.url, cookie)
        by_django_meanwhile = len(started)
        release.set()
        answered, _ = await first
    finally:
        release.set()
        request_started.disconnect(count)
        await application.aclose()
    assert meanwhile.status_code == answered.status_code == 200
    # Django answered the one that came while the probe ran, and only that one.
    assert by_django_meanwhile == len(started) == 1
    assert meanwhile.headers.multi_items() == answered.headers.multi_items()
    assert probe.user_loader() is load_user


# -- load_user gives Django's answer for every state a session can be in --------

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
ALLOW_ALL = "django.contrib.auth.backends.AllowAllUsersModelBackend"
OWN_GET_USER = "tests.test_fast_path_probe.OwnGetUserBackend"
NOT_IMPORTABLE = "tests.nowhere.Backend"
NO_GET_USER = "guardian.backends.ObjectPermissionBackend"
OLD_SECRET_KEY = "an-old-secret-key-" + "x" * 40
NEW_SECRET_KEY = "the-new-secret-key-" + "y" * 40


class OwnGetUserBackend(BaseBackend):
    """Loads any user, active or not, with a get_user of its own."""

    def get_user(self, user_id: Any) -> Any:
        return get_user_model()._default_manager.filter(pk=user_id).first()


def auth_hash(user: Any, secret_key: str | None = None) -> str:
    if secret_key is None:
        return user.get_session_auth_hash()
    with override_settings(SECRET_KEY=secret_key, SECRET_KEY_FALLBACKS=[]):
        return user.get_session_auth_hash()


def signed_in_data(user: Any, backend: str = MODEL_BACKEND, **changes: Any) -> dict[str, Any]:
    data = {SESSION_KEY: str(user.pk), BACKEND_SESSION_KEY: backend, HASH_SESSION_KEY: None}
    data.update(changes)
    if data[HASH_SESSION_KEY] is None:
        data[HASH_SESSION_KEY] = auth_hash(user)
    return {name: value for name, value in data.items() if value != "<none>"}


def saved(data: dict[str, Any], *, expiry: int | None = None) -> str:
    store = import_module(django_settings.SESSION_ENGINE).SessionStore()
    store.update(data)
    if expiry is not None:
        store.set_expiry(expiry)
    store.save()
    return str(store.session_key)


def deactivated(user: Any) -> Any:
    user.is_active = False
    user.save()
    return user


def password_changed_after(data: dict[str, Any], user: Any) -> dict[str, Any]:
    user.set_password(f"another password {user.password}")
    user.save()
    return data


ANONYMOUS = "anonymous"
THE_USER = "the user"
NONE, SAME, NEW = "none", "same", "new"  # the session key afterwards


@dataclass(frozen=True)
class State:
    name: str
    # Builds the state for one user (blocking): the session key, or None.
    build: Callable[[Any], str | None]
    user: str  # who Django answers: ANONYMOUS, THE_USER or the exception's name
    key: str  # what becomes of the session key: NONE, SAME or NEW
    settings: tuple[tuple[str, Any], ...] = ()


BACKENDS = ("AUTHENTICATION_BACKENDS", [MODEL_BACKEND, ALLOW_ALL, OWN_GET_USER, NO_GET_USER])
STATES = [
    State("no session", lambda user: None, ANONYMOUS, NONE),
    State("unknown session key", lambda user: "nosuchsession0123456789", ANONYMOUS, NONE),
    State("nobody signed in", lambda user: saved({"cart": "3"}), ANONYMOUS, SAME),
    State("expired session", lambda user: saved(signed_in_data(user), expiry=-1), ANONYMOUS, NONE),
    State("valid user", lambda user: saved(signed_in_data(user)), THE_USER, SAME),
    State(
        "unknown user id",
        lambda user: saved(signed_in_data(user, **{SESSION_KEY: str(user.pk + 1000)})),
        ANONYMOUS,
        SAME,
    ),
    State(
        "user id of the wrong type",
        lambda user: saved(signed_in_data(user, **{SESSION_KEY: "not-a-number"})),
        "ValidationError",
        SAME,
    ),
    State(
        "no backend path",
        lambda user: saved(signed_in_data(user, **{BACKEND_SESSION_KEY: "<none>"})),
        ANONYMOUS,
        SAME,
    ),
    State(
        "backend no longer in AUTHENTICATION_BACKENDS",
        lambda user: saved(signed_in_data(user)),
        ANONYMOUS,
        SAME,
        settings=(("AUTHENTICATION_BACKENDS", [ALLOW_ALL]),),
    ),
    State(
        "backend path that does not import",
        lambda user: saved(signed_in_data(user, NOT_IMPORTABLE)),
        "ModuleNotFoundError",
        SAME,
        settings=(("AUTHENTICATION_BACKENDS", [MODEL_BACKEND, NOT_IMPORTABLE]),),
    ),
    State(
        "backend without get_user",
        lambda user: saved(signed_in_data(user, NO_GET_USER)),
        "AttributeError",
        SAME,
        settings=(BACKENDS,),
    ),
    State(
        "a subclass of ModelBackend",
        lambda user: saved(signed_in_data(user, ALLOW_ALL)),
        THE_USER,
        SAME,
        settings=(BACKENDS,),
    ),
    State(
        "a backend with its own get_user",
        lambda user: saved(signed_in_data(user, OWN_GET_USER)),
        THE_USER,
        SAME,
        settings=(BACKENDS,),
    ),
    State(
        "inactive user, ModelBackend",
        lambda user: saved(signed_in_data(deactivated(user))),
        ANONYMOUS,
        SAME,
    ),
    State(
        "inactive user, AllowAllUsersModelBackend",
        lambda user: saved(signed_in_data(deactivated(user), ALLOW_ALL)),
        THE_USER,
        SAME,
        settings=(BACKENDS,),
    ),
    State(
        "password changed since",
        lambda user: saved(password_changed_after(signed_in_data(user), user)),
        ANONYMOUS,
        NONE,
    ),
    State(
        "no session hash",
        lambda user: saved(signed_in_data(user, **{HASH_SESSION_KEY: "<none>"})),
        ANONYMOUS,
        NONE,
    ),
    State(
        "empty session hash",
        lambda user: saved(signed_in_data(user, **{HASH_SESSION_KEY: ""})),
        ANONYMOUS,
        NONE,
    ),
    State(
        "hash of a secret key now a fallback",
        lambda user: saved(
            signed_in_data(user, **{HASH_SESSION_KEY: auth_hash(user, OLD_SECRET_KEY)})
        ),
        THE_USER,
        NEW,
        settings=(("SECRET_KEY", NEW_SECRET_KEY), ("SECRET_KEY_FALLBACKS", [OLD_SECRET_KEY])),
    ),
    State(
        "hash of an unknown secret key",
        lambda user: saved(
            signed_in_data(user, **{HASH_SESSION_KEY: auth_hash(user, OLD_SECRET_KEY)})
        ),
        ANONYMOUS,
        NONE,
    ),
]
ENGINES = ["django.contrib.sessions.backends.db", "django.contrib.sessions.backends.cached_db"]


async def answer(loader: str, state: State, user: Any) -> tuple[str, str, list[Any]]:
    """Who ``loader`` finds for the state built afresh, what became of the
    session key, and what the session holds afterwards."""
    session_key = await sync_to_async(state.build)(user)
    request = HttpRequest()
    request.session = import_module(django_settings.SESSION_ENGINE).SessionStore(session_key)
    try:
        if loader == "aget_user":
            found = await aget_user(request)
        else:
            found = await sync_to_async({"load_user": load_user, "get_user": get_user}[loader])(
                request
            )
    except Exception as error:
        who = type(error).__name__
    else:
        assert found.is_authenticated == (found == user)
        who = THE_USER if found == user else ANONYMOUS
    after = request.session.session_key
    key = NONE if after is None else SAME if after == session_key else NEW
    return who, key, sorted(await sync_to_async(lambda: list(request.session.items()))())


@pytest.mark.parametrize("engine", ENGINES, ids=["db", "cached_db"])
@pytest.mark.parametrize("state", STATES, ids=[state.name for state in STATES])
async def test_load_user_answers_as_djangos_get_user(settings, django_user_model, engine, state):
    settings.SESSION_ENGINE = engine
    for name, value in state.settings:
        setattr(settings, name, value)
    user = await sync_to_async(django_user_model.objects.create_user)("pat", password="pat-pw")

    answers = {
        loader: await answer(loader, state, user)
        for loader in ("load_user", "get_user", "aget_user")
    }

    assert answers["load_user"] == answers["get_user"] == answers["aget_user"]
    who, key, _ = answers["aget_user"]
    assert (who, key) == (state.user, state.key)
