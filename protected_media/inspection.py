"""What an upload really is, decided from its bytes, never from the client's word.

Images are decoded in full and re-encoded with Pillow (dropping metadata and
anything appended after the image data); PDFs are recognised by their magic
bytes; text must be UTF-8 without controls or markup. Everything else is
refused unless the operator allowlisted its detected type.
"""

from __future__ import annotations

import codecs
import io
import warnings
from dataclasses import dataclass
from typing import Any

import filetype
from django.core.files import File
from PIL import Image, ImageOps, UnidentifiedImageError

SNIFF_BYTES = 8192

# type -> (file extension, Pillow format) for the raster images we re-encode
IMAGE_FORMATS = {
    "image/png": (".png", "PNG"),
    "image/jpeg": (".jpg", "JPEG"),
    "image/gif": (".gif", "GIF"),
    "image/webp": (".webp", "WEBP"),
}
# Markers that make a browser (or a careless viewer) treat text as a document.
# Looked for in the whole text, not only its head: a page may start after
# any amount of filler.
_MARKUP_MARKERS = (b"<!doctype", b"<html", b"<script", b"<svg", b"<?xml", b"<body", b"<iframe")
# Bytes of a marker that may end one chunk while the rest starts the next.
_MARKER_OVERLAP = max(len(marker) for marker in _MARKUP_MARKERS) - 1
_BLANK = b" \t\n\r\f"
# Every byte that may appear in plain text: all but the C0 controls (and DEL)
# other than tab, newline, carriage return and form feed.
_TEXT_BYTES = bytes(b for b in range(256) if (b >= 0x20 and b != 0x7F) or b in b"\t\n\r\f")


class UploadRefused(Exception):
    """An upload we will not store; ``status`` is the HTTP answer for it."""

    def __init__(self, reason: str, message: str, status: int) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Inspected:
    content_type: str
    extension: str
    size: int
    # Re-encoded bytes to store instead of the upload, or None to store it as sent.
    replacement: bytes | None = None


def inspect_upload(
    upload: File[Any],
    *,
    allowed_types: tuple[str, ...],
    max_size: int,
    max_image_pixels: int,
) -> Inspected:
    size = upload.size or 0
    if size > max_size:
        raise UploadRefused(
            "too_large", f"The file is larger than the limit of {_human(max_size)}.", 413
        )
    if size == 0:
        raise UploadRefused("empty", "The file is empty.", 400)
    upload.seek(0)
    head = upload.read(SNIFF_BYTES)
    upload.seek(0)

    guess = filetype.guess(head)
    detected = guess.mime if guess else None
    if detected in IMAGE_FORMATS and detected in allowed_types:
        return _reencode_image(upload, detected, max_image_pixels)
    if detected is None and "text/plain" in allowed_types and _is_plain_text(upload):
        return Inspected("text/plain", ".txt", size)
    if detected is not None and detected in allowed_types and detected not in IMAGE_FORMATS:
        return Inspected(detected, f".{guess.extension}", size)
    raise UploadRefused(
        "type_not_allowed",
        "This type of file is not allowed. Allowed: " + ", ".join(allowed_types) + ".",
        415,
    )


def _reencode_image(upload: File[Any], content_type: str, max_pixels: int) -> Inspected:
    extension, pillow_format = IMAGE_FORMATS[content_type]
    try:
        # Pillow warns (and past twice its limit, raises) on decompression
        # bombs; a warning is not a refusal unless we make it one.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(upload)
        with image:
            if image.format != pillow_format:
                raise UploadRefused("bad_image", "The image data does not match its type.", 415)
            width, height = image.size
            # Checked before decoding: a 50000x50000 PNG is a few KiB on the wire
            # and 10 GB in memory.
            if width * height > max_pixels:
                raise UploadRefused(
                    "too_many_pixels",
                    f"The image has more than {max_pixels:,} pixels.",
                    413,
                )
            animated = bool(getattr(image, "is_animated", False))
            image.load()
            decoded = image if animated else ImageOps.exif_transpose(image)
            output = io.BytesIO()
            # Pillow copies a JPEG's or a GIF's comment into the new file, and
            # a comment holds any bytes (HTML too): an empty one writes none.
            if pillow_format == "JPEG":
                if decoded.mode not in ("RGB", "L"):
                    decoded = decoded.convert("RGB")
                decoded.save(output, format="JPEG", quality=90, comment=b"")
            else:
                decoded.save(output, format=pillow_format, save_all=animated, comment=b"")
    except UploadRefused:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise UploadRefused(
            "too_many_pixels", f"The image has more than {max_pixels:,} pixels.", 413
        ) from error
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise UploadRefused("bad_image", "The image could not be decoded.", 415) from error
    finally:
        upload.seek(0)
    data = output.getvalue()
    return Inspected(content_type, extension, len(data), data)


def _is_plain_text(upload: File[Any]) -> bool:
    # Read in chunks with an incremental decoder: the limit may be large, and
    # a whole upload never needs to be in memory at once.
    decoder = codecs.getincrementaldecoder("utf-8")()
    upload.seek(0)
    tail = b""
    first: bytes | None = None  # the first byte that is not blank
    try:
        for index, chunk in enumerate(upload.chunks()):
            data = chunk.encode() if isinstance(chunk, str) else chunk
            if data.translate(None, _TEXT_BYTES):
                return False  # a control character that text does not have
            decoder.decode(data)
            window = tail + data.lower()
            if any(marker in window for marker in _MARKUP_MARKERS):
                return False
            tail = window[-_MARKER_OVERLAP:]
            if first is None:
                rest = (data.removeprefix(codecs.BOM_UTF8) if index == 0 else data).lstrip(_BLANK)
                first = rest[:1] or None
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    finally:
        upload.seek(0)
    # A document that opens with a tag is markup (XML, or HTML and SVG
    # fragments the markers miss), whatever tags it uses.
    return first != b"<"


def _human(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):g} MiB"
    if size >= 1024:
        return f"{size / 1024:g} KiB"
    return f"{size} bytes"
