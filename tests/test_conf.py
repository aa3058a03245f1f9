"""The settings the package reads are kept only as long as the settings they came from."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import override_settings

from protected_media.conf import conf


def test_a_changed_setting_is_read_at_once_and_its_default_comes_back() -> None:
    assert conf.anonymous == "login"
    with override_settings(PROTECTED_MEDIA_ANONYMOUS="not_found"):
        assert conf.anonymous == "not_found"
        with override_settings(PROTECTED_MEDIA_ANONYMOUS="login"):
            assert conf.anonymous == "login"
        assert conf.anonymous == "not_found"
    assert conf.anonymous == "login"


def test_the_pytest_django_settings_fixture_is_seen(settings) -> None:
    assert conf.cache_control == "private, no-store"
    settings.PROTECTED_MEDIA_CACHE_CONTROL = "private, max-age=60"
    assert conf.cache_control == "private, max-age=60"
    del settings.PROTECTED_MEDIA_CACHE_CONTROL
    assert conf.cache_control == "private, no-store"


def test_a_setting_left_unset_keeps_its_default_without_asking_django_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with override_settings():
        assert conf.storage == "local"
        # Now reading the settings object again would fail: the value kept answers.
        with monkeypatch.context() as patched:
            patched.setattr(type(settings._wrapped), "__getattr__", unreadable, raising=False)
            assert conf.storage == "local"
    with override_settings(PROTECTED_MEDIA_STORAGE="s3"):
        assert conf.storage == "s3"


def unreadable(_settings: object, name: str) -> object:
    raise AssertionError(f"{name} was read again")
