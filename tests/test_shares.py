"""Share links through the view: who gets the file, and that every bad link
gets the one refusal (security rules 2 and 10)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta
from unittest import mock

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import AnonymousUser
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from protected_media import shares
from protected_media.decision import Reason, Refusal
from protected_media.models import ShareLink, StoredFile
from protected_media.testing import assert_refused, assert_served

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("each_storage")]


@pytest.fixture
def report(alice, make_file):
    return make_file(alice, "Quarterly report.pdf", b"%PDF-1.4\n%%EOF\n")


def record_of(item) -> StoredFile:
    return StoredFile.objects.get(name=item.file.name)


def link_to(item, **options) -> tuple[ShareLink, str]:
    options.setdefault("created_by", item.owner)
    share, token = shares.create_share(record_of(item), **options)
    return share, shares.share_url(token)


def client_for(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def refusal_of(client: Client) -> tuple[int, dict[str, str], bytes]:
    """The answer to a well-formed key that matches no file, for comparison."""
    return snapshot(client.get("/media/AAAAAAAAAAAAAAAAAAAAAA"))


def snapshot(response) -> tuple[int, dict[str, str], bytes]:
    headers = {name: value for name, value in response.headers.items() if name != "Date"}
    return response.status_code, headers, response.content


def test_anyone_with_the_link_gets_the_file_through_the_handoff(report) -> None:
    _, url = link_to(report)
    assert url.startswith("/media/s/")
    response = Client().get(url)
    assert_served(response, report.file)
    # The link must not leak onwards from the file (nginx adds it too).
    assert response["Referrer-Policy"] == "no-referrer"


def test_head_is_answered_and_other_methods_are_not(report) -> None:
    _, url = link_to(report)
    assert_served(Client().head(url), report.file)
    response = Client().post(url)
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"
    assert "X-Accel-Redirect" not in response


def test_only_the_hash_of_the_token_is_stored(report) -> None:
    share, url = link_to(report)
    token = url.rsplit("/", 1)[1]
    assert share.token_hash == hashlib.sha256(token.encode()).hexdigest()
    stored = ShareLink.objects.filter(pk=share.pk).values().get()
    assert token not in {str(value) for value in stored.values()}


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda token: token[:-1] + ("A" if token[-1] != "A" else "B"), id="signature"),
        pytest.param(lambda token: ("B" if token[0] != "B" else "C") + token[1:], id="payload"),
        pytest.param(lambda token: token + "A", id="appended"),
        pytest.param(lambda token: token.split(":")[0], id="unsigned"),
        pytest.param(lambda token: "", id="empty"),
        pytest.param(lambda token: token.swapcase(), id="case"),
        pytest.param(lambda token: token.replace(":", "%00"), id="NUL"),
        pytest.param(lambda token: token + "/x", id="extra segment"),
    ],
)
def test_a_changed_token_gets_the_one_refusal(report, bob, spoil) -> None:
    _, url = link_to(report)
    prefix, token = url.rsplit("/", 1)
    assert_refused(Client().get(f"{prefix}/{spoil(token)}"))
    client = client_for(bob)
    response = client.get(f"{prefix}/{spoil(token)}")
    assert_refused(response)
    assert snapshot(response) == refusal_of(client)


def test_a_bad_signature_is_refused_before_any_database_lookup(
    report, django_assert_num_queries
) -> None:
    _, url = link_to(report)
    token = url.rsplit("/", 1)[1]
    other_salt = signing.dumps(signing.loads(token, salt=shares.SALT), salt="another.purpose")
    for bad in (token[:-2] + "xx", other_salt):
        with django_assert_num_queries(0):
            decision = async_to_sync(shares.adecide_share)(token=bad, user=AnonymousUser())
        assert decision.outcome == Refusal(Reason.SHARE_INVALID)


def test_an_expired_link_is_refused_before_any_database_lookup(
    report, django_assert_num_queries
) -> None:
    _, url = link_to(report, lifetime=timedelta(hours=1))
    token = url.rsplit("/", 1)[1]
    later = timezone.now() + timedelta(hours=1, seconds=1)
    with mock.patch("django.utils.timezone.now", return_value=later):
        with django_assert_num_queries(0):
            decision = async_to_sync(shares.adecide_share)(token=token, user=AnonymousUser())
        assert decision.outcome == Refusal(Reason.SHARE_EXPIRED)
        assert_refused(Client().get(url))
    assert_served(Client().get(url), report.file)


def test_a_token_signed_for_another_file_is_refused(alice, report, make_file) -> None:
    other = make_file(alice, "other.txt")
    share, url = link_to(report)
    # Every field signed with the site's key and the right salt, but the key of
    # a file this link was not made for.
    payload = signing.loads(url.rsplit("/", 1)[1], salt=shares.SALT)
    forged = signing.dumps({**payload, "k": record_of(other).key}, salt=shares.SALT)
    assert_refused(Client().get(shares.share_url(forged)))
    # And a link is not a key: its token is no media URL.
    assert_refused(client_for(alice).get(f"/media/{share.pk.hex}"))


def test_a_revoked_link_is_refused_from_the_next_request(report, bob) -> None:
    share, url = link_to(report)
    client = client_for(bob)
    assert_served(client.get(url), report.file)
    assert shares.revoke(share) is True
    assert shares.revoke(share) is False
    response = client.get(url)
    assert_refused(response)
    assert snapshot(response) == refusal_of(client)
    assert list(shares.active_shares()) == []


def test_replacing_the_content_invalidates_old_links(report) -> None:
    _, url = link_to(report)
    report.file.save("v2.pdf", SimpleUploadedFile("v2.pdf", b"%PDF-1.4\n%v2\n%%EOF\n"))
    assert_refused(Client().get(url))
    assert ShareLink.objects.count() == 0
    # A new link reaches the new version.
    _, new_url = link_to(report)
    assert_served(Client().get(new_url), report.file)


def test_deleting_the_file_removes_its_links(report) -> None:
    _, url = link_to(report)
    report.delete()
    assert_refused(Client().get(url))
    assert ShareLink.objects.count() == 0


def test_a_link_never_grants_more_than_its_creator_has(report, bob) -> None:
    _, url = link_to(report)
    assert_served(Client().get(url), report.file)
    # The file changes hands: alice may no longer read it, nor may her link.
    report.owner = bob
    report.save()
    assert_refused(Client().get(url))


def test_a_link_for_signed_in_users(report, bob) -> None:
    _, url = link_to(report, audience=ShareLink.Audience.SIGNED_IN)
    assert_served(client_for(bob).get(url), report.file)
    # Anonymous visitors are sent to sign in, decided from the token alone.
    assert_refused(Client().get(url), login=True, next_url=url)
    bob.is_active = False
    bob.save()
    assert_refused(client_for(bob).get(url), login=True, next_url=url)


def test_a_link_for_named_users(report, bob, django_user_model) -> None:
    carol = django_user_model.objects.create_user("carol")
    _, url = link_to(report, audience=ShareLink.Audience.USERS, users=[bob])
    assert_served(client_for(bob).get(url), report.file)
    assert_refused(client_for(carol).get(url))
    assert_refused(Client().get(url), login=True, next_url=url)


def test_anonymous_refusals_follow_the_setting(settings, report) -> None:
    settings.PROTECTED_MEDIA_ANONYMOUS = "not_found"
    _, url = link_to(report, audience=ShareLink.Audience.SIGNED_IN)
    assert_refused(Client().get(url))


@pytest.mark.parametrize(
    ("lifetime", "allowed"),
    [
        (timedelta(0), False),
        (timedelta(seconds=-1), False),
        (timedelta(seconds=1), True),
        (timedelta(days=30), True),
        (timedelta(days=30, seconds=1), False),
    ],
)
def test_lifetimes_are_bounded_by_the_setting(report, lifetime, allowed) -> None:
    if allowed:
        share, _ = link_to(report, lifetime=lifetime)
        assert share.expires - share.created <= lifetime + timedelta(seconds=1)
    else:
        with pytest.raises(ValidationError, match="30 days"):
            link_to(report, lifetime=lifetime)
        assert ShareLink.objects.count() == 0


def test_the_default_lifetime_comes_from_the_setting(settings, report) -> None:
    settings.PROTECTED_MEDIA_SHARE_LIFETIME = 3600
    share, _ = link_to(report)
    assert timedelta(minutes=59) < share.expires - timezone.now() <= timedelta(hours=1)


def test_named_users_need_a_name_and_audiences_are_known(report) -> None:
    with pytest.raises(ValidationError):
        link_to(report, audience=ShareLink.Audience.USERS)
    with pytest.raises(ValidationError):
        link_to(report, audience="everyone")
    assert ShareLink.objects.count() == 0


def test_read_claim_is_pure_and_exact(report) -> None:
    share, url = link_to(report, lifetime=timedelta(hours=2))
    token = url.rsplit("/", 1)[1]
    claim = shares.read_claim(token)
    assert not isinstance(claim, Reason)
    assert (claim.share_id, claim.expires, claim.audience) == (
        share.pk,
        share.expires,
        "anyone",
    )
    assert shares.read_claim(token, now=share.expires) == Reason.SHARE_EXPIRED


def payload_of(token: str) -> str:
    """The token's payload as anyone holding it can read it: base64 JSON,
    no secret needed."""
    encoded = token.split(":", 1)[0]
    return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()


def test_a_token_names_the_link_and_nothing_of_the_file(report) -> None:
    # A recipient must not keep the file's permanent key once the link is revoked.
    share, url = link_to(report, audience=ShareLink.Audience.SIGNED_IN)
    record = record_of(report)
    payload = json.loads(payload_of(url.rsplit("/", 1)[1]))
    assert payload == {
        "s": share.pk.hex,
        "e": int(share.expires.timestamp()),
        "a": "signed_in",
    }
    text = payload_of(url.rsplit("/", 1)[1])
    for secret in (record.key, record.name, record.name.rsplit("/", 1)[-1], "Quarterly"):
        assert secret not in text


def test_a_revoked_link_leaves_the_recipient_nothing_that_opens_the_file(report, bob) -> None:
    share, url = link_to(report)
    assert_served(Client().get(url), report.file)
    shares.revoke(share)
    client = client_for(bob)
    assert snapshot(client.get(url)) == refusal_of(client)
    # Whatever the token held, nothing in it reaches the file by its media URL.
    payload = payload_of(url.rsplit("/", 1)[1])
    assert record_of(report).key not in payload
    assert snapshot(client.get(report.file.url)) == refusal_of(client)
