"""The deployment as a client sees it: one connection per request, the target
sent as written, redirects not followed."""

from __future__ import annotations

import http.client
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

# A body this large is not read further: no check needs more of it.
BODY_LIMIT = 8 * 1024 * 1024


@dataclass(frozen=True)
class Response:
    status: int
    headers: list[tuple[str, str]]  # names lower-cased, in order, repeats kept
    body: bytes

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name.lower()]

    def accel_headers(self) -> list[str]:
        return sorted({key for key, _ in self.headers if key.startswith("x-accel-")})


class Site:
    """The deployment at ``base_url`` (scheme, host, port)."""

    def __init__(self, base_url: str, *, timeout: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{base_url!r} is not an http:// or https:// address")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"{base_url!r}: give the site's address without a path")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.timeout = timeout

    @property
    def base_url(self) -> str:
        port = f":{self.port}" if self.port else ""
        return f"{self.scheme}://{self.host}{port}"

    def get(self, target: str, headers: dict[str, str] | None = None) -> Response:
        connection: http.client.HTTPConnection
        if self.scheme == "https":
            connection = http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        else:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            # Verbatim: "/static../x" must reach nginx as written.
            connection.putrequest("GET", target, skip_accept_encoding=True)
            for name, value in (headers or {}).items():
                connection.putheader(name, value)
            connection.endheaders()
            response = connection.getresponse()
            body = response.read(BODY_LIMIT)
            found = [(name.lower(), value) for name, value in response.getheaders()]
            return Response(response.status, found, body)
        finally:
            connection.close()
