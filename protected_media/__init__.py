"""Private Django media: an async permission check, then nginx sends the bytes.

The public API is what ``__all__`` names; every other module may move. The
names are loaded on first use (PEP 562), because Django imports this package
while it reads ``INSTALLED_APPS``, before models may be imported.

- Fields: ``ProtectedFileField``, ``ProtectedImageField``, and
  ``prefetch_records`` to load a listing's records in two queries.
- Records: ``StoredFile`` (one per private file), ``ShareLink``, and the
  ready-made ``ProtectedFile`` model.
- Serving: the async views ``serve`` and ``serve_shared`` (mounted by
  ``protected_media.urls``) and the fast entry point ``ProtectedMediaASGI``.
- Share links: ``create_share``, ``revoke``, ``share_url``.
- Policies: ``default_policy`` (what ``PROTECTED_MEDIA_POLICY`` replaces).
- Uploads: ``UploadRefused`` (status, reason and message of a refusal) and
  ``stop_on_disconnect`` for upload views.
- Grants: ``shared_with``, ``prefetch_grants``, ``grants_of``.

Signals live in ``protected_media.signals``; assertions for a site's tests in
``protected_media.testing``; pytest fixtures in ``protected_media.pytest_plugin``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Each public name and the module that defines it.
_HOMES = {
    "ProtectedFileField": "fields",
    "ProtectedImageField": "fields",
    "prefetch_records": "fields",
    "StoredFile": "records",
    "ShareLink": "records",
    "ProtectedFile": "models",
    "serve": "views",
    "serve_shared": "views",
    "ProtectedMediaASGI": "asgi",
    "create_share": "shares",
    "revoke": "shares",
    "share_url": "shares",
    "default_policy": "policy",
    "UploadRefused": "inspection",
    "stop_on_disconnect": "disconnects",
    "shared_with": "grants",
    "prefetch_grants": "grants",
    "grants_of": "grants",
}

__all__ = [
    "ProtectedFile",
    "ProtectedFileField",
    "ProtectedImageField",
    "ProtectedMediaASGI",
    "ShareLink",
    "StoredFile",
    "UploadRefused",
    "__version__",
    "create_share",
    "default_policy",
    "grants_of",
    "prefetch_grants",
    "prefetch_records",
    "revoke",
    "serve",
    "serve_shared",
    "share_url",
    "shared_with",
    "stop_on_disconnect",
]

if TYPE_CHECKING:
    from .asgi import ProtectedMediaASGI
    from .disconnects import stop_on_disconnect
    from .fields import ProtectedFileField, ProtectedImageField, prefetch_records
    from .grants import grants_of, prefetch_grants, shared_with
    from .inspection import UploadRefused
    from .models import ProtectedFile
    from .policy import default_policy
    from .records import ShareLink, StoredFile
    from .shares import create_share, revoke, share_url
    from .views import serve, serve_shared


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'protected_media' has no attribute {name!r}")
    value = getattr(import_module(f".{home}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
