"""The opaque key in a media URL: 128 random bits, base64url without padding."""

from __future__ import annotations

import re
import secrets

KEY_BYTES = 16  # 128 bits (security rule 1)
KEY_LENGTH = 22  # len(base64url(16 bytes)) without padding
_KEY_RE = re.compile(rf"[A-Za-z0-9_-]{{{KEY_LENGTH}}}")


def new_key() -> str:
    return secrets.token_urlsafe(KEY_BYTES)


def is_key(value: str) -> bool:
    return _KEY_RE.fullmatch(value) is not None
