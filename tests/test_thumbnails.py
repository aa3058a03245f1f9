"""Thumbnails: made at upload, stored privately beside the original, served
through the gateway under the original's policy, deleted with it."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group
from django.core.asgi import get_asgi_application
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from guardian.shortcuts import assign_perm
from PIL import Image

from protected_media import checks, decision, thumbnails
from protected_media.asgi import ProtectedMediaASGI
from protected_media.models import ProtectedFile, StoredFile, prefetch_records
from protected_media.shares import create_share, share_url
from protected_media.signals import file_served
from protected_media.storage import protected_storage
from protected_media.testing import aassert_refused, aassert_served, assert_refused, assert_served

pytestmark = pytest.mark.django_db(transaction=True)


def image_bytes(size: tuple[int, int], fmt: str = "PNG", mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, (30, 120, 200) if mode == "RGB" else 7).save(buffer, format=fmt)
    return buffer.getvalue()


def upload(owner: Any, name: str, data: bytes) -> ProtectedFile:
    item = ProtectedFile(owner=owner)
    item.file.save(name, SimpleUploadedFile(name, data), save=True)
    return item


def stored(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


@pytest.fixture(autouse=True)
def _sizes(settings) -> None:
    settings.PROTECTED_MEDIA_THUMBNAIL_SIZES = (64, 128)


@pytest.fixture
def photo(alice) -> ProtectedFile:
    return upload(alice, "holiday photo.png", image_bytes((400, 300)))


def thumbs(item: ProtectedFile) -> list[StoredFile]:
    return list(StoredFile.objects.filter(original__name=item.file.name).order_by("size_px"))


# -- made at upload ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "name", "content_type", "extension"),
    [
        ("PNG", "a.png", "image/png", ".png"),
        ("JPEG", "a.jpg", "image/jpeg", ".jpg"),
        ("WEBP", "a.webp", "image/webp", ".webp"),
        # A GIF's thumbnail is its first frame, as a PNG.
        ("GIF", "a.gif", "image/png", ".png"),
    ],
)
def test_an_image_gets_one_thumbnail_per_size(
    settings, alice, private_root, fmt, name, content_type, extension
) -> None:
    item = upload(alice, name, image_bytes((400, 300), fmt))
    record = item.file.record
    made = thumbs(item)
    assert [(t.size_px, t.content_type) for t in made] == [(64, content_type), (128, content_type)]
    for thumb, expected in zip(made, [(64, 48), (128, 96)], strict=True):
        path = private_root / thumb.name
        with Image.open(path) as image:
            assert image.size == expected  # longest edge exact, aspect kept
        assert thumb.original == record
        assert thumb.source == record.source
        assert thumb.size == path.stat().st_size
        assert thumb.key != record.key
        # Beside the original, under a name of its own key.
        assert thumb.name == f"files/{thumb.key}{extension}"
        assert thumb.original_name == f"a-{thumb.size_px}{extension}"
        for public in (settings.STATIC_ROOT, settings.MEDIA_ROOT):
            assert not Path(public, thumb.name).exists()
    assert stored(private_root) == {record.name, *(t.name for t in made)}
    assert item.file.thumbnails == made


def test_a_small_image_is_never_upscaled(alice, private_root) -> None:
    item = upload(alice, "small.png", image_bytes((100, 50)))
    [thumb] = thumbs(item)
    assert thumb.size_px == 64
    with Image.open(private_root / thumb.name) as image:
        assert image.size == (64, 32)
    # The original fits 128 already: it is its own thumbnail there.
    assert item.file.thumbnail_url(128) is None
    assert item.file.thumbnail_url() == item.file.thumbnail_url(64) == f"/media/{thumb.key}"


def test_an_image_smaller_than_every_size_gets_none(alice, private_root) -> None:
    item = upload(alice, "tiny.png", image_bytes((40, 40)))
    assert thumbs(item) == []
    assert stored(private_root) == {item.file.name}
    assert item.file.thumbnail_url() is None


def test_the_url_picks_the_smallest_thumbnail_big_enough(photo) -> None:
    small, large = thumbs(photo)
    assert photo.file.thumbnail_url() == f"/media/{small.key}"
    assert photo.file.thumbnail_url(64) == f"/media/{small.key}"
    assert photo.file.thumbnail_url(65) == f"/media/{large.key}"
    assert photo.file.thumbnail_url(129) is None


@pytest.mark.parametrize(
    ("name", "data"),
    [("notes.txt", b"hello\n"), ("paper.pdf", b"%PDF-1.4\n%%EOF\n")],
)
def test_other_files_get_none(alice, private_root, name, data) -> None:
    item = upload(alice, name, data)
    assert StoredFile.objects.count() == 1
    assert stored(private_root) == {item.file.name}
    assert item.file.thumbnail_url() is None


def test_an_empty_setting_makes_none(settings, alice, private_root) -> None:
    settings.PROTECTED_MEDIA_THUMBNAIL_SIZES = ()
    item = upload(alice, "photo.png", image_bytes((400, 300)))
    assert StoredFile.objects.count() == 1
    assert stored(private_root) == {item.file.name}


def test_a_failure_to_render_keeps_the_upload_without_thumbnails(
    alice, private_root, monkeypatch, caplog
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError("decoder gone")

    monkeypatch.setattr(thumbnails, "render", broken)
    with caplog.at_level(logging.WARNING, logger="protected_media"):
        item = upload(alice, "photo.png", image_bytes((400, 300)))
    assert ProtectedFile.objects.filter(pk=item.pk).exists()
    assert StoredFile.objects.count() == 1
    assert stored(private_root) == {item.file.name}
    assert "could not make thumbnails" in caplog.text


def test_a_thumbnail_whose_record_fails_leaves_no_file(
    alice, private_root, monkeypatch, caplog
) -> None:
    def broken(name: str) -> str:
        raise RuntimeError("database said no")

    monkeypatch.setattr(thumbnails, "sanitize_original_name", broken)
    with caplog.at_level(logging.WARNING, logger="protected_media"):
        with transaction.atomic():  # the caller's transaction survives
            item = upload(alice, "photo.png", image_bytes((400, 300)))
    assert StoredFile.objects.count() == 1
    assert stored(private_root) == {item.file.name}
    assert "could not record a thumbnail" in caplog.text


def test_a_thumbnail_the_disk_refuses_leaves_no_file(alice, private_root, monkeypatch) -> None:
    real_save = protected_storage._save
    calls = []

    def full(name: str, content: Any) -> str:
        calls.append(name)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        return real_save(name, content)

    monkeypatch.setattr(protected_storage, "_save", full)
    item = upload(alice, "photo.png", image_bytes((400, 300)))
    assert StoredFile.objects.count() == 1
    assert stored(private_root) == {item.file.name}  # no temporary file either


def test_the_pure_renderer_refuses_bad_sizes() -> None:
    for sizes in [(0,), (True,), ("64",)]:
        with pytest.raises(ValueError):
            thumbnails.render(image_bytes((10, 10)), content_type="image/png", sizes=sizes)


# -- deleted with the original --------------------------------------------------------


def test_deleting_the_original_removes_its_thumbnails_after_commit(photo, private_root) -> None:
    names = [t.name for t in thumbs(photo)]
    with transaction.atomic():
        photo.delete()
        assert not StoredFile.objects.exists()
        assert all((private_root / name).exists() for name in names)  # until the commit
    assert stored(private_root) == set()


def test_replacing_the_original_removes_its_thumbnails(photo, private_root) -> None:
    old = {photo.file.name, *(t.name for t in thumbs(photo))}
    photo.file = SimpleUploadedFile("new.png", image_bytes((300, 300)))
    photo.save()
    assert not StoredFile.objects.filter(name__in=old).exists()
    assert stored(private_root) == {photo.file.name, *(t.name for t in thumbs(photo))}
    assert len(thumbs(photo)) == 2


def test_a_rolled_back_delete_keeps_the_thumbnails(photo, private_root) -> None:
    before = stored(private_root)
    with pytest.raises(RuntimeError), transaction.atomic():
        photo.delete()
        raise RuntimeError("rolled back")
    assert stored(private_root) == before
    assert len(thumbs(photo)) == 2


# -- listings -------------------------------------------------------------------------


def test_prefetch_loads_records_and_thumbnails_in_two_queries(alice, photo) -> None:
    upload(alice, "other.png", image_bytes((300, 200)))
    upload(alice, "notes.txt", b"hi\n")
    rows = list(ProtectedFile.objects.all())
    with CaptureQueriesContext(connection) as queries:
        prefetch_records(rows)
        urls = [row.file.thumbnail_url() for row in rows]
    assert len(queries) == 2
    assert sorted(url is None for url in urls) == [False, False, True]


# -- served under the original's policy -----------------------------------------------


def test_find_judges_a_thumbnail_by_its_originals_row(photo) -> None:
    small = thumbs(photo)[0]
    with CaptureQueriesContext(connection) as queries:
        found = decision.find(small.key)
    assert found.record == small
    assert found.holder == photo
    assert found.record.original == photo.file.record  # cached for a policy
    assert len(queries) == 3
    with CaptureQueriesContext(connection) as queries:
        found = decision.find(photo.file.record.key)
    assert (found.record, found.holder, len(queries)) == (photo.file.record, photo, 2)


def test_a_thumbnail_whose_original_is_a_thumbnail_is_refused(photo) -> None:
    small, large = thumbs(photo)
    StoredFile.objects.filter(pk=small.pk).update(original=large)
    assert decision.find(small.key).holder is None


@pytest.fixture
async def apps() -> Iterator[dict[str, Any]]:
    entry_point = ProtectedMediaASGI(get_asgi_application())
    yield {"django": get_asgi_application(), "entry point": entry_point}
    await entry_point.aclose()


async def get(app: Any, url: str, user: Any | None) -> httpx.Response:
    headers = {}
    if user is not None:
        client = Client()
        await sync_to_async(client.force_login)(user)
        headers["Cookie"] = f"sessionid={client.cookies['sessionid'].value}"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.get(url, headers=headers)


async def test_the_owner_is_served_the_thumbnail_and_others_refused(
    apps, alice, bob, photo
) -> None:
    small, large = await sync_to_async(thumbs)(photo)
    for name, app in apps.items():
        for thumb in (small, large):
            response = await get(app, f"/media/{thumb.key}", alice)
            await aassert_served(response, thumb, disposition="inline")
            assert response.headers["X-Accel-Redirect"] == f"/_protected/{thumb.name}", name
            assert response.headers["Content-Type"] == "image/png"
            await aassert_refused(await get(app, f"/media/{thumb.key}", bob))
            await aassert_refused(
                await get(app, f"/media/{thumb.key}", None),
                login=True,
                next_url=f"/media/{thumb.key}",
            )


async def test_a_thumbnail_outlives_nothing(apps, alice, photo) -> None:
    small = (await sync_to_async(thumbs)(photo))[0]
    await photo.adelete()
    for app in apps.values():
        await aassert_refused(await get(app, f"/media/{small.key}", alice))


def test_a_thumbnail_is_served_to_whom_the_original_is(
    settings, alice, bob, django_user_model, photo
) -> None:
    small = thumbs(photo)[0]
    url = f"/media/{small.key}"
    staff = django_user_model.objects.create_user("staff", is_staff=True)
    readers = Group.objects.create(name="readers")
    carol = django_user_model.objects.create_user("carol")
    carol.groups.add(readers)

    def as_user(user: Any) -> Any:
        client = Client()
        client.force_login(user)
        return client.get(url), client.get(photo.file.url)

    def same(user: Any, *, served: bool) -> None:
        thumb_response, original_response = as_user(user)
        if served:
            assert_served(thumb_response, small)
            assert_served(original_response, photo.file)
        else:
            assert_refused(thumb_response)
            assert_refused(original_response)

    same(staff, served=False)
    settings.PROTECTED_MEDIA_ALLOW_STAFF = True
    same(staff, served=True)
    same(carol, served=False)
    photo.groups.add(readers)
    same(carol, served=True)
    same(bob, served=False)
    assign_perm("protected_media.view_protectedfile", bob, photo)
    same(bob, served=True)


def test_a_custom_policy_judges_the_originals_row(settings, alice, bob, photo) -> None:
    settings.PROTECTED_MEDIA_POLICY = "tests.testapp.policies.broken"
    client = Client()
    client.force_login(alice)
    assert_refused(client.get(f"/media/{thumbs(photo)[0].key}"))


# -- share links --------------------------------------------------------------------


async def test_a_link_to_the_original_does_not_give_its_thumbnails(apps, alice, photo) -> None:
    record = await sync_to_async(lambda: photo.file.record)()
    _share, token = await sync_to_async(create_share)(record, created_by=alice)
    small = (await sync_to_async(thumbs)(photo))[0]
    for app in apps.values():
        await aassert_served(await get(app, share_url(token), None), record)
        await aassert_refused(
            await get(app, f"/media/{small.key}", None), login=True, next_url=f"/media/{small.key}"
        )


async def test_a_link_to_a_thumbnail_serves_it_while_its_creator_may_read_the_original(
    apps, alice, bob, photo
) -> None:
    small = (await sync_to_async(thumbs)(photo))[0]
    _share, token = await sync_to_async(create_share)(small, created_by=bob)
    for app in apps.values():
        # bob cannot read the original: his link to its thumbnail gives nothing.
        await aassert_refused(await get(app, share_url(token), None))
    _share, token = await sync_to_async(create_share)(small, created_by=alice)
    for app in apps.values():
        await aassert_served(await get(app, share_url(token), None), small)


# -- audit -------------------------------------------------------------------------


async def test_the_audit_signal_names_the_thumbnail(apps, alice, photo) -> None:
    small = (await sync_to_async(thumbs)(photo))[0]
    sent: list[dict[str, Any]] = []

    def receiver(**kwargs: Any) -> None:
        sent.append(kwargs)

    file_served.connect(receiver)
    try:
        for app in apps.values():
            await get(app, f"/media/{small.key}", alice)
    finally:
        file_served.disconnect(receiver)
    assert [kwargs["record"].key for kwargs in sent] == [small.key, small.key]


# -- the check ------------------------------------------------------------------------


@pytest.mark.parametrize("value", [256, (0,), (64, "128"), (True,), "256"])
def test_e015_sizes_that_are_not_ints(settings, value) -> None:
    settings.PROTECTED_MEDIA_THUMBNAIL_SIZES = value
    [error] = checks.check_thumbnails()
    assert error.id == "protected_media.E015"


@pytest.mark.parametrize("value", [(), (256,), (64, 128, 512)])
def test_e015_not_raised_for_valid_sizes(settings, value) -> None:
    settings.PROTECTED_MEDIA_THUMBNAIL_SIZES = value
    assert checks.check_thumbnails() == []


def test_e015_not_raised_for_the_default(settings) -> None:
    del settings.PROTECTED_MEDIA_THUMBNAIL_SIZES
    assert checks.check_thumbnails() == []
