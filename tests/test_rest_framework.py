"""Protected files through Django REST framework: a real viewset and router,
DRF's own test client, the gateway view serving what was uploaded."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import include, path
from rest_framework import permissions, routers, serializers, viewsets
from rest_framework.parsers import MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from protected_media.field_files import inspect_for_field
from protected_media.inspection import UploadRefused
from protected_media.models import ProtectedFile, StoredFile
from protected_media.rest_framework import ProtectedModelSerializer, exception_handler
from protected_media.testing import assert_refused, assert_served

from .conftest import png_bytes
from .store import object_names, use_store

pytestmark = pytest.mark.django_db

# An HTML page saved as .txt: text with markup, which the inspection refuses.
MARKUP = b"<html><body><script>alert(1)</script></body></html>\n"


def inspections_message(name: str, data: bytes, content_type: str) -> str:
    """What the field's own inspection says of this file (the forms' and the
    gateway API's message)."""
    upload = SimpleUploadedFile(name, data, content_type=content_type)
    with pytest.raises(UploadRefused) as refused:
        inspect_for_field(upload, ProtectedFile._meta.get_field("file"))
    return refused.value.message


class FileSerializer(ProtectedModelSerializer):
    class Meta:
        model = ProtectedFile
        fields = ("id", "file")


class PlainFileSerializer(serializers.ModelSerializer):
    """What a site writes without this module's serializer."""

    class Meta:
        model = ProtectedFile
        fields = ("id", "file")


class FileViewSet(viewsets.ModelViewSet):
    serializer_class = FileSerializer
    permission_classes = (permissions.IsAuthenticated,)
    parser_classes = (MultiPartParser,)
    renderer_classes = (JSONRenderer,)

    def get_queryset(self):
        return ProtectedFile.objects.filter(owner=self.request.user)

    def perform_create(self, serializer):
        serializer.save(owner=self.request.user)


class PlainFileViewSet(FileViewSet):
    serializer_class = PlainFileSerializer

    def get_exception_handler(self):
        return exception_handler


router = routers.SimpleRouter()
router.register("files", FileViewSet, basename="file")
router.register("plain-files", PlainFileViewSet, basename="plain-file")
urlpatterns = [
    path("api/", include(router.urls)),
    path("", include("tests.urls")),
]


@pytest.fixture(autouse=True)
def _urls(settings) -> None:
    settings.ROOT_URLCONF = __name__


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def send(user, name: str, data: bytes, content_type: str, where: str = "files"):
    return api(user).post(
        f"/api/{where}/",
        {"file": SimpleUploadedFile(name, data, content_type=content_type)},
        format="multipart",
    )


def test_a_good_upload_is_a_201_that_the_gateway_serves_to_its_owner_only(
    each_storage, alice, bob
) -> None:
    created = send(alice, "photo.png", png_bytes((600, 400)), "image/png")
    assert created.status_code == 201, created.content
    item = ProtectedFile.objects.get()
    body = created.json()
    assert body == {
        "id": str(item.pk),
        "file": {
            "url": f"http://testserver{item.file.url}",
            "thumbnail_url": f"http://testserver{item.file.thumbnail_url()}",
            "name": "photo.png",
            "size": item.record.size,
            "content_type": "image/png",
        },
    }
    assert body["file"]["url"] != body["file"]["thumbnail_url"]
    owner, other = Client(), Client()
    owner.force_login(alice)
    other.force_login(bob)
    assert_served(owner.get(item.file.url), item.record)
    assert_refused(other.get(item.file.url))
    # The listing reads the same fields.
    assert api(alice).get("/api/files/").json() == [body]


def test_a_refused_upload_is_a_400_with_the_inspections_message_and_nothing_kept(
    request, each_storage, settings, alice
) -> None:
    before = object_names_of(request, each_storage, settings)
    refused = send(alice, "notes.txt", MARKUP, "text/plain")
    assert refused.status_code == 400
    assert refused.json() == {"file": [inspections_message("notes.txt", MARKUP, "text/plain")]}
    assert not ProtectedFile.objects.exists()
    assert not StoredFile.objects.exists()
    assert object_names_of(request, each_storage, settings) == before


def test_a_plain_model_serializer_gets_the_same_400_from_the_exception_handler(alice) -> None:
    # Without this module a refused file reached DRF as an unhandled
    # UploadRefused: a 500.
    refused = send(alice, "notes.txt", MARKUP, "text/plain", where="plain-files")
    assert refused.status_code == 400
    assert refused.json() == [inspections_message("notes.txt", MARKUP, "text/plain")]
    assert not ProtectedFile.objects.exists()
    assert not StoredFile.objects.exists()


def test_a_store_out_of_reach_is_a_503_with_retry_after(settings, seaweed, alice) -> None:
    use_store(settings, seaweed)
    before = object_names(seaweed)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        closed = f"http://127.0.0.1:{listener.getsockname()[1]}"
    settings.PROTECTED_MEDIA_S3_ENDPOINT_URL = closed
    refused = send(alice, "minutes.txt", b"minutes of the meeting\n", "text/plain")
    assert refused.status_code == 503
    assert refused["Retry-After"] == "10"
    assert refused.json() == {
        "detail": "The file store is not answering right now; nothing was stored. "
        "Try again in 10 seconds."
    }
    assert not ProtectedFile.objects.exists()
    assert not StoredFile.objects.exists()
    assert object_names(seaweed) == before


def test_a_row_without_a_file_reads_as_null(alice) -> None:
    item = ProtectedFile.objects.create(owner=alice)
    assert FileSerializer(item).data == {"id": str(item.pk), "file": None}


def object_names_of(request, storage: str, settings) -> set[str]:
    """The protected files kept on the storage under test."""
    if storage == "s3":
        return object_names(request.getfixturevalue("seaweed"))
    root = Path(settings.SENDFILE_ROOT)
    return {str(kept.relative_to(root)) for kept in root.rglob("*") if kept.is_file()}
