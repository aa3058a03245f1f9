"""Prometheus metrics: every decision counted by outcome and reason, with its
latency; the rendered nginx config opens the endpoint to loopback only."""

from __future__ import annotations

import dataclasses
import re

import pytest
from django.core.management import call_command
from django.test import AsyncClient, Client

from protected_media.checks import check_metrics
from protected_media.nginx.render import render_site

from .metrics_text import samples
from .test_nginx_config import SITE, server_of

pytestmark = pytest.mark.django_db(transaction=True)


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
