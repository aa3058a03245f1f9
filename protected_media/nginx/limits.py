"""The rate and connection limits of the rendered nginx config (pure): per
client address, for media requests and for writes, answered by a short 429
with ``Retry-After``. ``templates/site.conf`` places them."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from .rules import LIMIT_RULES

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
        for field in fields(self):
            value = getattr(self, field.name)
            rule = LIMIT_RULES[field.name]
            if not rule.valid(value):
                raise ValueError(
                    f"{name} {field.name} {value!r} cannot be written into an nginx config. "
                    f"{rule.hint}"
                )

    @property
    def active(self) -> bool:
        return bool(self.rate or self.connections)

    def retry_after(self) -> int:
        """Seconds until the zone lets one more request in (1 without a rate)."""
        if self.rate is None:
            return 1
        count, unit = self.rate.split("r/")
        return max(1, math.ceil((60 if unit == "m" else 1) / int(count)))


def limits_context(media: Limits, upload: Limits) -> dict[str, object]:
    """What the site template needs to place the limits."""
    media.validate("media")
    upload.validate("upload")
    return {
        "media": media,
        "upload": upload,
        "limited": media.active or upload.active,
        "any_rate": bool(media.rate or upload.rate),
        "any_connections": bool(media.connections or upload.connections),
        # Long enough for the slower zone to let one more request in.
        "retry_after": max(media.retry_after(), upload.retry_after()),
        "zone_size": ZONE_SIZE,
        "write_methods": WRITE_METHODS,
    }
