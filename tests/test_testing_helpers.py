"""protected_media.testing: the assertions pass on the gateway's real answers and
fail on every way an answer can break the contract."""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import httpx
import pytest
from asgiref.sync import async_to_sync
from django.conf import settings as django_settings
from django.core.asgi import get_asgi_application
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpResponse, HttpResponseNotFound, HttpResponseRedirect
from django.test import AsyncClient, Client

from protected_media.conf import NGINX_BACKEND, STREAMING_BACKEND
from protected_media.models import ProtectedFile, StoredFile
from protected_media.testing import (
    aassert_refused,
    aassert_served,
    assert_refused,
    assert_served,
    redirect_target,
)
from tests.testapp.models import Report

from .conftest import png_bytes

pytest_plugins = ["protected_media.pytest_plugin", "pytester"]
pytestmark = pytest.mark.django_db(transaction=True)

TEXT = b"first line\nsecond line\n"
PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"


@pytest.fixture
def text_file(alice, make_file) -> ProtectedFile:
    return make_file(alice, "Quarterly report.txt", TEXT)


def get(user, url: str, method: str = "get"):
    client = Client()
    if user is not None:
        client.force_login(user)
    return getattr(client, method)(url)


async def aget(user, url: str, method: str = "get"):
    client = AsyncClient()
    if user is not None:
        await client.aforce_login(user)
    return await getattr(client, method)(url)


# -- they pass on the real answers ---------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data", "disposition"),
    [
        ("Quarterly report.txt", TEXT, "inline"),
        ("photo.png", png_bytes(), "inline"),
        ("paper.pdf", PDF, "attachment"),
        ("100% \u00e9t\u00e9 \u65e5\u672c.txt", TEXT, "inline"),  # filename*= and %25
        ('say "hi"; a,b.txt', TEXT, "inline"),  # quoted-pairs and separators in quotes
    ],
)
def test_served_passes_on_the_handoff(alice, make_file, name, data, disposition) -> None:
    item = make_file(alice, name, data)
    response = get(alice, item.file.url)
    assert_served(response, item.file)
    assert_served(response, item.file, disposition=disposition)
    assert_served(response, item.record, handoff=True)


def test_served_passes_on_head(alice, text_file, settings) -> None:
    assert_served(get(alice, text_file.file.url, "head"), text_file.file)
    settings.SENDFILE_BACKEND = STREAMING_BACKEND
    response = get(alice, text_file.file.url, "head")
    assert response["Content-Length"] == str(len(TEXT))
    assert_served(response, text_file.file)


def test_served_passes_on_the_streaming_fallback(alice, text_file, settings) -> None:
    settings.SENDFILE_BACKEND = STREAMING_BACKEND
    response = get(alice, text_file.file.url)
    assert response.is_async
    assert_served(response, text_file.file)
    assert_served(response, text_file.file, content=TEXT, handoff=False)


async def test_async_twins_pass_and_give_the_body_back(alice, text_file, settings) -> None:
    response = await aget(alice, text_file.file.url)
    await aassert_served(response, text_file.file)
    settings.SENDFILE_BACKEND = STREAMING_BACKEND
    response = await aget(alice, text_file.file.url)
    await aassert_served(response, text_file.file)
    # Read once to be compared, then put back for the test.
    assert b"".join([chunk async for chunk in response.streaming_content]) == TEXT


async def test_the_sync_assertion_says_to_await_inside_an_event_loop(
    alice, text_file, settings
) -> None:
    settings.SENDFILE_BACKEND = STREAMING_BACKEND
    response = await aget(alice, text_file.file.url)
    with pytest.raises(RuntimeError, match="await the a-prefixed assertion"):
        assert_served(response, await StoredFile.objects.aget(name=text_file.file.name))


def test_refused_passes_on_the_404_and_the_login_redirect(alice, bob, text_file) -> None:
    assert_refused(get(bob, text_file.file.url))
    assert_refused(get(alice, "/media/AAAAAAAAAAAAAAAAAAAAAA"))
    assert_refused(get(alice, "/media/not-a-key"))
    anonymous = get(None, text_file.file.url)
    assert_refused(anonymous, login=True)
    assert_refused(anonymous, login=True, next_url=text_file.file.url)


async def test_async_refused(bob, text_file) -> None:
    await aassert_refused(await aget(bob, text_file.file.url))
    await aassert_refused(await aget(None, text_file.file.url), login=True)


@pytest.mark.parametrize("backend", [NGINX_BACKEND, STREAMING_BACKEND])
def test_httpx_responses_from_the_asgi_app(alice, bob, text_file, settings, backend) -> None:
    # Django's own ASGI handler, spoken to by httpx with real session cookies.
    # Driven from this sync test, its database work runs on this thread, with
    # the test database's connection.
    settings.SENDFILE_BACKEND = backend
    cookies = {}
    for user in (alice, bob):
        session = Client()
        session.force_login(user)
        cookies[user] = {name: morsel.value for name, morsel in session.cookies.items()}

    async def fetch(user, method: str) -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=get_asgi_application()),
            base_url="http://testserver",
            cookies=cookies[user],
        ) as client:
            return await client.request(method, text_file.file.url)

    for method in ("GET", "HEAD"):
        assert_served(async_to_sync(fetch)(alice, method), text_file.file)
        assert_refused(async_to_sync(fetch)(bob, method))


def test_redirect_target_is_encoded_once() -> None:
    record = StoredFile(name="odd folder/100%/\u00e9.txt")
    assert redirect_target(record) == "/_protected/odd%20folder/100%25/%C3%A9.txt"


# -- the media_backend fixture --------------------------------------------------------


def test_media_backend_switches_the_backend(media_backend, alice, text_file) -> None:
    expected = {"nginx": NGINX_BACKEND, "streaming": STREAMING_BACKEND}[media_backend]
    assert django_settings.SENDFILE_BACKEND == expected
    response = get(alice, text_file.file.url)
    assert ("X-Accel-Redirect" in response) is (media_backend == "nginx")
    assert_served(response, text_file.file)


def test_media_backend_runs_each_backend_and_restores_the_setting(pytester) -> None:
    # A site's own suite, loading the plugin as docs/testing.md says.
    pytester.makeconftest('pytest_plugins = ["protected_media.pytest_plugin"]\n')
    pytester.makepyfile(
        textwrap.dedent(
            """
            from django.conf import settings

            def test_backend(media_backend):
                print(f"SEEN {media_backend} {settings.SENDFILE_BACKEND}")
            """
        )
    )
    before = django_settings.SENDFILE_BACKEND
    plugins_off = ("-p", "no:django", "-p", "no:asyncio", "-p", "no:cacheprovider")
    result = pytester.runpytest_inprocess("-s", "-q", *plugins_off)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            f"*SEEN nginx {NGINX_BACKEND}",
            f"*SEEN streaming {STREAMING_BACKEND}",
        ]
    )
    assert django_settings.SENDFILE_BACKEND == before


# -- they fail on broken answers ------------------------------------------------------


def tampered(response, **headers: str | None):
    """The response with headers set (or deleted, for None); "_" stands for "-"."""
    for name, value in headers.items():
        name = name.replace("_", "-")
        if value is None:
            del response[name]
        else:
            response[name] = value
    return response


def with_status(response, status: int):
    response.status_code = status
    return response


def with_body(response, body: bytes):
    response.content = body
    return response


BROKEN_HANDOFFS: list[tuple[str, Callable, str]] = [
    ("an error status: nginx ignores it", lambda r: with_status(r, 500), "status 500"),
    (
        "Django's default type: nginx would send the file as HTML",
        lambda r: tampered(r, Content_Type="text/html; charset=utf-8"),
        "Content-Type",
    ),
    ("text without its charset", lambda r: tampered(r, Content_Type="text/plain"), "Content-Type"),
    ("a type that does not parse", lambda r: tampered(r, Content_Type="garbage"), "does not parse"),
    ("no type", lambda r: tampered(r, Content_Type=None), "no Content-Type"),
    (
        "the file's size on an empty body: uvicorn fails the response",
        lambda r: tampered(r, Content_Length=str(len(TEXT))),
        "Content-Length",
    ),
    ("no Content-Length", lambda r: tampered(r, Content_Length=None), "Content-Length"),
    (
        "cacheable by a shared cache",
        lambda r: tampered(r, Cache_Control="public, max-age=60"),
        "Cache-Control",
    ),
    ("no Cache-Control", lambda r: tampered(r, Cache_Control=None), "Cache-Control"),
    (
        "attachment where the type is inline",
        lambda r: tampered(r, Content_Disposition='attachment; filename="Quarterly report.txt"'),
        "is not inline",
    ),
    (
        "another file name",
        lambda r: tampered(r, Content_Disposition='inline; filename="other.txt"'),
        "filename 'other.txt'",
    ),
    (
        "a hand-written header that does not parse",
        lambda r: tampered(r, Content_Disposition="inline; filename=Quarterly report.txt"),
        "does not parse",
    ),
    ("no Content-Disposition", lambda r: tampered(r, Content_Disposition=None), "no Content-"),
    ("no X-Accel-Redirect", lambda r: tampered(r, X_Accel_Redirect=None), "X-Accel-Redirect"),
    (
        "another internal prefix",
        lambda r: tampered(r, X_Accel_Redirect=r["X-Accel-Redirect"].replace("_protected", "p")),
        "X-Accel-Redirect",
    ),
    (
        "X-Accel-Expires: it overrides private in nginx's cache",
        lambda r: tampered(r, X_Accel_Expires="60"),
        "X-Accel-Expires",
    ),
    ("bytes after the handoff", lambda r: with_body(r, TEXT), "a body of 23 bytes"),
]


@pytest.mark.parametrize(
    ("change", "message"),
    [case[1:] for case in BROKEN_HANDOFFS],
    ids=[case[0] for case in BROKEN_HANDOFFS],
)
def test_served_fails_on_a_broken_handoff(alice, text_file, change, message) -> None:
    response = get(alice, text_file.file.url)
    assert_served(response, text_file.file)
    with pytest.raises(AssertionError, match=message):
        assert_served(change(response), text_file.file)


@pytest.mark.parametrize(
    ("target", "served"),
    [
        ("/_protected/odd/100%25%20done.txt", True),  # encoded once
        ("/_protected/odd/100% done.txt", False),  # raw: nginx would decode "% d"
        ("/_protected/odd/100%2525%2520done.txt", False),  # encoded twice
        ("/_protected/odd/100%25 done.txt", False),  # half encoded
    ],
)
def test_served_checks_the_encoding_of_the_target(private_root, target, served) -> None:
    # Generated names need no encoding; a site's upload_to may give one that does.
    record = StoredFile(
        name="odd/100% done.txt", original_name="done.txt", content_type="text/plain", size=4
    )
    response = HttpResponse(
        headers={
            "X-Accel-Redirect": target,
            "Content-Type": "text/plain; charset=utf-8",
            "Content-Disposition": 'inline; filename="done.txt"',
            "Cache-Control": "private, no-store",
            "Content-Length": "0",
        }
    )
    if served:
        assert_served(response, record, handoff=True)
    else:
        with pytest.raises(AssertionError, match="X-Accel-Redirect"):
            assert_served(response, record, handoff=True)


def test_served_fails_on_another_users_answer_and_another_file(alice, bob, make_file) -> None:
    mine = make_file(alice, "mine.txt", TEXT)
    other = make_file(alice, "other.txt", TEXT)
    with pytest.raises(AssertionError, match="status 404"):
        assert_served(get(bob, mine.file.url), mine.file)
    with pytest.raises(AssertionError, match="X-Accel-Redirect"):
        assert_served(get(alice, other.file.url), mine.file)


def test_served_fails_on_the_wrong_disposition_or_backend(alice, make_file, settings) -> None:
    paper = make_file(alice, "paper.pdf", PDF)
    response = get(alice, paper.file.url)
    with pytest.raises(AssertionError, match="is not inline"):
        assert_served(response, paper.file, disposition="inline")
    with pytest.raises(AssertionError, match="X-Accel headers present"):
        assert_served(response, paper.file, handoff=False)
    settings.SENDFILE_BACKEND = STREAMING_BACKEND
    with pytest.raises(AssertionError, match="X-Accel-Redirect None"):
        assert_served(get(alice, paper.file.url), paper.file, handoff=True)


def test_served_fails_on_other_bytes_from_the_fallback(alice, text_file, settings) -> None:
    settings.SENDFILE_BACKEND = STREAMING_BACKEND
    with pytest.raises(AssertionError, match="not the stored file"):
        assert_served(get(alice, text_file.file.url), text_file.file, content=b"other bytes\n")
    response = get(alice, text_file.file.url)
    response["Content-Length"] = "3"
    with pytest.raises(AssertionError, match="Content-Length '3'"):
        assert_served(response, text_file.file)
    response = get(alice, text_file.file.url)
    response["X-Accel-Buffering"] = "no"
    with pytest.raises(AssertionError, match="X-Accel-Buffering"):
        assert_served(response, text_file.file)


def test_served_fails_on_a_file_without_record(alice, text_file) -> None:
    response = get(alice, text_file.file.url)
    StoredFile.objects.all().delete()
    fresh = ProtectedFile.objects.get(pk=text_file.pk)
    with pytest.raises(AssertionError, match="no StoredFile record"):
        assert_served(response, fresh.file)


def not_found() -> HttpResponse:
    response = HttpResponseNotFound(b"Not Found\n", content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = "private, no-store"
    return response


def test_refused_passes_on_a_hand_made_404() -> None:
    assert_refused(not_found())


BROKEN_REFUSALS: list[tuple[str, Callable[[], HttpResponse], str]] = [
    (
        "a 404 that still hands the file to nginx",
        lambda: tampered(not_found(), X_Accel_Redirect="/_protected/files/a.txt"),
        "X-Accel headers present: X-Accel-Redirect",
    ),
    (
        "any X-Accel header",
        lambda: tampered(not_found(), X_Accel_Limit_Rate="0"),
        "X-Accel-Limit-Rate",
    ),
    ("a 403 instead of the one 404", lambda: with_status(not_found(), 403), "status 403"),
    ("a 200", lambda: with_status(not_found(), 200), "status 200"),
    ("Django's default 404 page", lambda: HttpResponseNotFound(b"<h1>Not Found</h1>"), "body"),
    ("an empty body", lambda: with_body(not_found(), b""), "body b''"),
    (
        "the right body as HTML",
        lambda: tampered(not_found(), Content_Type="text/html; charset=utf-8"),
        "Content-Type",
    ),
    (
        "the name leaks in a Content-Disposition",
        lambda: tampered(not_found(), Content_Disposition='inline; filename="secret.txt"'),
        "Content-Disposition",
    ),
    ("cacheable", lambda: tampered(not_found(), Cache_Control=None), "Cache-Control"),
]


@pytest.mark.parametrize(
    ("make", "message"),
    [case[1:] for case in BROKEN_REFUSALS],
    ids=[case[0] for case in BROKEN_REFUSALS],
)
def test_refused_fails_on_a_broken_404(make, message) -> None:
    with pytest.raises(AssertionError, match=message):
        assert_refused(make())


def login_redirect(location: str = "/accounts/login/?next=/media/AAAAAAAAAAAAAAAAAAAAAA"):
    response = HttpResponseRedirect(location)
    response["Cache-Control"] = "private, no-store"
    return response


@pytest.mark.parametrize(
    ("response", "next_url", "message"),
    [
        (login_redirect(), None, None),
        (login_redirect(), "/media/AAAAAAAAAAAAAAAAAAAAAA", None),
        (login_redirect(), "/media/other", "next='/media/AAAAAAAAAAAAAAAAAAAAAA'"),
        (login_redirect("/elsewhere/?next=/media/x"), None, "is not the login page"),
        (login_redirect("/accounts/login/"), None, "no single next"),
        (tampered(login_redirect(), X_Accel_Redirect="/_protected/a"), None, "X-Accel"),
        (tampered(login_redirect(), Cache_Control=None), None, "Cache-Control"),
        (not_found(), None, "expected 302"),
    ],
)
def test_refused_login_checks_the_redirect(response, next_url, message) -> None:
    if message is None:
        assert_refused(response, login=True, next_url=next_url)
    else:
        with pytest.raises(AssertionError, match=message):
            assert_refused(response, login=True, next_url=next_url)


def test_refused_fails_on_a_served_file(alice, text_file) -> None:
    with pytest.raises(AssertionError, match="X-Accel headers present"):
        assert_refused(get(alice, text_file.file.url))
    with pytest.raises(AssertionError, match="expected 302"):
        assert_refused(get(alice, text_file.file.url), login=True)


# -- docs/testing.md's examples, as written there ----------------------------------


@pytest.fixture
def report(alice) -> Report:
    item = Report(author=alice)
    item.attachment.save("report.txt", SimpleUploadedFile("report.txt", TEXT), save=True)
    return item


def test_only_the_owner_gets_the_report(client, alice, bob, report):
    client.force_login(alice)
    assert_served(client.get(report.attachment.url), report.attachment)
    client.force_login(bob)
    assert_refused(client.get(report.attachment.url))
    client.logout()
    assert_refused(client.get(report.attachment.url), login=True)


async def test_the_same_in_an_async_test(async_client, alice, report):
    await async_client.aforce_login(alice)
    await aassert_served(await async_client.get(report.attachment.url), report.attachment)


def test_owner_gets_the_report(media_backend, client, alice, report):
    client.force_login(alice)
    assert_served(client.get(report.attachment.url), report.attachment)
