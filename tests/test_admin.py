"""The admin: protected files with their records' metadata in a constant number
of queries, previews that go through the gateway (and so obey the policy, for
superusers too), uploads through the field's inspection, share links read and
revoked."""

from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.contrib.admin.utils import quote
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from protected_media import shares
from protected_media.models import ProtectedFile, ShareLink, StoredFile
from protected_media.testing import assert_refused, assert_served

from .conftest import png_bytes

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("each_storage")]

FILES = "/admin/protected_media/protectedfile/"
SHARES = "/admin/protected_media/sharelink/"
RECORDS = "/admin/protected_media/storedfile/"
PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"


class Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append(dict(attrs))


def previews(html: str) -> list[dict[str, str | None]]:
    parser = Anchors()
    parser.feed(html)
    return [a for a in parser.anchors if a.get("target") == "_blank"]


def listed(response) -> list[ProtectedFile]:
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


@pytest.fixture
def report(alice, make_file) -> ProtectedFile:
    alice.email = "alice@example.org"
    alice.save()
    return make_file(alice, "Quarterly report.pdf", PDF)


@pytest.fixture
def picture(bob, make_file) -> ProtectedFile:
    return make_file(bob, "holiday.png", png_bytes((300, 200)))


# -- the list -------------------------------------------------------------------


def test_the_list_shows_owner_name_size_type_and_date(admin_client, report, picture) -> None:
    response = admin_client.get(FILES)
    assert listed(response) == [picture, report]  # newest first
    html = response.content.decode()
    row = html[html.index("Quarterly report.pdf") :]
    row = row[: row.index("</tr>")]
    assert ">alice<" in row
    assert "application/pdf" in row
    assert f"{len(PDF)}\xa0bytes" in row
    assert timezone.localtime(report.created).strftime("%Y") in row
    assert "holiday.png" in html
    assert "image/png" in html


def test_sizes_are_human_readable(admin_client, alice, make_file) -> None:
    make_file(alice, "big.txt", b"x" * 3 * 1024 * 1024)
    assert "3.0\xa0MB" in admin_client.get(FILES).content.decode()


def test_sorting_by_a_record_field_orders_the_rows(admin_client, report, picture) -> None:
    # Columns: original name (1), owner (2), size (3), type (4).
    assert report.size < picture.size
    assert listed(admin_client.get(FILES, {"o": "3"})) == [report, picture]
    assert listed(admin_client.get(FILES, {"o": "-3"})) == [picture, report]
    assert listed(admin_client.get(FILES, {"o": "4"})) == [report, picture]


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("quarterly", {"report"}),  # the original name, any case
        ('"report.pdf"', {"report"}),  # a quoted phrase
        ("holiday", {"picture"}),
        ("bob", {"picture"}),  # the owner's username
        ("example.org", {"report"}),  # the owner's email
        ("alice quarterly", {"report"}),  # every word, across the columns
        ("alice holiday", set()),
        ("files", set()),  # the stored name is not searched
        ("nothing-like-it", set()),
    ],
)
def test_search_by_original_name_and_owner(admin_client, report, picture, term, expected) -> None:
    found = {
        name
        for name, item in {"report": report, "picture": picture}.items()
        if item in listed(admin_client.get(FILES, {"q": term}))
    }
    assert found == expected


def test_search_by_key(admin_client, report, picture) -> None:
    key = report.record.key
    assert listed(admin_client.get(FILES, {"q": key})) == [report]


def test_filter_by_type(admin_client, report, picture) -> None:
    # Another field's record: its type is not offered.
    StoredFile.objects.create(
        key="A" * 22,
        name="other/x.gif",
        source="demo.profile.picture",
        original_name="x.gif",
        size=1,
        content_type="image/gif",
    )
    response = admin_client.get(FILES)
    html = response.content.decode()
    assert "?content_type=application%2Fpdf" in html
    assert "?content_type=image%2Fpng" in html
    assert "image%2Fgif" not in html
    assert listed(admin_client.get(FILES, {"content_type": "image/png"})) == [picture]
    assert listed(admin_client.get(FILES, {"content_type": "application/pdf"})) == [report]


def test_the_list_costs_the_same_queries_for_one_row_or_ten(
    admin_client, django_user_model, make_file
) -> None:
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.get(FILES)
        assert response.status_code == 200
        return len(queries)

    make_file(django_user_model.objects.create_user("u0"), "f0.txt")
    one = count()
    for n in range(1, 10):
        make_file(django_user_model.objects.create_user(f"u{n}"), f"f{n}.txt")
    assert len(listed(admin_client.get(FILES))) == 10
    assert count() == one
    # And searching or filtering adds no query per row either.
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(FILES, {"q": "f", "content_type": "text/plain"})
    assert len(queries) == one


# -- the preview ----------------------------------------------------------------


def test_the_preview_link_is_the_gateway_url_in_a_new_tab(admin_client, report) -> None:
    (link,) = previews(admin_client.get(FILES).content.decode())
    assert link["href"] == report.file.url == f"/media/{report.record.key}"
    assert link["rel"] == "noopener noreferrer"
    assert "PROTECTED_MEDIA_ALLOW_STAFF" in (link["title"] or "")


def test_a_superuser_is_refused_the_preview_with_staff_access_off(admin_client, report) -> None:
    (link,) = previews(admin_client.get(FILES).content.decode())
    assert_refused(admin_client.get(link["href"]))


def test_a_superuser_gets_the_preview_with_staff_access_on(settings, admin_client, report) -> None:
    settings.PROTECTED_MEDIA_ALLOW_STAFF = True
    (link,) = previews(admin_client.get(FILES).content.decode())
    assert_served(admin_client.get(link["href"]), report.file, handoff=True)


def test_the_owner_gets_the_preview_through_the_same_link(admin_client, alice, report) -> None:
    (link,) = previews(admin_client.get(FILES).content.decode())
    owner = Client()
    owner.force_login(alice)
    assert_served(owner.get(link["href"]), report.file, handoff=True)


# -- the change form ------------------------------------------------------------


def test_the_change_form_shows_the_metadata_read_only(admin_client, report, settings) -> None:
    record = report.record
    response = admin_client.get(f"{FILES}{report.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    for value in (record.original_name, record.key, record.name, "application/pdf"):
        assert value in html
    form = response.context["adminform"].form
    # Editable: the owner, the file and the groups; the metadata is not.
    assert set(form.fields) == {"owner", "file", "groups"}
    assert "PROTECTED_MEDIA_ALLOW_STAFF" in html  # the preview's help text
    (link,) = previews(html)
    assert link["href"] == report.file.url
    # Where the file lies on disk is never shown.
    assert settings.SENDFILE_ROOT not in html
    assert 'data-is-stacked="0"' in html  # groups in filter_horizontal's two lists


def test_the_file_input_names_the_current_file_by_its_original_name(admin_client, report) -> None:
    response = admin_client.get(f"{FILES}{report.pk}/change/")
    widget = str(response.context["adminform"].form["file"])
    assert "Quarterly report.pdf" in widget
    assert report.file.url in widget
    assert report.file.name not in widget


def test_an_upload_in_the_admin_is_inspected(admin_client, alice) -> None:
    response = admin_client.post(
        f"{FILES}add/",
        {"owner": alice.pk, "file": SimpleUploadedFile("Minutes.txt", b"hello\n")},
    )
    assert response.status_code == 302
    item = ProtectedFile.objects.get()
    assert item.owner == alice
    assert (item.original_name, item.content_type, item.size) == ("Minutes.txt", "text/plain", 6)


def test_an_upload_that_fails_inspection_is_a_form_error(admin_client, alice) -> None:
    html = b"<!doctype html><script>alert(1)</script>"
    response = admin_client.post(
        f"{FILES}add/", {"owner": alice.pk, "file": SimpleUploadedFile("x.png", html)}
    )
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["file"]
    assert not ProtectedFile.objects.exists()
    assert not StoredFile.objects.exists()


def test_groups_are_editable(admin_client, report) -> None:
    from django.contrib.auth.models import Group

    readers = Group.objects.create(name="readers")
    response = admin_client.post(
        f"{FILES}{report.pk}/change/", {"owner": report.owner_id, "groups": [readers.pk]}
    )
    assert response.status_code == 302
    assert list(report.groups.all()) == [readers]
    report.refresh_from_db()
    assert report.original_name == "Quarterly report.pdf"  # the file kept


# -- who reaches it -------------------------------------------------------------


def test_a_non_staff_user_cannot_reach_the_admin(alice, report) -> None:
    client = Client()
    client.force_login(alice)
    for url in (FILES, f"{FILES}{report.pk}/change/", SHARES, RECORDS):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_staff_without_permissions_see_nothing(django_user_model, report) -> None:
    staff = django_user_model.objects.create_user("staff", is_staff=True)
    client = Client()
    client.force_login(staff)
    for url in (FILES, SHARES, RECORDS):
        assert client.get(url).status_code == 403


# -- share links ----------------------------------------------------------------


@pytest.fixture
def link(report) -> tuple[ShareLink, str]:
    share, token = shares.create_share(report.record, created_by=report.owner)
    return share, shares.share_url(token)


def test_share_links_are_listed_with_their_status(admin_client, report, link) -> None:
    share, _ = link
    expired, _ = shares.create_share(report.record, created_by=report.owner)
    ShareLink.objects.filter(pk=expired.pk).update(expires=timezone.now() - timedelta(days=1))
    revoked, _ = shares.create_share(report.record, created_by=report.owner)
    shares.revoke(revoked)
    response = admin_client.get(SHARES)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Quarterly report.pdf" in html
    statuses = re.findall(r'<td class="field-status">(\w+)</td>', html)
    assert sorted(statuses) == ["active", "expired", "revoked"]
    assert list(admin_client.get(SHARES, {"status": "active"}).context["cl"].result_list) == [share]
    assert list(admin_client.get(SHARES, {"status": "expired"}).context["cl"].result_list) == [
        expired
    ]
    assert list(admin_client.get(SHARES, {"status": "revoked"}).context["cl"].result_list) == [
        revoked
    ]
    assert list(admin_client.get(SHARES, {"q": "quarterly"}).context["cl"].result_list)
    assert list(admin_client.get(SHARES, {"q": "alice"}).context["cl"].result_list)
    assert not list(admin_client.get(SHARES, {"q": "bob"}).context["cl"].result_list)


def test_the_share_list_costs_the_same_queries_for_one_row_or_five(
    admin_client, report, link
) -> None:
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert admin_client.get(SHARES).status_code == 200
        return len(queries)

    one = count()
    for _ in range(4):
        shares.create_share(report.record, created_by=report.owner)
    assert count() == one


def test_the_revoke_action_revokes_and_the_link_is_then_refused(admin_client, link) -> None:
    share, url = link
    assert_served(Client().get(url), share.record, handoff=True)
    response = admin_client.post(
        SHARES, {"action": "revoke_links", "_selected_action": [str(share.pk)], "index": "0"}
    )
    assert response.status_code == 302
    share.refresh_from_db()
    assert share.revoked is not None
    assert_refused(Client().get(url))
    messages = [str(m) for m in admin_client.get(SHARES).context["messages"]]
    assert messages == ["Revoked 1 share link."]


def test_share_links_cannot_be_added_or_changed(admin_client, link) -> None:
    share, _ = link
    assert admin_client.get(f"{SHARES}add/").status_code == 403
    response = admin_client.get(f"{SHARES}{share.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert share.token_hash not in html
    assert 'name="_save"' not in html
    expires = share.expires
    admin_client.post(
        f"{SHARES}{share.pk}/change/",
        {"expires_0": "2999-01-01", "expires_1": "00:00:00", "audience": "anyone"},
    )
    share.refresh_from_db()
    assert share.expires == expires


# -- records --------------------------------------------------------------------


# A key is base64url, so about one in fifty holds "_" and two capital hex
# digits: the admin's own escape in its URLs ("_2F" is "/"). The second case
# pins such a key rather than waiting for chance to draw one.
@pytest.mark.parametrize("key", [None, "Report_2Fkey_5Fescaped"])
def test_records_are_read_only(admin_client, monkeypatch, alice, make_file, key) -> None:
    if key is not None:
        monkeypatch.setattr("protected_media.field_files.new_key", lambda: key)
    report = make_file(alice, "Quarterly report.pdf", PDF)
    record = report.record
    assert key is None or record.pk == key
    response = admin_client.get(RECORDS)
    assert response.status_code == 200
    (link,) = previews(response.content.decode())
    assert link["href"] == report.file.url
    assert admin_client.get(f"{RECORDS}add/").status_code == 403
    change = reverse("admin:protected_media_storedfile_change", args=[quote(record.pk)])
    assert change in response.content.decode()  # the list links to the page read next
    response = admin_client.get(change)
    assert response.status_code == 200
    assert record.original_name in response.content.decode()
    assert 'name="_save"' not in response.content.decode()
    delete = reverse("admin:protected_media_storedfile_delete", args=[quote(record.pk)])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert StoredFile.objects.filter(pk=record.pk).exists()
