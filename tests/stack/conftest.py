from __future__ import annotations

import secrets
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from .harness import ADMIN_URL, Stack, postgres_admin

USERS = {"alice": "alice-pass-4821", "bob": "bob-pass-9377"}
CREATE_USERS = "from django.contrib.auth.models import User\n" + "".join(
    f"User.objects.create_user({name!r}, password={password!r})\n"
    for name, password in USERS.items()
)
# Small enough that the tests can cross it cheaply.
MAX_UPLOAD = 1024 * 1024


@contextmanager
def postgres_stack(tmp_path_factory, name: str, **env: str) -> Iterator[tuple[Stack, str, str]]:
    """A stack on a PostgreSQL database of its own, made here and dropped on
    the way out, whichever database the rest of the suite uses: (the stack,
    the database's name, its URL)."""
    database = f"gateway_{name.replace('-', '_')}_{secrets.token_hex(6)}"
    postgres_admin("CREATE DATABASE {name}", database)
    url = urllib.parse.urlunsplit(urllib.parse.urlsplit(ADMIN_URL)._replace(path=f"/{database}"))
    stack = Stack(
        tmp_path_factory.mktemp(name),
        {"GATEWAY_MAX_UPLOAD_SIZE": str(MAX_UPLOAD), "GATEWAY_DATABASE_URL": url, **env},
    )
    try:
        stack.start()
        stack.shell(CREATE_USERS)
        yield stack, database, url
    finally:
        stack.stop()
        postgres_admin("DROP DATABASE IF EXISTS {name} WITH (FORCE)", database)


def start_stack(tmp_path_factory, name: str, **env: str) -> Stack:
    stack = Stack(
        tmp_path_factory.mktemp(name),
        {"GATEWAY_MAX_UPLOAD_SIZE": str(MAX_UPLOAD), **env},
    ).start()
    stack.shell(CREATE_USERS)
    return stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Iterator[Stack]:
    running = start_stack(tmp_path_factory, "stack")
    yield running
    running.stop()


@pytest.fixture(scope="session")
def fallback_stack(tmp_path_factory) -> Iterator[Stack]:
    running = start_stack(
        tmp_path_factory, "fallback", GATEWAY_SENDFILE_BACKEND="protected_media.backends.streaming"
    )
    yield running
    running.stop()


@pytest.fixture
def alice(stack):
    client = stack.login("alice", USERS["alice"])
    yield client
    client.close()


@pytest.fixture
def bob(stack):
    client = stack.login("bob", USERS["bob"])
    yield client
    client.close()
