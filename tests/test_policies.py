"""Who may read a file: each access policy through the real view.

Every request goes over the ASGI protocol through both paths, as in
``test_fast_path.py``: Django's own handler (``get_asgi_application()``) and
the fast entry point (``ProtectedMediaASGI``) in front of it. Each decision is
checked three ways: the response (``protected_media.testing``), the reason
carried by the ``file_served``/``file_denied`` signal, and for errors the log.

The object-permission tests use django-guardian, installed in the test
settings only (``tests/settings.py``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.asgi import get_asgi_application
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.signals import request_started
from django.db import OperationalError, connection, models
from django.test import AsyncClient
from django.test.utils import isolate_apps
from guardian.backends import ObjectPermissionBackend
from guardian.shortcuts import assign_perm, remove_perm

from protected_media.asgi import ProtectedMediaASGI
from protected_media.decision import Reason
from protected_media.fields import ProtectedFileField, ProtectedImageField
from protected_media.models import ProtectedFile, StoredFile
from protected_media.policy import default_grant
from protected_media.signals import file_denied, file_served
from protected_media.testing import aassert_refused, aassert_served
from tests.testapp.models import Report

pytestmark = pytest.mark.django_db(transaction=True)

VIEW = "protected_media.view_protectedfile"
GUARDIAN = "guardian.backends.ObjectPermissionBackend"
# Lets an inactive user keep a session, so that the policy itself must refuse.
ALLOW_INACTIVE = "django.contrib.auth.backends.AllowAllUsersModelBackend"
MISSING = "/media/AAAAAAAAAAAAAAAAAAAAAA"

Get = Callable[[Any, str], Awaitable[Any]]


# -- the two paths --------------------------------------------------------------


@pytest.fixture(params=["handler", "entry_point"])
async def get(request) -> AsyncIterator[Get]:
    """``await get(user, url)``: a GET by ``user`` (None: anonymous), one
    session per user for the whole test, over the ASGI protocol to Django's
    own handler or to the fast entry point in front of it."""
    sessions: dict[Any, str | None] = {}
    fast = request.param == "entry_point"
    application: Any = get_asgi_application()
    if fast:
        application = ProtectedMediaASGI(application)

    async def session_of(user: Any) -> str | None:
        if user is None:
            return None
        if user.pk not in sessions:
            client = AsyncClient()
            await client.aforce_login(user)
            sessions[user.pk] = client.cookies["sessionid"].value
        return sessions[user.pk]

    async def fetch(user: Any, url: str) -> Any:
        cookie = await session_of(user)
        headers = {"Cookie": f"sessionid={cookie}"} if cookie else {}
        started: list[int] = []

        def count(**kwargs: Any) -> None:
            started.append(1)

        request_started.connect(count)
        try:
            transport = httpx.ASGITransport(app=application)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                response = await http.get(url, headers=headers)
        finally:
            request_started.disconnect(count)
        # The entry point answers media requests itself: Django's handler never runs.
        assert len(started) == (0 if fast else 1)
        return response

    yield fetch
    if fast:
        await application.aclose()


@pytest.fixture
def decisions() -> Iterator[list[tuple[str, str, Any]]]:
    """(signal, reason, record key) of every audited decision, in order."""
    seen: list[tuple[str, str, Any]] = []

    def on(kind: str) -> Callable[..., None]:
        def receiver(sender: Any, reason: Any, record: Any, **kwargs: Any) -> None:
            seen.append((kind, str(reason), getattr(record, "key", None)))

        return receiver

    served, denied = on("served"), on("denied")
    file_served.connect(served)
    file_denied.connect(denied)
    yield seen
    file_served.disconnect(served)
    file_denied.disconnect(denied)


def snapshot(response: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = sorted(
        (name.lower(), value) for name, value in response.headers.items() if name.lower() != "date"
    )
    return response.status_code, headers, response.content


# -- the world ------------------------------------------------------------------


@pytest.fixture
def readers() -> Group:
    return Group.objects.create(name="readers")


@pytest.fixture
def carol(django_user_model, readers):
    """A member of the readers group."""
    user = django_user_model.objects.create_user("carol", password="carol-password")
    user.groups.add(readers)
    return user


@pytest.fixture
def item(alice, readers, make_file) -> ProtectedFile:
    """alice's file, shared with the readers group."""
    shared = make_file(alice, "shared.txt", b"shared\n")
    shared.groups.add(readers)
    shared.file.record  # noqa: B018 (cached on the FieldFile for the assertions)
    return shared


@pytest.fixture
def other(alice, make_file) -> ProtectedFile:
    """Another of alice's files, shared with nobody."""
    private = make_file(alice, "private.txt", b"private\n")
    private.file.record  # noqa: B018
    return private


def key_of(item: ProtectedFile) -> str:
    return item.file.url.rsplit("/", 1)[1]


# -- owner only by default ------------------------------------------------------


async def test_the_owner_is_served(get, decisions, alice, item) -> None:
    response = await get(alice, item.file.url)
    await aassert_served(response, item.file)
    assert response.headers["X-Accel-Redirect"] == f"/_protected/{item.file.name}"
    assert decisions == [("served", "owner", key_of(item))]


async def test_another_user_gets_the_one_404(get, decisions, alice, bob, item) -> None:
    forbidden = await get(bob, item.file.url)
    missing = await get(bob, MISSING)
    await aassert_refused(forbidden)
    # Byte for byte the answer for a file that does not exist.
    assert snapshot(forbidden) == snapshot(missing)
    assert decisions == [
        ("denied", Reason.POLICY_DENIED, key_of(item)),
        ("denied", Reason.NO_RECORD, None),
    ]


# -- staff ----------------------------------------------------------------------


async def test_staff_are_refused_by_default(get, decisions, django_user_model, item) -> None:
    staff = await django_user_model.objects.acreate(username="staff", is_staff=True)
    await aassert_refused(await get(staff, item.file.url))
    assert decisions == [("denied", Reason.POLICY_DENIED, key_of(item))]


async def test_staff_are_served_when_the_setting_allows(
    settings, get, decisions, django_user_model, item
) -> None:
    settings.PROTECTED_MEDIA_ALLOW_STAFF = True
    staff = await django_user_model.objects.acreate(username="staff", is_staff=True)
    plain = await django_user_model.objects.acreate(username="plain")
    await aassert_served(await get(staff, item.file.url), item.file)
    await aassert_refused(await get(plain, item.file.url))
    assert decisions == [
        ("served", "staff", key_of(item)),
        ("denied", Reason.POLICY_DENIED, key_of(item)),
    ]


@pytest.mark.parametrize("is_staff", [True, False], ids=["staff superuser", "superuser only"])
async def test_a_superuser_is_not_served_by_default(
    get, decisions, django_user_model, item, is_staff
) -> None:
    # docs/policies.md: "Django's superuser-has-everything shortcut is not applied, so
    # superusers are staff like any other." django-guardian's backend applies
    # its own (ObjectPermissionChecker.has_perm returns True for any active
    # superuser), so with guardian installed this fails: see the report.
    root = await django_user_model.objects.acreate(
        username="root", is_staff=is_staff, is_superuser=True
    )
    await aassert_refused(await get(root, item.file.url))
    assert decisions == [("denied", Reason.POLICY_DENIED, key_of(item))]


async def test_a_superuser_is_served_as_staff_when_the_setting_allows(
    settings, get, decisions, django_user_model, item
) -> None:
    settings.PROTECTED_MEDIA_ALLOW_STAFF = True
    root = await django_user_model.objects.acreate(
        username="root", is_staff=True, is_superuser=True
    )
    await aassert_served(await get(root, item.file.url), item.file)
    assert decisions == [("served", "staff", key_of(item))]


# -- groups ---------------------------------------------------------------------


async def test_a_group_member_is_served(get, decisions, carol, item) -> None:
    await aassert_served(await get(carol, item.file.url), item.file)
    assert decisions == [("served", "group", key_of(item))]


async def test_a_member_removed_from_the_group_is_refused_from_the_next_request(
    get, decisions, carol, readers, item
) -> None:
    await aassert_served(await get(carol, item.file.url), item.file)
    await carol.groups.aremove(readers)
    # The same session: nothing about the membership is cached in it.
    await aassert_refused(await get(carol, item.file.url))
    assert decisions == [
        ("served", "group", key_of(item)),
        ("denied", Reason.POLICY_DENIED, key_of(item)),
    ]


async def test_a_group_removed_from_the_file_is_refused_from_the_next_request(
    get, decisions, carol, readers, item
) -> None:
    await aassert_served(await get(carol, item.file.url), item.file)
    await item.groups.aremove(readers)
    await aassert_refused(await get(carol, item.file.url))
    assert [reason for _, reason, _ in decisions] == ["group", Reason.POLICY_DENIED]


async def test_a_member_of_another_group_is_refused(
    get, decisions, django_user_model, item, other, carol
) -> None:
    outsiders = await Group.objects.acreate(name="outsiders")
    dave = await django_user_model.objects.acreate(username="dave")
    await dave.groups.aadd(outsiders)
    await aassert_refused(await get(dave, item.file.url))
    # The readers group reads the files shared with it, not alice's others.
    await aassert_refused(await get(carol, other.file.url))
    assert decisions == [
        ("denied", Reason.POLICY_DENIED, key_of(item)),
        ("denied", Reason.POLICY_DENIED, key_of(other)),
    ]


async def test_an_inactive_member_is_logged_out(get, decisions, carol, item) -> None:
    # Django's ModelBackend drops an inactive user's session: the login page.
    client_url = item.file.url
    await aassert_served(await get(carol, client_url), item.file)
    carol.is_active = False
    await carol.asave()
    await aassert_refused(await get(carol, client_url), login=True, next_url=client_url)
    assert [reason for _, reason, _ in decisions] == ["group", Reason.ANONYMOUS]


async def test_an_inactive_member_is_refused_by_the_policy_itself(
    settings, get, decisions, carol, item
) -> None:
    # With a backend that keeps inactive users signed in, the policy is the
    # last line: it must refuse them too.
    settings.AUTHENTICATION_BACKENDS = [ALLOW_INACTIVE, GUARDIAN]
    carol.is_active = False
    await carol.asave()
    await aassert_refused(await get(carol, item.file.url))
    assert decisions == [("denied", Reason.POLICY_DENIED, key_of(item))]


async def test_an_inactive_owner_or_permission_holder_is_refused_by_the_policy(
    settings, get, decisions, alice, bob, item
) -> None:
    settings.AUTHENTICATION_BACKENDS = [ALLOW_INACTIVE, GUARDIAN]
    await sync_to_async(assign_perm)(VIEW, bob, item)
    for user in (alice, bob):
        user.is_active = False
        await user.asave()
        await aassert_refused(await get(user, item.file.url))
    assert [reason for _, reason, _ in decisions] == [Reason.POLICY_DENIED] * 2


# -- object permissions (django-guardian) ---------------------------------------


async def test_a_guardian_permission_grants_and_its_removal_takes_it_back(
    get, decisions, bob, item
) -> None:
    await aassert_refused(await get(bob, item.file.url))
    await sync_to_async(assign_perm)(VIEW, bob, item)
    response = await get(bob, item.file.url)
    await aassert_served(response, item.file)
    assert response.headers["X-Accel-Redirect"] == f"/_protected/{item.file.name}"
    await sync_to_async(remove_perm)(VIEW, bob, item)
    await aassert_refused(await get(bob, item.file.url))
    assert [reason for _, reason, _ in decisions] == [
        Reason.POLICY_DENIED,
        "permission",
        Reason.POLICY_DENIED,
    ]


async def test_a_permission_on_another_file_does_not_grant(
    get, decisions, bob, item, other
) -> None:
    await sync_to_async(assign_perm)(VIEW, bob, other)
    await aassert_refused(await get(bob, item.file.url))
    await aassert_served(await get(bob, other.file.url), other.file)
    assert decisions == [
        ("denied", Reason.POLICY_DENIED, key_of(item)),
        ("served", "permission", key_of(other)),
    ]


@pytest.mark.parametrize(
    "permission",
    [
        "protected_media.change_protectedfile",  # another permission on the same file
        "protected_media.delete_protectedfile",
    ],
)
async def test_only_the_view_permission_grants(get, decisions, bob, item, permission) -> None:
    await sync_to_async(assign_perm)(permission, bob, item)
    await aassert_refused(await get(bob, item.file.url))
    assert decisions == [("denied", Reason.POLICY_DENIED, key_of(item))]


async def test_a_model_wide_permission_does_not_grant(get, decisions, bob, item) -> None:
    # assign_perm without an object is Django's global permission: the policy
    # asks about this object only, and ModelBackend answers no for objects.
    await sync_to_async(assign_perm)(VIEW, bob)
    await aassert_refused(await get(bob, item.file.url))
    assert decisions == [("denied", Reason.POLICY_DENIED, key_of(item))]


async def test_a_guardian_group_permission_grants(get, decisions, django_user_model, item) -> None:
    # A group that is not among the file's groups: guardian grants, not the
    # groups field, and the audit trail says so.
    auditors = await Group.objects.acreate(name="auditors")
    erin = await django_user_model.objects.acreate(username="erin")
    await erin.groups.aadd(auditors)
    await sync_to_async(assign_perm)(VIEW, auditors, item)
    await aassert_served(await get(erin, item.file.url), item.file)
    await erin.groups.aremove(auditors)
    await aassert_refused(await get(erin, item.file.url))
    assert [reason for _, reason, _ in decisions] == ["permission", Reason.POLICY_DENIED]


async def test_a_guardian_permission_on_a_site_model(get, decisions, alice, bob) -> None:
    report = await _areport(alice)
    await aassert_refused(await get(bob, report.attachment.url))
    await sync_to_async(assign_perm)("testapp.view_report", bob, report)
    await aassert_served(await get(bob, report.attachment.url), report.attachment)
    assert [reason for _, reason, _ in decisions] == [Reason.POLICY_DENIED, "permission"]


async def test_a_backend_raising_permission_denied_stops_later_backends(
    settings, get, decisions, bob, item
) -> None:
    settings.AUTHENTICATION_BACKENDS = [
        "django.contrib.auth.backends.ModelBackend",
        "tests.testapp.backends.VetoBackend",
        GUARDIAN,
    ]
    await sync_to_async(assign_perm)(VIEW, bob, item)
    await aassert_refused(await get(bob, item.file.url))
    assert decisions == [("denied", Reason.POLICY_DENIED, key_of(item))]


async def test_without_the_guardian_backend_its_permissions_grant_nothing(
    settings, get, decisions, bob, item
) -> None:
    settings.AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
    await sync_to_async(assign_perm)(VIEW, bob, item)
    await aassert_refused(await get(bob, item.file.url))
    assert decisions == [("denied", Reason.POLICY_DENIED, key_of(item))]


# -- a custom policy by dotted path ---------------------------------------------


async def test_a_custom_policy_allows_and_denies(settings, get, decisions, alice, bob) -> None:
    settings.PROTECTED_MEDIA_POLICY = "tests.testapp.policies.public_reports"
    hidden = await _areport(alice)
    shown = await _areport(alice, public=True)
    await aassert_served(await get(bob, shown.attachment.url), shown.attachment)
    await aassert_refused(await get(bob, hidden.attachment.url))
    # It calls default_policy for the rest: the owner still reads, and the
    # grant is the custom policy's.
    await aassert_served(await get(alice, hidden.attachment.url), hidden.attachment)
    assert [(kind, reason) for kind, reason, _ in decisions] == [
        ("served", "policy"),
        ("denied", Reason.POLICY_DENIED),
        ("served", "policy"),
    ]


async def test_a_custom_policy_names_itself_in_the_audit_trail(
    settings, get, decisions, carol, bob, item
) -> None:
    # public_reports knows nothing of ProtectedFile.public; for a ProtectedFile
    # it is the default policy, so groups and guardian still count.
    settings.PROTECTED_MEDIA_POLICY = "tests.testapp.policies.public_reports"
    await aassert_served(await get(carol, item.file.url), item.file)
    await aassert_refused(await get(bob, item.file.url))
    assert [reason for _, reason, _ in decisions] == ["policy", Reason.POLICY_DENIED]


@pytest.mark.parametrize(
    ("policy", "reason", "raised"),
    [
        ("broken", Reason.POLICY_ERROR, RuntimeError),  # raises inside the policy
        ("not_async", Reason.POLICY_ERROR, TypeError),  # `await True` fails
        ("truthy_not_true", Reason.POLICY_DENIED, None),  # only True grants
    ],
)
async def test_a_failing_policy_denies_even_the_owner(
    settings, get, decisions, caplog, alice, policy, reason, raised
) -> None:
    settings.PROTECTED_MEDIA_POLICY = f"tests.testapp.policies.{policy}"
    report = await _areport(alice, public=True)
    with caplog.at_level(logging.INFO, logger="protected_media"):
        response = await get(alice, report.attachment.url)
    await aassert_refused(response)
    assert "X-Accel-Redirect" not in response.headers
    record = await StoredFile.objects.aget(name=report.attachment.name)
    assert decisions == [("denied", reason, record.key)]

    errors = [r for r in caplog.records if r.name == "protected_media" and r.levelname == "ERROR"]
    if raised is None:
        assert errors == []
    else:
        assert len(errors) == 1
        assert errors[0].exc_info is not None
        assert errors[0].exc_info[0] is raised
    audit = [r for r in caplog.records if r.name == "protected_media.audit"]
    assert [(r.decision, r.reason) for r in audit] == [("denied", str(reason))]  # type: ignore[attr-defined]


# -- the default policy's order -------------------------------------------------


@pytest.mark.parametrize(
    ("who", "allow_staff", "expected"),
    [
        # (owner, staff, member of the file's group, guardian permission)
        ((True, True, True, True), True, "owner"),
        ((True, False, False, False), False, "owner"),
        ((False, True, True, True), True, "staff"),
        ((False, True, True, True), False, "group"),
        ((False, False, True, True), False, "group"),
        ((False, False, False, True), False, "permission"),
        ((False, True, False, False), False, None),
        ((False, False, False, False), True, None),
    ],
)
async def test_default_grant_order(
    settings, django_user_model, alice, readers, item, who, allow_staff, expected
) -> None:
    owner, staff, member, permission = who
    settings.PROTECTED_MEDIA_ALLOW_STAFF = allow_staff
    user = alice if owner else await django_user_model.objects.acreate(username="someone")
    user.is_staff = staff
    await user.asave()
    if member:
        await user.groups.aadd(readers)
    if permission:
        await sync_to_async(assign_perm)(VIEW, user, item)
    record = await StoredFile.objects.aget(name=item.file.name)
    assert await default_grant(user, item, record) == expected


async def test_an_owner_in_the_group_is_served_as_owner(
    get, decisions, alice, readers, item
) -> None:
    await alice.groups.aadd(readers)
    await sync_to_async(assign_perm)(VIEW, alice, item)
    await aassert_served(await get(alice, item.file.url), item.file)
    assert decisions == [("served", "owner", key_of(item))]


async def test_anonymous_never_reaches_the_policy(settings, get, decisions, item) -> None:
    # Not even a policy that raises: the login redirect comes first.
    settings.PROTECTED_MEDIA_POLICY = "tests.testapp.policies.broken"
    await aassert_refused(await get(None, item.file.url), login=True, next_url=item.file.url)
    assert decisions == [("denied", Reason.ANONYMOUS, None)]


# -- the database under the policy ----------------------------------------------


async def test_a_database_error_in_the_default_policy_is_the_outage_answer(
    get, decisions, monkeypatch, bob, item
) -> None:
    # The group and permission queries are the database's, not a policy bug:
    # they should answer as any other outage does (503, database_unavailable,
    # one log line per outage), not as policy_error with a 404 and a traceback
    # per request. Fails today: decision.adecide turns every exception of
    # apply_policy into Reason.POLICY_ERROR.
    def fail(*args: Any, **kwargs: Any) -> bool:
        raise OperationalError("connection refused")

    monkeypatch.setattr(ObjectPermissionBackend, "has_perm", fail)
    response = await get(bob, item.file.url)
    assert "X-Accel-Redirect" not in response.headers
    assert decisions == [("denied", Reason.DATABASE_UNAVAILABLE, None)]
    assert response.status_code == 503


async def test_the_policy_queries_recover_from_a_broken_connection(
    get, decisions, carol, item
) -> None:
    await aassert_served(await get(carol, item.file.url), item.file)

    def break_the_connection() -> None:
        # As a database restart would: Django still believes it is open.
        if connection.connection is not None:
            connection.connection.close()

    # asgiref's one shared thread: where the policy's own queries run when no
    # Django handler opened a per-request thread (the fast entry point).
    await sync_to_async(break_the_connection)()
    await get(carol, item.file.url)  # may fail while the connection is found broken
    # Fails today on the entry point: nothing ever closes that thread's
    # connection (no request_started/finished there), so every group or
    # permission check is refused until the process restarts.
    await aassert_served(await get(carol, item.file.url), item.file)


# -- E013: groups_field ---------------------------------------------------------


def _groups_check(field_class: type, groups_field: str, **extra_fields: models.Field) -> list[str]:
    with isolate_apps("tests.testapp"):
        attrs = {
            "__module__": __name__,
            "Meta": type("Meta", (), {"app_label": "testapp"}),
            "owner": models.ForeignKey(
                get_user_model(), on_delete=models.CASCADE, related_name="+"
            ),
            "public": models.BooleanField(default=False),
            "upload": field_class(
                upload_to="notes/", owner_field="owner", groups_field=groups_field
            ),
            **extra_fields,
        }
        model = type("Note", (models.Model,), attrs)
        return [m.id for m in model._meta.get_field("upload").check()]


@pytest.mark.parametrize("field_class", [ProtectedFileField, ProtectedImageField])
@pytest.mark.parametrize(
    ("groups_field", "extra_fields"),
    [
        ("missing", dict),  # no such field
        ("public", dict),  # a BooleanField
        ("owner", dict),  # a ForeignKey to the user model
        (
            "team",  # one group, not many: a ForeignKey
            lambda: {"team": models.ForeignKey(Group, on_delete=models.CASCADE, related_name="+")},
        ),
        (
            "readers",  # many, but users rather than groups
            lambda: {"readers": models.ManyToManyField(get_user_model(), related_name="+")},
        ),
    ],
)
def test_e013_groups_field_not_a_many_to_many_to_group(
    field_class, groups_field, extra_fields
) -> None:
    assert _groups_check(field_class, groups_field, **extra_fields()) == ["protected_media.E013"]


def test_e013_not_raised_for_a_many_to_many_to_group() -> None:
    readers = models.ManyToManyField(Group, related_name="+")
    assert _groups_check(ProtectedFileField, "readers", readers=readers) == []


def test_protected_file_shares_with_its_groups() -> None:
    field = ProtectedFile._meta.get_field("file")
    assert field.groups_field == "groups"
    assert field.check() == []
    assert field.deconstruct()[3]["groups_field"] == "groups"


# helpers: the ORM's file saving is synchronous, as in a form view


async def _areport(author: Any, public: bool = False) -> Report:
    def create() -> Report:
        report = Report(author=author, public=public)
        report.attachment.save("r.txt", SimpleUploadedFile("r.txt", b"report\n"), save=True)
        return report

    return await sync_to_async(create)()
