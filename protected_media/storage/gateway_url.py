"""The URL of a stored file is the gateway's, whatever the store.

Every storage of protected files takes ``url()`` from here, so that no field
can hand out a URL that skips the check (a presigned bucket URL would).
"""

from __future__ import annotations

import posixpath

from ..conf import conf
from ..keys import is_key


class GatewayURLMixin:
    def url(self, name: str | None) -> str:
        if not name:
            raise ValueError("This file has no name.")
        key = posixpath.splitext(posixpath.basename(name))[0]
        if not is_key(key):
            raise ValueError(
                f"{name!r} was not stored by protected_media, so it has no gateway URL: "
                "a file kept from before the field was protected. "
                "Run manage.py protected_media_adopt app_label.Model.field (docs/adopting.md)."
            )
        return f"{conf.url}{key}"
