"""The rate and connection limits of the rendered nginx config (pure): per
client address, for media requests and for writes, answered by a short 429
with ``Retry-After``. ``nginx.render_site`` places the lines it returns."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# An nginx rate: requests per second or per minute; nginx refuses "0r/s".
RATE_RE = re.compile(r"[1-9][0-9]*r/[sm]")
# Methods that write: the only ones the upload zones count, in "location /".
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
# Shared memory per zone: about 16,000 client addresses per megabyte.
ZONE_SIZE = "10m"


@dataclass(frozen=True)
class Limits:
    """Per client address: ``rate`` ("30r/s") with ``burst`` requests beyond
    it, and ``connections`` at once. None turns a limit off."""

    rate: str | None = None
    burst: int = 1
    connections: int | None = None

    def validate(self, name: str) -> None:
        if self.rate is not None and not (
            isinstance(self.rate, str) and RATE_RE.fullmatch(self.rate)
        ):
            raise ValueError(f"{name} rate {self.rate!r} is not an nginx rate such as '30r/s'")
        # nginx refuses "burst=0" as it refuses "0r/s" and 0 connections.
        if not _is_int(self.burst) or self.burst < 1:
            raise ValueError(f"{name} burst {self.burst!r} must be a positive int")
        if self.connections is not None and (not _is_int(self.connections) or self.connections < 1):
            raise ValueError(f"{name} connections {self.connections!r} must be a positive int")

    def retry_after(self) -> int:
        """Seconds until the zone lets one more request in (1 without a rate)."""
        if self.rate is None:
            return 1
        count, unit = self.rate.split("r/")
        return max(1, math.ceil((60 if unit == "m" else 1) / int(count)))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class LimitLines:
    media: str = ""
    upload: str = ""
    server: str = ""
    named_location: str = ""
    http: str = ""


def render_limits(media: Limits, upload: Limits) -> LimitLines:
    media.validate("media")
    upload.validate("upload")
    if not any((media.rate, media.connections, upload.rate, upload.connections)):
        return LimitLines()
    zones = []
    media_lines = [
        "        # Per client address (PROTECTED_MEDIA_MEDIA_*), once per request: the",
        "        # file nginx then sends from the internal location is the same request.",
    ]
    if media.rate:
        zones.append(
            f"limit_req_zone $binary_remote_addr zone=protected_media_media:{ZONE_SIZE} "
            f"rate={media.rate};"
        )
        media_lines.append(
            f"        limit_req zone=protected_media_media burst={media.burst} nodelay;"
        )
    if media.connections:
        zones.append(
            f"limit_conn_zone $binary_remote_addr zone=protected_media_media_conn:{ZONE_SIZE};"
        )
        media_lines.append(f"        limit_conn protected_media_media_conn {media.connections};")
    upload_lines = [
        "        # Uploads and other writes per client address (PROTECTED_MEDIA_UPLOAD_*);",
        "        # other methods have an empty key, which nginx does not count.",
    ]
    if upload.rate:
        zones.append(
            "limit_req_zone $protected_media_upload_client "
            f"zone=protected_media_upload:{ZONE_SIZE} rate={upload.rate};"
        )
        upload_lines.append(
            f"        limit_req zone=protected_media_upload burst={upload.burst} nodelay;"
        )
    if upload.connections:
        zones.append(
            "limit_conn_zone $protected_media_upload_client "
            f"zone=protected_media_upload_conn:{ZONE_SIZE};"
        )
        upload_lines.append(f"        limit_conn protected_media_upload_conn {upload.connections};")
    server = [
        "    # Over a rate or connection limit: a short text 429 saying when to come",
        "    # back, not nginx's default 503.",
    ]
    if media.rate or upload.rate:
        server.append("    limit_req_status 429;")
    if media.connections or upload.connections:
        server.append("    limit_conn_status 429;")
    server.append("    error_page 429 @protected_media_too_many;")
    # Long enough for the slower zone to let one more request in.
    retry_after = max(media.retry_after(), upload.retry_after())
    named_location = f"""
    location @protected_media_too_many {{
        default_type "text/plain; charset=utf-8";
        add_header Cache-Control "no-store" always;
        add_header Retry-After "{retry_after}" always;
        return 429 "Too Many Requests: slow down and try again shortly.\\n";
    }}
"""
    http = [
        "",
        "# The zones of the limits above, keyed by client address. http context:",
        "# nginx resolves zone names and variables once it has read the whole config.",
    ]
    if upload.rate or upload.connections:
        http += [
            "map $request_method $protected_media_upload_client {",
            *(f"    {method} $binary_remote_addr;" for method in WRITE_METHODS),
            '    default "";',
            "}",
        ]
    http += zones

    def block(lines: list[str]) -> str:
        return "".join(f"{line}\n" for line in lines)

    return LimitLines(
        media=block(media_lines) if media.rate or media.connections else "",
        upload=block(upload_lines) if upload.rate or upload.connections else "",
        server=block(server),
        named_location=named_location,
        http=block(http),
    )
