"""Share links in the server-rendered demo, with plain form posts and no
JavaScript: a Share form per file, the new link shown once, the active links
listed with a Revoke button, and nothing of it for anyone but the owner."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from protected_media.models import ShareLink
from protected_media.testing import assert_refused, assert_served

from . import test_grants
from .test_demo_site import Element, Page, assert_redirect, form_token, page, signed_in
from .test_grants import line

pytestmark = pytest.mark.django_db

# The audit trail of grants, as a fixture of this module too.
trail = test_grants.trail

SHARE_URL = "http://testserver/media/s/"
LIFETIMES = [("3600", "1 hour"), ("86400", "1 day"), ("604800", "7 days"), ("2592000", "30 days")]
AUDIENCES = [("anyone", "Anyone with the link"), ("signed_in", "Signed-in users")]


@pytest.fixture
def notes(alice, make_file):
    return make_file(alice, "notes.txt", b"notes\n")


def card(html: Page, name: str) -> Element:
    [found] = [
        c for c in html.find_all("li", class_="card") if c.find("p", class_="name").text == name
    ]
    return found


def options(select: Element) -> list[tuple[str | None, str]]:
    return [(option["value"], option.text.strip()) for option in select.find_all("option")]


def selected(select: Element) -> list[str | None]:
    return [option["value"] for option in select.find_all("option") if "selected" in option.attrs]


def label_of(scope: Element, control: Element) -> str:
    return " ".join(scope.find("label", for_=control["id"]).text.split())


def share(client: Client, item, **fields: str | None):
    """Post the file's Share form as a browser without JavaScript does: what
    the selects hold, changed by ``fields`` (None leaves a field out)."""
    html = page(client.get("/files/"))
    form = card(html, item.original_name).find("form", class_="share")
    data: dict[str, str | None] = {"csrfmiddlewaretoken": form_token(html, form)}
    for select in form.find_all("select"):
        [data[select["name"]]] = selected(select)
    data.update(fields)
    return client.post(form["action"], {k: v for k, v in data.items() if v is not None})


def new_link(html: Page) -> str:
    block = html.find("section", class_="new-share")
    field = block.find("input", id="new-share-url")
    assert field["type"] == "url"
    assert "readonly" in field.attrs
    assert label_of(block, field) == "Link to notes.txt"
    assert field["value"].startswith(SHARE_URL)
    return field["value"]


def listed(html: Page, name: str) -> list[Element]:
    return card(html, name).find_all("li", class_="share-link")


# -- the form -----------------------------------------------------------------------


def test_each_file_has_a_labelled_share_form(alice, notes, make_file) -> None:
    make_file(alice, "other.txt", b"other\n")
    html = page(signed_in(alice).get("/files/"))
    ids = set()
    for name, item in (("notes.txt", notes), ("other.txt", None)):
        form = card(html, name).find("form", class_="share")
        assert form["method"] == "post"
        if item is not None:
            assert form["action"] == f"/files/{item.pk}/share/"
        form_token(html, form)
        lifetime = form.find("select", name="lifetime")
        audience = form.find("select", name="audience")
        assert options(lifetime) == LIFETIMES
        assert selected(lifetime) == ["604800"]  # PROTECTED_MEDIA_SHARE_LIFETIME
        assert options(audience) == AUDIENCES
        assert selected(audience) == ["anyone"]
        # Visible labels, and for a screen reader the file each one is about.
        assert label_of(form, lifetime) == f"Link expires after (link to {name})"
        assert label_of(form, audience) == f"Who can open it (link to {name})"
        button = form.find("button", type="submit")
        assert (button.text.strip(), button["aria-label"]) == ("Share", f"Share {name}")
        ids |= {lifetime["id"], audience["id"]}
    assert len(ids) == 4  # no two controls share an id
    assert html.find_all("section", class_="new-share") == []
    assert html.find_all("li", class_="share-link") == []


@pytest.mark.parametrize(
    ("maximum", "default", "offered", "chosen"),
    [
        (timedelta(days=7), timedelta(days=7), LIFETIMES[:3], "604800"),
        (timedelta(days=2), timedelta(days=2), LIFETIMES[:2], "86400"),
        (timedelta(days=30), timedelta(hours=3), LIFETIMES, "3600"),
        # Under every preset: the maximum is the one choice.
        (timedelta(minutes=30), timedelta(minutes=30), [("1800", "30 minutes")], "1800"),
    ],
)
def test_the_lifetimes_are_capped_by_the_maximum(
    alice, notes, maximum, default, offered, chosen
) -> None:
    with override_settings(
        PROTECTED_MEDIA_SHARE_MAX_LIFETIME=maximum, PROTECTED_MEDIA_SHARE_LIFETIME=default
    ):
        html = page(signed_in(alice).get("/files/"))
        lifetime = card(html, "notes.txt").find("select", name="lifetime")
        assert options(lifetime) == offered
        assert selected(lifetime) == [chosen]
        client = signed_in(alice)
        assert_redirect(share(client, notes, lifetime=offered[-1][0]), "/files/")
        assert ShareLink.objects.count() == 1
        assert_redirect(
            share(client, notes, lifetime=str(int(maximum.total_seconds()) + 1)), "/files/"
        )
        assert ShareLink.objects.count() == 1


# -- sharing, once ---------------------------------------------------------------------


def test_sharing_shows_the_link_once_and_lists_it(alice, notes) -> None:
    client = signed_in(alice)
    before = timezone.now().replace(microsecond=0)
    response = share(client, notes, lifetime="86400", audience="anyone")

    assert_redirect(response, "/files/")
    link = ShareLink.objects.get()
    assert (link.record, link.created_by, link.audience) == (notes.record, alice, "anyone")
    assert before + timedelta(days=1) <= link.expires <= timezone.now() + timedelta(days=1)

    shown = client.get("/files/")
    html = page(shown)
    assert html.messages() == [
        ("success", "Shared notes.txt. Copy the link now: it is shown only once.")
    ]
    url = new_link(html)
    hint = html.find("section", class_="new-share").find("p", class_="hint")
    assert "Anyone with the link can open it until" in " ".join(hint.text.split())
    assert datetime.fromisoformat(hint.find("time")["datetime"]) == link.expires
    # A page holding a working link is kept out of every cache.
    assert "no-store" in shown["Cache-Control"]
    [entry] = listed(html, "notes.txt")
    assert [datetime.fromisoformat(t["datetime"]) for t in entry.find_all("time")] == [
        link.created,
        link.expires,
    ]
    text = " ".join(entry.text.split())
    assert text.startswith("Anyone with the link Created ")
    assert " Expires " in text

    # The link works for a visitor with no session at all.
    served = Client().get(url.removeprefix("http://testserver"))
    assert_served(served, notes.record)
    assert served["Referrer-Policy"] == "no-referrer"

    # Shown once: the next page lists the link but holds no trace of it.
    again = client.get("/files/")
    html = page(again)
    assert html.messages() == []
    assert html.find_all("section", class_="new-share") == []
    assert url.removeprefix(SHARE_URL) not in again.content.decode()
    assert len(listed(html, "notes.txt")) == 1


def test_a_link_for_signed_in_users(alice, bob, notes) -> None:
    client = signed_in(alice)
    share(client, notes, lifetime="3600", audience="signed_in")
    html = page(client.get("/files/"))
    path = new_link(html).removeprefix("http://testserver")
    [entry] = listed(html, "notes.txt")
    assert " ".join(entry.text.split()).startswith("Signed-in users Created ")
    assert_refused(Client().get(path), login=True)
    assert_served(signed_in(bob).get(path), notes.record)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"lifetime": "2592001"},
            "Select a valid choice. 2592001 is not one of the available choices.",
        ),
        ({"lifetime": "60"}, "Select a valid choice. 60 is not one of the available choices."),
        ({"lifetime": "abc"}, "Select a valid choice. abc is not one of the available choices."),
        (
            {"lifetime": "3600", "audience": "users"},
            "Select a valid choice. users is not one of the available choices.",
        ),
        ({"audience": None}, "This field is required."),
        ({"lifetime": None}, "This field is required."),
    ],
)
def test_a_bad_choice_is_refused_with_a_message(alice, notes, fields, message) -> None:
    client = signed_in(alice)
    assert_redirect(share(client, notes, **fields), "/files/")
    assert not ShareLink.objects.exists()
    html = page(client.get("/files/"))
    assert html.messages() == [("error", message)]
    assert html.find_all("section", class_="new-share") == []


# -- revoking ------------------------------------------------------------------------


def test_the_revoke_button_ends_the_link(alice, notes) -> None:
    client = signed_in(alice)
    share(client, notes, lifetime="3600", audience="anyone")
    html = page(client.get("/files/"))
    path = new_link(html).removeprefix("http://testserver")
    link = ShareLink.objects.get()
    [entry] = listed(html, "notes.txt")
    form = entry.find("form")
    assert (form["method"], form["action"]) == ("post", f"/shares/{link.pk}/revoke/")
    button = form.find("button", type="submit")
    assert button.text.strip() == "Revoke"
    assert button["aria-label"].startswith("Revoke the link to notes.txt that expires ")

    response = client.post(form["action"], {"csrfmiddlewaretoken": form_token(html, form)})

    assert_redirect(response, "/files/")
    link.refresh_from_db()
    assert link.revoked is not None
    html = page(client.get("/files/"))
    assert html.messages() == [("success", "Revoked a share link to notes.txt.")]
    assert listed(html, "notes.txt") == []
    refused = Client().get(path)
    assert_refused(refused)
    assert "X-Accel-Redirect" not in refused.headers
    # Revoked is revoked: the same button again finds nothing.
    again = client.post(
        form["action"],
        {"csrfmiddlewaretoken": form_token(html, html.find("form", class_="upload"))},
    )
    assert again.status_code == 404


def test_the_card_says_who_else_may_read_and_each_change_is_audited(
    alice, notes, trail, django_capture_on_commit_callbacks
) -> None:
    client = signed_in(alice)

    def says() -> str:
        shown = card(page(client.get("/files/")), "notes.txt").find("p", class_="meta shared-with")
        return " ".join(shown.text.split())

    assert says() == "Shared with: no one"
    with django_capture_on_commit_callbacks(execute=True):
        share(client, notes, lifetime="3600", audience="anyone")
    link = ShareLink.objects.get()
    assert says() == "Shared with: 1 link"
    html = page(client.get("/files/"))
    form = listed(html, "notes.txt")[0].find("form")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(form["action"], {"csrfmiddlewaretoken": form_token(html, form)})
    assert says() == "Shared with: no one"
    key = notes.record.key
    assert trail.lines == [
        line("added", "share", key, by=alice.pk, share=link.pk),
        line("removed", "share", key, by=alice.pk, share=link.pk),
    ]


def test_expired_links_are_not_listed(alice, notes) -> None:
    client = signed_in(alice)
    share(client, notes, lifetime="3600")
    ShareLink.objects.update(expires=timezone.now() - timedelta(seconds=1))
    html = page(client.get("/files/"))
    assert listed(html, "notes.txt") == []


# -- only the owner ----------------------------------------------------------------------


def test_another_user_cannot_share_list_or_revoke(alice, bob, notes, make_file) -> None:
    make_file(bob, "bobs.txt", b"bob\n")
    owner = signed_in(alice)
    share(owner, notes, lifetime="3600")
    url = new_link(page(owner.get("/files/")))
    link = ShareLink.objects.get()

    client = signed_in(bob)
    html = page(client.get("/files/"))
    assert "notes.txt" not in html.root.text
    assert html.find_all("li", class_="share-link") == []
    token = form_token(html, html.find("form", class_="upload"))
    for action in (f"/files/{notes.pk}/share/", f"/shares/{link.pk}/revoke/"):
        response = client.post(
            action, {"csrfmiddlewaretoken": token, "lifetime": "3600", "audience": "anyone"}
        )
        missing = client.post(
            action.replace(str(notes.pk), "00000000-0000-4000-8000-000000000000").replace(
                str(link.pk), "00000000-0000-4000-8000-000000000000"
            ),
            {"csrfmiddlewaretoken": token, "lifetime": "3600", "audience": "anyone"},
        )
        assert (response.status_code, response.content) == (missing.status_code, missing.content)
        assert response.status_code == 404
    assert list(ShareLink.objects.values_list("pk", "revoked")) == [(link.pk, None)]
    assert_served(Client().get(url.removeprefix("http://testserver")), notes.record)


def test_a_new_link_is_not_shown_to_the_next_user_of_the_browser(alice, bob, notes) -> None:
    client = signed_in(alice)
    share(client, notes, lifetime="3600")
    # Alice leaves before the page shows the link; Bob signs in on the same browser.
    client.logout()
    client.force_login(bob)
    shown = client.get("/files/")
    html = page(shown)
    assert html.find_all("section", class_="new-share") == []
    assert SHARE_URL not in shown.content.decode()


@pytest.mark.parametrize("url", ["/files/{file}/share/", "/shares/{share}/revoke/"])
def test_anonymous_posts_go_to_the_login(alice, notes, url) -> None:
    link, _ = ShareLink.objects.get_or_create(
        record=notes.record,
        token_hash="0" * 64,
        defaults={"created_by": alice, "expires": timezone.now() + timedelta(hours=1)},
    )
    response = Client().post(url.format(file=notes.pk, share=link.pk), {"lifetime": "3600"})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    assert ShareLink.objects.get().revoked is None


# -- CSRF and methods ----------------------------------------------------------------------


def test_sharing_without_a_csrf_token_is_refused(alice, notes) -> None:
    client = signed_in(alice)
    client.get("/files/")
    response = client.post(f"/files/{notes.pk}/share/", {"lifetime": "3600", "audience": "anyone"})
    assert response.status_code == 403
    assert not ShareLink.objects.exists()


def test_revoking_without_a_csrf_token_is_refused(alice, notes) -> None:
    client = signed_in(alice)
    share(client, notes, lifetime="3600")
    link = ShareLink.objects.get()
    response = client.post(f"/shares/{link.pk}/revoke/", {})
    assert response.status_code == 403
    link.refresh_from_db()
    assert link.revoked is None


def test_get_on_the_share_and_revoke_urls_is_405(alice, notes) -> None:
    client = signed_in(alice)
    share(client, notes, lifetime="3600")
    link = ShareLink.objects.get()
    for url in (f"/files/{notes.pk}/share/", f"/shares/{link.pk}/revoke/"):
        response = client.get(url)
        assert response.status_code == 405
        assert response["Allow"] == "POST"
    assert ShareLink.objects.count() == 1
    assert ShareLink.objects.get().revoked is None
