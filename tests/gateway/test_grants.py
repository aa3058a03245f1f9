"""Grants are visible and audited: whoever lets another user read a file (a
superuser in the admin, a script in the shell, the owner through the site or
the API, django-guardian's helpers), the owner sees it on the file's card and
in the API, and the audit trail has one line and one signal for each grant
and each revocation, naming who made it when that is known."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from guardian.shortcuts import assign_perm, remove_perm

from protected_media import shares
from protected_media.grants import SharedWith, shared_with
from protected_media.models import ProtectedFile
from protected_media.signals import grant_changed

from .test_api import browser
from .test_demo_site import page, signed_in

pytestmark = pytest.mark.django_db

VIEW = "protected_media.view_protectedfile"
CHANGE_FORM = "/admin/protected_media/protectedfile/{}/change/"
NOT_SHARED = {"groups": [], "users": [], "links": 0, "staff": False}


class Trail:
    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        self.signals: list[dict[str, Any]] = []

    def receive(self, sender: str, **kwargs: Any) -> None:
        kwargs.pop("signal")
        self.signals.append({"kind": sender, **kwargs})

    @property
    def lines(self) -> list[str]:
        return [
            r.getMessage()
            for r in self.caplog.records
            if r.name == "protected_media.audit" and r.getMessage().startswith("media grant=")
        ]

    def clear(self) -> None:
        self.caplog.clear()
        self.signals.clear()


@pytest.fixture
def trail(caplog) -> Iterator[Trail]:
    caplog.set_level(logging.INFO, logger="protected_media.audit")
    recorded = Trail(caplog)
    grant_changed.connect(recorded.receive)
    yield recorded
    grant_changed.disconnect(recorded.receive)


@pytest.fixture
def report(alice, make_file) -> ProtectedFile:
    return make_file(alice, "report.txt", b"quarterly\n")


@pytest.fixture
def readers() -> Group:
    return Group.objects.create(name="readers")


def line(action: str, kind: str, key: str, by: object = "unknown", **who: object) -> str:
    fields = {"group": "-", "user": "-", "share": "-", "permission": "-"}
    fields.update({name: str(value) for name, value in who.items()})
    pairs = " ".join(f"{name}={value}" for name, value in fields.items())
    return f"media grant={action} kind={kind} key={key} {pairs} by={by}"


def card_says(user, item: ProtectedFile) -> str:
    html = page(signed_in(user).get("/files/"))
    [text] = [
        " ".join(p.text.split())
        for card in html.find_all("li", class_="card")
        if card.find("p", class_="name").text == item.original_name
        for p in card.find_all("p", class_="meta shared-with")
    ]
    return text


def api_says(user, item: ProtectedFile) -> dict[str, Any]:
    client, _ = browser(user)
    listed = {entry["id"]: entry for entry in client.get("/api/files/").json()["files"]}
    detail = client.get(f"/api/files/{item.pk}/").json()
    assert detail == listed[str(item.pk)]
    return detail["shared_with"]  # type: ignore[no-any-return]


# -- through the real admin -------------------------------------------------------------


def test_a_superuser_adding_a_group_in_the_admin_is_seen_and_logged(
    admin_client, admin_user, alice, report, readers, trail, django_capture_on_commit_callbacks
) -> None:
    key = report.record.key
    assert card_says(alice, report) == "Shared with: no one"
    assert api_says(alice, report) == NOT_SHARED
    trail.clear()

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            CHANGE_FORM.format(report.pk), {"owner": alice.pk, "groups": [readers.pk]}
        )
    assert response.status_code == 302
    assert trail.lines == [line("added", "group", key, by=admin_user.pk, group=readers.pk)]
    assert trail.signals == [
        {
            "kind": "group",
            "action": "added",
            "key": key,
            "holder": report,
            "group_id": readers.pk,
            "user_id": None,
            "share": None,
            "permission": None,
            "actor_id": admin_user.pk,
        }
    ]
    assert card_says(alice, report) == "Shared with: group readers"
    assert api_says(alice, report) == {**NOT_SHARED, "groups": ["readers"]}

    trail.clear()
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(CHANGE_FORM.format(report.pk), {"owner": alice.pk, "groups": []})
    assert trail.lines == [line("removed", "group", key, by=admin_user.pk, group=readers.pk)]
    assert card_says(alice, report) == "Shared with: no one"


def test_a_superuser_giving_the_file_to_someone_else_is_logged(
    admin_client, admin_user, alice, bob, report, trail, django_capture_on_commit_callbacks
) -> None:
    key = report.record.key
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(CHANGE_FORM.format(report.pk), {"owner": bob.pk})
    assert response.status_code == 302
    assert trail.lines == [
        line("removed", "owner", key, by=admin_user.pk, user=alice.pk),
        line("added", "owner", key, by=admin_user.pk, user=bob.pk),
    ]
    # And from the shell: a row loaded without its owner is compared with nothing.
    trail.clear()
    with django_capture_on_commit_callbacks(execute=True):
        ProtectedFile.objects.filter(pk=report.pk).update(owner=alice)
        moved = ProtectedFile.objects.get(pk=report.pk)
        moved.owner = bob
        moved.save()
        ProtectedFile.objects.only("pk").get(pk=report.pk).save()
    assert trail.lines == [
        line("removed", "owner", key, user=alice.pk),
        line("added", "owner", key, user=bob.pk),
    ]


def test_saving_the_admin_form_unchanged_logs_nothing(
    admin_client, alice, report, readers, trail, django_capture_on_commit_callbacks
) -> None:
    report.groups.add(readers)
    trail.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            CHANGE_FORM.format(report.pk), {"owner": alice.pk, "groups": [readers.pk]}
        )
    assert response.status_code == 302
    assert trail.lines == []


def test_revoking_a_link_in_the_admin_names_the_admin(
    admin_client, admin_user, alice, report, trail, django_capture_on_commit_callbacks
) -> None:
    link, _ = shares.create_share(report.record, created_by=alice)
    trail.clear()
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            "/admin/protected_media/sharelink/",
            {"action": "revoke_links", "_selected_action": [str(link.pk)], "index": "0"},
        )
    assert trail.lines == [
        line("removed", "share", report.record.key, by=admin_user.pk, share=link.pk)
    ]


# -- through the share API ----------------------------------------------------------------


def test_links_made_and_revoked_through_the_api_are_seen_and_logged(
    alice, report, trail, django_capture_on_commit_callbacks
) -> None:
    key = report.record.key
    client, headers = browser(alice)
    with django_capture_on_commit_callbacks(execute=True):
        made = client.post(
            f"/api/files/{report.pk}/shares/",
            "{}",
            content_type="application/json",
            headers=headers,
        )
        client.post(
            f"/api/files/{report.pk}/shares/",
            "{}",
            content_type="application/json",
            headers=headers,
        )
    assert made.status_code == 201
    first = made.json()
    token = first["url"].rsplit("/", 1)[1]
    assert len(trail.lines) == 2
    assert trail.lines[0] == line("added", "share", key, by=alice.pk, share=first["id"])
    assert token not in "".join(trail.lines)
    assert api_says(alice, report) == {**NOT_SHARED, "links": 2}
    assert card_says(alice, report) == "Shared with: 2 links"

    trail.clear()
    with django_capture_on_commit_callbacks(execute=True):
        gone = client.delete(f"/api/shares/{first['id']}/", headers=headers)
    assert gone.status_code == 204
    assert trail.lines == [line("removed", "share", key, by=alice.pk, share=first["id"])]
    assert api_says(alice, report) == {**NOT_SHARED, "links": 1}


# -- through django-guardian ----------------------------------------------------------


def test_object_permissions_through_guardian_are_seen_and_logged(
    alice, django_user_model, report, readers, trail, django_capture_on_commit_callbacks
) -> None:
    carol = django_user_model.objects.create_user("carol")
    key = report.record.key
    with django_capture_on_commit_callbacks(execute=True):
        assign_perm(VIEW, carol, report)
        assign_perm(VIEW, readers, report)
        assign_perm(VIEW, carol, report)  # already held: no second line
    perm = "view_protectedfile"
    assert trail.lines == [
        line("added", "permission", key, user=carol.pk, permission=perm),
        line("added", "permission", key, group=readers.pk, permission=perm),
    ]
    assert api_says(alice, report) == {**NOT_SHARED, "groups": ["readers"], "users": ["carol"]}
    assert card_says(alice, report) == "Shared with: group readers, user carol"

    trail.clear()
    with django_capture_on_commit_callbacks(execute=True):
        remove_perm(VIEW, carol, report)
        remove_perm(VIEW, readers, report)
    assert trail.lines == [
        line("removed", "permission", key, user=carol.pk, permission=perm),
        line("removed", "permission", key, group=readers.pk, permission=perm),
    ]
    assert api_says(alice, report) == NOT_SHARED


def test_a_permission_that_does_not_let_anyone_read_is_logged_but_not_shown(
    alice, bob, report, trail, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        assign_perm("protected_media.change_protectedfile", bob, report)
    assert trail.lines == [
        line(
            "added", "permission", report.record.key, user=bob.pk, permission="change_protectedfile"
        )
    ]
    assert api_says(alice, report) == NOT_SHARED


def test_permissions_on_other_models_are_not_logged(
    bob, readers, trail, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        assign_perm("auth.change_group", bob, readers)
    assert trail.lines == []


# -- from the shell, either side of the relation ------------------------------------------


def test_groups_changed_anywhere_are_logged_with_an_unknown_author(
    alice, report, readers, trail, django_capture_on_commit_callbacks
) -> None:
    writers = Group.objects.create(name="writers")
    key = report.record.key
    with django_capture_on_commit_callbacks(execute=True):
        report.groups.add(readers)
        writers.protected_files.add(report)  # the reverse side
        report.groups.clear()
    assert trail.lines == [
        line("added", "group", key, group=readers.pk),
        line("added", "group", key, group=writers.pk),
        line("removed", "group", key, group=readers.pk),
        line("removed", "group", key, group=writers.pk),
    ]
    with django_capture_on_commit_callbacks(execute=True):
        readers.protected_files.add(report)
        readers.protected_files.clear()  # the reverse side's clear
    assert trail.lines[-2:] == [
        line("added", "group", key, group=readers.pk),
        line("removed", "group", key, group=readers.pk),
    ]


def test_a_rolled_back_grant_leaves_no_line(
    report, readers, trail, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            report.groups.add(readers)
            raise RuntimeError("rolled back")
    assert trail.lines == []
    assert trail.signals == []


def test_names_never_reach_the_log(
    alice, report, trail, django_capture_on_commit_callbacks
) -> None:
    forged = Group.objects.create(name="x\r\nmedia grant=removed kind=group key=forged")
    with django_capture_on_commit_callbacks(execute=True):
        report.groups.add(forged)
    assert trail.lines == [line("added", "group", report.record.key, group=forged.pk)]
    assert "\n" not in "".join(trail.lines)
    # The owner sees the name.
    assert api_says(alice, report)["groups"] == [forged.name]


# -- what the owner sees --------------------------------------------------------------------


def test_staff_access_is_shown_on_every_file(settings, alice, report) -> None:
    settings.PROTECTED_MEDIA_ALLOW_STAFF = True
    assert card_says(alice, report) == "Shared with: all staff"
    assert api_says(alice, report) == {**NOT_SHARED, "staff": True}


@pytest.mark.parametrize(
    ("shared", "text"),
    [
        (SharedWith(), "no one"),
        (SharedWith(links=1), "1 link"),
        (
            SharedWith(groups=("a", "b"), users=("carol",), links=3, staff=True),
            "group a, group b, user carol, 3 links, all staff",
        ),
    ],
)
def test_how_grants_are_said(shared, text) -> None:
    assert str(shared) == text
    assert bool(shared) is (text != "no one")


def test_a_listing_costs_the_same_queries_for_one_file_or_ten(
    alice, django_user_model, make_file, readers
) -> None:
    carol = django_user_model.objects.create_user("carol")

    def grant(item: ProtectedFile) -> None:
        item.groups.add(readers)
        shares.create_share(item.record, created_by=alice)
        assign_perm(VIEW, carol, item)
        assign_perm(VIEW, readers, item)

    def count(url: str) -> int:
        client = signed_in(alice)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        return len(queries)

    grant(make_file(alice, "f0.txt"))
    one = {url: count(url) for url in ("/files/", "/api/files/")}
    for n in range(1, 10):
        grant(make_file(alice, f"f{n}.txt"))
    rows = list(ProtectedFile.objects.filter(owner=alice))
    with CaptureQueriesContext(connection) as queries:
        found = shared_with(rows)
    assert len(queries) == 4  # groups, links, guardian's users, guardian's groups
    assert set(found.values()) == {SharedWith(groups=("readers",), users=("carol",), links=1)}
    assert {url: count(url) for url in one} == one
    listed = json.loads(signed_in(alice).get("/api/files/").content)["files"]
    assert len(listed) == 10
