"""On SQLite and PostgreSQL, the entry point reads the common case on the
event loop.

What a user sees through both entry points is held equal by the decision
table (``tests/test_fast_path.py``), which runs this path for every case it
can take. Here: that it is taken (the statements run on the loop's own
thread, none on the threads' connections), that what it cannot answer goes
to the threads, and, on SQLite, that a writer holding the database file
sends the request to the threads after the busy timeout instead of stalling
the loop.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.core.asgi import get_asgi_application
from django.core.checks import run_checks
from django.db import connection
from django.db.backends.signals import connection_created
from django.test import Client

from protected_media.asgi import ProtectedMediaASGI
from protected_media.fastpath import postgres_reads
from protected_media.signals import file_served
from tests import loop_connections

pytestmark = pytest.mark.django_db(transaction=True)
sqlite_only = pytest.mark.skipif(
    connection.vendor != "sqlite", reason="a SQLite file's locks: PostgreSQL has none to take"
)
# The setting that turns the loop's reads off for this run's database.
LOOP_READS_SETTING = (
    "PROTECTED_MEDIA_FAST_PATH_SQLITE_BUSY_MS"
    if connection.vendor == "sqlite"
    else "PROTECTED_MEDIA_FAST_PATH_POSTGRES_CONNECTIONS"
)


@pytest.fixture(autouse=True)
def _usual_path(settings) -> None:
    # The lean path answers an owner before these reads run, from the second
    # request on (tests/test_fast_path_lean.py): here, the reads it leaves to
    # the usual path.
    settings.PROTECTED_MEDIA_FAST_PATH_LEAN = False


@dataclass(frozen=True)
class Statement:
    sql: str
    thread: int
    # "loop": the entry point's own connection; "django": one of Django's.
    connection: str


@contextmanager
def statements() -> Iterator[list[Statement]]:
    """Each statement run on a connection opened meanwhile, with the thread
    that ran it: the driver's own hook for the entry point's connections on
    the loop, Django's execute wrappers for its own."""
    seen: list[Statement] = []

    def on_loop(sql: str) -> None:
        seen.append(Statement(sql, threading.get_ident(), "loop"))

    def watch(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        seen.append(Statement(sql, threading.get_ident(), "django"))
        return execute(sql, params, many, context)

    def on_django_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
        connection.execute_wrappers.append(watch)

    connection_created.connect(on_django_connection)
    try:
        with loop_connections.traced(on_loop):
            yield seen
    finally:
        connection_created.disconnect(on_django_connection)


@pytest.fixture
def owned(django_user_model, make_file) -> tuple[str, str]:
    """A file's URL and its owner's session cookie."""
    alice = django_user_model.objects.create_user("alice")
    url = make_file(alice, "notes.txt").file.url
    client = Client()
    client.force_login(alice)
    return url, client.cookies["sessionid"].value


@pytest.fixture
async def entry_point() -> Any:
    application = ProtectedMediaASGI(get_asgi_application())
    yield application
    await application.aclose()


async def get(application: Any, url: str, cookie: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=application)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.get(url, headers={"Cookie": f"sessionid={cookie}"})


async def test_the_owner_is_answered_on_the_event_loop(owned, entry_point, caplog) -> None:
    url, cookie = owned
    served: list[dict[str, Any]] = []

    def on_served(sender: Any, **kwargs: Any) -> None:
        served.append(kwargs)

    file_served.connect(on_served)
    try:
        with statements() as seen:
            # The first media request proves the reads, in the threads.
            assert (await get(entry_point, url, cookie)).status_code == 200
            seen.clear()
            served.clear()
            with caplog.at_level(logging.INFO, logger="protected_media.audit"):
                response = await get(entry_point, url, cookie)
    finally:
        file_served.disconnect(on_served)

    assert response.status_code == 200
    key = url.rsplit("/", 1)[1]
    assert response.headers["X-Accel-Redirect"] == f"/_protected/files/{key}.txt"
    loop_thread = threading.get_ident()
    # Session, user, record, the row holding the file: all on the loop's
    # thread, through its own connection; none through Django's.
    assert [(s.connection, s.thread) for s in seen] == [("loop", loop_thread)] * 4
    assert [s.sql.split(" FROM ")[1].split()[0] for s in seen] == [
        '"django_session"',
        '"auth_user"',
        '"protected_media_storedfile"',
        '"protected_media_protectedfile"',
    ]
    # The audit line and the signal, as on every other path.
    (line,) = [r for r in caplog.records if r.name == "protected_media.audit"]
    assert (line.decision, line.reason, line.key) == ("served", "owner", key)
    assert len(served) == 1 and served[0]["user"].username == "alice"


async def test_a_password_change_goes_to_the_threads(owned, entry_point, django_user_model) -> None:
    url, cookie = owned
    with statements() as seen:
        assert (await get(entry_point, url, cookie)).status_code == 200

        def change_password() -> None:
            alice = django_user_model.objects.get(username="alice")
            alice.set_password("another-password")
            alice.save()

        await sync_to_async(change_password)()
        seen.clear()
        response = await get(entry_point, url, cookie)

    assert response.status_code == 302
    # The loop read the session and the user, found the hash stale and wrote
    # nothing; the threads read them again and flushed the session.
    assert [s.connection for s in seen[:2]] == ["loop", "loop"]
    threads = [s for s in seen[2:] if s.connection == "django"]
    assert all(s.thread != threading.get_ident() for s in threads)
    assert any(s.sql.startswith("DELETE") and "django_session" in s.sql for s in threads)


async def test_the_setting_keeps_every_read_in_the_threads(settings, owned, entry_point) -> None:
    setattr(settings, LOOP_READS_SETTING, None)
    url, cookie = owned
    with statements() as seen:
        assert (await get(entry_point, url, cookie)).status_code == 200
        seen.clear()
        assert (await get(entry_point, url, cookie)).status_code == 200
    assert seen and all(s.connection == "django" for s in seen)
    assert all(s.thread != threading.get_ident() for s in seen)


def database_path() -> str:
    return str(connection.settings_dict["NAME"])


@sqlite_only
@pytest.mark.parametrize(
    ("lock", "answered_by"),
    [
        # A writer's RESERVED lock: readers go on reading.
        ("IMMEDIATE", "loop"),
        # An EXCLUSIVE lock (a commit in progress, without WAL): readers wait.
        ("EXCLUSIVE", "threads"),
    ],
)
async def test_a_writer_holding_the_file(
    settings, owned, entry_point, lock: str, answered_by: str
) -> None:
    # The threads open a connection per request, so that each is watched.
    settings.PROTECTED_MEDIA_FAST_PATH_CONN_MAX_AGE = 0
    url, cookie = owned
    writer = sqlite3.connect(database_path(), isolation_level=None, check_same_thread=False)
    # Without WAL, the case the busy timeout is for (in WAL, a writer never
    # blocks a reader).
    assert writer.execute("PRAGMA journal_mode").fetchone()[0] != "wal"
    loop = asyncio.get_running_loop()
    thread_reads = asyncio.Event()

    def on_thread_read(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        loop.call_soon_threadsafe(thread_reads.set)
        return execute(sql, params, many, context)

    def on_django_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
        connection.execute_wrappers.append(on_thread_read)

    with statements() as seen:
        assert (await get(entry_point, url, cookie)).status_code == 200
        seen.clear()
        connection_created.connect(on_django_connection)
        writer.execute(f"BEGIN {lock}")
        try:
            request = asyncio.ensure_future(get(entry_point, url, cookie))
            # The loop runs this test while the request waits (it is not
            # stalled): until a thread begins reading, and waits behind the
            # writer, or the loop has answered.
            read = asyncio.ensure_future(thread_reads.wait())
            await asyncio.wait({request, read}, return_when=asyncio.FIRST_COMPLETED)
            handed_to_threads = not request.done()
            read.cancel()
        finally:
            writer.execute("ROLLBACK")
            writer.close()
            connection_created.disconnect(on_django_connection)
        response = await request

    assert response.status_code == 200
    assert "X-Accel-Redirect" in response.headers
    loop_thread = threading.get_ident()
    if answered_by == "loop":
        assert not handed_to_threads
        assert [(s.connection, s.thread) for s in seen] == [("loop", loop_thread)] * 4
    else:
        assert handed_to_threads
        # The loop tried the session's read, gave up after the busy timeout
        # and read nothing more.
        tried = [(s.connection, s.thread) for s in seen if s.connection == "loop"]
        assert tried in ([], [("loop", loop_thread)])
        readers = [s for s in seen if s.connection == "django"]
        assert len(readers) == 4 and all(s.thread != loop_thread for s in readers)


def test_the_busy_timeout_must_be_a_count_of_milliseconds(settings) -> None:
    for wrong in (-1, 2.5, "5", True):
        settings.PROTECTED_MEDIA_FAST_PATH_SQLITE_BUSY_MS = wrong
        assert "protected_media.E026" in [message.id for message in run_checks()]
    for right in (None, 0, 5):
        settings.PROTECTED_MEDIA_FAST_PATH_SQLITE_BUSY_MS = right
        assert "protected_media.E026" not in [message.id for message in run_checks()]


postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the loop's own PostgreSQL connections"
)


@postgres_only
async def test_a_connection_the_server_dropped_sends_that_request_to_the_threads(
    owned, entry_point
) -> None:
    url, cookie = owned
    pids: list[int] = []

    def remember(sender: Any, connection: Any, **kwargs: Any) -> None:
        pids.append(connection.info.backend_pid)

    postgres_reads.connection_opened.connect(remember)
    try:
        with statements() as seen:
            assert (await get(entry_point, url, cookie)).status_code == 200
            seen.clear()
            assert (await get(entry_point, url, cookie)).status_code == 200
            assert [s.connection for s in seen] == ["loop"] * 4

            # The server ends the loop's connections (a restart, an admin's
            # pg_terminate_backend): the next request is answered all the same,
            # by the threads, and the pool makes new ones for the loop.
            def terminate() -> None:
                with connection.cursor() as cursor:
                    for pid in pids:
                        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])

            await sync_to_async(terminate)()
            seen.clear()
            response = await get(entry_point, url, cookie)
            assert response.status_code == 200
            assert "X-Accel-Redirect" in response.headers
            assert [s.connection for s in seen if s.connection == "django"]
            for _ in range(50):
                seen.clear()
                assert (await get(entry_point, url, cookie)).status_code == 200
                if [s.connection for s in seen] == ["loop"] * 4:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the loop never read again")
    finally:
        postgres_reads.connection_opened.disconnect(remember)


def test_the_pool_size_must_be_a_count_of_connections(settings) -> None:
    for wrong in (0, -1, 2.5, "4", True):
        settings.PROTECTED_MEDIA_FAST_PATH_POSTGRES_CONNECTIONS = wrong
        assert "protected_media.E028" in [message.id for message in run_checks()]
    for right in (None, 1, 4):
        settings.PROTECTED_MEDIA_FAST_PATH_POSTGRES_CONNECTIONS = right
        assert "protected_media.E028" not in [message.id for message in run_checks()]
