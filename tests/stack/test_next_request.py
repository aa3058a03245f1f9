"""No shortcut outlives a change: through the real stack (nginx, uvicorn and
the ASGI entry point the run command uses), a logged-out session, a changed
password, a deactivated user and a deleted file are refused on the very next
request, and one user's answer is never another's."""

from __future__ import annotations

import itertools

import pytest

from .harness import Stack, upload

pytestmark = pytest.mark.stack

_names = itertools.count()


@pytest.fixture
def member(stack: Stack):
    """A user of this test alone, signed in, with one uploaded file."""
    name = f"member{next(_names)}"
    password = f"{name}-pass-3318"
    stack.shell(
        "from django.contrib.auth.models import User\n"
        f"User.objects.create_user({name!r}, password={password!r})\n"
    )
    client = stack.login(name, password)
    created = upload(client, "diary.txt", b"dear diary\n", "text/plain")
    assert created.status_code == 201, created.text
    yield name, password, client, created.json()
    client.close()


def fetch(stack: Stack, url: str, cookie: str) -> tuple[int, bytes, str]:
    response = stack.raw("GET", url, headers={"Cookie": cookie})
    return response.status, response.body, response.headers.get("location", "")


def session_cookie(client) -> str:
    return f"sessionid={client.cookies['sessionid']}"


def test_logged_out_session(stack, member) -> None:
    _, _, client, created = member
    cookie = session_cookie(client)
    assert fetch(stack, created["url"], cookie)[:2] == (200, b"dear diary\n")
    logout = client.post(
        "/accounts/logout/",
        headers={"X-CSRFToken": client.cookies["csrftoken"], "Origin": stack.url},
    )
    assert logout.status_code == 302
    status, _, location = fetch(stack, created["url"], cookie)
    assert status == 302
    assert location.startswith("/accounts/login/?next=")


def test_changed_password_logs_out_other_sessions(stack, member) -> None:
    name, password, client, created = member
    other = stack.login(name, password)
    try:
        cookies = [session_cookie(client), session_cookie(other)]
        for cookie in cookies:
            assert fetch(stack, created["url"], cookie)[0] == 200
        stack.shell(
            "from django.contrib.auth.models import User\n"
            f"user = User.objects.get(username={name!r})\n"
            "user.set_password('a-new-password-7781')\n"
            "user.save()\n"
        )
        for cookie in cookies:
            status, _, location = fetch(stack, created["url"], cookie)
            assert status == 302
            assert location.startswith("/accounts/login/")
    finally:
        other.close()


def test_deactivated_user(stack, member) -> None:
    name, _, client, created = member
    cookie = session_cookie(client)
    assert fetch(stack, created["url"], cookie)[0] == 200
    stack.shell(
        "from django.contrib.auth.models import User\n"
        f"User.objects.filter(username={name!r}).update(is_active=False)\n"
    )
    assert fetch(stack, created["url"], cookie)[0] == 302


def test_deleted_file(stack, member) -> None:
    _, _, client, created = member
    cookie = session_cookie(client)
    assert fetch(stack, created["url"], cookie)[0] == 200
    stack.shell(
        "from protected_media.models import ProtectedFile\n"
        f"ProtectedFile.objects.get(pk={created['id']!r}).delete()\n"
    )
    assert fetch(stack, created["url"], cookie)[:2] == (404, b"Not Found\n")


def test_answers_alternate_between_users_without_leaking(stack, member, bob) -> None:
    _, _, client, created = member
    owner, stranger = session_cookie(client), f"sessionid={bob.cookies['sessionid']}"
    for _ in range(5):
        assert fetch(stack, created["url"], owner)[:2] == (200, b"dear diary\n")
        assert fetch(stack, created["url"], stranger)[:2] == (404, b"Not Found\n")
