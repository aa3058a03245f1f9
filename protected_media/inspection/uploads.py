"""What an upload really is, decided from its bytes, never from the client's word.

Images are decoded in full and re-encoded with Pillow (dropping metadata and
anything appended after the image data), within a budget of frames and
pixels (weighed by mode and format, ``image_cost``) charged before each
step; PDFs are recognised by their magic bytes; text must be UTF-8 without
controls or markup. Everything else is refused unless the operator
allowlisted its detected type. Refusals name kinds of files as people do
(``kinds``), never by MIME type.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import filetype
from django.core.files import File
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from ..conf import (
    DEFAULT_MAX_FRAMES,
    DEFAULT_MAX_IMAGE_METADATA,
    DEFAULT_MAX_JPEG_SCANS,
    DEFAULT_MAX_PROCESSED_PIXELS,
)
from ..disconnects import CLIENT_GONE_STATUS, client_gone
from .cost import frame_cost, rgb_pixels, stored_mode, thumbnail_cost
from .formats import IMAGE_FORMATS
from .kinds import TEXT_REFUSALS, not_accepted
from .plain_text import text_fault
from .survey import Limits, Survey, survey

SNIFF_BYTES = 8192


class UploadRefused(Exception):
    """An upload we will not store; ``status`` is the HTTP answer for it, and
    ``retry_after`` the seconds to send with it when trying again later may
    succeed (a 503)."""

    def __init__(
        self, reason: str, message: str, status: int, *, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True)
class Inspected:
    content_type: str
    extension: str
    size: int
    # Re-encoded bytes to store instead of the upload, or None to store it as sent.
    replacement: bytes | None = None
    # Pixels decoded and encoded to make ``replacement`` and the thumbnails
    # (reserved for them): never more than the limit.
    processed_pixels: int = 0


@dataclass(frozen=True)
class ImageLimits:
    """What inspecting one image may cost (settings of the same names)."""

    max_image_pixels: int  # the canvas
    max_frames: int = DEFAULT_MAX_FRAMES
    max_processed_pixels: int = DEFAULT_MAX_PROCESSED_PIXELS  # all frames and thumbnails
    max_jpeg_scans: int = DEFAULT_MAX_JPEG_SCANS
    max_metadata: int = DEFAULT_MAX_IMAGE_METADATA
    thumbnail_sizes: tuple[int, ...] = ()


def inspect_upload(
    upload: File[Any],
    *,
    allowed_types: tuple[str, ...],
    max_size: int,
    max_image_pixels: int,
    max_frames: int = DEFAULT_MAX_FRAMES,
    max_processed_pixels: int = DEFAULT_MAX_PROCESSED_PIXELS,
    max_jpeg_scans: int = DEFAULT_MAX_JPEG_SCANS,
    max_metadata: int = DEFAULT_MAX_IMAGE_METADATA,
    thumbnail_sizes: tuple[int, ...] = (),
) -> Inspected:
    size = upload.size or 0
    if size > max_size:
        raise UploadRefused(
            "too_large", f"The file is larger than the limit of {human_size(max_size)}.", 413
        )
    if size == 0:
        raise UploadRefused("empty", "The file is empty.", 400)
    upload.seek(0)
    head = upload.read(SNIFF_BYTES)
    upload.seek(0)

    guess = filetype.guess(head)
    detected = guess.mime if guess else None
    if detected in IMAGE_FORMATS and detected in allowed_types:
        limits = ImageLimits(
            max_image_pixels,
            max_frames,
            max_processed_pixels,
            max_jpeg_scans,
            max_metadata,
            tuple(thumbnail_sizes),
        )
        try:
            return reencode_image(upload, detected, limits)
        finally:
            upload.seek(0)
    if detected is None and "text/plain" in allowed_types:
        fault = text_fault(upload)
        if fault is None:
            return Inspected("text/plain", ".txt", size)
        if fault in TEXT_REFUSALS:
            # Text, refused for what is in it: saying "not allowed" to a
            # .txt when text is allowed would contradict the list.
            reason, message = TEXT_REFUSALS[fault]
            raise UploadRefused(reason, message, 415)
    if detected is not None and detected in allowed_types and detected not in IMAGE_FORMATS:
        return Inspected(detected, f".{guess.extension}", size)
    raise UploadRefused("type_not_allowed", not_accepted(detected, allowed_types), 415)


def raise_if_client_gone() -> None:
    """Refuse an upload whose client hung up (``disconnects``): its work
    stops at the next frame, and nothing is written after it."""
    if client_gone():
        raise UploadRefused(
            "client_gone", "The client went away; nothing was stored.", CLIENT_GONE_STATUS
        )


_ENCODER_OPTIONS: dict[str, dict[str, Any]] = {"JPEG": {"quality": 90}, "WEBP": {"method": 1}}


class _Meter:
    """Pixels spent (RGB-pixel equivalents, ``image_cost``), charged before
    the work that spends them."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.spent = 0

    def charge(self, pixels: int) -> None:
        raise_if_client_gone()
        if self.spent + pixels > self.limit:
            raise UploadRefused(
                "too_much_work",
                f"Processing this image (all its frames and thumbnails) would take more "
                f"than {self.limit:,} pixels.",
                413,
            )
        self.spent += pixels


def reencode_image(upload: File[Any], content_type: str, limits: ImageLimits) -> Inspected:
    extension, pillow_format = IMAGE_FORMATS[content_type]
    upload.seek(0)
    data = upload.read()
    found = survey(
        data, pillow_format, Limits(limits.max_frames, limits.max_jpeg_scans, limits.max_metadata)
    )
    if found.frames > limits.max_frames:
        raise UploadRefused(
            "too_many_frames", f"The image has more than {limits.max_frames:,} frames.", 413
        )
    if found.scans > limits.max_jpeg_scans:
        raise UploadRefused(
            "too_many_scans", f"The JPEG has more than {limits.max_jpeg_scans:,} scans.", 413
        )
    if found.metadata > limits.max_metadata:
        raise UploadRefused(
            "too_much_metadata",
            f"The image carries more than {human_size(limits.max_metadata)} of metadata.",
            413,
        )
    too_many_pixels = UploadRefused(
        "too_many_pixels", f"The image has more than {limits.max_image_pixels:,} pixels.", 413
    )
    try:
        # Pillow warns (and past twice its limit, raises) on decompression
        # bombs; a warning is not a refusal unless we make it one. Only the
        # detected format's plugin may open the bytes.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[pillow_format])
        with image:
            if image.format != pillow_format:
                raise UploadRefused("bad_image", "The image data does not match its type.", 415)
            # Checked before decoding: a 50000x50000 PNG is a few KiB on the wire
            # and 10 GB in memory.
            if image.width * image.height > limits.max_image_pixels:
                raise too_many_pixels
            output, spent = _reencode(image, pillow_format, found, limits)
    except UploadRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise too_many_pixels from error
    except (UnidentifiedImageError, OSError, ValueError, EOFError) as error:
        raise UploadRefused("bad_image", "The image could not be decoded.", 415) from error
    raise_if_client_gone()
    return Inspected(content_type, extension, len(output), output, spent)


def _reencode(
    image: Image.Image, pillow_format: str, found: Survey, limits: ImageLimits
) -> tuple[bytes, int]:
    canvas = image.width * image.height
    animated = found.frames > 1 and bool(getattr(image, "is_animated", False))
    frames = min(found.frames, limits.max_frames) if animated else 1
    per_frame = frame_cost(canvas, image.mode, pillow_format, animated=animated, scans=found.scans)
    # JPEG has no alpha and no palette: such a picture is converted to RGB first.
    converts = pillow_format == "JPEG" and image.mode not in ("RGB", "L")
    conversion = rgb_pixels(canvas, "RGB") if converts else 0
    sizes = [size for size in limits.thumbnail_sizes if size < max(image.size)]
    meter = _Meter(limits.max_processed_pixels)
    # The whole plan is charged before the first pixel is decoded, the
    # thumbnails for the widest mode the output may be read back in; then
    # each step is charged again as it comes, should Pillow find other
    # frames, and the thumbnails by the output's real mode.
    # (A PNG's EXIF may follow its pixels, so turning by it is charged later.)
    planned = thumbnail_cost(
        canvas,
        stored_mode(image.mode, pillow_format, animated=animated),
        image.info,
        pillow_format,
        sizes,
    )
    meter.charge(frames * per_frame + conversion + planned)
    meter.spent = 0
    output = io.BytesIO()
    if not animated:
        meter.charge(per_frame)
        image.load()
        if image.getexif().get(ExifTags.Base.Orientation, 1) != 1:
            meter.charge(rgb_pixels(canvas, image.mode))  # a turned copy of the canvas
            ImageOps.exif_transpose(image, in_place=True)
        picture = _stripped(image, image)
        if pillow_format == "JPEG" and picture.mode not in ("RGB", "L"):
            meter.charge(rgb_pixels(canvas, "RGB"))
            picture = picture.convert("RGB")
        # Pillow copies a JPEG's or a GIF's comment into the new file, and a
        # comment holds any bytes (HTML too): an empty one writes none.
        options = dict(_ENCODER_OPTIONS.get(pillow_format, {}))
        picture.save(output, format=pillow_format, comment=b"", **options)
    else:
        _save_animation(image, pillow_format, frames, per_frame, meter, output)
    stored = output.getvalue()
    if sizes:
        with Image.open(io.BytesIO(stored), formats=[pillow_format]) as written:
            meter.charge(thumbnail_cost(canvas, written.mode, written.info, pillow_format, sizes))
    return stored, meter.spent


def _save_animation(
    image: Image.Image,
    pillow_format: str,
    frames: int,
    per_frame: int,
    meter: _Meter,
    output: io.BytesIO,
) -> None:
    sequence = _frames(image, frames, per_frame, meter)
    first = next(sequence, None)
    if first is None:
        raise UploadRefused("bad_image", "The image could not be decoded.", 415)
    # Pillow's writers walk the frames more than once (PNG's for their modes,
    # WebP's for durations): a list, whose memory the budget bounds.
    rest = list(sequence)
    options = dict(_ENCODER_OPTIONS.get(pillow_format, {}))
    if "loop" in image.info:
        options["loop"] = image.info["loop"]
    if pillow_format == "WEBP":
        options["duration"] = [frame.info.get("duration", 0) for frame in (first, *rest)]
    first.save(
        output, format=pillow_format, save_all=True, append_images=rest, comment=b"", **options
    )


def _frames(
    image: Image.Image, frames: int, per_frame: int, meter: _Meter
) -> Iterator[Image.Image]:
    # Seek frame by frame, charging each before Pillow decodes it: GIF, APNG
    # and WebP frames are composed on the full canvas, however small they are.
    for index in range(frames):
        meter.charge(per_frame)  # decoding it, and encoding it
        try:
            image.seek(index)
        except EOFError:
            return
        image.load()
        yield _stripped(image, image.copy())


def _stripped(source: Image.Image, picture: Image.Image) -> Image.Image:
    # Nothing of the upload's metadata reaches the output: no ICC profile,
    # EXIF, XMP, text chunk or comment. Only what draws the pixels is kept.
    kept = ("transparency", "duration")
    picture.info = {key: source.info[key] for key in kept if key in source.info}
    return picture


def human_size(size: int) -> str:
    """A size as people read it: "10 MiB", "64 KiB", "900 bytes"."""
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):g} MiB"
    if size >= 1024:
        return f"{size / 1024:g} KiB"
    return f"{size} bytes"
