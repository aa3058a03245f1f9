"""Session data decoded once per signed text.

A signed-in user's media requests all carry the same session row, and
decoding it (the HMAC over the secret key and its fallbacks, base64, zlib,
JSON) costs more than reading it. So the decoded data is remembered, keyed
by the row's exact signed text and by the keys it was checked against: a
changed row, a new secret key or a removed fallback decodes afresh. Each
request gets objects of its own (parsed from the remembered JSON), so what
one request changes in its session reaches no other.

Only Django's own ``decode`` with its JSON serializer is remembered, and
only data that decoded: a corrupted row is decoded, and logged, every time.
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.core.signing import JSONSerializer

# At most this many signed texts (about 1 KiB each with their JSON): the
# sessions of that many users active at once.
MAX_REMEMBERED = 4096

_remembered: dict[tuple[str | bytes, ...], bytes] = {}
_lock = threading.Lock()


def decode(store: SessionBase, session_data: str) -> dict[str, Any]:
    """What ``store.decode(session_data)`` answers, remembered."""
    if type(store).decode is not SessionBase.decode or store.serializer is not JSONSerializer:
        return type(store).decode(store, session_data)
    key = (session_data, store.key_salt, settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS)
    text = _remembered.get(key)
    if text is not None:
        return JSONSerializer().loads(text)  # type: ignore[no-any-return]
    data: dict[str, Any] = SessionBase.decode(store, session_data)
    if data:
        text = JSONSerializer().dumps(data)
        with _lock:
            while len(_remembered) >= MAX_REMEMBERED:
                _remembered.pop(next(iter(_remembered)))
            _remembered[key] = text
    return data


def forget_all() -> None:
    with _lock:
        _remembered.clear()
