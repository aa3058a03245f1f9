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
            raise ValueError("Only files stored by protected_media have a gateway URL.")
        return f"{conf.url}{key}"
