"""System checks of the limits: nginx's rate and connection limits,
thumbnail sizes, what inspecting one image may cost, and the entry point's
reads on the event loop. Registered with the others by ``checks.register``; each id is
documented in docs/settings.md.
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error

from .conf import conf
from .nginx.rules import LIMIT_RULES


def check_rate_limits(**kwargs: Any) -> list[CheckMessage]:
    # Each is written into the nginx config: a wrong one would make
    # protected_media_nginx refuse to write it, or nginx refuse to start.
    values = {
        "PROTECTED_MEDIA_MEDIA_RATE": conf.media_rate,
        "PROTECTED_MEDIA_MEDIA_BURST": conf.media_burst,
        "PROTECTED_MEDIA_MEDIA_CONNECTIONS": conf.media_connections,
        "PROTECTED_MEDIA_UPLOAD_RATE": conf.upload_rate,
        "PROTECTED_MEDIA_UPLOAD_BURST": conf.upload_burst,
        "PROTECTED_MEDIA_UPLOAD_CONNECTIONS": conf.upload_connections,
    }
    errors: list[CheckMessage] = []
    for setting, value in values.items():
        rule = LIMIT_RULES[setting.rsplit("_", 1)[1].lower()]
        if not rule.valid(value):
            errors.append(
                Error(
                    f"{setting} {value!r} cannot be written into the nginx config.",
                    hint=rule.hint,
                    id="protected_media.E014",
                )
            )
    return errors


def check_thumbnails(**kwargs: Any) -> list[CheckMessage]:
    sizes: object = conf.thumbnail_sizes
    if isinstance(sizes, tuple) and all(_is_int(size, 1) for size in sizes):
        return []
    return [
        Error(
            f"PROTECTED_MEDIA_THUMBNAIL_SIZES {sizes!r} must be a tuple of ints, 1 or more.",
            hint="The longest edge of each thumbnail in pixels, such as (256,); () for none.",
            id="protected_media.E015",
        )
    ]


# setting -> (id, what one unit is): the cost of inspecting one image.
_IMAGE_LIMITS = {
    "PROTECTED_MEDIA_MAX_IMAGE_FRAMES": ("E017", "frames of an animation, such as 200"),
    "PROTECTED_MEDIA_MAX_PROCESSED_PIXELS": (
        "E018",
        "RGB-pixel equivalents decoded and encoded for one upload, such as 100000000",
    ),
    "PROTECTED_MEDIA_MAX_JPEG_SCANS": ("E019", "scans of a progressive JPEG, such as 50"),
    "PROTECTED_MEDIA_MAX_IMAGE_METADATA": ("E020", "bytes of metadata, such as 2097152"),
}


def check_image_limits(**kwargs: Any) -> list[CheckMessage]:
    values = {
        "PROTECTED_MEDIA_MAX_IMAGE_FRAMES": conf.max_image_frames,
        "PROTECTED_MEDIA_MAX_PROCESSED_PIXELS": conf.max_processed_pixels,
        "PROTECTED_MEDIA_MAX_JPEG_SCANS": conf.max_jpeg_scans,
        "PROTECTED_MEDIA_MAX_IMAGE_METADATA": conf.max_image_metadata,
    }
    errors: list[CheckMessage] = []
    for setting, value in values.items():
        if not _is_int(value, 1):
            check_id, unit = _IMAGE_LIMITS[setting]
            errors.append(
                Error(
                    f"{setting} {value!r} must be an int, 1 or more.",
                    hint=f"The most {unit}; an upload over it is refused with 413.",
                    id=f"protected_media.{check_id}",
                )
            )
    return errors


def check_fast_path_busy(**kwargs: Any) -> list[CheckMessage]:
    value = conf.fast_path_sqlite_busy_ms
    if value is None or _is_int(value, 0):
        return []
    return [
        Error(
            f"PROTECTED_MEDIA_FAST_PATH_SQLITE_BUSY_MS {value!r} "
            "must be None or an int, 0 or more.",
            hint="Milliseconds the event loop may wait for a SQLite writer, such as 5; "
            "None reads in the threads only.",
            id="protected_media.E026",
        )
    ]


def check_fast_path_postgres_connections(**kwargs: Any) -> list[CheckMessage]:
    value = conf.fast_path_postgres_connections
    if value is None or _is_int(value, 1):
        return []
    return [
        Error(
            f"PROTECTED_MEDIA_FAST_PATH_POSTGRES_CONNECTIONS {value!r} "
            "must be None or an int, 1 or more.",
            hint="Connections per process the event loop reads PostgreSQL through, such as 4; "
            "None reads in the threads only.",
            id="protected_media.E028",
        )
    ]


def _is_int(value: object, minimum: int) -> bool:
    # bool is an int to Python, not to nginx.
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum
