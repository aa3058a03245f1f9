"""What decoding, re-encoding and thumbnailing an image costs, in pixels.

The budget (``PROTECTED_MEDIA_MAX_PROCESSED_PIXELS``) counts RGB-pixel
equivalents: one pixel of an RGB image decoded once. A pixel of another mode
counts its bytes next to RGB's three (an RGBA pixel 4/3, a grey one 1/3), and
each step counts the weight of the format's decoder and encoder, measured on
the hardest inputs (``bench/crafted_uploads.py``; docs/uploads.md,
"What an upload can cost"). Every figure is rounded up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .formats import THUMBNAIL_PILLOW_FORMAT

RGB_BYTES = 3
WIDEST = "RGBA"

# Bytes of one decoded pixel as Pillow holds it, RGB counted as its three
# bytes of colour. LA and PA are held in four bytes, as RGBA is, and cost as
# much to encode. A mode not named here counts as the widest.
MODE_BYTES = {
    "1": 1,
    "L": 1,
    "P": 1,
    "I;16": 2,
    "I;16L": 2,
    "I;16B": 2,
    "I;16N": 2,
    "RGB": 3,
    "YCbCr": 3,
    "LAB": 3,
    "HSV": 3,
}

# Decoding one frame and encoding it again, per pixel. Fitted so that at the
# default budget the costliest still or animation of each format stays within
# 2 s of CPU and 256 MiB (per RGB-sized megapixel, round trip and thumbnail):
# PNG's zlib encoder costs the most CPU (0.10 s for RGBA); libwebp the most
# memory (24.5 MiB for RGBA: its decoder holds three canvases, its encoder
# about 9 bytes a pixel); GIF's writer quantizes; JPEG's codec is cheapest.
FORMAT_WEIGHT = {"PNG": 5, "JPEG": 2, "WEBP": 9, "GIF": 5}
# A JPEG of more than one scan (progressive, or scans per component) is
# decoded through a buffer of every coefficient of the image: two bytes a
# sample, and a pass over it per scan.
MULTI_SCAN_WEIGHT = 2


def mode_bytes(mode: str) -> int:
    return MODE_BYTES.get(mode, 4)


def rgb_pixels(pixels: int, mode: str, weight: int = 1) -> int:
    """``pixels`` of ``mode``, each ``weight`` times, in RGB-pixel equivalents."""
    return -(-pixels * mode_bytes(mode) * weight // RGB_BYTES)


def frame_cost(canvas: int, mode: str, pillow_format: str, *, animated: bool, scans: int) -> int:
    """Decoding one frame on the full canvas and encoding it again. Pillow
    composes the later frames of an animation in RGB or RGBA whatever the
    first frame's mode: every frame counts as RGBA."""
    weight = FORMAT_WEIGHT[pillow_format] + (MULTI_SCAN_WEIGHT if scans > 1 else 0)
    return rgb_pixels(canvas, WIDEST if animated else mode, weight)


def thumbnail_mode(mode: str, info: Mapping[Any, Any], thumb_format: str) -> str | None:
    """The mode a thumbnail's source is converted to first, None for none:
    palette and other modes resample poorly, and JPEG has no alpha."""
    if thumb_format == "JPEG":
        return None if mode in ("L", "RGB") else ("L" if mode == "LA" else "RGB")
    if mode in ("RGB", "RGBA", "L", "LA"):
        return None
    return "RGBA" if "A" in mode or "transparency" in info else "RGB"


def thumbnail_cost(
    canvas: int, mode: str, info: Mapping[Any, Any], pillow_format: str, sizes: list[int]
) -> int:
    """Making the thumbnails of ``sizes`` from a stored image of ``mode``: its
    first frame decoded once more (in full: a JPEG's reduced decode is not
    counted on), converted if it must be, and each thumbnail encoded."""
    if not sizes:
        return 0
    thumb_format = THUMBNAIL_PILLOW_FORMAT[pillow_format]
    converted = thumbnail_mode(mode, info, thumb_format)
    return (
        rgb_pixels(canvas, mode)
        + (rgb_pixels(canvas, converted) if converted else 0)
        + rgb_pixels(sum(size * size for size in sizes), WIDEST, FORMAT_WEIGHT[thumb_format])
    )


def stored_mode(mode: str, pillow_format: str, *, animated: bool) -> str:
    """The widest mode the re-encoded image's first frame may be read back in."""
    if pillow_format == "JPEG":
        return "L" if mode == "L" else "RGB"
    if pillow_format == "WEBP" or animated:
        return WIDEST
    if pillow_format == "GIF":
        return "P"
    return mode
