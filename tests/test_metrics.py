"""Prometheus metrics: every decision counted by outcome and reason, with its
latency; the rendered nginx config opens the endpoint to loopback only."""

from __future__ import annotations

import dataclasses
import importlib
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import AsyncClient, Client

from protected_media.checks import check_metrics
from protected_media.inspection import UploadRefused
from protected_media.models import ProtectedFile
from protected_media.nginx.render import render_site
from protected_media.ops import metrics
from protected_media.signals import upload_refused, upload_stored

from .metrics_text import samples
from .test_nginx_config import SITE, server_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("each_storage")]

STORED = "protected_media_uploads_total"


def refused(reason: str) -> str:
    return f'protected_media_upload_refusals_total{{reason="{reason}"}}'


@pytest.fixture(autouse=True)
def counting() -> Iterator[None]:
    # The app connects the receivers when PROTECTED_MEDIA_METRICS_URL is set,
    # as a site that serves the metrics does; the test settings leave it unset.
    metrics.connect()
    yield
    metrics.disconnect()


def scrape(client: Client | None = None) -> dict[str, float]:
    response = (client or Client()).get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert response["Cache-Control"] == "no-store"
    return samples(response.content.decode())


def served(reason: str) -> str:
    return f'protected_media_decisions_total{{decision="served",reason="{reason}"}}'


def denied(reason: str) -> str:
    return f'protected_media_decisions_total{{decision="denied",reason="{reason}"}}'


async def test_decisions_are_counted_by_outcome_and_reason(alice, bob, make_file) -> None:
    from asgiref.sync import sync_to_async

    item = await sync_to_async(make_file)(alice)
    before = await sync_to_async(scrape)()
    owner, other, stranger = AsyncClient(), AsyncClient(), AsyncClient()
    await owner.aforce_login(alice)
    await other.aforce_login(bob)
    assert (await owner.get(item.file.url)).status_code == 200
    assert (await owner.get(item.file.url)).status_code == 200
    assert (await other.get(item.file.url)).status_code == 404
    assert (await stranger.get(item.file.url)).status_code == 302
    assert (await owner.get("/media/not-a-key")).status_code == 404
    after = await sync_to_async(scrape)()

    def grew(name: str) -> float:
        return after.get(name, 0) - before.get(name, 0)

    assert grew(served("owner")) == 2
    assert grew(denied("not_found")) == 1
    assert grew(denied("anonymous")) == 1
    assert grew(denied("malformed_key")) == 1
    assert grew("protected_media_decision_seconds_count") == 5
    assert grew("protected_media_decision_seconds_sum") > 0


def test_the_endpoint_answers_only_safe_methods() -> None:
    assert Client().post("/metrics").status_code == 405


def test_the_nginx_location_is_loopback_only() -> None:
    server = server_of(render_site(dataclasses.replace(SITE, metrics_url="/metrics")))
    location = server.location("/metrics")
    assert location.args == ["=", "/metrics"]
    assert [d.args for d in location.all("allow")] == [["127.0.0.1"], ["::1"]]
    assert [d.args for d in location.all("deny")] == [["all"]]
    assert location.one("error_page").args == ["403", "=404", "@protected_media_not_found"]
    assert location.one("proxy_pass").args == ["http://protected_media_app"]
    assert "X-Accel-Redirect" in location.one("proxy_ignore_headers").args
    # Without the setting there is no such location.
    assert "/metrics" not in render_site(SITE)


def test_the_render_command_writes_the_setting(settings, tmp_path) -> None:
    settings.PROTECTED_MEDIA_METRICS_URL = "/metrics"
    output = tmp_path / "site.conf"
    call_command("protected_media_nginx", "--output", str(output))
    assert re.search(r"location = /metrics \{\n\s+allow 127\.0\.0\.1;", output.read_text())


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("/metrics", None),
        ("/elsewhere", "does not resolve"),
        ("metrics", "must be a path"),
        ("/met rics", "must be a path"),
    ],
)
def test_e016_the_url_must_be_where_the_view_is(settings, url, problem) -> None:
    settings.PROTECTED_MEDIA_METRICS_URL = url
    errors = check_metrics()
    if problem is None:
        assert errors == []
    else:
        assert [e.id for e in errors] == ["protected_media.E016"]
        assert problem in errors[0].msg


def decisions_grown(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {
        name: value - before.get(name, 0)
        for name, value in after.items()
        if name.startswith("protected_media_decisions_total") and value != before.get(name, 0)
    }


async def test_the_counters_do_not_tell_whether_a_key_exists(alice, bob, make_file) -> None:
    # A reader of the metrics who asks for a key must not see a counter of its
    # own for "exists, not yours" (rule 2): the same one grows for every kind
    # of refusal that depends on the file.
    from asgiref.sync import sync_to_async

    item = await sync_to_async(make_file)(alice)
    gone = await sync_to_async(make_file)(alice)
    gone_url = gone.file.url
    await sync_to_async(gone.delete)()
    other = AsyncClient()
    await other.aforce_login(bob)
    grown = []
    for url in (item.file.url, "/media/" + "C" * 22, gone_url):
        before = await sync_to_async(scrape)()
        response = await other.get(url)
        assert (response.status_code, response.content) == (404, b"Not Found\n")
        grown.append(decisions_grown(before, await sync_to_async(scrape)()))
    assert grown == [{denied("not_found"): 1}] * 3


def test_every_merged_reason_is_a_refusal_reason() -> None:
    from protected_media.decision import Reason
    from protected_media.ops.metrics import EXISTENCE_REASONS

    assert EXISTENCE_REASONS == {
        Reason.NO_RECORD,
        Reason.NO_HOLDER,
        Reason.POLICY_DENIED,
        Reason.POLICY_ERROR,
    }


def test_uploads_are_counted_stored_and_refused_by_reason(alice, make_file) -> None:
    before = scrape()
    make_file(alice)
    make_file(alice)
    with pytest.raises(UploadRefused):
        ProtectedFile(owner=alice).file.save("empty.txt", SimpleUploadedFile("empty.txt", b""))
    after = scrape()
    assert after[STORED] - before[STORED] == 2
    assert after[refused("empty")] - before.get(refused("empty"), 0) == 1


def test_the_upload_signals_carry_what_their_receivers_need(alice, make_file) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []

    def stored(**kwargs: Any) -> None:
        sent.append(("stored", kwargs))

    def refusal(**kwargs: Any) -> None:
        sent.append(("refused", kwargs))

    upload_stored.connect(stored)
    upload_refused.connect(refusal)
    try:
        item = make_file(alice)
        with pytest.raises(UploadRefused):
            ProtectedFile(owner=alice).file.save("e.txt", SimpleUploadedFile("e.txt", b""))
    finally:
        upload_stored.disconnect(stored)
        upload_refused.disconnect(refusal)
    field = ProtectedFile._meta.get_field("file")
    [(first, stored_args), (second, refused_args)] = sent
    assert (first, second) == ("stored", "refused")
    assert stored_args["sender"] is ProtectedFile
    assert stored_args["instance"] is item
    assert stored_args["field"] is field
    assert stored_args["record"] == item.file.record
    assert (refused_args["sender"], refused_args["field"]) == (ProtectedFile, field)
    assert refused_args["reason"] == "empty"


async def test_a_failing_count_changes_no_answer(alice, make_file, monkeypatch, caplog) -> None:
    from asgiref.sync import sync_to_async

    def broken(*args: Any) -> None:
        raise RuntimeError("counter broken")

    monkeypatch.setattr(metrics, "record_decision", broken)
    monkeypatch.setattr(metrics, "record_upload", broken)
    item = await sync_to_async(make_file)(alice)
    assert await sync_to_async(lambda: item.file.record)() is not None
    owner = AsyncClient()
    await owner.aforce_login(alice)
    response = await owner.get(item.file.url)
    assert response.status_code == 200
    assert "X-Accel-Redirect" in response
    assert any("audit counter" in record.getMessage() for record in caplog.records)


def test_the_app_counts_only_where_the_site_serves_the_metrics(settings, alice, make_file) -> None:
    app = apps.get_app_config("protected_media")
    item = make_file(alice)
    owner = Client()
    owner.force_login(alice)

    def served_once_more() -> float:
        before = scrape()
        assert owner.get(item.file.url).status_code == 200
        return scrape()[served("owner")] - before.get(served("owner"), 0)

    metrics.disconnect()
    settings.PROTECTED_MEDIA_METRICS_URL = None
    app.ready()
    assert served_once_more() == 0
    settings.PROTECTED_MEDIA_METRICS_URL = "/metrics"
    app.ready()
    assert served_once_more() == 1
    # Started again, the app connects nothing twice.
    app.ready()
    assert served_once_more() == 1


def test_without_prometheus_client_the_site_starts_and_e016_says_what_to_install(
    settings, monkeypatch
) -> None:
    settings.PROTECTED_MEDIA_METRICS_URL = "/metrics"
    # What Python's import system does for a module that is not installed.
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    metrics.disconnect()
    apps.get_app_config("protected_media").ready()
    [error] = check_metrics()
    assert error.id == "protected_media.E016"
    assert "prometheus-client is not installed" in error.msg
    assert 'pip install "django-protected-media-gateway[metrics]"' in (error.hint or "")
    # A URLconf that mounts the view anyway fails with the same advice.
    monkeypatch.delitem(sys.modules, "protected_media.ops.metrics")
    with pytest.raises(ModuleNotFoundError, match=r"django-protected-media-gateway\[metrics\]"):
        importlib.import_module("protected_media.ops.metrics")
