"""Thumbnails of uploaded images: made once, at upload, from the re-encoded bytes.

``render`` is pure (bytes in, thumbnails out). ``store`` writes each one
beside its original through the same atomic storage and records it as a
``StoredFile`` of its own whose ``original`` is the image's record: the
gateway judges a thumbnail by its original's row (``decision.find``), and
deleting the original deletes its thumbnails (CASCADE, files after commit).
"""

from __future__ import annotations

import io
import logging
import math
import posixpath
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.files.base import ContentFile
from django.db import transaction
from PIL import Image

from .inspection.cost import thumbnail_mode
from .inspection.formats import IMAGE_FORMATS, THUMBNAIL_FORMATS
from .keys import new_key
from .names import sanitize_original_name, stored_name
from .records import StoredFile

logger = logging.getLogger("protected_media")


@dataclass(frozen=True)
class Thumbnail:
    size_px: int  # the configured size it was made for
    width: int
    height: int
    content_type: str
    extension: str
    data: bytes


def render(data: bytes, *, content_type: str, sizes: Iterable[int]) -> list[Thumbnail]:
    """One thumbnail per size smaller than the image's longest edge, that edge
    brought down to ``size`` with the aspect kept. An image that already fits
    a size gets no thumbnail for it (never upscaled, never copied): the
    original is its own thumbnail there. Raises what Pillow raises; the caller
    keeps the upload without thumbnails."""
    if content_type not in THUMBNAIL_FORMATS:
        return []
    wanted = sorted(set(sizes))
    if any(isinstance(size, bool) or not isinstance(size, int) or size < 1 for size in wanted):
        raise ValueError(f"thumbnail sizes must be ints of 1 or more, not {wanted!r}")
    thumb_type, extension, pillow_format = THUMBNAIL_FORMATS[content_type]
    source_format = IMAGE_FORMATS[content_type][1]
    thumbnails = []
    with warnings.catch_warnings():
        # The bytes passed the inspection's pixel limits already.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data), formats=[source_format]) as image:
            full_size = image.size
            wanted = [size for size in wanted if size < max(full_size)]
            box = None
            if wanted and source_format == "JPEG":
                # libjpeg decodes at 1/2, 1/4 or 1/8 scale when that still
                # covers twice the largest thumbnail, as Image.thumbnail does.
                drafted = image.draft("RGB", _fit(full_size, wanted[-1] * 2))
                box = drafted[1] if drafted is not None else None
            image.load()  # the first frame of an animation
            source = _convertible(image, pillow_format)
            for size in wanted:
                # A new picture per size, made without copying the source.
                picture = source.resize(
                    _fit(full_size, size), Image.Resampling.LANCZOS, box=box, reducing_gap=2.0
                )
                # No ICC profile, EXIF or text of the source reaches a thumbnail.
                picture.info = {}
                output = io.BytesIO()
                options: dict[str, Any] = (
                    {"quality": 85} if pillow_format in ("JPEG", "WEBP") else {}
                )
                picture.save(output, format=pillow_format, **options)
                thumbnails.append(
                    Thumbnail(
                        size,
                        picture.width,
                        picture.height,
                        thumb_type,
                        extension,
                        output.getvalue(),
                    )
                )
    return thumbnails


def _fit(size: tuple[int, int], longest: int) -> tuple[int, int]:
    # What Image.thumbnail((longest, longest)) makes: the aspect kept, the
    # side that rounds closest to it.
    width, height = size
    aspect = width / height
    if aspect >= 1:
        other = min(
            (math.floor(longest / aspect), math.ceil(longest / aspect)),
            key=lambda n: 0 if n == 0 else abs(aspect - longest / n),
        )
        return longest, max(other, 1)
    other = min(
        (math.floor(longest * aspect), math.ceil(longest * aspect)),
        key=lambda n: abs(aspect - n / longest),
    )
    return max(other, 1), longest


def _convertible(image: Image.Image, pillow_format: str) -> Image.Image:
    # Palette and other modes resample poorly (Pillow falls back to nearest
    # neighbour); JPEG has no alpha. The image itself when it needs nothing:
    # a copy of a large canvas is memory nobody budgeted. The inspection's
    # budget counts the same conversion (image_cost.thumbnail_cost).
    target = thumbnail_mode(image.mode, image.info, pillow_format)
    return image if target is None else image.convert(target)


def store(
    original: StoredFile,
    data: bytes,
    *,
    storage: Any,
    using: str,
    sizes: Iterable[int],
) -> list[StoredFile]:
    """Make, write and record the thumbnails of ``original`` (whose bytes are
    ``data``). Never raises: a thumbnail that cannot be made or stored is
    logged and left out, and no file is ever left without its record."""
    try:
        thumbnails = render(data, content_type=original.content_type, sizes=sizes)
    except Exception as error:
        logger.warning("protected_media could not make thumbnails of %s: %r", original.pk, error)
        return []
    folder = posixpath.dirname(original.name)
    stem = posixpath.splitext(original.original_name)[0] or "image"
    records = []
    for thumbnail in thumbnails:
        key = new_key()
        target = stored_name(folder=folder, key=key, extension=thumbnail.extension)
        try:
            name = storage.save(target, ContentFile(thumbnail.data))
        except Exception as error:
            # The atomic storage left nothing behind.
            logger.warning(
                "protected_media could not store a thumbnail of %s: %s", original.pk, error
            )
            break
        try:
            # A savepoint: a failure here must not break the caller's transaction.
            with transaction.atomic(using=using):
                record = StoredFile.objects.using(using).create(
                    key=key,
                    name=name,
                    source=original.source,
                    original_name=sanitize_original_name(
                        f"{stem}-{thumbnail.size_px}{thumbnail.extension}"
                    ),
                    size=len(thumbnail.data),
                    content_type=thumbnail.content_type,
                    original=original,
                    size_px=thumbnail.size_px,
                )
        except BaseException as error:
            storage.delete(name)
            if not isinstance(error, Exception):
                raise
            logger.warning(
                "protected_media could not record a thumbnail of %s: %r", original.pk, error
            )
            break
        records.append(record)
    return records


def pick(thumbnails: Iterable[StoredFile], size: int | None = None) -> StoredFile | None:
    """The smallest thumbnail made for at least ``size`` pixels (the smallest
    of all for None); None when there is none, where the original itself is
    the better picture: it fits that size, or nothing smaller is big enough."""
    ordered = sorted(thumbnails, key=lambda record: record.size_px or 0)
    wanted = 0 if size is None else size
    return next((record for record in ordered if (record.size_px or 0) >= wanted), None)
