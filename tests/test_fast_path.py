"""The ASGI entry point answers media requests exactly as Django's handler does.

One table of cases goes through both ASGI applications, Django's own
(``get_asgi_application()``) and ``ProtectedMediaASGI`` in front of it, over
the ASGI protocol, and the two answers must be identical: status, every header
and the body. Each case builds its session afresh for each path, because some
answers change the database (a password change flushes the session).
"""

from __future__ import annotations

import datetime
import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group
from django.contrib.sessions.models import Session
from django.core.asgi import get_asgi_application
from django.core.signals import request_started
from django.db.backends.signals import connection_created
from django.test import Client, override_settings
from django.utils import timezone

from protected_media.asgi import ProtectedMediaASGI, skipped_middleware
from protected_media.models import ProtectedFile
from tests import loop_connections
from tests.testapp import backends
from tests.testapp.models import Report

pytestmark = pytest.mark.django_db(transaction=True)

BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "tests.testapp.backends.ReportGrantBackend",
]


@dataclass
class World:
    users: dict[str, Any]
    urls: dict[str, str]


@pytest.fixture
def world(settings, django_user_model, make_file) -> Iterator[World]:
    settings.AUTHENTICATION_BACKENDS = BACKENDS
    users = {
        name: django_user_model.objects.create_user(name, password=f"{name}-password")
        for name in ("alice", "bob", "carol", "dave", "erin")
    }
    users["staff"] = django_user_model.objects.create_user("staff", is_staff=True)
    alice = users["alice"]
    hidden = Report(author=alice)
    hidden.attachment.save("hidden.txt", _text(b"hidden\n"), save=True)
    public = Report(author=alice, public=True)
    public.attachment.save("public.txt", _text(b"public\n"), save=True)
    gone: ProtectedFile = make_file(alice, "gone.txt")
    gone_url = gone.file.url
    gone.delete()
    backends.GRANTS.add((users["bob"].pk, hidden.pk))
    shared: ProtectedFile = make_file(alice, "shared.txt")
    readers = Group.objects.create(name="readers")
    shared.groups.add(readers)
    users["bob"].groups.add(readers)
    urls = {
        "alice's shared file": shared.file.url,
        "alice's file": make_file(alice, "report final.pdf", b"%PDF-1.4\n%%EOF\n").file.url,
        "carol's file": make_file(users["carol"]).file.url,
        "dave's file": make_file(users["dave"]).file.url,
        "erin's file": make_file(users["erin"]).file.url,
        "hidden report": hidden.attachment.url,
        "public report": public.attachment.url,
        "deleted file": gone_url,
    }
    yield World(users, urls)
    backends.GRANTS.clear()


def _text(data: bytes) -> Any:
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("upload.txt", data)


def signed_in(user: Any) -> str:
    client = Client()
    client.force_login(user, backend=BACKENDS[0])
    return client.cookies["sessionid"].value


def session_of(world: World, who: str | None) -> str | None:
    return signed_in(world.users[who]) if who else None


def after_password_change(world: World) -> str:
    carol = world.users["carol"]
    cookie = signed_in(carol)
    carol.set_password(f"another-{timezone.now().timestamp()}")
    carol.save()
    return cookie


def after_deactivation(world: World) -> str:
    dave = world.users["dave"]
    dave.is_active = True
    dave.save()
    cookie = signed_in(dave)
    dave.is_active = False
    dave.save()
    return cookie


def after_expiry(world: World) -> str:
    cookie = signed_in(world.users["erin"])
    Session.objects.filter(session_key=cookie).update(
        expire_date=timezone.now() - datetime.timedelta(seconds=1)
    )
    return cookie


OLD_SECRET_KEY = "an-old-secret-key-" + "x" * 40


def signed_in_before_key_rotation(world: World) -> str:
    # The session hash was made with a key that is now only a fallback.
    with override_settings(SECRET_KEY=OLD_SECRET_KEY, SECRET_KEY_FALLBACKS=[]):
        return signed_in(world.users["alice"])


def after_group_revoked(world: World) -> str:
    bob = world.users["bob"]
    bob.groups.remove(Group.objects.get(name="readers"))
    return signed_in(bob)


def after_user_deleted(world: World) -> str:
    gone = type(world.users["alice"]).objects.create_user(f"gone-{timezone.now().timestamp()}")
    cookie = signed_in(gone)
    gone.delete()
    return cookie


def after_logout(world: World) -> str:
    cookie = signed_in(world.users["alice"])
    Session.objects.filter(session_key=cookie).delete()
    return cookie


@dataclass(frozen=True)
class Case:
    name: str
    target: str  # a key of World.urls, or a literal path
    session: Callable[[World], str | None]
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    settings: tuple[tuple[str, Any], ...] = ()
    status: int = 200
    # Django's handler answers it: the entry point passes it on untouched.
    passed_to_django: bool = False
    # The answer gives the session a new, random key.
    rotates_session: bool = False


def who(name: str | None) -> Callable[[World], str | None]:
    return lambda world: session_of(world, name)


CASES = [
    Case("owner", "alice's file", who("alice")),
    Case("owner, HEAD", "alice's file", who("alice"), method="HEAD"),
    Case("owner, Range", "alice's file", who("alice"), headers=(("Range", "bytes=0-3"),)),
    Case("another user", "alice's file", who("bob"), status=404),
    Case("anonymous", "alice's file", who(None), status=302),
    Case(
        "anonymous, 404 setting",
        "alice's file",
        who(None),
        settings=(("PROTECTED_MEDIA_ANONYMOUS", "not_found"),),
        status=404,
    ),
    Case("anonymous, missing file", "deleted file", who(None), status=302),
    Case("expired session", "erin's file", after_expiry, status=302),
    Case("logged out elsewhere", "alice's file", after_logout, status=302),
    Case("password changed", "carol's file", after_password_change, status=302),
    Case("inactive user", "dave's file", after_deactivation, status=302),
    Case("user deleted", "alice's file", after_user_deleted, status=302),
    Case("group member", "alice's shared file", who("bob")),
    Case("group access revoked", "alice's shared file", after_group_revoked, status=404),
    Case(
        "secret key rotated",
        "alice's file",
        signed_in_before_key_rotation,
        settings=(
            ("SECRET_KEY", "the-new-secret-key-" + "y" * 40),
            ("SECRET_KEY_FALLBACKS", [OLD_SECRET_KEY]),
        ),
        rotates_session=True,
    ),
    Case("deleted file", "deleted file", who("alice"), status=404),
    Case("missing key", "/media/AAAAAAAAAAAAAAAAAAAAAA", who("alice"), status=404),
    Case("malformed key", "/media/not-a-key;x=1", who("alice"), status=404),
    Case("malformed key, NUL", "/media/%00AAAAAAAAAAAAAAAAAAAAAA", who("alice"), status=404),
    Case("malformed key, encoded", "/media/%2e%2e%2fsecret", who("alice"), status=404),
    Case("empty key", "/media/", who("alice"), status=404),
    # "." stops at a line break: the URL pattern once let this reach Django's own 404.
    Case("malformed key, line break", "/media/x%0D%0Ay", who("alice"), status=404),
    Case("staff, staff access off", "alice's file", who("staff"), status=404),
    Case(
        "staff, staff access on",
        "alice's file",
        who("staff"),
        settings=(("PROTECTED_MEDIA_ALLOW_STAFF", True),),
    ),
    Case("object permission granted", "hidden report", who("bob")),
    Case("object permission not granted", "public report", who("bob"), status=404),
    Case(
        "custom policy allows",
        "public report",
        who("bob"),
        settings=(("PROTECTED_MEDIA_POLICY", "tests.testapp.policies.public_reports"),),
    ),
    Case(
        "custom policy raises",
        "public report",
        who("alice"),
        settings=(("PROTECTED_MEDIA_POLICY", "tests.testapp.policies.broken"),),
        status=404,
    ),
    Case(
        "custom policy answers not True",
        "public report",
        who("alice"),
        settings=(("PROTECTED_MEDIA_POLICY", "tests.testapp.policies.truthy_not_true"),),
        status=404,
    ),
    Case(
        "streaming fallback",
        "alice's file",
        who("alice"),
        settings=(("SENDFILE_BACKEND", "protected_media.backends.streaming"),),
    ),
    Case(
        "streaming fallback, range",
        "alice's file",
        who("alice"),
        headers=(("Range", "bytes=2-5"),),
        settings=(("SENDFILE_BACKEND", "protected_media.backends.streaming"),),
        status=206,
    ),
    Case("POST", "alice's file", who("alice"), method="POST", status=405, passed_to_django=True),
    Case(
        "host not allowed",
        "alice's file",
        who("alice"),
        headers=(("Host", "evil.example"),),
        status=400,
        passed_to_django=True,
    ),
]


def comparable(response: httpx.Response, case: Case) -> list[tuple[str, str]]:
    headers = response.headers.multi_items()
    if not case.rotates_session:
        return headers
    rotated = [value for name, value in headers if value.startswith("sessionid=")]
    assert len(rotated) == 1
    assert rotated[0].split(";")[0] != response.request.headers["cookie"]
    # Each path makes its own random key, and the expiry date counts from the
    # second each answered in; the rest of the cookie must agree.
    return [
        (name, re.sub(r"expires=[^;]*; ", "", value.split(";", 1)[1]))
        if value.startswith("sessionid=")
        else (name, value)
        for name, value in headers
    ]


async def fetch(app: Any, case: Case, world: World) -> tuple[httpx.Response, int]:
    cookie = await sync_to_async(case.session)(world)
    target = world.urls.get(case.target, case.target)
    headers = dict(case.headers)
    if cookie:
        headers["Cookie"] = f"sessionid={cookie}"
    started = []

    def count(**kwargs: Any) -> None:
        started.append(1)

    request_started.connect(count)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            response = await client.request(case.method, target, headers=headers)
    finally:
        request_started.disconnect(count)
    return response, len(started)


@pytest.fixture
async def entry_point():
    application = ProtectedMediaASGI(get_asgi_application())
    yield application
    await application.aclose()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_both_paths_answer_alike(settings, world, entry_point, case: Case) -> None:
    for name, value in case.settings:
        setattr(settings, name, value)
    django_app = get_asgi_application()
    fast_app = entry_point

    by_django, django_requests = await fetch(django_app, case, world)
    by_entry_point, entry_point_requests = await fetch(fast_app, case, world)

    assert by_django.status_code == case.status, by_django.text
    assert by_entry_point.status_code == by_django.status_code
    assert comparable(by_entry_point, case) == comparable(by_django, case)
    assert by_entry_point.content == by_django.content
    assert django_requests == 1
    # Django's per-request machinery (its signals among it) runs only when the
    # entry point passes the request on.
    assert entry_point_requests == (1 if case.passed_to_django else 0)


async def test_the_setting_turns_it_off(settings, world, entry_point) -> None:
    settings.PROTECTED_MEDIA_FAST_PATH = False
    response, django_requests = await fetch(entry_point, CASES[0], world)
    assert response.status_code == 200
    assert "X-Accel-Redirect" in response.headers
    assert django_requests == 1


@pytest.mark.urls("gateway.urls")  # its /healthz: a page that is not media
async def test_other_paths_go_to_django(world, entry_point) -> None:
    case = Case("health", "/healthz", who(None))
    response, django_requests = await fetch(entry_point, case, world)
    assert (response.status_code, response.content) == (200, b"ok\n")
    assert django_requests == 1


async def test_a_site_pattern_added_before_the_media_view_wins_at_once(
    settings, world, entry_point
) -> None:
    # The entry point keeps the URLconf's media routes after the first request...
    first, _ = await fetch(entry_point, CASES[0], world)
    assert first.status_code == 200 and "X-Accel-Redirect" in first.headers
    # ...and takes the new URLconf's at once, as Django's handler would.
    settings.ROOT_URLCONF = "tests.urlconfs.site_media_first"
    second, django_requests = await fetch(entry_point, CASES[0], world)
    key = world.urls["alice's file"].rsplit("/", 1)[1]
    assert (second.status_code, second.text) == (200, f"the site's own view for {key}\n")
    assert "X-Accel-Redirect" not in second.headers
    assert django_requests == 1


@pytest.mark.parametrize(("max_age", "connections"), [(300, 1), (0, 5)])
async def test_the_threads_keep_their_connection_for_its_max_age(
    settings, world, max_age, connections
) -> None:
    settings.PROTECTED_MEDIA_FAST_PATH_CONN_MAX_AGE = max_age
    # The threads read every request (else the event loop would).
    settings.PROTECTED_MEDIA_FAST_PATH_SQLITE_BUSY_MS = None
    settings.PROTECTED_MEDIA_FAST_PATH_POSTGRES_CONNECTIONS = None
    application = ProtectedMediaASGI(get_asgi_application(), threads=1)
    opened = []

    def count(connection: Any, **kwargs: Any) -> None:
        if threading.current_thread().name.startswith("protected-media"):
            opened.append(connection.alias)

    connection_created.connect(count)
    try:
        for _ in range(5):
            response, _ = await fetch(application, CASES[0], world)
            assert response.status_code == 200
    finally:
        connection_created.disconnect(count)
        await application.aclose()
    assert len(opened) == connections


def pool_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("protected-media")]


async def test_server_shutdown_stops_the_threads(world) -> None:
    application = ProtectedMediaASGI(get_asgi_application(), threads=3)
    response, _ = await fetch(application, CASES[0], world)
    assert response.status_code == 200
    assert len(pool_threads()) == 3

    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await application({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]
    assert pool_threads() == []


def test_startup_names_what_media_requests_skip(settings, caplog) -> None:
    assert skipped_middleware() == []
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.middleware.gzip.GZipMiddleware"]
    with caplog.at_level("WARNING", logger="protected_media"):
        ProtectedMediaASGI(get_asgi_application())
    assert skipped_middleware() == ["django.middleware.gzip.GZipMiddleware"]
    warnings = [record.getMessage() for record in caplog.records]
    assert any("skip django.middleware.gzip.GZipMiddleware" in line for line in warnings)


# -- a missing key costs what another user's file costs (rule 2) -----------------

CALLS: list[tuple[str, str]] = []  # (permission, model) each time a backend is asked


class RecordingBackend:
    """Last among the backends: grants nothing, notes every question the
    policy asks, so that two requests' policy work can be compared."""

    def authenticate(self, request: Any, **credentials: Any) -> None:
        return None

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        if obj is not None:
            CALLS.append((perm, obj._meta.label_lower))
        return False


RECORDING = "tests.test_fast_path.RecordingBackend"
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
GUARDIAN = "guardian.backends.ObjectPermissionBackend"
POLICIES = {
    "owner only": [MODEL_BACKEND, RECORDING],
    "groups": [MODEL_BACKEND, RECORDING],
    "guardian": [MODEL_BACKEND, GUARDIAN, RECORDING],
}


@contextmanager
def statements() -> Iterator[list[str]]:
    """Every SQL statement run, in whichever thread and on whichever
    connection opened meanwhile: Django's (the entry point's threads, Django's
    per-request thread) and the entry point's own on the event loop, whose
    SQLite trace shows values in place of the placeholders."""
    seen: list[str] = []

    def watch(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append(sql)
        return execute(sql, params, many, context)

    def on_connect(sender: Any, connection: Any, **kwargs: Any) -> None:
        connection.execute_wrappers.append(watch)

    def trace(sql: str) -> None:
        seen.append(re.sub(r"'(?:[^']|'')*'|\b\d+\b", "?", sql))

    connection_created.connect(on_connect)
    try:
        with loop_connections.traced(trace):
            yield seen
    finally:
        connection_created.disconnect(on_connect)


async def work_of(
    application: Any, url: str, cookie: str, seen: list[str]
) -> tuple[Any, list[str], list[Any], list[str]]:
    """The answer to one GET, the statements and backend calls it took, and
    its audit line's fields."""
    seen.clear()
    CALLS.clear()
    lines: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = lines.append  # type: ignore[method-assign]
    audit_logger = logging.getLogger("protected_media.audit")
    level = audit_logger.level
    audit_logger.setLevel(logging.INFO)
    audit_logger.addHandler(handler)
    try:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            response = await c.get(url, headers={"Cookie": f"sessionid={cookie}"})
    finally:
        audit_logger.removeHandler(handler)
        audit_logger.setLevel(level)
    (line,) = lines
    shape = sorted(name for name in vars(line) if name not in vars(logging.makeLogRecord({})))
    snapshot = (response.status_code, response.headers.multi_items(), response.content)
    return snapshot, list(seen), list(CALLS), [line.decision, line.user_id, line.share_id, *shape]


@pytest.mark.parametrize("entry", ["django handler", "entry point"])
@pytest.mark.parametrize("policy", list(POLICIES))
async def test_a_missing_key_does_the_work_of_another_users_file(
    settings, django_user_model, make_file, entry: str, policy: str
) -> None:
    settings.AUTHENTICATION_BACKENDS = POLICIES[policy]

    def world() -> tuple[str, str]:
        from django.contrib.auth.models import Group

        alice = django_user_model.objects.create_user("alice")
        bob = django_user_model.objects.create_user("bob")
        item = make_file(alice, "ledger.txt")
        if policy == "groups":
            # Shared with a group bob is not in; bob is in another one.
            item.groups.add(Group.objects.create(name="readers"))
            bob.groups.add(Group.objects.create(name="others"))
        if policy == "guardian":
            from guardian.shortcuts import assign_perm

            # bob holds the permission on another of alice's files.
            assign_perm("protected_media.view_protectedfile", bob, make_file(alice, "other.txt"))
        client = Client()
        client.force_login(bob)
        return item.file.url, client.cookies["sessionid"].value

    url, cookie = await sync_to_async(world)()
    missing = "/media/" + "B" * 22
    with statements() as seen:
        application: Any = get_asgi_application()
        if entry == "entry point":
            application = ProtectedMediaASGI(application)
        try:
            # Warm: the first requests of a process compile lookups and load
            # backends; the entry point's prove its reads and then read the
            # session on its lean path. Their keys are neither of the two
            # compared, which are each asked for twice: a key read before
            # may be read in fewer steps (``stored_grant``), alike.
            for warming in "CD":
                await work_of(application, "/media/" + warming * 22, cookie, seen)
            works = [
                (
                    await work_of(application, url, cookie, seen),
                    await work_of(application, missing, cookie, seen),
                )
                for _ in range(2)
            ]
        finally:
            if entry == "entry point":
                await application.aclose()

    for forbidden, missing_work in works:
        forbidden_answer, forbidden_sql, forbidden_calls, forbidden_line = forbidden
        missing_answer, missing_sql, missing_calls, missing_line = missing_work
        assert forbidden_answer[0] == 404
        assert missing_answer == forbidden_answer
        # The same statements, in the same order; the policy asked the same questions.
        assert len(forbidden_sql) >= 2  # the lean path's two steps on PostgreSQL, at the least
        assert missing_sql == forbidden_sql
        assert forbidden_calls == [
            ("protected_media.view_protectedfile", "protected_media.protectedfile")
        ]
        assert missing_calls == forbidden_calls
        assert missing_line == forbidden_line
