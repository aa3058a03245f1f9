"""Signed-in clients shared by the whole attack suite: a login costs a full
password hash on the real stack, so each user signs in once per stack."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from ..conftest import USERS
from ..harness import Stack, upload
from .support import PRIVATE_TEXT


def _login(stack: Stack, name: str) -> Iterator[httpx.Client]:
    client = stack.login(name, USERS[name])
    yield client
    client.close()


@pytest.fixture(scope="package")
def owner(stack: Stack) -> Iterator[httpx.Client]:
    yield from _login(stack, "alice")


@pytest.fixture(scope="package")
def intruder(stack: Stack) -> Iterator[httpx.Client]:
    yield from _login(stack, "bob")


@pytest.fixture(scope="package")
def fallback_owner(fallback_stack: Stack) -> Iterator[httpx.Client]:
    yield from _login(fallback_stack, "alice")


@pytest.fixture(scope="package")
def fallback_intruder(fallback_stack: Stack) -> Iterator[httpx.Client]:
    yield from _login(fallback_stack, "bob")


@pytest.fixture(scope="package")
def private_file(owner: httpx.Client) -> dict[str, str]:
    """One of alice's files, which bob must never read."""
    response = upload(owner, "private.txt", PRIVATE_TEXT, "text/plain")
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="package")
def fallback_private_file(fallback_owner: httpx.Client) -> dict[str, str]:
    response = upload(fallback_owner, "private.txt", PRIVATE_TEXT, "text/plain")
    assert response.status_code == 201, response.text
    return response.json()
