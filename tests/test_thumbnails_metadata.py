"""No metadata of an upload survives its re-encode: not in the stored
original, not in its thumbnails. Read back from the bytes on disk."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, ImageCms, PngImagePlugin

from protected_media.models import ProtectedFile, StoredFile

pytestmark = pytest.mark.django_db

# A real (if harmless) ICC profile, marked so its bytes can be found again.
ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
MARK = b"<script>alert(1)</script>"


@pytest.fixture(autouse=True)
def _sizes(settings) -> None:
    settings.PROTECTED_MEDIA_THUMBNAIL_SIZES = (32,)


def upload(owner, fmt: str, mode: str = "RGB") -> bytes:
    image = Image.new(mode, (80, 60), "teal" if mode == "RGB" else 3)
    exif = Image.Exif()
    exif[0x010E] = MARK.decode()  # ImageDescription
    options: dict[str, object] = {"icc_profile": ICC, "exif": exif.tobytes()}
    if fmt == "PNG":
        text = PngImagePlugin.PngInfo()
        text.add_text("Comment", MARK.decode())
        text.add_text("Compressed", MARK.decode(), zip=True)
        text.add_itxt("XML:com.adobe.xmp", MARK.decode())
        options["pnginfo"] = text
    if fmt == "JPEG":
        options["comment"] = MARK
    if fmt == "WEBP":
        options["xmp"] = MARK
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    data = buffer.getvalue()
    # The upload really carries all of it.
    assert ICC[-64:] in data or fmt == "PNG"
    assert Image.open(io.BytesIO(data)).info.get("icc_profile") == ICC
    item = ProtectedFile(owner=owner)
    item.file.save(f"a.{fmt.lower()}", SimpleUploadedFile("a", data), save=True)
    return item.file.name


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_icc_profile_and_metadata_are_stripped_from_original_and_thumbnail(
    alice, private_root: Path, fmt: str
) -> None:
    name = upload(alice, fmt)
    thumbnails = list(StoredFile.objects.filter(original__name=name))
    assert len(thumbnails) == 1
    for stored in (name, thumbnails[0].name):
        data = (private_root / stored).read_bytes()
        with Image.open(io.BytesIO(data)) as image:
            assert set(image.info) <= {
                "dpi",
                "jfif",
                "jfif_version",
                "jfif_unit",
                "jfif_density",
                "loop",
                "background",
            }, image.info
            assert image.getexif() == {}
        assert MARK not in data
        assert b"iCCP" not in data and b"ICCP" not in data
        assert b"ICC_PROFILE" not in data  # JPEG's APP2 marker
        assert re.search(rb"zTXt|tEXt|iTXt|eXIf|XMP ", data) is None


def test_a_gif_keeps_no_comment_or_application_data(alice, private_root: Path) -> None:
    frames = [Image.new("P", (40, 40), index) for index in range(3)]
    buffer = io.BytesIO()
    frames[0].save(
        buffer, "GIF", save_all=True, append_images=frames[1:], comment=MARK, duration=50
    )
    data = buffer.getvalue().replace(
        b"\x21\xf9", b"\x21\xff\x0bXMP DataXMP" + bytes([len(MARK)]) + MARK + b"\x00\x21\xf9", 1
    )
    item = ProtectedFile(owner=alice)
    item.file.save("a.gif", SimpleUploadedFile("a", data), save=True)
    stored = (private_root / item.file.name).read_bytes()
    assert MARK not in stored
    assert b"XMP" not in stored
