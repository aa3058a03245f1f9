"""Session data decoded once per signed text (``fastpath.session_data``):
the same answers as Django's ``decode``, objects of each request's own, and
keys that no longer verify the text decode nothing."""

from __future__ import annotations

import logging

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.test import override_settings

from protected_media.fastpath import session_data

OLD_KEY = "old-secret-key-" + "o" * 40
NEW_KEY = "new-secret-key-" + "n" * 40


@pytest.fixture(autouse=True)
def nothing_remembered():
    session_data.forget_all()
    yield
    session_data.forget_all()


def signed(data: dict) -> str:
    return SessionStore().encode(data)


def test_the_same_text_decodes_to_the_same_data_in_new_objects() -> None:
    text = signed({"_auth_user_id": "7", "cart": [1, 2]})
    first = session_data.decode(SessionStore(), text)
    first["cart"].append(3)
    first["_auth_user_id"] = "8"
    second = session_data.decode(SessionStore(), text)
    assert second == {"_auth_user_id": "7", "cart": [1, 2]}
    assert second == SessionStore().decode(text)


def test_a_key_that_no_longer_verifies_the_text_decodes_nothing() -> None:
    with override_settings(SECRET_KEY=OLD_KEY, SECRET_KEY_FALLBACKS=[]):
        text = signed({"_auth_user_id": "7"})
        assert session_data.decode(SessionStore(), text) == {"_auth_user_id": "7"}
    # Rotated, the old key kept as a fallback: still valid, as in Django.
    with override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[OLD_KEY]):
        assert session_data.decode(SessionStore(), text) == {"_auth_user_id": "7"}
    # The fallback removed: signed by a key nobody trusts any more.
    with override_settings(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=[]):
        assert session_data.decode(SessionStore(), text) == {}
        assert SessionStore().decode(text) == {}


def test_corrupted_text_is_decoded_and_logged_every_time(caplog) -> None:
    text = signed({"_auth_user_id": "7"})
    tampered = text[:-3] + ("aaa" if not text.endswith("aaa") else "bbb")
    with caplog.at_level(logging.WARNING, logger="django.security.SuspiciousSession"):
        assert session_data.decode(SessionStore(), tampered) == {}
        assert session_data.decode(SessionStore(), tampered) == {}
    assert [record.getMessage() for record in caplog.records] == ["Session data corrupted"] * 2


def test_it_remembers_at_most_its_bound(monkeypatch) -> None:
    monkeypatch.setattr(session_data, "MAX_REMEMBERED", 3)
    texts = [signed({"_auth_user_id": str(number)}) for number in range(6)]
    for number, text in enumerate(texts):
        assert session_data.decode(SessionStore(), text) == {"_auth_user_id": str(number)}
    assert len(session_data._remembered) == 3
    # The oldest went first; a forgotten text still decodes.
    assert session_data.decode(SessionStore(), texts[0]) == {"_auth_user_id": "0"}


def test_a_store_with_a_decode_of_its_own_is_left_to_it() -> None:
    class Upper(SessionStore):
        def decode(self, session_data: str) -> dict:
            return {key: value.upper() for key, value in super().decode(session_data).items()}

    text = Upper().encode({"name": "alice"})
    assert session_data.decode(Upper(), text) == {"name": "ALICE"}
    assert session_data._remembered == {}
