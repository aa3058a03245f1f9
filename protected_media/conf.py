"""Lazy, typed settings: every property reads django.conf.settings on access.

Nothing is read at import time, and a value read is kept only as long as the
settings object it came from, so ``override_settings`` works everywhere.
The private root and the internal prefix are django-sendfile2's own settings
(``SENDFILE_ROOT``, ``SENDFILE_URL``), so the two libraries cannot disagree.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, TypeVar

from django.conf import settings as django_settings
from django.utils.functional import empty

NGINX_BACKEND = "django_sendfile.backends.nginx"
STREAMING_BACKEND = "protected_media.backends.streaming"
SUPPORTED_BACKENDS = (NGINX_BACKEND, STREAMING_BACKEND)

# Raster images and plain text are the only types a browser may render inline
# in our origin; everything else is an attachment (security rule 5).
DEFAULT_INLINE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "text/plain")
DEFAULT_ALLOWED_TYPES = (*DEFAULT_INLINE_TYPES, "application/pdf")

AnonymousAnswer = Literal["login", "not_found"]

# Where private files live: this machine's disk (under SENDFILE_ROOT) or a
# bucket of an S3-compatible store.
StorageName = Literal["local", "s3"]
LOCAL_STORAGE: StorageName = "local"
S3_STORAGE: StorageName = "s3"
SUPPORTED_STORAGES = (LOCAL_STORAGE, S3_STORAGE)
DEFAULT_S3_REGION = "us-east-1"
# Seconds a presigned URL lives: nginx fetches it at once, so a minute is
# ample and clock skew between the app and the store stays covered.
DEFAULT_S3_URL_LIFETIME = 60
DEFAULT_S3_INTERNAL_URL = "/_protected_store/"

DEFAULT_SHARE_LIFETIME = timedelta(days=7)
DEFAULT_SHARE_MAX_LIFETIME = timedelta(days=30)

# nginx's limits per client address. A page with a grid of a hundred
# thumbnails asks for them all at once: the media burst covers two of those.
DEFAULT_MEDIA_RATE = "30r/s"
DEFAULT_MEDIA_BURST = 200
DEFAULT_MEDIA_CONNECTIONS = 64
DEFAULT_UPLOAD_RATE = "2r/s"
DEFAULT_UPLOAD_BURST = 10
DEFAULT_UPLOAD_CONNECTIONS = 4

# The longest edge, in pixels, of each thumbnail made for an uploaded image.
DEFAULT_THUMBNAIL_SIZES = (256,)

# The cost of inspecting one image; see docs/uploads.md, "What an upload can cost".
DEFAULT_MAX_FRAMES = 200
DEFAULT_MAX_PROCESSED_PIXELS = 100_000_000
DEFAULT_MAX_JPEG_SCANS = 50
DEFAULT_MAX_IMAGE_METADATA = 2 * 1024 * 1024


# The values read so far, with the settings object they were read from.
# override_settings (and pytest-django's ``settings``) put a new settings
# object in place for each change, so a value is kept exactly as long as the
# settings it came from. A media request reads a dozen of these, most of them
# names a site leaves unset: through Django's settings proxy, each such read
# raises and catches an AttributeError. (Django's own caches make the same
# bargain: settings change through override_settings, not by assignment.)
_NOT_READ = object()
_UNSET = object()
T = TypeVar("T")
_read: tuple[object, dict[str, Any]] = (empty, {})


def _setting(name: str, default: T) -> Any | T:
    global _read
    # LazySettings keeps the settings object it stands for here.
    current = django_settings._wrapped  # type: ignore[misc]  # untyped in the stubs
    if current is empty:
        # Not configured yet: the proxy's read sets them up (or says why not).
        return getattr(django_settings, name, default)
    read_from, values = _read
    if read_from is not current:
        values = {}
        _read = (current, values)
    value = values.get(name, _NOT_READ)
    if value is _NOT_READ:
        value = values[name] = getattr(current, name, _UNSET)
    return default if value is _UNSET else value


# Every handoff reads the root, and making a Path costs more than the rest of
# reading the setting; a Path never changes once made.
_path = lru_cache(maxsize=8)(Path)


class Settings:
    @property
    def root(self) -> Path | None:
        value = _setting("SENDFILE_ROOT", None)
        return _path(value) if value else None

    @property
    def internal_url(self) -> str | None:
        return _setting("SENDFILE_URL", None)

    @property
    def backend(self) -> str:
        return _setting("SENDFILE_BACKEND", None) or NGINX_BACKEND

    @property
    def url(self) -> str:
        return _setting("PROTECTED_MEDIA_URL", "/media/")

    @property
    def anonymous(self) -> AnonymousAnswer:
        return _setting("PROTECTED_MEDIA_ANONYMOUS", "login")

    @property
    def allow_staff(self) -> bool:
        return bool(_setting("PROTECTED_MEDIA_ALLOW_STAFF", False))

    @property
    def policy(self) -> str | None:
        return _setting("PROTECTED_MEDIA_POLICY", None)

    @property
    def max_upload_size(self) -> int:
        return int(_setting("PROTECTED_MEDIA_MAX_UPLOAD_SIZE", 10 * 1024 * 1024))

    @property
    def max_image_pixels(self) -> int:
        return int(_setting("PROTECTED_MEDIA_MAX_IMAGE_PIXELS", 40_000_000))

    # What inspecting one image may cost (security rule 7). Returned as set:
    # checks.py refuses anything but ints of 1 or more.

    @property
    def max_image_frames(self) -> int:
        """Frames of an animated image, counted before any is decoded."""
        return _setting("PROTECTED_MEDIA_MAX_IMAGE_FRAMES", DEFAULT_MAX_FRAMES)

    @property
    def max_processed_pixels(self) -> int:
        """Pixels decoded and encoded for one upload: every frame, the
        re-encode and the thumbnails, each frame on its full canvas; counted
        as RGB pixels, weighed by mode and format (``image_cost``)."""
        return _setting("PROTECTED_MEDIA_MAX_PROCESSED_PIXELS", DEFAULT_MAX_PROCESSED_PIXELS)

    @property
    def max_jpeg_scans(self) -> int:
        """Scans of a progressive JPEG: the decoder passes over the image once per scan."""
        return _setting("PROTECTED_MEDIA_MAX_JPEG_SCANS", DEFAULT_MAX_JPEG_SCANS)

    @property
    def max_image_metadata(self) -> int:
        """Bytes of an image's metadata once inflated (text, ICC, EXIF, XMP,
        comments), plus the framing of its chunks, blocks or segments."""
        return _setting("PROTECTED_MEDIA_MAX_IMAGE_METADATA", DEFAULT_MAX_IMAGE_METADATA)

    @property
    def allowed_types(self) -> tuple[str, ...]:
        return tuple(_setting("PROTECTED_MEDIA_ALLOWED_TYPES", DEFAULT_ALLOWED_TYPES))

    @property
    def inline_types(self) -> tuple[str, ...]:
        return tuple(_setting("PROTECTED_MEDIA_INLINE_TYPES", DEFAULT_INLINE_TYPES))

    @property
    def fast_path(self) -> bool:
        """Whether ``protected_media.asgi.ProtectedMediaASGI`` answers media
        requests itself (True) or passes them to Django like any other."""
        return bool(_setting("PROTECTED_MEDIA_FAST_PATH", True))

    @property
    def fast_path_lean(self) -> bool:
        """Whether the entry point answers a file granted to its owner without
        building Django's request (``protected_media.fastpath.lean``)."""
        return bool(_setting("PROTECTED_MEDIA_FAST_PATH_LEAN", True))

    @property
    def fast_path_threads(self) -> int:
        """Threads (each with its own database connection) that run the fast
        path's blocking work, per process."""
        return int(_setting("PROTECTED_MEDIA_FAST_PATH_THREADS", 4))

    @property
    def fast_path_conn_max_age(self) -> float:
        """Seconds a fast-path thread keeps its database connection (the
        threads live as long as the process; ``CONN_MAX_AGE`` stays 0 under
        ASGI for Django's own per-request threads)."""
        return float(_setting("PROTECTED_MEDIA_FAST_PATH_CONN_MAX_AGE", 300))

    @property
    def fast_path_sqlite_busy_ms(self) -> int | None:
        """Milliseconds a read on the event loop waits for a SQLite writer
        before the request goes to the threads; None: never read on the loop.
        Returned as set: checks.py refuses anything but None or an int of 0
        or more."""
        return _setting("PROTECTED_MEDIA_FAST_PATH_SQLITE_BUSY_MS", 5)

    @property
    def fast_path_postgres_connections(self) -> int | None:
        """Connections of the pool the entry point reads PostgreSQL through
        on the event loop, per process; None: never read on the loop.
        Returned as set: checks.py refuses anything but None or an int of 1
        or more."""
        return _setting("PROTECTED_MEDIA_FAST_PATH_POSTGRES_CONNECTIONS", 4)

    @property
    def share_lifetime(self) -> timedelta:
        """How long a share link lives when its creator does not say."""
        return _duration(_setting("PROTECTED_MEDIA_SHARE_LIFETIME", DEFAULT_SHARE_LIFETIME))

    @property
    def share_max_lifetime(self) -> timedelta:
        """The longest lifetime a share link may be given."""
        return _duration(_setting("PROTECTED_MEDIA_SHARE_MAX_LIFETIME", DEFAULT_SHARE_MAX_LIFETIME))

    # nginx's rate and connection limits per client address, rendered into its
    # config; None turns one off. Returned as set: checks.py refuses a wrong type.

    @property
    def media_rate(self) -> str | None:
        """Media requests (``limit_req``), an nginx rate such as "30r/s"."""
        return _setting("PROTECTED_MEDIA_MEDIA_RATE", DEFAULT_MEDIA_RATE)

    @property
    def media_burst(self) -> int:
        """Media requests answered at once beyond the rate."""
        return _setting("PROTECTED_MEDIA_MEDIA_BURST", DEFAULT_MEDIA_BURST)

    @property
    def media_connections(self) -> int | None:
        """Media requests at once (``limit_conn``), downloads included."""
        return _setting("PROTECTED_MEDIA_MEDIA_CONNECTIONS", DEFAULT_MEDIA_CONNECTIONS)

    @property
    def upload_rate(self) -> str | None:
        """POST, PUT, PATCH and DELETE requests outside the media and static URLs."""
        return _setting("PROTECTED_MEDIA_UPLOAD_RATE", DEFAULT_UPLOAD_RATE)

    @property
    def upload_burst(self) -> int:
        return _setting("PROTECTED_MEDIA_UPLOAD_BURST", DEFAULT_UPLOAD_BURST)

    @property
    def upload_connections(self) -> int | None:
        return _setting("PROTECTED_MEDIA_UPLOAD_CONNECTIONS", DEFAULT_UPLOAD_CONNECTIONS)

    @property
    def metrics_url(self) -> str | None:
        """Where ``protected_media.ops.metrics.view`` is mounted; the rendered
        nginx config lets only loopback reach it, and setting it turns the
        counting on (``apps.ready``). None: no metrics location, no counting."""
        return _setting("PROTECTED_MEDIA_METRICS_URL", None)

    @property
    def thumbnail_sizes(self) -> tuple[int, ...]:
        """The longest edge of each thumbnail made for an uploaded image; empty
        for none. Returned as set: checks.py refuses anything but ints of 1 or more."""
        value = _setting("PROTECTED_MEDIA_THUMBNAIL_SIZES", DEFAULT_THUMBNAIL_SIZES)
        return tuple(value) if isinstance(value, (list, tuple)) else value

    @property
    def cache_control(self) -> str:
        return _setting("PROTECTED_MEDIA_CACHE_CONTROL", "private, no-store")

    # The store of private files. The S3 settings are read only when "s3" is
    # selected, and returned as set: checks.py refuses a missing or wrong one.

    @property
    def storage(self) -> StorageName:
        """ "local" (files under SENDFILE_ROOT) or "s3" (a bucket)."""
        return _setting("PROTECTED_MEDIA_STORAGE", LOCAL_STORAGE)

    @property
    def s3_endpoint_url(self) -> str | None:
        """The store's address, such as "https://s3.eu-west-1.amazonaws.com"."""
        return _setting("PROTECTED_MEDIA_S3_ENDPOINT_URL", None)

    @property
    def s3_bucket(self) -> str | None:
        return _setting("PROTECTED_MEDIA_S3_BUCKET", None)

    @property
    def s3_access_key_id(self) -> str | None:
        return _setting("PROTECTED_MEDIA_S3_ACCESS_KEY_ID", None)

    @property
    def s3_secret_access_key(self) -> str | None:
        return _setting("PROTECTED_MEDIA_S3_SECRET_ACCESS_KEY", None)

    @property
    def s3_region(self) -> str:
        return _setting("PROTECTED_MEDIA_S3_REGION", DEFAULT_S3_REGION)

    @property
    def s3_url_lifetime(self) -> int:
        """Seconds a presigned URL, handed to nginx, stays valid."""
        return _setting("PROTECTED_MEDIA_S3_URL_LIFETIME", DEFAULT_S3_URL_LIFETIME)

    @property
    def s3_internal_url(self) -> str:
        """The internal nginx location that proxies to the store, as
        SENDFILE_URL is the one that reads the local disk."""
        return _setting("PROTECTED_MEDIA_S3_INTERNAL_URL", DEFAULT_S3_INTERNAL_URL)


def _duration(value: timedelta | float) -> timedelta:
    # A timedelta, or seconds as a number.
    return value if isinstance(value, timedelta) else timedelta(seconds=float(value))


conf = Settings()
