"""The async gateway view, in process: who gets what, with which headers."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import AsyncClient

from protected_media.models import ProtectedFile, StoredFile
from protected_media.testing import aassert_refused, aassert_served
from tests.testapp import backends
from tests.testapp.models import Report

from .conftest import png_bytes

pytestmark = pytest.mark.django_db(transaction=True)

NOT_FOUND = (404, b"Not Found\n")


async def client_for(user) -> AsyncClient:
    client = AsyncClient()
    if user is not None:
        await client.aforce_login(user)
    return client


def snapshot(response) -> tuple[int, dict[str, str], bytes]:
    headers = {name: value for name, value in response.headers.items() if name != "Date"}
    return response.status_code, headers, response.content


def assert_no_accel(response) -> None:
    assert not [name for name in response.headers if name.lower().startswith("x-accel")]


async def test_owner_gets_the_exact_handoff(alice, make_file) -> None:
    item = await _amake(make_file, alice, "Quarterly report.txt", b"numbers\n")
    response = await (await client_for(alice)).get(item.file.url)
    assert response.status_code == 200
    assert response.content == b""
    assert dict(response.headers) == {
        "X-Accel-Redirect": f"/_protected/{item.file.name}",
        "Content-Type": "text/plain; charset=utf-8",
        "Content-Disposition": 'inline; filename="Quarterly report.txt"',
        "Cache-Control": "private, no-store",
        "Content-Length": "0",
        "Vary": "Cookie",
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
    }


async def test_url_carries_only_the_key(alice, make_file) -> None:
    item = await _amake(make_file, alice)
    record = await StoredFile.objects.aget(name=item.file.name)
    assert item.file.url == f"/media/{record.key}"
    assert item.file.name == f"files/{record.key}.txt"


@pytest.mark.parametrize(
    ("name", "data", "content_type", "disposition"),
    [
        ("photo.png", png_bytes(), "image/png", 'inline; filename="photo.png"'),
        ("paper.pdf", b"%PDF-1.4\n%%EOF\n", "application/pdf", 'attachment; filename="paper.pdf"'),
    ],
)
async def test_only_safe_types_are_inline(
    alice, make_file, name, data, content_type, disposition
) -> None:
    item = await _amake(make_file, alice, name, data)
    response = await (await client_for(alice)).get(item.file.url)
    await aassert_served(response, item.file, disposition=disposition.split(";")[0])
    assert response["Content-Type"] == content_type
    assert response["Content-Disposition"] == disposition


@pytest.mark.parametrize(
    ("original", "header"),
    [
        ("a b.txt", 'inline; filename="a b.txt"'),
        # Chromium percent-decodes a quoted filename: only filename*, decoded once
        ("100%.txt", "inline; filename*=utf-8''100%25.txt"),
        ("what?.txt", 'inline; filename="what?.txt"'),
        ("#1.txt", 'inline; filename="#1.txt"'),
        ("a+b.txt", 'inline; filename="a+b.txt"'),
        ("a;b.txt", 'inline; filename="a;b.txt"'),
        ('say "hi".txt', 'inline; filename="say \\"hi\\".txt"'),
        ("\u00e9t\u00e9.txt", "inline; filename*=utf-8''%C3%A9t%C3%A9.txt"),
        ("e\u0301te\u0301.txt", "inline; filename*=utf-8''%C3%A9t%C3%A9.txt"),  # NFD -> NFC
        ("日本語.txt", "inline; filename*=utf-8''%E6%97%A5%E6%9C%AC%E8%AA%9E.txt"),
        ("new\r\nline.txt", 'inline; filename="newline.txt"'),
    ],
)
async def test_original_names_go_back_in_content_disposition(
    alice, make_file, original, header
) -> None:
    item = await _amake(make_file, alice, original)
    response = await (await client_for(alice)).get(item.file.url)
    assert response["Content-Disposition"] == header


@pytest.mark.parametrize(
    "folder",
    ["a b", "100%", "what?", "#hash", "a+b", "a;b", "\u00e9t\u00e9", "e\u0301te\u0301", "日本語"],
)
async def test_redirect_target_is_percent_encoded_once(alice, private_root, folder) -> None:
    # Our own names are plain; a site's upload_to may not be.
    url = await _astore_under(alice, private_root, f"{folder}/file.txt")
    response = await (await client_for(alice)).get(url)
    assert response["X-Accel-Redirect"] == "/_protected/" + quote(f"{folder}/file.txt", safe="/")


async def test_refusals_are_identical(alice, bob, make_file) -> None:
    mine = await _amake(make_file, alice)
    gone = await _amake(make_file, alice)
    gone_url = gone.file.url
    await gone.adelete()
    client = await client_for(bob)
    answers = [
        snapshot(await client.get(url))
        for url in (
            mine.file.url,  # another user's file
            gone_url,  # a deleted file
            "/media/AAAAAAAAAAAAAAAAAAAAAA",  # a key that never existed
            "/media/not-a-key",  # malformed
            "/media/" + mine.file.url.rsplit("/", 1)[1] + "/extra",
            "/media/a/..%2F..%2F.env",
            "/media/%2Fetc%2Fpasswd",
            "/media/..%5C..%5Cwin.ini",
            "/media/",
        )
    ]
    assert all(answer == answers[0] for answer in answers)
    assert (answers[0][0], answers[0][2]) == NOT_FOUND
    assert answers[0][1]["Cache-Control"] == "private, no-store"
    assert not [name for name in answers[0][1] if name.lower().startswith("x-accel")]


async def test_anonymous_is_sent_to_login_whether_or_not_the_file_exists(alice, make_file) -> None:
    item = await _amake(make_file, alice)
    client = await client_for(None)
    key = item.file.url.rsplit("/", 1)[1]
    existing = await client.get(item.file.url)
    missing = await client.get("/media/" + key[::-1])
    for response, url in ((existing, item.file.url), (missing, "/media/" + key[::-1])):
        await aassert_refused(response, login=True, next_url=url)
        assert response["Location"] == f"/accounts/login/?next={quote(url)}"


async def test_anonymous_can_get_the_same_404(settings, alice, make_file) -> None:
    settings.PROTECTED_MEDIA_ANONYMOUS = "not_found"
    item = await _amake(make_file, alice)
    client = await client_for(None)
    await aassert_refused(await client.get(item.file.url))
    await aassert_refused(await client.get("/media/AAAAAAAAAAAAAAAAAAAAAA"))


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete", "options"])
async def test_only_get_and_head(alice, make_file, method) -> None:
    item = await _amake(make_file, alice)
    response = await getattr(await client_for(alice), method)(item.file.url)
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert response.content == b""
    assert_no_accel(response)


async def test_head_is_handed_off_too(alice, make_file) -> None:
    item = await _amake(make_file, alice)
    response = await (await client_for(alice)).head(item.file.url)
    await aassert_served(response, item.file)
    assert response["X-Accel-Redirect"] == f"/_protected/{item.file.name}"


async def test_staff_and_superusers_are_refused_by_default(
    settings, alice, django_user_model, make_file
) -> None:
    item = await _amake(make_file, alice)
    staff = await django_user_model.objects.acreate(username="staff", is_staff=True)
    root = await django_user_model.objects.acreate(
        username="root", is_staff=True, is_superuser=True
    )
    for user in (staff, root):
        await aassert_refused(await (await client_for(user)).get(item.file.url))
    settings.PROTECTED_MEDIA_ALLOW_STAFF = True
    response = await (await client_for(staff)).get(item.file.url)
    await aassert_served(response, item.file)
    assert response["X-Accel-Redirect"] == f"/_protected/{item.file.name}"


async def test_deactivated_owner_is_refused(alice, make_file) -> None:
    item = await _amake(make_file, alice)
    client = await client_for(alice)
    alice.is_active = False
    await alice.asave()
    await aassert_refused(await client.get(item.file.url), login=True, next_url=item.file.url)


async def test_object_permission_backends_plug_in(settings, alice, bob, private_root) -> None:
    settings.AUTHENTICATION_BACKENDS = [
        "django.contrib.auth.backends.ModelBackend",
        "tests.testapp.backends.ReportGrantBackend",
    ]
    report = await _areport(alice)
    client = await client_for(bob)
    await aassert_refused(await client.get(report.attachment.url))
    backends.GRANTS.add((bob.pk, report.pk))
    try:
        response = await client.get(report.attachment.url)
    finally:
        backends.GRANTS.clear()
    await aassert_served(response, report.attachment)
    assert response["X-Accel-Redirect"] == f"/_protected/{report.attachment.name}"


async def test_custom_policy(settings, alice, bob) -> None:
    settings.PROTECTED_MEDIA_POLICY = "tests.testapp.policies.public_reports"
    hidden = await _areport(alice)
    shown = await _areport(alice, public=True)
    client = await client_for(bob)
    await aassert_refused(await client.get(hidden.attachment.url))
    await aassert_served(await client.get(shown.attachment.url), shown.attachment)


@pytest.mark.parametrize("policy", ["broken", "truthy_not_true"])
async def test_a_policy_that_fails_denies(settings, alice, caplog, policy) -> None:
    settings.PROTECTED_MEDIA_POLICY = f"tests.testapp.policies.{policy}"
    report = await _areport(alice, public=True)
    await aassert_refused(await (await client_for(alice)).get(report.attachment.url))


async def test_a_site_model_with_dated_folders(alice) -> None:
    report = await _areport(alice)
    assert report.attachment.name.startswith("reports/20")
    response = await (await client_for(alice)).get(report.attachment.url)
    await aassert_served(response, report.attachment)
    assert response["X-Accel-Redirect"] == f"/_protected/{report.attachment.name}"


# helpers: the ORM's file saving is synchronous, as in a form view


async def _amake(make_file, owner, name="notes.txt", data=b"hello\n") -> ProtectedFile:
    from asgiref.sync import sync_to_async

    return await sync_to_async(make_file)(owner, name, data)


async def _areport(author, public: bool = False) -> Report:
    from asgiref.sync import sync_to_async

    def create() -> Report:
        report = Report(author=author, public=public)
        report.attachment.save("r.txt", SimpleUploadedFile("r.txt", b"report\n"), save=True)
        return report

    return await sync_to_async(create)()


ODD_KEY = "K" * 21 + "k"


async def _astore_under(owner, private_root, name: str) -> str:
    """A file stored under a name we did not generate, as a custom upload_to may
    give; returns its gateway URL."""
    path = private_root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"odd\n")
    await StoredFile.objects.acreate(
        key=ODD_KEY,
        name=name,
        source="protected_media.protectedfile.file",
        original_name="file.txt",
        size=4,
        content_type="text/plain",
    )
    await ProtectedFile.objects.acreate(owner=owner, file=name)
    return f"/media/{ODD_KEY}"


async def test_a_name_held_by_two_rows_is_refused(alice, bob, make_file) -> None:
    # If code ever copied alice's stored name onto bob's row, neither owner
    # may be guessed: the file is refused to both.
    item = await _amake(make_file, alice)
    await ProtectedFile.objects.acreate(owner=bob, file=item.file.name)
    for user in (alice, bob):
        await aassert_refused(await (await client_for(user)).get(item.file.url))
