"""No media request leaves a database connection behind, counted from outside
the app on the real stack: PostgreSQL's own list of backends on the stack's
database, or, on SQLite, uvicorn's open file descriptors on db.sqlite3 (each
SQLite connection holds one)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from .conftest import start_stack
from .harness import TEST_DATABASE_URL, Stack

pytestmark = pytest.mark.stack

# PROTECTED_MEDIA_FAST_PATH_THREADS's default, which the gateway keeps.
THREADS = 4
# gateway/settings.py on PostgreSQL: the pool opens its min_size (4)
# connections when first used, and one more when the first request finds none
# ready yet; it opens another only when all are lent at once.
POOL_OPENS = 4 + 1
# gateway/settings.py: the pool's max_size on PostgreSQL.
POOL_MAX_SIZE = 16
# PROTECTED_MEDIA_FAST_PATH_POSTGRES_CONNECTIONS's default: the pool the
# entry point reads through on the event loop.
LOOP_POOL_SIZE = 4
REQUESTS = 120
CONCURRENCY = 8
SETTLE = 3.0


def app_connections(stack: Stack) -> set[tuple[int, str]]:
    """The app's open database connections: on PostgreSQL named by backend pid
    and start time, so a new connection never takes an old one's name; on
    SQLite by process and descriptor, which a new one may reuse (there the
    count is what proves it)."""
    if stack.database:
        import psycopg

        with psycopg.connect(TEST_DATABASE_URL, autocommit=True) as connection:
            rows = connection.execute(
                "SELECT pid, backend_start::text FROM pg_stat_activity WHERE datname = %s",
                [stack.database],
            ).fetchall()
        return {(pid, started) for pid, started in rows}
    database = stack.data_dir / "db.sqlite3"
    found = set()
    for pid in stack.uvicorn_pids():
        for descriptor in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if Path(descriptor.readlink()) == database:
                    found.add((pid, descriptor.name))
            except OSError:
                continue
    return found


def settled(stack: Stack, at_most: int) -> set[tuple[int, str]]:
    """The connections once at most ``at_most`` remain, or after SETTLE seconds:
    Django sends request_finished after the response has left."""
    deadline = time.monotonic() + SETTLE
    while len(found := app_connections(stack)) > at_most and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


# Made in another process, so that no request but the measured ones ever
# reaches uvicorn's database connections.
SIGN_IN_AND_UPLOAD = """
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.test import Client
from protected_media.models import ProtectedFile
alice = User.objects.get(username="alice")
item = ProtectedFile(owner=alice)
item.file.save("notes.txt", ContentFile(b"connection test\\n"), save=True)
client = Client()
client.force_login(alice)
print(item.file.url, client.cookies["sessionid"].value)
"""


def media_stack(tmp_path_factory, name: str, **env: str) -> Iterator[tuple[Stack, str, str]]:
    stack = start_stack(tmp_path_factory, name, **env)
    try:
        url, session = stack.shell(SIGN_IN_AND_UPLOAD).split()[-2:]
        yield stack, url, session
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def entry_point(tmp_path_factory) -> Iterator[tuple[Stack, str, str]]:
    yield from media_stack(tmp_path_factory, "connections-entry-point")


@pytest.fixture(scope="module")
def django_handler(tmp_path_factory) -> Iterator[tuple[Stack, str, str]]:
    yield from media_stack(tmp_path_factory, "connections-django", GATEWAY_FAST_MEDIA="0")


def get_media(stack: Stack, url: str, session: str, times: int) -> None:
    with httpx.Client(base_url=stack.url, cookies={"sessionid": session}, timeout=30) as client:
        for _ in range(times):
            response = client.get(url)
            assert response.status_code == 200, response.text
            assert response.content == b"connection test\n"


def test_the_entry_point_keeps_one_connection_per_thread(entry_point) -> None:
    stack, url, session = entry_point
    # 360 requests. SQLite: never more connections than one per thread, each
    # kept by its thread, and the event loop's own. PostgreSQL: each thread
    # holds one from Django's pool, which may open a few more while its
    # threads race for the first ones (never past its max_size), and the
    # loop's pool has its own (never past its size); after the first burst,
    # not one new connection: the same ones serve every later request.
    at_most = POOL_MAX_SIZE + LOOP_POOL_SIZE if stack.database else THREADS + 1
    seen: set[tuple[int, str]] = set()
    # One request alone first: it proves the entry point's copies and its
    # reads on the loop. Requests that came meanwhile would go to Django's
    # handler, whose connections stay open until the garbage collector
    # finds their thread's (a busy machine proves slowly, and sends more).
    get_media(stack, url, session, 1)
    # Then in parallel, so that every thread of the entry point gets work.
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        for done in [
            pool.submit(get_media, stack, url, session, REQUESTS // CONCURRENCY)
            for _ in range(CONCURRENCY)
        ]:
            done.result()
    # Requests that came while the entry point proved its reads went to
    # Django's handler, which closes their connections once the response
    # has left.
    first = settled(stack, at_most)
    assert 1 <= len(first) <= at_most, first
    seen |= first
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        for done in [
            pool.submit(get_media, stack, url, session, REQUESTS // CONCURRENCY)
            for _ in range(CONCURRENCY)
        ]:
            done.result()
    seen |= app_connections(stack)
    for _ in range(REQUESTS):
        get_media(stack, url, session, 1)
        seen |= app_connections(stack)
    if stack.database:
        assert seen == first, seen - first
    assert len(seen) <= at_most, seen


def test_django_handler_keeps_no_connection_across_requests(django_handler) -> None:
    stack, url, session = django_handler
    # SQLite: Django closes the request's connection as the request finishes
    # (CONN_MAX_AGE 0: under ASGI the request's thread ends with it, and a
    # kept connection would stay open until the garbage collector found it).
    # PostgreSQL: the request hands it back to the pool, which lends the same
    # ones to the next requests and opens no other.
    at_most = POOL_OPENS if stack.database else 0
    seen: set[tuple[int, str]] = set()
    for _ in range(REQUESTS):
        get_media(stack, url, session, 1)
        seen |= settled(stack, at_most)
        assert len(seen) <= at_most, seen


def test_the_gateway_keeps_sqlite_in_wal_mode(entry_point) -> None:
    # The media check reads on the event loop with a busy timeout of a few
    # milliseconds; in WAL mode an upload's commit never holds those reads up.
    stack, url, session = entry_point
    if stack.database:
        pytest.skip("the stack runs on PostgreSQL: no SQLite file to look at")
    import sqlite3

    get_media(stack, url, session, 1)
    with sqlite3.connect(stack.data_dir / "db.sqlite3") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
