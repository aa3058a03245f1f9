"""Where an authorized media request's time goes inside the worker.

    python -m bench.profile_check                     # SQLite, 20,000 requests
    python -m bench.profile_check --database postgres # a fresh PostgreSQL database
    python -m bench.profile_check --profile 25        # and cProfile's top 25
    python -m bench.profile_check --stranger          # another user, who is refused

The gateway's own ASGI application (``gateway.asgi``: ``ProtectedMediaASGI``
in front of Django) is called in this process, on one event loop, with the
scope uvicorn would build for ``GET /media/<key>`` from a signed-in owner,
with no server, socket or nginx around it: what is left is the check itself
(session, user, record, policy, audit line, metrics, the handoff's headers).
It runs on uvicorn's event loop (uvloop when installed, as the run command's
uvicorn takes it; ``--loop asyncio`` for asyncio's own) and prints the mean
time and CPU per request and, with ``--profile``, the functions that take
it. The figures move with the machine's load: run it alone, and compare
paths within one run (``--compare`` times the loop's reads against the
threads', ``--compare-lean`` the lean path against the usual path, each
interleaved).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import logging
import os
import pstats
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.stack.harness import postgres_admin

DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/postgres"

ASGIApp = Callable[[dict[str, Any], Any, Any], Awaitable[None]]


def configure(data_dir: Path, database_url: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "gateway.settings"
    os.environ["GATEWAY_DATA_DIR"] = str(data_dir)
    os.environ["GATEWAY_SECRET_KEY"] = "profile-" + uuid.uuid4().hex
    os.environ["GATEWAY_DATABASE_URL"] = database_url
    # As in the benchmark: no rate limit in the way, the audit log on.
    os.environ.setdefault("GATEWAY_AUDIT_LOG_LEVEL", "INFO")
    # Sets Django up (and its logging, again).
    import gateway.asgi  # noqa: F401

    # The audit lines go where the run command sends them: a file, not a terminal.
    log_file = open(data_dir / "gateway.log", "a", encoding="utf-8")
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            if isinstance(handler, logging.StreamHandler) and not isinstance(
                handler, logging.FileHandler
            ):
                handler.setStream(log_file)


def prepare() -> tuple[str, bytes, bytes]:
    """The media path of a file the signed-in owner may read, the owner's
    cookie and that of another signed-in user, whom the file is refused."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.files.base import ContentFile
    from django.core.management import call_command
    from django.test import Client

    from protected_media.models import ProtectedFile

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("alice", password="unused-" + uuid.uuid4().hex)
    stored = ProtectedFile(owner=user)
    stored.file.save("note.txt", ContentFile(b"x" * 4096), save=False)
    stored.save()
    stranger = get_user_model().objects.create_user("bob", password="unused-" + uuid.uuid4().hex)
    cookies = []
    for who in (user, stranger):
        client = Client()
        client.force_login(who)
        session = client.cookies[settings.SESSION_COOKIE_NAME].value
        cookies.append(f"{settings.SESSION_COOKIE_NAME}={session}".encode())
    return stored.file.url, cookies[0], cookies[1]


def scope_for(path: str, cookie: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"user-agent", b"wrk"),
            (b"accept", b"*/*"),
            (b"cookie", cookie),
            (b"x-forwarded-for", b"127.0.0.1"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def one_request(app: ASGIApp, scope: dict[str, Any]) -> tuple[int, dict[bytes, bytes]]:
    answer: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
            answer["headers"] = dict(message["headers"])

    await app(dict(scope), receive, send)
    return answer["status"], answer["headers"]


async def timed(app: ASGIApp, scope: dict[str, Any], requests: int) -> tuple[float, float]:
    """Mean seconds per request over ``requests`` in a row: elapsed, and the
    CPU time of this process (which another process's load moves less)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(requests):
        await one_request(app, scope)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return elapsed / requests, cpu / requests


def print_means(runs: dict[str, list[tuple[float, float]]]) -> dict[str, float]:
    """Print each path's mean time and CPU per request over its runs (as
    ``timed`` measures them); answer the mean CPU of each."""
    means = {}
    for name, measured in runs.items():
        elapsed, cpu = (sum(values) / len(values) for values in zip(*measured, strict=True))
        means[name] = cpu
        print(f"{name:13} {elapsed * 1e6:8.1f} µs a request, {cpu * 1e6:8.1f} µs of CPU")
    return means


async def run(args: argparse.Namespace, path: str, cookie: bytes) -> None:
    from gateway.asgi import application
    from protected_media.asgi import ProtectedMediaASGI

    scope = scope_for(path, cookie)
    status, headers = await one_request(application, scope)
    if args.stranger:
        if status != 404:
            sys.exit(f"the stranger's first request was not refused: {status} {headers}")
    elif status != 200 or b"x-accel-redirect" not in {name.lower() for name in headers}:
        sys.exit(f"the first request was not handed to nginx: {status} {headers}")
    await timed(application, scope, min(args.requests, 2000))  # warm up
    if args.compare_lean:
        from django.test import override_settings

        runs: dict[str, list[tuple[float, float]]] = {"lean path": [], "usual path": []}
        for _ in range(10):
            runs["lean path"].append(await timed(application, scope, args.requests // 10))
            with override_settings(PROTECTED_MEDIA_FAST_PATH_LEAN=False):
                runs["usual path"].append(await timed(application, scope, args.requests // 10))
        means = print_means(runs)
        print(f"usual ÷ lean CPU: {means['usual path'] / means['lean path']:.2f}")
    elif args.compare:
        from django.test import override_settings

        threads = ProtectedMediaASGI(application.application)
        threads._loop_reads._chosen = True  # the threads' reads only
        # The usual path's reads, the lean path's aside (--compare-lean).
        with override_settings(PROTECTED_MEDIA_FAST_PATH_LEAN=False):
            await timed(threads, scope, min(args.requests, 2000))
            loop_runs = [await timed(application, scope, args.requests // 10) for _ in range(10)]
            thread_runs = [await timed(threads, scope, args.requests // 10) for _ in range(10)]
        print_means({"loop reads": loop_runs, "thread reads": thread_runs})
        await threads.aclose()
    else:
        elapsed, cpu = await timed(application, scope, args.requests)
        print(f"{elapsed * 1e6:.1f} µs a request, {cpu * 1e6:.1f} µs of this process's CPU")
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        await timed(application, scope, args.requests)
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs()
        stats.sort_stats("tottime").print_stats(args.profile)
        stats.sort_stats("cumulative").print_stats(args.profile)
        print(out.getvalue())
    await application.aclose()


def event_loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop where uvicorn would take it (``--loop auto``), else asyncio's."""
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if name == "uvloop":
            sys.exit("uvloop is not installed")
        return None
    return uvloop.new_event_loop


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--postgres-url", default=os.environ.get("POSTGRES_URL", DEFAULT_POSTGRES_URL)
    )
    parser.add_argument(
        "--loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="the event loop, as uvicorn's --loop: auto takes uvloop when installed",
    )
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    parser.add_argument("--compare", action="store_true", help="loop reads against thread reads")
    parser.add_argument(
        "--compare-lean", action="store_true", help="the lean path against the usual path"
    )
    parser.add_argument(
        "--stranger", action="store_true", help="another signed-in user, who is refused"
    )
    args = parser.parse_args(argv)
    data_dir = Path(tempfile.mkdtemp(prefix="profile-check-"))
    database_url = ""
    database = ""
    if args.database == "postgres":
        database = "profile_" + uuid.uuid4().hex[:12]
        postgres_admin("CREATE DATABASE {name}", database)
        database_url = args.postgres_url.rsplit("/", 1)[0] + "/" + database
    try:
        configure(data_dir, database_url)
        path, owner, stranger = prepare()
        with asyncio.Runner(loop_factory=event_loop_factory(args.loop)) as runner:
            runner.run(run(args, path, stranger if args.stranger else owner))
    finally:
        if database:
            from django.db import connections

            connections.close_all()
            postgres_admin("DROP DATABASE {name} WITH (FORCE)", database)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
