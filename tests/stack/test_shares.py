"""Share links through the real stack: nginx serves the bytes after the check,
with no-referrer, and a revoked, expired or changed link gets the one refusal,
byte for byte (security rules 2 and 10)."""

from __future__ import annotations

import json
import time

import pytest

from .harness import Stack, upload

pytestmark = pytest.mark.stack

CREATE_LINK = """
import json
from datetime import timedelta
from protected_media.models import ProtectedFile
from protected_media.shares import create_share, share_url
item = ProtectedFile.objects.get(pk={file_id!r})
lifetime = timedelta(seconds={seconds})
share, token = create_share(item.record, created_by=item.owner, lifetime=lifetime)
print(json.dumps({{"id": str(share.pk), "url": share_url(token)}}))
"""
REVOKE_LINK = """
from protected_media.models import ShareLink
from protected_media.shares import revoke
print(revoke(ShareLink.objects.get(pk={share_id!r})))
"""


@pytest.fixture
def shared(stack: Stack, alice):
    """alice's file, and a function making links to it."""
    data = b"%PDF-1.4\n% shared through the stack\n%%EOF\n"
    created = upload(alice, "Shared report.pdf", data, "application/pdf")
    assert created.status_code == 201, created.text
    file_id = created.json()["id"]

    def link(seconds: int = 3600) -> dict[str, str]:
        output = stack.shell(CREATE_LINK.format(file_id=file_id, seconds=seconds))
        return json.loads(output.strip().splitlines()[-1])

    return data, created.json(), link


def signature(response) -> tuple:
    headers = sorted((k, v) for k, v in response.headers.items() if k not in ("date",))
    return response.status, headers, response.body


def test_a_link_is_served_by_nginx_to_anyone(stack: Stack, shared) -> None:
    data, _, link = shared
    response = stack.raw("GET", link()["url"])
    assert response.status == 200
    assert response.body == data
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == 'attachment; filename="Shared report.pdf"'
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "private, no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "x-accel-redirect" not in response.headers


def test_refused_links_get_the_one_refusal(stack: Stack, shared, bob) -> None:
    _, created, link = shared
    cookie = f"sessionid={bob.cookies['sessionid']}"
    # The refusal of bob asking for alice's file by its key is the model.
    baseline = signature(stack.raw("GET", created["url"], headers={"Cookie": cookie}))
    assert baseline[0] == 404

    expiring = link(seconds=1)["url"]
    revoked = link()
    assert stack.shell(REVOKE_LINK.format(share_id=revoked["id"])).strip() == "True"
    good = link()["url"]
    prefix, token = good.rsplit("/", 1)
    # Whole seconds: past the expiry's second, whatever the fraction.
    time.sleep(2)
    for url in (
        expiring,
        revoked["url"],
        f"{prefix}/{token[:-1]}{'A' if token[-1] != 'A' else 'B'}",
        f"{prefix}/{token.swapcase()}",
        f"{prefix}/",
        f"{prefix}/{token}/..%2F",
    ):
        response = stack.raw("GET", url, headers={"Cookie": cookie})
        assert signature(response) == baseline, url


def test_the_internal_target_of_a_link_is_not_reachable(stack: Stack, shared) -> None:
    _, _, link = shared
    url = link()["url"]
    token = url.rsplit("/", 1)[1]
    for target in (f"/_protected/s/{token}", f"/_protected/{token}"):
        assert stack.raw("GET", target).status == 404
