"""The lean path answers a file granted to its owner exactly as the usual path
would, and declines everything else before it changes anything.

The decision table of ``tests/test_fast_path.py`` runs again here with the
lean path taught first (an owner's grant of the same kind of request), so
that every case meets it: the answers must still be Django's, byte for byte
in status, headers and body.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.contrib.sessions.models import Session
from django.core.asgi import get_asgi_application
from django.db import connection

from protected_media import audit
from protected_media.asgi import ProtectedMediaASGI
from protected_media.fastpath import lean_plan, postgres_reads, sqlite_reads, stored_grant
from protected_media.fastpath.compiled import CompiledLookup, Rows, Statement, arun_steps, run_steps
from protected_media.fastpath.guesses import Guesses
from protected_media.signals import file_served
from tests import loop_connections
from tests.test_fast_path import CASES, Case, World, comparable, fetch, signed_in, who, world

pytestmark = pytest.mark.django_db(transaction=True)
__all__ = ["world"]  # the decision table's fixture, used by name

# Answered by the lean path once it has learned the middleware's headers.
LEAN_CASES = {"owner", "owner, HEAD", "owner, Range", "staff, staff access on"}
OWNER = Case("owner", "alice's file", who("alice"))


@pytest.fixture
async def entry_point() -> Any:
    application = ProtectedMediaASGI(get_asgi_application())
    yield application
    await application.aclose()


async def teach(application: Any, world: World, case: Case = OWNER) -> list[int]:
    """The first media request proves the reads; the first grant the lean
    path would answer goes through the usual path, which teaches it."""
    return [(await fetch(application, case, world))[0].status_code for _ in range(2)]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_the_lean_path_answers_alike(
    settings, world, entry_point, lean_answers, case: Case
) -> None:
    for name, value in case.settings:
        setattr(settings, name, value)
    # (Where a policy of the site's refuses the owner, there is nothing to learn.)
    await teach(entry_point, world)
    lean_answers.clear()

    by_django, _ = await fetch(get_asgi_application(), case, world)
    by_entry_point, django_requests = await fetch(entry_point, case, world)

    assert by_django.status_code == case.status, by_django.text
    assert by_entry_point.status_code == by_django.status_code
    assert comparable(by_entry_point, case) == comparable(by_django, case)
    assert by_entry_point.content == by_django.content
    assert django_requests == (1 if case.passed_to_django else 0)
    # The lean path answered exactly the grants it takes (under the streaming
    # fallback, nginx does not send the bytes: the usual path streams them).
    lean_case = case.name in LEAN_CASES and "SENDFILE_BACKEND" not in dict(case.settings)
    assert len(lean_answers) == (1 if lean_case else 0)


@pytest.fixture
def loop_statements() -> Iterator[list[tuple[str, int]]]:
    seen: list[tuple[str, int]] = []
    with loop_connections.traced(lambda sql: seen.append((sql, threading.get_ident()))):
        yield seen


SESSION, USER = '"django_session"', '"auth_user"'
RECORD, HOLDER = '"protected_media_storedfile"', '"protected_media_protectedfile"'


@pytest.fixture
def lean_steps(monkeypatch) -> list[list[str]]:
    """The tables each step of the lean path reads (``stored_grant.grantee``),
    as the database's reads run them."""
    seen: list[list[str]] = []

    def recording(steps: Any, alias: str, run: Any) -> Any:
        def recorded(statements: list[Statement]) -> list[Rows]:
            seen.append([table(statement.sql) for statement in statements])
            return run(statements)

        return run_steps(steps, alias, recorded)

    async def arecording(steps: Any, alias: str, run: Any) -> Any:
        async def recorded(statements: list[Statement]) -> list[Rows]:
            seen.append([table(statement.sql) for statement in statements])
            return await run(statements)

        return await arun_steps(steps, alias, recorded)

    monkeypatch.setattr(sqlite_reads, "run_steps", recording)
    monkeypatch.setattr(postgres_reads, "arun_steps", arecording)
    return seen


def table(sql: str) -> str:
    return re.findall(r' FROM ("\w+")', sql)[0]


async def test_one_read_transaction_and_the_audit_trail(
    world, entry_point, lean_answers, loop_statements, lean_steps, caplog
) -> None:
    counted: list[tuple[str, str, float]] = []

    def counter(decision: str, reason: str, latency: float) -> None:
        counted.append((decision, reason, latency))

    assert await teach(entry_point, world) == [200, 200]
    loop_statements.clear()
    lean_steps.clear()
    audit.add_counter(counter)
    try:
        with caplog.at_level(logging.INFO, logger="protected_media.audit"):
            response, _ = await fetch(entry_point, OWNER, world)
    finally:
        audit.remove_counter(counter)

    assert response.status_code == 200 and len(lean_answers) == 1
    key = world.urls["alice's file"].rsplit("/", 1)[1]
    assert response.headers["X-Accel-Redirect"] == f"/_protected/files/{key}.pdf"
    # The session and the record, then the user and the row holding the
    # file: this session was not read before.
    assert lean_steps == [[SESSION, RECORD], [USER, HOLDER]]
    if connection.vendor == "sqlite":
        # One statement after another, in one snapshot.
        assert [sql.split(" FROM ")[-1].split()[0] for sql, _ in loop_statements] == [
            "BEGIN",
            SESSION,
            RECORD,
            USER,
            HOLDER,
            "ROLLBACK",
        ]
    else:
        # One statement (one round trip) for each step.
        assert [re.findall(r' FROM ("\w+")', sql) for sql, _ in loop_statements] == lean_steps
    assert {thread for _, thread in loop_statements} == {threading.get_ident()}
    (line,) = [r for r in caplog.records if r.name == "protected_media.audit"]
    assert line.getMessage().startswith(
        f"media decision=served reason=owner user={world.users['alice'].pk} key={key} share=- "
    )
    assert (line.decision, line.reason, line.user_id, line.key) == (
        "served",
        "owner",
        world.users["alice"].pk,
        key,
    )
    assert [(decision, reason) for decision, reason, _ in counted] == [("served", "owner")]


async def taught_session(entry_point: Any, world: World) -> tuple[str, Case]:
    """A session of alice's, and her file's request in it, once that request
    taught the lean path."""
    cookie = await sync_to_async(signed_in)(world.users["alice"])
    in_session = Case("alice's session", "alice's file", lambda world: cookie)
    await teach(entry_point, world, in_session)
    return cookie, in_session


async def test_a_session_read_before_takes_one_step(
    world, entry_point, lean_answers, lean_steps
) -> None:
    _, again = await taught_session(entry_point, world)
    lean_steps.clear()

    response, _ = await fetch(entry_point, again, world)

    assert response.status_code == 200 and len(lean_answers) == 1
    assert lean_steps == [[SESSION, RECORD, USER, HOLDER]]


async def test_a_session_asking_again_makes_only_its_session_statement_afresh(
    world, entry_point, lean_answers, lean_steps, monkeypatch
) -> None:
    _, again = await taught_session(entry_point, world)
    made: list[str] = []
    statement = CompiledLookup.statement

    def making(lookup: CompiledLookup[Any], *values: Any) -> Statement | None:
        made.append(lookup.model.__name__)
        return statement(lookup, *values)

    monkeypatch.setattr(CompiledLookup, "statement", making)
    answers = [(await fetch(entry_point, again, world))[0] for _ in range(3)]

    assert [answer.status_code for answer in answers] == [200] * 3 and len(lean_answers) == 3
    # The session's statement holds the moment (its expiry against now).
    assert made == ["Session"] * 3
    assert lean_steps[-3:] == [[SESSION, RECORD, USER, HOLDER]] * 3


async def test_the_first_request_for_a_key_takes_the_same_steps_whoever_asked_before(
    world, entry_point, lean_answers, lean_steps
) -> None:
    # alice's session has read her file, on the lean path.
    await teach(entry_point, world)
    assert (await fetch(entry_point, OWNER, world))[0].status_code == 200
    bobs = await sync_to_async(signed_in)(world.users["bob"])

    def of_bob(target: str) -> Case:
        return Case("bob", target, lambda world: bobs, status=404)

    # bob's session names bob from now on.
    await fetch(entry_point, of_bob("/media/" + "C" * 22), world)
    lean_steps.clear()
    by_file, _ = await fetch(entry_point, of_bob("alice's file"), world)
    file_steps = list(lean_steps)
    lean_steps.clear()
    by_missing, _ = await fetch(entry_point, of_bob("/media/" + "B" * 22), world)

    assert by_file.status_code == by_missing.status_code == 404
    assert file_steps == lean_steps == [[SESSION, RECORD, USER], [HOLDER]]


async def test_a_wrong_guess_costs_a_step_and_never_the_answer(
    world, entry_point, lean_answers, lean_steps
) -> None:
    # alice's session comes to name bob (as if its data were rewritten):
    # the user it named last time is no longer the one it names.
    cookie, again = await taught_session(entry_point, world)
    assert (await fetch(entry_point, again, world))[0].status_code == 200
    bobs = await sync_to_async(Session.objects.get)(
        session_key=await sync_to_async(signed_in)(world.users["bob"])
    )
    await Session.objects.filter(session_key=cookie).aupdate(session_data=bobs.session_data)
    lean_steps.clear()
    lean_answers.clear()

    by_entry_point, _ = await fetch(entry_point, again, world)
    by_django, _ = await fetch(get_asgi_application(), again, world)

    assert by_entry_point.status_code == by_django.status_code != 200
    assert lean_answers == []
    # alice's row was read on the guess; bob's is read in a step of its own.
    assert lean_steps == [[SESSION, RECORD, USER, HOLDER], [USER]]


async def test_a_session_refused_a_key_goes_to_the_usual_path_for_it_next_time(
    world, entry_point, lean_answers, lean_steps
) -> None:
    await teach(entry_point, world)
    bobs = await sync_to_async(signed_in)(world.users["bob"])
    of_bob = Case("bob", "alice's file", lambda world: bobs, status=404)
    missing = Case("bob", "/media/" + "B" * 22, lambda world: bobs, status=404)
    lean_steps.clear()
    first = [(await fetch(entry_point, case, world))[0] for case in (of_bob, missing)]
    first_steps = list(lean_steps)
    lean_steps.clear()

    again = [(await fetch(entry_point, case, world))[0] for case in (of_bob, missing)]
    by_django = [
        (await fetch(get_asgi_application(), case, world))[0] for case in (of_bob, missing)
    ]

    # Both read on the lean path the first time, alike; then neither.
    assert first_steps == [[SESSION, RECORD], [USER, HOLDER], [SESSION, RECORD, USER], [HOLDER]]
    assert lean_steps == [] and lean_answers == []
    for case, answers in zip(
        (of_bob, missing), zip(first, again, by_django, strict=True), strict=True
    ):
        assert [answer.status_code for answer in answers] == [404] * 3
        seen = [(comparable(answer, case), answer.content) for answer in answers]
        assert seen == [seen[-1]] * 3
    # Per session: another session of bob's reads on the lean path again.
    others = await sync_to_async(signed_in)(world.users["bob"])
    by_other, _ = await fetch(entry_point, Case("bob", "alice's file", lambda world: others), world)
    assert by_other.status_code == 404
    assert lean_steps == [[SESSION, RECORD], [USER, HOLDER]]


async def test_a_receiver_of_file_served_gets_the_request(world, entry_point, lean_answers) -> None:
    received: list[dict[str, Any]] = []

    def on_served(sender: Any, **kwargs: Any) -> None:
        received.append(kwargs)

    await teach(entry_point, world)
    lean_answers.clear()
    file_served.connect(on_served)
    try:
        response, _ = await fetch(entry_point, OWNER, world)
    finally:
        file_served.disconnect(on_served)
    assert response.status_code == 200
    assert lean_answers == []
    (sent,) = received
    assert sent["request"].path == world.urls["alice's file"]
    assert sent["user"] == world.users["alice"]


def _change_password(world: World) -> None:
    alice = world.users["alice"]
    alice.set_password("another-password")
    alice.save()


def _deactivate(world: World) -> None:
    alice = world.users["alice"]
    alice.is_active = False
    alice.save()


def _log_out(world: World, cookie: str) -> None:
    from django.contrib.sessions.models import Session

    Session.objects.filter(session_key=cookie).delete()


def _delete_user(world: World) -> None:
    world.users["alice"].delete()


def _delete_file(world: World) -> None:
    from protected_media.models import ProtectedFile

    ProtectedFile.objects.filter(owner=world.users["alice"]).delete()


@pytest.mark.parametrize(
    ("change", "status"),
    [
        (_change_password, 302),
        (_deactivate, 302),
        (_log_out, 302),
        (_delete_user, 302),
        (_delete_file, 404),
    ],
    ids=["password changed", "deactivated", "logged out", "user deleted", "file deleted"],
)
async def test_the_very_next_request_is_refused(
    world, entry_point, lean_answers, change: Any, status: int
) -> None:
    cookie = await sync_to_async(signed_in)(world.users["alice"])
    url = world.urls["alice's file"]
    transport = httpx.ASGITransport(app=entry_point)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", cookies={"sessionid": cookie}
    ) as client:
        for _ in range(3):
            assert (await client.get(url)).status_code == 200
        assert len(lean_answers) == 1
        if change is _log_out:
            await sync_to_async(change)(world, cookie)
        else:
            await sync_to_async(change)(world)
        response = await client.get(url)
    assert response.status_code == status
    assert len(lean_answers) == 1


async def test_each_kind_of_request_learns_its_own_headers(
    settings, world, entry_point, lean_answers
) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 3600
    over_https = Case(
        "owner over HTTPS", "alice's file", who("alice"), headers=(("X-Forwarded-Proto", "https"),)
    )
    await teach(entry_point, world)
    lean_answers.clear()
    # A new kind: the usual path answers it first.
    by_usual_path, _ = await fetch(entry_point, over_https, world)
    assert lean_answers == []
    by_lean, _ = await fetch(entry_point, over_https, world)
    by_django, _ = await fetch(get_asgi_application(), over_https, world)
    over_http, _ = await fetch(entry_point, OWNER, world)

    assert len(lean_answers) == 2
    assert by_lean.headers["Strict-Transport-Security"] == "max-age=3600"
    assert by_lean.headers.multi_items() == by_django.headers.multi_items()
    assert by_lean.headers.multi_items() == by_usual_path.headers.multi_items()
    assert "Strict-Transport-Security" not in over_http.headers


async def test_headers_unlike_the_views_turn_it_off(
    world, entry_point, lean_answers, monkeypatch, caplog
) -> None:
    own_headers = stored_grant.answer_headers

    def reordered(grantee: Any, plan: Any, *, head: bool) -> Any:
        headers = own_headers(grantee, plan, head=head)
        return headers[1:] + headers[:1]

    monkeypatch.setattr(stored_grant, "answer_headers", reordered)
    with caplog.at_level(logging.WARNING, logger="protected_media"):
        for _ in range(4):
            response, _ = await fetch(entry_point, OWNER, world)
            assert response.status_code == 200
    assert lean_answers == []
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        "protected_media: the lean path's headers differ from the view's"
    ]


async def test_the_setting_turns_it_off(settings, world, entry_point, lean_answers) -> None:
    settings.PROTECTED_MEDIA_FAST_PATH_LEAN = False
    for _ in range(3):
        response, _ = await fetch(entry_point, OWNER, world)
        assert response.status_code == 200
    assert lean_answers == []


async def test_a_thumbnail_is_judged_as_its_original(
    settings, world, entry_point, lean_answers
) -> None:
    from tests.test_thumbnails import image_bytes, thumbs, upload

    settings.PROTECTED_MEDIA_THUMBNAIL_SIZES = (64,)
    alice = world.users["alice"]
    photo = await sync_to_async(upload)(alice, "holiday photo.png", image_bytes((400, 300)))
    (thumbnail,) = await sync_to_async(thumbs)(photo)
    url = f"/media/{thumbnail.key}"
    await teach(entry_point, world)
    lean_answers.clear()

    answers = {}
    for name in ("alice", "bob"):
        case = Case(f"{name}'s view of the thumbnail", url, who(name))
        answers[name] = [
            await fetch(app, case, world) for app in (entry_point, get_asgi_application())
        ]
    (by_lean, _), (by_django, _) = answers["alice"]
    assert by_lean.status_code == 200
    assert by_lean.headers["X-Accel-Redirect"] == f"/_protected/{thumbnail.name}"
    assert by_lean.headers.multi_items() == by_django.headers.multi_items()
    (refused, _), (refused_by_django, _) = answers["bob"]
    assert refused.status_code == refused_by_django.status_code == 404
    assert [answer.reason for answer in lean_answers] == ["owner"]

    await sync_to_async(photo.delete)()
    gone, _ = await fetch(entry_point, Case("after", url, who("alice")), world)
    assert gone.status_code == 404
    assert len(lean_answers) == 1


def test_guesses_keep_the_latest_and_no_more() -> None:
    guesses = Guesses()
    for number in range(guesses.MAX_ENTRIES + 5):
        guesses.remember_user(f"session-{number}", number)
    guesses.remember_user("session-6", "another user")

    assert len(guesses.session_users) == guesses.MAX_ENTRIES
    assert "session-0" not in guesses.session_users and "session-5" in guesses.session_users
    assert guesses.session_users["session-6"] == "another user"
    # Changed last, so kept longest.
    assert list(guesses.session_users)[-1] == "session-6"
    for number in range(guesses.MAX_ENTRIES + 5):
        guesses.remember_declined("session", f"key-{number}")
    assert len(guesses.declined) == guesses.MAX_ENTRIES
    assert ("session", "key-4") not in guesses.declined
    assert ("session", "key-5") in guesses.declined


def test_the_headers_kept_for_files_on_disk_are_bounded() -> None:
    plan = lean_plan.plan()
    assert plan is not None and plan.store_internal_url is None

    def headers(number: int) -> Any:
        name = f"files/{number:022d}.txt"
        grantee = stored_grant.Grantee(1, "owner", "text/plain", "notes.txt", name)
        return stored_grant.answer_headers(grantee, plan, head=False)

    first = headers(0)
    assert (b"X-Accel-Redirect", b"/_protected/files/" + b"0" * 22 + b".txt") in first
    for number in range(1, stored_grant.MAX_LOCAL_HEADERS + 1):
        assert headers(number) is not None
    # Full, it started afresh: one file kept, and the first one's headers
    # are worked out again, the same.
    assert len(plan.local_headers) == 1
    assert headers(0) == first
