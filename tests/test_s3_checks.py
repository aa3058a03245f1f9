"""System checks of the store setting, one test per id: each provoked by one
settings override on top of a valid S3 configuration (which needs no store:
checks never touch the network)."""

from __future__ import annotations

import sys

import pytest
from django.core.checks import CheckMessage, run_checks
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import FileSystemStorage
from storages.backends.s3 import S3Storage

from protected_media.storage import ProtectedStorage, protected_storage
from protected_media.storage.s3 import ProtectedS3Storage
from tests.testapp.models import Report

PREFIX = "protected_media."
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
VALID_S3 = {
    "PROTECTED_MEDIA_STORAGE": "s3",
    "PROTECTED_MEDIA_S3_ENDPOINT_URL": "https://s3.eu-west-1.amazonaws.com",
    "PROTECTED_MEDIA_S3_BUCKET": "site-private",
    "PROTECTED_MEDIA_S3_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "PROTECTED_MEDIA_S3_SECRET_ACCESS_KEY": SECRET,
}


def messages() -> list[CheckMessage]:
    return [m for m in run_checks(tags=["security"]) if (m.id or "").startswith(PREFIX)]


def ids() -> list[str]:
    return sorted(m.id for m in messages() if m.id)


@pytest.fixture
def s3(settings):
    for name, value in VALID_S3.items():
        setattr(settings, name, value)
    return settings


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:8333",
        "http://127.0.0.1:8333/",
        "https://s3.eu-west-1.amazonaws.com",
        "https://abc123.r2.cloudflarestorage.com",
        "http://[::1]:9000",
    ],
)
def test_a_valid_s3_configuration_produces_no_message(s3, endpoint) -> None:
    s3.PROTECTED_MEDIA_S3_ENDPOINT_URL = endpoint
    assert messages() == []


def test_s3_settings_are_not_read_with_local_storage(settings) -> None:
    settings.PROTECTED_MEDIA_STORAGE = "local"
    settings.PROTECTED_MEDIA_S3_BUCKET = "Not A Bucket"
    settings.PROTECTED_MEDIA_S3_INTERNAL_URL = "nonsense"
    assert messages() == []


# -- E021: PROTECTED_MEDIA_STORAGE ----------------------------------------------------


@pytest.mark.parametrize("value", ["S3", "s3 ", "gcs", "", None, True])
def test_e021_unknown_storage(settings, value) -> None:
    settings.PROTECTED_MEDIA_STORAGE = value
    assert ids() == ["protected_media.E021"]
    # The same words if a request gets there first.
    with pytest.raises(ImproperlyConfigured, match="must be 'local' or 's3'"):
        protected_storage.exists("files/x.txt")


# -- E022: a missing or invalid S3 setting --------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("PROTECTED_MEDIA_S3_ENDPOINT_URL", None),  # required
        ("PROTECTED_MEDIA_S3_ENDPOINT_URL", "127.0.0.1:8333"),  # no scheme
        ("PROTECTED_MEDIA_S3_ENDPOINT_URL", "ftp://store.example"),
        ("PROTECTED_MEDIA_S3_ENDPOINT_URL", "https://store.example/bucket"),  # a path
        ("PROTECTED_MEDIA_S3_ENDPOINT_URL", "https://key:secret@store.example"),  # credentials
        ("PROTECTED_MEDIA_S3_ENDPOINT_URL", "https://store.example:99999"),  # no such port
        ("PROTECTED_MEDIA_S3_ENDPOINT_URL", "https://store.example; evil"),  # nginx syntax
        ("PROTECTED_MEDIA_S3_BUCKET", None),
        ("PROTECTED_MEDIA_S3_BUCKET", "Site_Private"),  # S3 refuses upper case and "_"
        ("PROTECTED_MEDIA_S3_BUCKET", "ab"),  # too short
        ("PROTECTED_MEDIA_S3_ACCESS_KEY_ID", None),
        ("PROTECTED_MEDIA_S3_ACCESS_KEY_ID", ""),
        ("PROTECTED_MEDIA_S3_ACCESS_KEY_ID", " AKIDEXAMPLE"),  # pasted with a space
        ("PROTECTED_MEDIA_S3_SECRET_ACCESS_KEY", None),
        ("PROTECTED_MEDIA_S3_REGION", ""),
        ("PROTECTED_MEDIA_S3_REGION", "eu west"),
        ("PROTECTED_MEDIA_S3_URL_LIFETIME", 0),
        ("PROTECTED_MEDIA_S3_URL_LIFETIME", "60"),  # a string
        ("PROTECTED_MEDIA_S3_URL_LIFETIME", True),  # a bool is no number of seconds
        ("PROTECTED_MEDIA_S3_URL_LIFETIME", 7 * 24 * 3600 + 1),  # beyond SigV4's seven days
        ("PROTECTED_MEDIA_S3_INTERNAL_URL", "/_protected_store"),  # no trailing slash
        ("PROTECTED_MEDIA_S3_INTERNAL_URL", "_protected_store/"),
        ("PROTECTED_MEDIA_S3_INTERNAL_URL", "/"),
        ("PROTECTED_MEDIA_S3_INTERNAL_URL", "/_protected/"),  # SENDFILE_URL's location
        ("PROTECTED_MEDIA_S3_INTERNAL_URL", "/media/store/"),  # inside the public media URL
        ("PROTECTED_MEDIA_S3_INTERNAL_URL", None),
    ],
)
def test_e022_s3_setting_missing_or_invalid(s3, setting, value) -> None:
    setattr(s3, setting, value)
    found = messages()
    assert [m.id for m in found] == ["protected_media.E022"]
    assert setting in found[0].msg
    assert found[0].hint


def test_e022_never_shows_the_secret(s3) -> None:
    s3.PROTECTED_MEDIA_S3_SECRET_ACCESS_KEY = f"{SECRET}\n"  # a copy-paste with its newline
    found = messages()
    assert [m.id for m in found] == ["protected_media.E022"]
    assert SECRET not in f"{found[0].msg} {found[0].hint}"


# -- E023: the s3 extra not installed -------------------------------------------------


@pytest.mark.parametrize("module", ["storages", "boto3"])
def test_e023_s3_without_its_packages(s3, monkeypatch, module) -> None:
    # As if never installed: the package and every module of it unimportable,
    # and the storage module that imports them not imported yet.
    for name in [name for name in sys.modules if name.partition(".")[0] == module]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "protected_media.storage.s3")
    found = messages()
    assert [m.id for m in found] == ["protected_media.E023"]
    assert 'pip install "django-protected-media-gateway[s3]"' in found[0].hint
    # Models still load (the field does not make its storage when defined);
    # the first use says what to install.
    with pytest.raises(ImproperlyConfigured, match=r"django-protected-media-gateway\[s3\]"):
        protected_storage.exists("files/x.txt")


# -- E024: a protected field with a storage of its own --------------------------------


@pytest.mark.parametrize(
    ("storage", "selected"),
    [
        # The case: presigned URLs from .url, files the gateway never finds.
        (lambda: S3Storage(bucket_name="site-private"), "s3"),
        (lambda: S3Storage(bucket_name="site-private"), "local"),
        (lambda: FileSystemStorage(location="/srv/public"), "local"),
        # Ours, but not the one selected: the gateway would look elsewhere.
        (ProtectedStorage, "s3"),
        (ProtectedS3Storage, "local"),
    ],
)
def test_e024_protected_field_with_another_storage(s3, monkeypatch, storage, selected) -> None:
    s3.PROTECTED_MEDIA_STORAGE = selected
    field = Report._meta.get_field("attachment")
    monkeypatch.setattr(field, "storage", storage())
    found = messages()
    assert [m.id for m in found] == ["protected_media.E024"]
    assert found[0].obj is field
    assert "testapp.Report.attachment" in found[0].msg


@pytest.mark.parametrize("selected", ["local", "s3"])
def test_e024_not_raised_for_the_selected_storage_passed_explicitly(
    s3, monkeypatch, selected
) -> None:
    s3.PROTECTED_MEDIA_STORAGE = selected
    field = Report._meta.get_field("attachment")
    explicit = ProtectedStorage() if selected == "local" else ProtectedS3Storage()
    monkeypatch.setattr(field, "storage", explicit)
    assert messages() == []


# -- E025: the streaming fallback cannot read a bucket --------------------------------


def test_e025_streaming_fallback_with_s3(s3) -> None:
    s3.DEBUG = True  # W001 (the fallback with DEBUG off) is another story
    s3.SENDFILE_BACKEND = "protected_media.backends.streaming"
    found = messages()
    assert [m.id for m in found] == ["protected_media.E025"]
    assert "django_sendfile.backends.nginx" in found[0].hint
