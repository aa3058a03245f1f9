"""Share links through the JSON API, driven as a browser script drives it
(session cookie, X-CSRFToken): only a file's owner creates, lists and revokes
its links; the link itself then works for anyone until it is revoked."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from protected_media.models import ShareLink
from protected_media.testing import assert_refused, assert_served

from .test_api import assert_json_error, browser

pytestmark = pytest.mark.django_db

SHARE_URL = "http://testserver/media/s/"
MISSING = "00000000-0000-4000-8000-000000000000"
LIFETIME_ERROR = (
    "'lifetime' must be a whole number of seconds from 1 to 2592000 (leave it out for 604800)."
)
AUDIENCE_ERROR = "'audience' must be one of: anyone, signed_in."


def shares_url(item) -> str:
    return f"/api/files/{item.pk}/shares/"


def create(client: Client, headers: dict[str, str], item, **fields):
    return client.post(
        shares_url(item), json.dumps(fields), content_type="application/json", headers=headers
    )


def parsed(stamp: str) -> datetime:
    assert stamp.endswith("Z"), stamp
    return datetime.fromisoformat(stamp)


def token_of(url: str) -> str:
    assert url.startswith(SHARE_URL), url
    return url.removeprefix(SHARE_URL)


def path_of(url: str) -> str:
    return url.removeprefix("http://testserver")


def active(item) -> list[ShareLink]:
    return list(ShareLink.objects.filter(record=item.record, revoked__isnull=True))


@pytest.fixture
def notes(alice, make_file):
    return make_file(alice, "notes.txt", b"notes\n")


# -- creating ---------------------------------------------------------------------


def test_the_owner_creates_a_link_with_the_default_lifetime(alice, notes) -> None:
    client, headers = browser(alice)
    before = timezone.now()
    response = create(client, headers, notes)

    assert response.status_code == 201
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert list(body) == ["url", "id", "created", "expires", "audience"]
    share = ShareLink.objects.get()
    assert body["id"] == str(share.pk)
    assert body["audience"] == "anyone"
    assert parsed(body["expires"]) == share.expires
    assert before + timedelta(days=7) - timedelta(seconds=1) <= share.expires
    assert share.expires <= timezone.now() + timedelta(days=7)
    assert parsed(body["created"]) == share.created.replace(
        microsecond=share.created.microsecond // 1000 * 1000
    )
    # Only the token's hash is kept; the URL holds the token itself.
    token = token_of(body["url"])
    assert share.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert (share.record, share.created_by, share.revoked) == (notes.record, alice, None)


def test_a_form_body_with_a_lifetime_and_an_audience(alice, notes) -> None:
    client, headers = browser(alice)
    before = timezone.now().replace(microsecond=0)
    response = client.post(
        shares_url(notes), {"lifetime": "3600", "audience": "signed_in"}, headers=headers
    )
    assert response.status_code == 201
    body = response.json()
    assert body["audience"] == "signed_in"
    expires = parsed(body["expires"])
    assert before + timedelta(hours=1) <= expires <= timezone.now() + timedelta(hours=1)
    assert ShareLink.objects.get().audience == ShareLink.Audience.SIGNED_IN


def test_a_json_body_with_a_lifetime(alice, notes) -> None:
    client, headers = browser(alice)
    response = create(client, headers, notes, lifetime=86400, audience="anyone")
    assert response.status_code == 201
    share = ShareLink.objects.get()
    assert timedelta(hours=23, minutes=59) < share.expires - share.created <= timedelta(days=1)


def test_the_longest_lifetime_allowed_is_the_maximum(alice, notes) -> None:
    client, headers = browser(alice)
    assert create(client, headers, notes, lifetime=30 * 86400).status_code == 201


@pytest.mark.parametrize(
    "lifetime",
    [
        0,  # no time at all
        -1,
        30 * 86400 + 1,  # one second over the maximum
        10**30,  # more than a timedelta holds
        "abc",
        "1.5",
        " 3600",
        "3600s",
        1.5,
        3600.0,  # a float, even a whole one
        True,  # an int to Python, not to the client
        [3600],
        {"seconds": 3600},
    ],
)
def test_a_bad_lifetime_is_400_saying_what_is_allowed(alice, notes, lifetime) -> None:
    client, headers = browser(alice)
    response = create(client, headers, notes, lifetime=lifetime)
    assert assert_json_error(response, 400) == LIFETIME_ERROR
    assert not ShareLink.objects.exists()


@pytest.mark.parametrize("lifetime", ["0", "-60", "2592001", "one day"])
def test_a_bad_lifetime_in_a_form_is_400_too(alice, notes, lifetime) -> None:
    client, headers = browser(alice)
    response = client.post(shares_url(notes), {"lifetime": lifetime}, headers=headers)
    assert assert_json_error(response, 400) == LIFETIME_ERROR
    assert not ShareLink.objects.exists()


@override_settings(
    PROTECTED_MEDIA_SHARE_MAX_LIFETIME=timedelta(days=1),
    PROTECTED_MEDIA_SHARE_LIFETIME=timedelta(hours=1),
)
def test_the_message_follows_the_settings(alice, notes) -> None:
    client, headers = browser(alice)
    response = create(client, headers, notes, lifetime=86401)
    assert assert_json_error(response, 400) == (
        "'lifetime' must be a whole number of seconds from 1 to 86400 (leave it out for 3600)."
    )
    assert create(client, headers, notes, lifetime=86400).status_code == 201


@override_settings(
    PROTECTED_MEDIA_SHARE_MAX_LIFETIME=timedelta(days=1),
    PROTECTED_MEDIA_SHARE_LIFETIME=timedelta(days=2),
)
def test_a_default_over_the_maximum_is_400_from_the_core(alice, notes) -> None:
    client, headers = browser(alice)
    message = assert_json_error(create(client, headers, notes), 400)
    assert message == "A share link lives between one second and 1 day."
    assert not ShareLink.objects.exists()


@pytest.mark.parametrize(
    "audience",
    [
        "users",  # needs named users, which the API does not take
        "everyone",
        "ANYONE",
        3,
        ["anyone"],
    ],
)
def test_a_bad_audience_is_400_saying_what_is_allowed(alice, notes, audience) -> None:
    client, headers = browser(alice)
    response = create(client, headers, notes, audience=audience)
    assert assert_json_error(response, 400) == AUDIENCE_ERROR
    assert not ShareLink.objects.exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", "Send the fields as a JSON object."),
        (b'"anyone"', "Send the fields as a JSON object."),
        (b"{", "The body is not valid JSON."),
        (b"\xff", "The body is not valid UTF-8."),
    ],
)
def test_a_json_body_that_is_not_an_object_is_400(alice, notes, body, message) -> None:
    client, headers = browser(alice)
    response = client.post(
        shares_url(notes), body, content_type="application/json", headers=headers
    )
    assert assert_json_error(response, 400) == message
    assert not ShareLink.objects.exists()


# -- the link itself ----------------------------------------------------------------


def test_the_link_is_served_to_anyone_until_it_is_revoked(alice, notes) -> None:
    client, headers = browser(alice)
    body = create(client, headers, notes, lifetime=3600).json()
    anonymous = Client()

    served = anonymous.get(path_of(body["url"]))
    assert_served(served, notes.record)
    assert served["Referrer-Policy"] == "no-referrer"

    revoked = client.delete(f"/api/shares/{body['id']}/", headers=headers)
    assert (revoked.status_code, revoked.content) == (204, b"")
    refused = anonymous.get(path_of(body["url"]))
    assert_refused(refused)
    assert "X-Accel-Redirect" not in refused.headers


def test_a_link_for_signed_in_users(alice, bob, notes) -> None:
    client, headers = browser(alice)
    url = create(client, headers, notes, audience="signed_in").json()["url"]
    assert_refused(Client().get(path_of(url)), login=True)
    reader = Client()
    reader.force_login(bob)
    assert_served(reader.get(path_of(url)), notes.record)


def test_deleting_the_file_ends_its_links(alice, notes) -> None:
    client, headers = browser(alice)
    url = create(client, headers, notes).json()["url"]
    assert client.delete(f"/api/files/{notes.pk}/", headers=headers).status_code == 204
    assert not ShareLink.objects.exists()
    assert_refused(Client().get(path_of(url)))


# -- listing and revoking -------------------------------------------------------------


def test_the_listing_shows_active_links_without_their_urls(alice, notes, make_file) -> None:
    other = make_file(alice, "other.txt", b"other\n")
    client, headers = browser(alice)
    first = create(client, headers, notes, lifetime=3600).json()
    second = create(client, headers, notes, audience="signed_in").json()
    create(client, headers, other)
    revoked = create(client, headers, notes).json()
    assert client.delete(f"/api/shares/{revoked['id']}/", headers=headers).status_code == 204
    expired = create(client, headers, notes).json()
    ShareLink.objects.filter(pk=expired["id"]).update(expires=timezone.now())

    response = client.get(shares_url(notes))

    assert response.status_code == 200
    listed = response.json()["shares"]
    # Newest first, each as it was created but for the URL: the token cannot
    # be recovered, and appears nowhere in the answer.
    assert listed == [
        {key: value for key, value in link.items() if key != "url"} for link in (second, first)
    ]
    for link in (first, second):
        assert token_of(link["url"]) not in response.content.decode()


def test_the_listing_of_a_file_without_links_is_empty(alice, notes) -> None:
    client, _ = browser(alice)
    response = client.get(shares_url(notes))
    assert (response.status_code, response.json()) == (200, {"shares": []})


def test_revoking_twice_is_404_the_second_time(alice, notes) -> None:
    client, headers = browser(alice)
    share_id = create(client, headers, notes).json()["id"]
    assert client.delete(f"/api/shares/{share_id}/", headers=headers).status_code == 204
    revoked_at = ShareLink.objects.get().revoked
    assert revoked_at is not None
    assert_json_error(client.delete(f"/api/shares/{share_id}/", headers=headers), 404)
    assert ShareLink.objects.get().revoked == revoked_at


# -- other users, anonymous requests, CSRF, methods -------------------------------------


def test_another_user_gets_the_same_404_as_for_nothing_at_all(alice, bob, notes) -> None:
    owner, owner_headers = browser(alice)
    body = create(owner, owner_headers, notes).json()
    client, headers = browser(bob)
    answers = {}
    for case, file_id, share_id in (
        ("alice's", notes.pk, body["id"]),
        ("missing", MISSING, MISSING),
    ):
        answers[case] = [
            (response.status_code, response.content)
            for response in (
                client.get(f"/api/files/{file_id}/shares/"),
                client.post(f"/api/files/{file_id}/shares/", {}, headers=headers),
                client.post(
                    f"/api/files/{file_id}/shares/",
                    "{}",
                    content_type="application/json",
                    headers=headers,
                ),
                client.delete(f"/api/shares/{share_id}/", headers=headers),
                client.get(f"/api/shares/{share_id}/"),
            )
        ]
    assert answers["alice's"] == answers["missing"] == [(404, b'{"error": "Not found."}')] * 5
    assert [share.pk for share in active(notes)] == [ShareLink.objects.get(pk=body["id"]).pk]
    assert_served(Client().get(path_of(body["url"])), notes.record)


def test_the_owner_sees_no_link_of_another_users_file(alice, bob, notes, make_file) -> None:
    theirs = make_file(bob, "theirs.txt", b"theirs\n")
    client, headers = browser(bob)
    create(client, headers, theirs)
    owner, _ = browser(alice)
    assert owner.get(shares_url(notes)).json() == {"shares": []}


def test_anonymous_requests_are_403(alice, notes) -> None:
    owner, owner_headers = browser(alice)
    share_id = create(owner, owner_headers, notes).json()["id"]
    client, headers = browser()
    for response in (
        client.get(shares_url(notes)),
        client.post(shares_url(notes), {}, headers=headers),
        client.delete(f"/api/shares/{share_id}/", headers=headers),
    ):
        assert assert_json_error(response, 403) == "Sign in first."
    assert len(active(notes)) == 1


def test_creating_without_a_csrf_token_is_403(alice, notes) -> None:
    client, _ = browser(alice)
    response = client.post(shares_url(notes), "{}", content_type="application/json")
    assert "CSRF" in assert_json_error(response, 403)
    response = client.post(shares_url(notes), {}, headers={"X-CSRFToken": "x" * 32})
    assert "CSRF" in assert_json_error(response, 403)
    assert not ShareLink.objects.exists()


def test_revoking_without_a_csrf_token_is_403(alice, notes) -> None:
    client, headers = browser(alice)
    share_id = create(client, headers, notes).json()["id"]
    assert "CSRF" in assert_json_error(client.delete(f"/api/shares/{share_id}/"), 403)
    assert len(active(notes)) == 1


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_wrong_method_on_a_files_links_is_405_with_allow(alice, notes, method) -> None:
    client, headers = browser(alice)
    response = getattr(client, method)(shares_url(notes), headers=headers)
    assert assert_json_error(response, 405) == "Method not allowed."
    assert response["Allow"] == "GET, HEAD, POST"


@pytest.mark.parametrize("method", ["get", "post", "put", "patch"])
def test_wrong_method_on_a_link_is_405_with_allow(alice, notes, method) -> None:
    client, headers = browser(alice)
    share_id = create(client, headers, notes).json()["id"]
    response = getattr(client, method)(f"/api/shares/{share_id}/", headers=headers)
    assert assert_json_error(response, 405) == "Method not allowed."
    assert response["Allow"] == "DELETE"
    assert len(active(notes)) == 1
