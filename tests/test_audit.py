"""Every media decision sends exactly one audit signal and writes exactly one
log line, through Django's handler and the fast entry point alike, with the
reason and without the share token."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from asgiref.sync import sync_to_async
from django.core.asgi import get_asgi_application
from django.db import OperationalError

from protected_media import decision, shares
from protected_media.asgi import ProtectedMediaASGI
from protected_media.models import ShareLink, StoredFile
from protected_media.signals import file_denied, file_served
from tests import test_fast_path
from tests.test_fast_path import CASES, Case, World, fetch, session_of

from .store import use_store

pytestmark = pytest.mark.django_db(transaction=True)

# The fast path's users and files, as a fixture of this module too.
world = test_fast_path.world

# What each case of the fast path's table decides, by case name.
EXPECTED = {
    "owner": ("served", "owner"),
    "owner, HEAD": ("served", "owner"),
    "owner, Range": ("served", "owner"),
    "another user": ("denied", "policy_denied"),
    "anonymous": ("denied", "anonymous"),
    "anonymous, 404 setting": ("denied", "anonymous"),
    "anonymous, missing file": ("denied", "anonymous"),
    "expired session": ("denied", "anonymous"),
    "logged out elsewhere": ("denied", "anonymous"),
    "password changed": ("denied", "anonymous"),
    "inactive user": ("denied", "anonymous"),
    "user deleted": ("denied", "anonymous"),
    "group member": ("served", "group"),
    "group access revoked": ("denied", "policy_denied"),
    "secret key rotated": ("served", "owner"),
    "deleted file": ("denied", "no_record"),
    "missing key": ("denied", "no_record"),
    "malformed key": ("denied", "malformed_key"),
    "malformed key, NUL": ("denied", "malformed_key"),
    "malformed key, encoded": ("denied", "malformed_key"),
    "empty key": ("denied", "malformed_key"),
    "malformed key, line break": ("denied", "malformed_key"),
    "staff, staff access off": ("denied", "policy_denied"),
    "staff, staff access on": ("served", "staff"),
    "object permission granted": ("served", "permission"),
    "object permission not granted": ("denied", "policy_denied"),
    "custom policy allows": ("served", "policy"),
    "custom policy raises": ("denied", "policy_error"),
    "custom policy answers not True": ("denied", "policy_denied"),
    "streaming fallback": ("served", "owner"),
    "streaming fallback, range": ("served", "owner"),
    # Not decisions: refused before the check (405) or by Django (400).
    "POST": None,
    "host not allowed": None,
}


class Trail:
    """What the signals and the audit logger recorded."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.signals: list[tuple[str, dict[str, Any]]] = []
        self.caplog = caplog

    def served(self, **kwargs: Any) -> None:
        self.signals.append(("served", kwargs))

    def denied(self, **kwargs: Any) -> None:
        self.signals.append(("denied", kwargs))

    @property
    def lines(self) -> list[logging.LogRecord]:
        return [r for r in self.caplog.records if r.name == "protected_media.audit"]

    def clear(self) -> None:
        self.signals.clear()
        self.caplog.clear()

    def single(self) -> tuple[str, dict[str, Any], logging.LogRecord]:
        assert len(self.signals) == 1, self.signals
        assert len(self.lines) == 1, [r.getMessage() for r in self.lines]
        kind, sent = self.signals[0]
        return kind, sent, self.lines[0]


@pytest.fixture
def trail(caplog) -> Iterator[Trail]:
    caplog.set_level(logging.INFO, logger="protected_media.audit")
    recorded = Trail(caplog)
    file_served.connect(recorded.served)
    file_denied.connect(recorded.denied)
    yield recorded
    file_served.disconnect(recorded.served)
    file_denied.disconnect(recorded.denied)


@pytest.fixture
async def apps():
    entry_point = ProtectedMediaASGI(get_asgi_application())
    yield {"django": get_asgi_application(), "entry point": entry_point}
    await entry_point.aclose()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_each_decision_is_recorded_once(
    settings, world: World, apps, trail: Trail, case: Case
) -> None:
    await assert_recorded_once(settings, world, apps, trail, case)


# The streaming fallback serves local files only (check E025).
HANDED_OFF = [case for case in CASES if not case.name.startswith("streaming fallback")]


@pytest.mark.parametrize("case", HANDED_OFF, ids=[case.name for case in HANDED_OFF])
async def test_each_decision_is_recorded_once_with_the_files_in_a_bucket(
    settings, files_in_bucket, world: World, apps, trail: Trail, case: Case
) -> None:
    # The store is selected before the world's files are made: they are in it.
    await assert_recorded_once(settings, world, apps, trail, case)


@pytest.fixture
def files_in_bucket(settings, seaweed) -> None:
    use_store(settings, seaweed)


async def assert_recorded_once(settings, world: World, apps, trail: Trail, case: Case) -> None:
    for name, value in case.settings:
        setattr(settings, name, value)
    expected = EXPECTED[case.name]
    for app_name, app in apps.items():
        trail.clear()
        response, _ = await fetch(app, case, world)
        if expected is None:
            assert (trail.signals, trail.lines) == ([], []), app_name
            continue
        kind, sent, line = trail.single()
        assert (kind, str(sent["reason"])) == expected, app_name
        assert (line.decision, line.reason) == expected  # type: ignore[attr-defined]
        assert line.latency_ms >= 0  # type: ignore[attr-defined]
        # The signal's latency (seconds) is the one the log line shows (ms).
        assert sent["latency"] * 1000 == pytest.approx(line.latency_ms, abs=0.001)  # type: ignore[attr-defined]
        assert sent["request"].path == unquote(response.request.url.raw_path.decode())
        if kind == "served":
            assert sent["record"] is not None
            assert line.key == sent["record"].key  # type: ignore[attr-defined]
            assert line.user_id == sent["user"].pk  # type: ignore[attr-defined]
            assert f"key={sent['record'].key}" in line.getMessage()


async def test_a_malformed_key_is_not_copied_into_the_log(world, apps, trail) -> None:
    case = Case("forged line", "/media/x%0D%0Amedia%20decision=served", lambda world: None)
    for app in apps.values():
        trail.clear()
        await fetch(app, case, world)
        _, _, line = trail.single()
        assert "\n" not in line.getMessage() and "\r" not in line.getMessage()
        assert line.key is None  # type: ignore[attr-defined]


async def test_a_database_that_cannot_answer_is_recorded_as_a_refusal(
    world, apps, trail, monkeypatch
) -> None:
    def fail(*args: Any) -> Any:
        raise OperationalError("connection refused")

    monkeypatch.setattr(decision.RECORD_LOOKUP, "fetch", fail)
    case = Case("owner", "alice's file", CASES[0].session)
    for app_name, app in apps.items():
        trail.clear()
        response, _ = await fetch(app, case, world)
        assert response.status_code == 503, app_name
        kind, sent, _ = trail.single()
        assert (kind, sent["reason"]) == ("denied", "database_unavailable")


async def test_a_file_missing_under_the_fallback_is_recorded_as_a_refusal(
    settings, world, apps, trail
) -> None:
    settings.SENDFILE_BACKEND = "protected_media.backends.streaming"
    record = await StoredFile.objects.aget(original_name="report final.pdf")
    (Path(settings.SENDFILE_ROOT) / record.name).unlink()
    for app in apps.values():
        trail.clear()
        response, _ = await fetch(app, CASES[0], world)
        assert response.status_code == 404
        kind, sent, _ = trail.single()
        assert (kind, sent["reason"], sent["record"].key) == ("denied", "file_missing", record.key)


async def test_share_decisions_are_recorded_without_the_token(world, apps, trail) -> None:
    alice = world.users["alice"]
    record = await StoredFile.objects.aget(original_name="report final.pdf")
    share, token = await sync_to_async(shares.create_share)(record, created_by=alice)
    url = shares.share_url(token)
    revoked, revoked_token = await sync_to_async(shares.create_share)(record, created_by=alice)
    await sync_to_async(shares.revoke)(revoked)
    signed_in_only, signed_in_token = await sync_to_async(shares.create_share)(
        record, created_by=alice, audience=ShareLink.Audience.USERS, users=[world.users["bob"]]
    )
    cases = [
        (url, None, ("served", "share"), share),
        (url[:-1] + ("A" if url[-1] != "A" else "B"), None, ("denied", "share_invalid"), None),
        (shares.share_url(revoked_token), None, ("denied", "share_revoked"), revoked),
        (shares.share_url(signed_in_token), None, ("denied", "anonymous"), None),
        (
            shares.share_url(signed_in_token),
            "carol",
            ("denied", "share_audience"),
            signed_in_only,
        ),
        (shares.share_url(signed_in_token), "bob", ("served", "share"), signed_in_only),
    ]
    for target, who, expected, expected_share in cases:
        for app_name, app in apps.items():
            trail.clear()
            await fetch(app, Case("share", target, lambda w, who=who: _session(w, who)), world)
            kind, sent, line = trail.single()
            assert (kind, str(sent["reason"])) == expected, (target, who, app_name)
            assert sent["share"] == expected_share
            text = line.getMessage()
            for secret in (token, revoked_token, signed_in_token):
                assert secret not in text
                assert secret not in repr(line.__dict__)
            if expected_share is not None:
                assert f"share={expected_share.pk}" in text


async def test_a_receiver_that_raises_changes_no_answer(world, apps, trail, caplog) -> None:
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("audit sink down")

    file_served.connect(broken)
    try:
        for app in apps.values():
            trail.clear()
            response, _ = await fetch(app, CASES[0], world)
            assert response.status_code == 200
            assert "X-Accel-Redirect" in response.headers
            assert any("audit receiver" in r.getMessage() for r in caplog.records)
    finally:
        file_served.disconnect(broken)


def _session(world: World, who: str | None) -> str | None:
    return session_of(world, who)


def test_every_expected_case_exists() -> None:
    assert set(EXPECTED) == {case.name for case in CASES}
