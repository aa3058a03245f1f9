import io
import struct
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from protected_media.conf import DEFAULT_ALLOWED_TYPES
from protected_media.inspection import UploadRefused, inspect_upload

from .conftest import png_bytes


def inspect(data: bytes, name: str = "upload", **overrides):
    options = {
        "allowed_types": DEFAULT_ALLOWED_TYPES,
        "max_size": 1024 * 1024,
        "max_image_pixels": 1_000_000,
        **overrides,
    }
    return inspect_upload(SimpleUploadedFile(name, data), **options)


def image_bytes(image_format: str, size=(10, 10), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format=image_format)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "content_type", "extension"),
    [
        (image_bytes("PNG"), "image/png", ".png"),
        (image_bytes("JPEG"), "image/jpeg", ".jpg"),
        (image_bytes("GIF", mode="P"), "image/gif", ".gif"),
        (image_bytes("WEBP"), "image/webp", ".webp"),
        (b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n%%EOF\n", "application/pdf", ".pdf"),
        ("plain text, été\n".encode(), "text/plain", ".txt"),
    ],
)
def test_types_come_from_the_bytes(data: bytes, content_type: str, extension: str) -> None:
    # The client's name says nothing: every upload here claims to be a .exe.
    inspected = inspect(data, name="x.exe")
    assert (inspected.content_type, inspected.extension) == (content_type, extension)


def test_images_are_reencoded_without_trailing_data() -> None:
    original = png_bytes() + b"<script>alert(1)</script>"
    inspected = inspect(original, name="a.png")
    assert inspected.replacement is not None
    assert b"<script>" not in inspected.replacement
    assert inspected.size == len(inspected.replacement)
    assert Image.open(io.BytesIO(inspected.replacement)).size == (8, 6)


@pytest.mark.parametrize(
    ("data", "reason", "status"),
    [
        # HTML that claims to be a PNG by name
        (b"<html><script>alert(1)</script></html>", "type_not_allowed", 415),
        # SVG with a script: markup is never stored as text
        (
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "type_not_allowed",
            415,
        ),
        (b'<?xml version="1.0"?><a/>', "type_not_allowed", 415),
        (b"  <!DOCTYPE html><p>hi", "type_not_allowed", 415),
        # binary that is no allowed type
        (b"MZ\x90\x00\x03\x00\x00\x00" + bytes(200), "type_not_allowed", 415),
        (b"PK\x03\x04" + bytes(100), "type_not_allowed", 415),
        # text with control characters is not plain text
        (b"hello\x1b[31mred", "type_not_allowed", 415),
        # latin-1 bytes are not UTF-8 text
        (b"caf\xe9", "type_not_allowed", 415),
        # a PNG header followed by HTML: Pillow cannot decode it
        (b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script>", "bad_image", 415),
        (b"", "empty", 400),
    ],
)
def test_hostile_uploads_are_refused(data: bytes, reason: str, status: int) -> None:
    with pytest.raises(UploadRefused) as refused:
        inspect(data, name="photo.png")
    assert (refused.value.reason, refused.value.status) == (reason, status)


def test_size_limit() -> None:
    with pytest.raises(UploadRefused) as refused:
        inspect(b"a" * 2049, max_size=2048)
    assert refused.value.status == 413
    assert "2 KiB" in refused.value.message


def png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header declares a huge image in a few dozen bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" * 16)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (50000, 50000),  # past twice Pillow's own limit: Pillow raises
        (10000, 10000),  # past Pillow's limit: Pillow only warns
        (7000, 7000),  # under Pillow's limit, over ours
    ],
)
def test_pixel_bombs_are_refused_before_decoding(width: int, height: int) -> None:
    with pytest.raises(UploadRefused) as refused:
        inspect(png_declaring(width, height), max_image_pixels=40_000_000)
    assert (refused.value.reason, refused.value.status) == ("too_many_pixels", 413)


def test_allowlist_is_the_operators() -> None:
    with pytest.raises(UploadRefused):
        inspect(b"%PDF-1.7\n%%EOF\n", allowed_types=("image/png",))
    with pytest.raises(UploadRefused):
        inspect(b"plain\n", allowed_types=("image/png",))


def test_text_is_read_in_chunks_and_a_character_may_straddle_two() -> None:
    # 64 KiB is Django's chunk size: the two bytes of "é" fall in two chunks.
    data = b"a" * (64 * 1024 - 1) + "é\n".encode()
    assert inspect(data, max_size=1024 * 1024).content_type == "text/plain"


@pytest.mark.parametrize(
    "data",
    [
        b"a" * (64 * 1024) + b"\x00",  # a NUL past the first chunk
        b"ends in half a character \xc3",
        b"delete \x7f character",
    ],
)
def test_text_with_a_flaw_anywhere_is_refused(data: bytes) -> None:
    with pytest.raises(UploadRefused):
        inspect(data, max_size=1024 * 1024)
