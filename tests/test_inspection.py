import io
import re
import struct
import zlib
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from protected_media.conf import DEFAULT_ALLOWED_TYPES
from protected_media.inspection import UploadRefused, inspect_upload
from protected_media.inspection.kinds import TEXT_REFUSALS, accepted, label, not_accepted

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
        (b"<html><script>alert(1)</script></html>", "text_with_markup", 415),
        # SVG with a script: markup is never stored as text
        (
            b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
            "text_with_markup",
            415,
        ),
        (b'<?xml version="1.0"?><a/>', "text_with_markup", 415),
        (b"  <!DOCTYPE html><p>hi", "text_with_markup", 415),
        # a tag of no known marker, opening the text
        (b"\xef\xbb\xbf <a href='x'>hi</a>", "text_with_markup", 415),
        # markup wins over a stray control byte or accent: it is what to fix
        (b"caf\xe9 \x1b <script>", "text_with_markup", 415),
        # binary that is no allowed type
        (b"MZ\x90\x00\x03\x00\x00\x00" + bytes(200), "type_not_allowed", 415),
        (b"PK\x03\x04" + bytes(100), "type_not_allowed", 415),
        # unknown to the sniffer, and no text either: a NUL byte
        (b"\x01\x02 some header\x00\x00", "type_not_allowed", 415),
        # text with control characters is not plain text
        (b"hello\x1b[31mred", "text_with_control_characters", 415),
        # latin-1 bytes are not UTF-8 text
        (b"caf\xe9", "text_not_utf8", 415),
        # a PNG header followed by HTML: Pillow cannot decode it
        (b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script>", "bad_image", 415),
        (b"", "empty", 400),
    ],
)
def test_hostile_uploads_are_refused(data: bytes, reason: str, status: int) -> None:
    with pytest.raises(UploadRefused) as refused:
        inspect(data, name="photo.png")
    assert (refused.value.reason, refused.value.status) == (reason, status)


def test_markup_split_across_chunks_is_found() -> None:
    # Django reads uploads in 64 KiB chunks: the marker straddles two of them.
    data = b"a" * (64 * 1024 - 3) + b"<script>alert(1)</script>"
    with pytest.raises(UploadRefused) as refused:
        inspect(data, name="notes.txt")
    assert refused.value.reason == "text_with_markup"


ACCEPTED = "images (PNG, JPEG, GIF, WebP), PDFs and plain text"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"Notes\n<script>alert(1)</script>\n",
            "This text file contains markup (HTML or XML); text is accepted only as plain text, "
            "without tags.",
        ),
        (
            b"\x1b[31mred\x1b[0m",
            "This text file contains control characters (such as terminal colour codes); text is "
            "accepted only as plain text.",
        ),
        (b"caf\xe9", "This text file is not in UTF-8; save it as UTF-8 and upload it again."),
        # A kind the sniffer knows, and one it does not: neither is text.
        (
            image_bytes("BMP"),
            f"A BMP image (.bmp) is not accepted here; you can upload {ACCEPTED}.",
        ),
        (bytes(64), f"This kind of file is not accepted here; you can upload {ACCEPTED}."),
    ],
    ids=["markup", "controls", "latin-1", "bmp", "unknown-binary"],
)
def test_refusals_say_what_the_file_is_in_words(data: bytes, message: str) -> None:
    with pytest.raises(UploadRefused) as refused:
        inspect(data, name="notes.txt")
    assert refused.value.message == message


def test_text_is_refused_as_a_kind_where_text_is_not_allowed() -> None:
    # Without text in the list, "contains markup" would suggest a fix that
    # does not exist: the refusal is the kind's.
    with pytest.raises(UploadRefused) as refused:
        inspect(b"<p>hi</p>", allowed_types=("image/png", "application/pdf"))
    assert (refused.value.reason, refused.value.message) == (
        "type_not_allowed",
        "This kind of file is not accepted here; you can upload PNG images and PDFs.",
    )


@pytest.mark.parametrize(
    ("allowed", "words"),
    [
        (DEFAULT_ALLOWED_TYPES, ACCEPTED),
        # The table's order, whatever the setting's; a lone image by its own name.
        (("text/plain", "application/pdf", "image/png"), "PNG images, PDFs and plain text"),
        (("image/gif", "image/png"), "images (PNG, GIF)"),
        (("text/plain",), "plain text"),
        (
            (DOCX, "application/vnd.ms-excel", "application/zip", "application/gzip"),
            "Word documents, Excel 97-2003 spreadsheets and archives (ZIP, gzip)",
        ),
        (("audio/mpeg", "video/mp4", "video/webm"), "MP3 audio and videos (MP4, WebM)"),
        # A type the table does not know is named as itself, last; twice is once.
        (
            ("application/x-custom", "image/png", "application/pdf", "application/pdf"),
            "PNG images, PDFs and application/x-custom",
        ),
        ((), ""),
    ],
)
def test_accepted_words_the_allowed_types(allowed, words: str) -> None:
    assert accepted(allowed) == words


@pytest.mark.parametrize(
    ("content_type", "sentence"),
    [
        (DOCX, f"A Word document (.docx) is not accepted here; you can upload {ACCEPTED}."),
        (
            "image/jpeg",
            f"A JPEG image (.jpg, .jpeg) is not accepted here; you can upload {ACCEPTED}.",
        ),
        (
            "text/html",
            f"An HTML page (.html, .htm) is not accepted here; you can upload {ACCEPTED}.",
        ),
        ("text/plain", f"Plain text (.txt) is not accepted here; you can upload {ACCEPTED}."),
        ("audio/mpeg", f"MP3 audio (.mp3) is not accepted here; you can upload {ACCEPTED}."),
        # Unknown, or not detected at all: no MIME type in the sentence.
        (
            "application/x-nintendo-nes-rom",
            f"This kind of file is not accepted here; you can upload {ACCEPTED}.",
        ),
        (None, f"This kind of file is not accepted here; you can upload {ACCEPTED}."),
    ],
)
def test_not_accepted_names_the_kind_and_what_may_be_uploaded(content_type, sentence) -> None:
    assert not_accepted(content_type, DEFAULT_ALLOWED_TYPES) == sentence


def test_nothing_allowed_is_said_plainly() -> None:
    assert not_accepted(DOCX, ()) == (
        "A Word document (.docx) is not accepted here; no kind of file is."
    )


def test_labels_name_known_types_and_fall_back_to_the_type() -> None:
    assert [label(t) for t in ("image/png", "application/pdf", "text/plain", DOCX)] == [
        "PNG image (.png)",
        "PDF (.pdf)",
        "plain text (.txt)",
        "Word document (.docx)",
    ]
    assert label("application/x-custom") == "application/x-custom"


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


def test_every_refusal_reason_is_listed_in_the_docs() -> None:
    # Dashboards and alerts are built on these names: each one the code
    # raises has its row in docs/uploads.md.
    root = Path(__file__).resolve().parent.parent
    raised = {
        reason
        for path in (root / "protected_media").rglob("*.py")
        for reason in re.findall(r'UploadRefused\(\s*"([a-z0-9_]+)"', path.read_text())
    }
    raised |= {reason for reason, _ in TEXT_REFUSALS.values()}
    assert {"type_not_allowed", "text_with_markup", "storage_full"} <= raised
    listed = set(re.findall(r"`([a-z0-9_]+)`", (root / "docs" / "uploads.md").read_text()))
    assert raised - listed == set()
