"""The raster image formats we re-encode, and the format of their thumbnails:
one table each, read by the inspection, its cost model and the thumbnails."""

from __future__ import annotations

# type -> (file extension, Pillow format) for the raster images we re-encode
IMAGE_FORMATS = {
    "image/png": (".png", "PNG"),
    "image/jpeg": (".jpg", "JPEG"),
    "image/gif": (".gif", "GIF"),
    "image/webp": (".webp", "WEBP"),
}

# Source type -> (type, extension, Pillow format) of its thumbnails. A GIF's
# thumbnail is its first frame, as a PNG: an animated grid is nobody's wish.
THUMBNAIL_FORMATS = {
    "image/png": ("image/png", ".png", "PNG"),
    "image/jpeg": ("image/jpeg", ".jpg", "JPEG"),
    "image/gif": ("image/png", ".png", "PNG"),
    "image/webp": ("image/webp", ".webp", "WEBP"),
}

# A source's Pillow format -> its thumbnails' Pillow format (for the cost model).
THUMBNAIL_PILLOW_FORMAT = {
    IMAGE_FORMATS[source][1]: thumbnail[2] for source, thumbnail in THUMBNAIL_FORMATS.items()
}
