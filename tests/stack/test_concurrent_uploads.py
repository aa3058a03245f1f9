"""Hundreds of uploads with the same original name, from many users at once,
through nginx and the app's workers: none overwrites another, none is lost,
and every user reads back exactly the bytes they sent (checked by hash)."""

from __future__ import annotations

import hashlib
import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest

from .harness import Stack, cookie_header, upload

pytestmark = pytest.mark.stack

USERS = 16
UPLOADS_PER_USER = 20  # 320 in all
PARALLEL = 64
NAME = "report.txt"

CREATE = """
from django.contrib.auth.models import User
for index in range({count}):
    User.objects.create_user(f"{prefix}{{index}}", password={password!r})
"""


def test_same_name_uploads_in_parallel_never_overwrite_each_other(stack: Stack) -> None:
    prefix, password = f"crowd{secrets.token_hex(3)}-", "crowd-pass-5521"
    stack.shell(CREATE.format(count=USERS, prefix=prefix, password=password))
    clients = [stack.login(f"{prefix}{index}", password) for index in range(USERS)]
    # Each body is unique and its hash known before it is sent.
    jobs = [
        (user, f"{prefix}{user} upload {number} {secrets.token_hex(16)}\n".encode() * 50)
        for number in range(UPLOADS_PER_USER)
        for user in range(USERS)
    ]

    def send(job: tuple[int, bytes]) -> tuple[int, bytes, int, dict]:
        user, body = job
        response = upload(clients[user], NAME, body, "text/plain")
        return user, body, response.status_code, response.json()

    try:
        with ThreadPoolExecutor(PARALLEL) as pool:
            results = list(pool.map(send, jobs))

        assert [status for *_, status, _ in results] == [201] * len(jobs)
        urls = [created["url"] for *_, created in results]
        assert len(set(urls)) == len(jobs), "two uploads were given one URL"
        assert {created["name"] for *_, created in results} == {NAME}

        def fetch(result: tuple[int, bytes, int, dict]) -> tuple[str, str]:
            user, body, _, created = result
            response = stack.raw("GET", created["url"], headers=cookie_header(clients[user]))
            assert response.status == 200, created
            return hashlib.sha256(response.body).hexdigest(), hashlib.sha256(body).hexdigest()

        with ThreadPoolExecutor(PARALLEL) as pool:
            pairs = list(pool.map(fetch, results))
        assert [served for served, _ in pairs] == [sent for _, sent in pairs]

        # Each user's listing holds exactly their uploads, nobody else's.
        for user, client in enumerate(clients):
            listed = {item["url"] for item in client.get("/api/files/").json()["files"]}
            assert listed == {created["url"] for u, _, _, created in results if u == user}
        # One file on disk per upload, none left half-written.
        on_disk = [path for path in stack.private_root.rglob("*") if path.is_file()]
        assert {url.rsplit("/", 1)[1] for url in urls} <= {path.stem for path in on_disk}
        assert not [path for path in on_disk if path.name.startswith(".upload-")]
    finally:
        for client in clients:
            client.close()
