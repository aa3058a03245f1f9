"""Presigned URLs for nginx to fetch private objects with, cheaply.

botocore's ``generate_presigned_url`` runs the client's event hooks, parameter
validation and endpoint resolution for every URL: 0.28-0.41 ms of CPU
measured here, a large part of what the whole check costs (``python -m
bench.presign_cost``). The signature itself is botocore's
``S3SigV4QueryAuth``, which this calls directly on a path-style URL built
the way the client builds it, so the URL is the same, byte for byte.

A URL is also reused for the same object and method while most of its
lifetime is left: it never leaves the server (nginx consumes the
X-Accel-Redirect), and the check still runs on every request, so reuse only
saves the signing.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from urllib.parse import quote

from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from .accel import KEY_SAFE
from .accel import PRESIGNED_REUSE_FRACTION as REUSE_FRACTION

# The methods nginx may send: SigV4 covers the method, so a GET-signed URL
# is refused for HEAD and the other way round.
PRESIGNED_METHODS = frozenset({"GET", "HEAD"})
# Enough for a busy site's working set; each entry is a few hundred bytes.
CACHE_ENTRIES = 4096


class Presigner:
    """Presigned path-style URLs of one bucket of one store."""

    def __init__(
        self,
        *,
        endpoint_url: str,
        bucket: str,
        region: str,
        access_key_id: str,
        secret_access_key: str,
        lifetime: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base = f"{endpoint_url.rstrip('/')}/{bucket}/"
        self._signer = S3SigV4QueryAuth(
            Credentials(access_key_id, secret_access_key), "s3", region, expires=lifetime
        )
        self._reuse_for = lifetime * REUSE_FRACTION
        self._clock = clock
        self._cache: OrderedDict[tuple[str, str], tuple[float, str]] = OrderedDict()
        # The view runs on the event loop, the fast entry point's fallback on
        # threads: the cache is shared by both.
        self._lock = threading.Lock()

    def url(self, key: str, method: str) -> str:
        """A URL that reads ``key`` with ``method`` for at least three
        quarters of the configured lifetime."""
        if method not in PRESIGNED_METHODS:
            raise ValueError(f"only GET and HEAD are presigned, not {method!r}")
        now = self._clock()
        with self._lock:
            cached = self._cache.get((key, method))
            if cached is not None and now - cached[0] < self._reuse_for:
                self._cache.move_to_end((key, method))
                return cached[1]
        signed = self.sign(key, method)
        with self._lock:
            self._cache[(key, method)] = (now, signed)
            self._cache.move_to_end((key, method))
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return signed

    def sign(self, key: str, method: str) -> str:
        """A freshly signed URL (no reuse)."""
        request = AWSRequest(method=method, url=self._base + quote(key, safe=KEY_SAFE))
        self._signer.add_auth(request)
        return str(request.prepare().url)
