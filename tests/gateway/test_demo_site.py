"""The server-rendered demo: sign in, upload with a plain form, see, delete, and a
profile picture through the seed's model with one field changed."""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from gateway.demo.models import Profile
from protected_media.models import ProtectedFile, StoredFile

from ..conftest import png_bytes

pytestmark = pytest.mark.django_db(transaction=True)

KEY_URL = re.compile(r"/media/([A-Za-z0-9_-]{22})")
GATEWAY_NOT_FOUND = (404, b"Not Found\n")
HTML_AS_PNG = b"<!doctype html><html><body><script>alert(document.cookie)</script></body></html>\n"
PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
ACCEPTED = "images (PNG, JPEG, GIF, WebP), PDFs and plain text"
NBSP = "\u00a0"
MARKUP_REFUSED = (
    "This text file contains markup (HTML or XML); text is accepted only as plain text, "
    "without tags."
)
VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)


def bmp_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(buffer, format="BMP")
    return buffer.getvalue()


class Element:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Element | None) -> None:
        self.tag = tag
        self.attrs = attrs
        self.parent = parent
        self.children: list[Element] = []
        self.text = ""

    def __getitem__(self, name: str) -> str | None:
        return self.attrs[name]

    def find_all(self, tag: str, **attrs: str) -> list[Element]:
        found = []
        for child in self.children:
            if child.tag == tag and all(
                child.attrs.get(k.rstrip("_")) == v for k, v in attrs.items()
            ):
                found.append(child)
            found.extend(child.find_all(tag, **attrs))
        return found

    def find(self, tag: str, **attrs: str) -> Element:
        found = self.find_all(tag, **attrs)
        assert len(found) == 1, f"expected one <{tag} {attrs}>, found {len(found)}"
        return found[0]


class Page(HTMLParser):
    """Just enough of a DOM to ask what a person (or a screen reader) would see."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {}, None)
        self.current = self.root
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, dict(attrs), self.current)
        self.current.children.append(element)
        if tag not in VOID:
            self.current = element

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.current.children.append(Element(tag, dict(attrs), self.current))

    def handle_endtag(self, tag: str) -> None:
        node = self.current
        while node is not self.root and node.tag != tag:
            node = node.parent
        if node is not self.root:
            self.current = node.parent

    def handle_data(self, data: str) -> None:
        node = self.current
        while node is not None:
            node.text += data
            node = node.parent

    def find_all(self, tag: str, **attrs: str) -> list[Element]:
        return self.root.find_all(tag, **attrs)

    def find(self, tag: str, **attrs: str) -> Element:
        return self.root.find(tag, **attrs)

    def messages(self) -> list[tuple[str | None, str]]:
        box = self.root.find_all("div", class_="messages")
        return [(line["class"], line.text.strip()) for div in box for line in div.find_all("p")]


def page(response) -> Page:
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    return Page(response.content.decode())


def signed_in(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def form_token(html: Page, form: Element | None = None) -> str:
    scope = form if form is not None else html.root
    token = scope.find("input", name="csrfmiddlewaretoken")
    assert token["type"] == "hidden"
    assert token["value"]
    return token["value"]


def post_upload(client: Client, url: str, field: str, name: str, data: bytes, content_type: str):
    html = page(client.get(url))
    token = form_token(html, html.find("form", class_="upload"))
    return client.post(
        url,
        {"csrfmiddlewaretoken": token, field: SimpleUploadedFile(name, data, content_type)},
    )


def files_on_disk(root: Path) -> frozenset[str]:
    if not root.exists():
        return frozenset()
    return frozenset(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def state(root: Path) -> tuple[frozenset[str], int, int]:
    return files_on_disk(root), StoredFile.objects.count(), ProtectedFile.objects.count()


def assert_redirect(response, location: str) -> None:
    assert response.status_code == 302
    assert response["Location"] == location


# -- signing in ------------------------------------------------------------------


def test_login_page_has_labelled_inputs() -> None:
    html = page(Client().get("/accounts/login/"))
    form = html.find("form", class_="login")
    assert form["method"] == "post"
    assert form["action"] == "/accounts/login/"
    form_token(html, form)
    for name, kind, autocomplete in (
        ("username", "text", "username"),
        ("password", "password", "current-password"),
    ):
        field = form.find("input", name=name)
        assert field["type"] == kind
        assert field["autocomplete"] == autocomplete
        assert "required" in field.attrs
        label = form.find("label", for_=field["id"])
        assert label.text.strip() == name.capitalize()
    assert form.find("button", type="submit").text.strip() == "Sign in"


def test_anonymous_files_page_redirects_to_login() -> None:
    assert_redirect(Client().get("/files/"), "/accounts/login/?next=/files/")


@pytest.mark.parametrize(
    "url", ["/profile/", "/files/00000000-0000-4000-8000-000000000000/delete/"]
)
def test_other_pages_need_a_sign_in_too(url) -> None:
    response = Client().get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_signing_in_through_the_form_lands_on_next(alice) -> None:
    client = Client(enforce_csrf_checks=True)
    html = page(client.get("/accounts/login/?next=/files/"))
    form = html.find("form", class_="login")
    assert form.find("input", name="next")["value"] == "/files/"
    response = client.post(
        "/accounts/login/",
        {
            "csrfmiddlewaretoken": form_token(html, form),
            "username": "alice",
            "password": "alice-password",
            "next": "/files/",
        },
    )
    assert_redirect(response, "/files/")
    assert page(client.get("/files/")).find("h1").text == "My files"


def test_a_wrong_password_shows_an_alert(alice) -> None:
    client = Client(enforce_csrf_checks=True)
    html = page(client.get("/accounts/login/"))
    response = client.post(
        "/accounts/login/",
        {"csrfmiddlewaretoken": form_token(html), "username": "alice", "password": "nope"},
    )
    alert = page(response).find("p", role="alert")
    assert "didn't match" in alert.text
    assert "_auth_user_id" not in client.session


# -- the files page ---------------------------------------------------------------


def test_files_page_has_a_multipart_form_with_a_csrf_token(alice) -> None:
    html = page(signed_in(alice).get("/files/"))
    form = html.find("form", class_="upload")
    assert form["method"] == "post"
    assert form["enctype"] == "multipart/form-data"
    form_token(html, form)
    field = form.find("input", name="file")
    assert field["type"] == "file"
    assert form.find("label", for_=field["id"]).text.strip() == "Choose a file"
    assert form.find("p", class_="hint").text == (
        f"You can upload {ACCEPTED}. Files may be up to 10.0{NBSP}MB."
    )
    assert "No files yet." in html.root.text


def test_files_page_lists_own_files_with_gateway_links_and_images_only_for_images(
    alice, bob, make_file
) -> None:
    photo = make_file(alice, "photo.png", png_bytes())
    notes = make_file(alice, "notes.txt", b"notes\n")
    paper = make_file(alice, "paper.pdf", PDF)
    theirs = make_file(bob, "bob.png", png_bytes())

    response = signed_in(alice).get("/files/")
    html = page(response)
    cards = html.find_all("li", class_="card")
    assert len(cards) == 3
    by_name = {card.find("p", class_="name").text: card for card in cards}
    assert set(by_name) == {"photo.png", "notes.txt", "paper.pdf"}
    for item in (photo, notes, paper):
        card = by_name[item.original_name]
        assert KEY_URL.fullmatch(item.file.url)
        link = card.find("a", class_="preview")
        assert link["href"] == item.file.url
        images = card.find_all("img")
        if item is photo:
            assert [img["src"] for img in images] == [photo.file.url]
            assert images[0]["alt"] == "photo.png"
        else:
            assert images == []
        delete = card.find("form", action=f"/files/{item.pk}/delete/")
        assert delete["method"] == "post"
        assert delete["action"] == f"/files/{item.pk}/delete/"
        form_token(html, delete)
    assert [img["src"] for img in html.find_all("img")] == [photo.file.url]
    content = response.content.decode()
    assert theirs.file.url not in content
    assert "bob.png" not in content


def test_upload_through_the_form_stores_and_says_so(alice, private_root) -> None:
    client = signed_in(alice)
    response = post_upload(
        client, "/files/", "file", "my photo.png", png_bytes((9, 4)), "image/png"
    )

    assert_redirect(response, "/files/")
    item = ProtectedFile.objects.get()
    assert item.owner == alice
    assert item.original_name == "my photo.png"
    assert item.content_type == "image/png"
    assert files_on_disk(private_root) == {item.file.name}
    html = page(client.get("/files/"))
    assert html.messages() == [("success", "Uploaded my photo.png.")]
    assert [img["src"] for img in html.find_all("img")] == [item.file.url]
    served = client.get(item.file.url)
    assert served["X-Accel-Redirect"] == f"/_protected/{item.file.name}"


@pytest.mark.parametrize(
    ("name", "data", "content_type", "message"),
    [
        ("cat.png", HTML_AS_PNG, "image/png", MARKUP_REFUSED),  # HTML disguised as a PNG
        ("page.html", HTML_AS_PNG, "text/html", MARKUP_REFUSED),
        (
            "scan.bmp",
            bmp_bytes(),
            "image/bmp",
            f"A BMP image (.bmp) is not accepted here; you can upload {ACCEPTED}.",
        ),
    ],
)
def test_a_refused_upload_says_why_in_words_and_stores_nothing(
    alice, make_file, private_root, name, data, content_type, message
) -> None:
    make_file(alice, "already.txt", b"already\n")
    client = signed_in(alice)
    before = state(private_root)
    response = post_upload(client, "/files/", "file", name, data, content_type)
    assert_redirect(response, "/files/")
    assert state(private_root) == before
    html = page(client.get("/files/"))
    assert html.messages() == [("error", message)]
    assert len(html.find_all("li", class_="card")) == 1


def test_an_upload_without_a_csrf_token_is_refused(alice, private_root) -> None:
    client = signed_in(alice)
    client.get("/files/")
    response = client.post("/files/", {"file": SimpleUploadedFile("a.txt", b"a\n")})
    assert response.status_code == 403
    assert state(private_root) == (frozenset(), 0, 0)


def test_delete_through_the_form(alice, make_file, private_root) -> None:
    item = make_file(alice, "notes.txt", b"notes\n")
    url = item.file.url
    path = private_root / item.file.name
    client = signed_in(alice)
    html = page(client.get("/files/"))
    form = html.find("form", action=f"/files/{item.pk}/delete/")

    response = client.post(form["action"], {"csrfmiddlewaretoken": form_token(html, form)})

    assert_redirect(response, "/files/")
    assert not ProtectedFile.objects.filter(pk=item.pk).exists()
    assert not StoredFile.objects.exists()
    assert not path.exists()
    after = page(client.get("/files/"))
    assert after.messages() == [("success", "Deleted notes.txt.")]
    assert "No files yet." in after.root.text
    old = client.get(url)
    assert (old.status_code, old.content) == GATEWAY_NOT_FOUND


def test_get_on_the_delete_url_is_405_and_deletes_nothing(alice, make_file, private_root):
    item = make_file(alice)
    before = state(private_root)
    response = signed_in(alice).get(f"/files/{item.pk}/delete/")
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert state(private_root) == before


def test_another_users_delete_url_is_404(alice, bob, make_file, private_root) -> None:
    item = make_file(alice, "mine.txt", b"mine\n")
    before = state(private_root)
    client = signed_in(bob)
    html = page(client.get("/files/"))
    token = form_token(html, html.find("form", class_="upload"))
    response = client.post(f"/files/{item.pk}/delete/", {"csrfmiddlewaretoken": token})
    assert response.status_code == 404
    assert state(private_root) == before
    assert (private_root / item.file.name).read_bytes() == b"mine\n"


# -- the profile picture ------------------------------------------------------------


def avatar_url(client: Client) -> str:
    html = page(client.get("/profile/"))
    image = html.find("img", class_="avatar")
    assert KEY_URL.fullmatch(image["src"])
    return image["src"]


def test_profile_page_offers_an_image_upload(alice) -> None:
    html = page(signed_in(alice).get("/profile/"))
    assert html.find_all("img") == []
    assert "No profile picture yet." in html.root.text
    form = html.find("form", class_="upload")
    assert form["method"] == "post"
    assert form["enctype"] == "multipart/form-data"
    form_token(html, form)
    field = form.find("input", name="profile_picture")
    assert field["type"] == "file"
    assert field["accept"] == "image/png,image/jpeg,image/gif,image/webp"
    assert form.find("label", for_=field["id"]).text.strip() == "New profile picture"


def test_profile_picture_is_shown_and_served_only_to_its_owner(alice, bob, private_root):
    client = signed_in(alice)
    response = post_upload(
        client, "/profile/", "profile_picture", "me.png", png_bytes(), "image/png"
    )
    assert_redirect(response, "/profile/")

    picture = Profile.objects.get(user=alice).profile_picture
    key = KEY_URL.fullmatch(picture.url).group(1)
    assert picture.name == f"profile_pics/{key}.png"
    assert files_on_disk(private_root) == {picture.name}
    html = page(client.get("/profile/"))
    assert html.messages() == [("success", "Profile picture updated.")]
    image = html.find("img", class_="avatar")
    assert image["src"] == f"/media/{key}"

    served = client.get(image["src"])
    assert served.status_code == 200
    assert served["X-Accel-Redirect"] == f"/_protected/{picture.name}"
    assert served["Content-Type"] == "image/png"
    refused = signed_in(bob).get(image["src"])
    assert (refused.status_code, refused.content) == GATEWAY_NOT_FOUND
    assert "X-Accel-Redirect" not in refused.headers


def test_replacing_the_profile_picture_removes_the_old_file(alice, private_root) -> None:
    client = signed_in(alice)
    post_upload(client, "/profile/", "profile_picture", "first.png", png_bytes(), "image/png")
    old_url = avatar_url(client)
    old_name = Profile.objects.get(user=alice).profile_picture.name
    assert (private_root / old_name).is_file()

    response = post_upload(
        client,
        "/profile/",
        "profile_picture",
        "second.png",
        png_bytes((5, 5), (0, 90, 200)),
        "image/png",
    )

    assert_redirect(response, "/profile/")
    new_url = avatar_url(client)
    new_name = Profile.objects.get(user=alice).profile_picture.name
    assert new_url != old_url
    assert not (private_root / old_name).exists()
    assert files_on_disk(private_root) == {new_name}
    assert list(StoredFile.objects.values_list("name", flat=True)) == [new_name]
    old = client.get(old_url)
    assert (old.status_code, old.content) == GATEWAY_NOT_FOUND
    assert client.get(new_url)["X-Accel-Redirect"] == f"/_protected/{new_name}"


@pytest.mark.parametrize(
    ("name", "data", "content_type", "message"),
    [
        # Not an image at all: Django's ImageField says so.
        ("cv.pdf", PDF, "application/pdf", "Upload a valid image."),
        ("me.png", PDF, "image/png", "Upload a valid image."),
        ("me.png", HTML_AS_PNG, "image/png", "Upload a valid image."),
        # An image Pillow reads but the profile field does not take.
        (
            "me.bmp",
            bmp_bytes(),
            "image/bmp",
            "A BMP image (.bmp) is not accepted here; you can upload images (PNG, JPEG, GIF, "
            "WebP).",
        ),
    ],
)
def test_a_non_image_profile_picture_is_refused_with_a_form_error(
    alice, private_root, name, data, content_type, message
) -> None:
    client = signed_in(alice)
    response = post_upload(client, "/profile/", "profile_picture", name, data, content_type)
    assert_redirect(response, "/profile/")
    assert state(private_root) == (frozenset(), 0, 0)
    assert not Profile.objects.get(user=alice).profile_picture
    html = page(client.get("/profile/"))
    [(kind, text)] = html.messages()
    assert kind == "error"
    assert text.startswith(message)
    assert html.find_all("img") == []


def test_a_refused_replacement_keeps_the_current_picture(alice, private_root) -> None:
    client = signed_in(alice)
    post_upload(client, "/profile/", "profile_picture", "me.png", png_bytes(), "image/png")
    url = avatar_url(client)
    before = state(private_root)
    post_upload(client, "/profile/", "profile_picture", "cv.pdf", PDF, "application/pdf")
    assert state(private_root) == before
    assert avatar_url(client) == url
    assert client.get(url).status_code == 200


# -- health check -------------------------------------------------------------------


def test_healthz_answers_without_the_database(django_assert_num_queries) -> None:
    client = Client()
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok\n"
    assert response["Content-Type"] == "text/plain"


def test_healthz_touches_no_database_even_with_a_session(alice, django_assert_num_queries):
    client = signed_in(alice)
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert (response.status_code, response.content) == (200, b"ok\n")
