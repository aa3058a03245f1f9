"""Uploads crafted to make inspection expensive: one per format and trick.

``crafted(limits)`` builds the table for a set of limits, each input sized
against them (a canvas just under the pixel limit, one frame past the frame
limit...), so the same tricks run at the defaults in ``bench.crafted_uploads``
and at small limits in the fast test ``tests/test_inspection_budget.py``.
Each case says what the answer must be.
"""

from __future__ import annotations

import io
import math
import os
import re
import struct
import zlib
from dataclasses import dataclass

from PIL import Image, ImageDraw

from protected_media import conf as settings_module
from protected_media.inspection.cost import frame_cost, rgb_pixels, stored_mode, thumbnail_cost

ACCEPTED = "accepted"


@dataclass(frozen=True)
class Limits:
    max_size: int
    max_image_pixels: int
    max_frames: int
    max_processed_pixels: int
    max_jpeg_scans: int
    max_metadata: int
    thumbnail_sizes: tuple[int, ...]

    def options(self) -> dict[str, object]:
        """The keyword arguments of ``inspect_upload``."""
        return {
            "max_size": self.max_size,
            "max_image_pixels": self.max_image_pixels,
            "max_frames": self.max_frames,
            "max_processed_pixels": self.max_processed_pixels,
            "max_jpeg_scans": self.max_jpeg_scans,
            "max_metadata": self.max_metadata,
            "thumbnail_sizes": self.thumbnail_sizes,
        }


DEFAULT_LIMITS = Limits(
    max_size=10 * 1024 * 1024,
    max_image_pixels=40_000_000,
    max_frames=settings_module.DEFAULT_MAX_FRAMES,
    max_processed_pixels=settings_module.DEFAULT_MAX_PROCESSED_PIXELS,
    max_jpeg_scans=settings_module.DEFAULT_MAX_JPEG_SCANS,
    max_metadata=settings_module.DEFAULT_MAX_IMAGE_METADATA,
    thumbnail_sizes=settings_module.DEFAULT_THUMBNAIL_SIZES,
)


@dataclass(frozen=True)
class Crafted:
    name: str
    trick: str
    data: bytes
    expected: str  # ACCEPTED, or the refusal's reason
    status: int  # the API's answer: 201, or the refusal's status


def _refused(name: str, trick: str, data: bytes, reason: str) -> Crafted:
    status = 415 if reason in ("bad_image", "type_not_allowed") else 413
    return Crafted(name, trick, data, reason, status)


# -- GIF -------------------------------------------------------------------------------

_GIF_PIXEL = b"\x02\x02\x44\x01\x00"  # LZW, minimum code size 2: one pixel of colour 0
_GIF_FRAME = b"\x21\xf9\x04\x00\x01\x00\x00\x00" + b"\x2c" + struct.pack("<4HB", 0, 0, 1, 1, 0)


def gif(width: int, height: int, frames: int, extensions: bytes = b"", pixel: bytes = b"") -> bytes:
    head = b"GIF89a" + struct.pack("<2H3B", width, height, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    return head + loop + extensions + (_GIF_FRAME + (pixel or _GIF_PIXEL)) * frames + b"\x3b"


def _sub_blocks(payload: bytes) -> bytes:
    blocks = (payload[i : i + 255] for i in range(0, len(payload), 255))
    return b"".join(bytes([len(block)]) + block for block in blocks) + b"\0"


# -- PNG -------------------------------------------------------------------------------


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


_CHANNELS = {0: 1, 2: 3, 6: 4}  # PNG colour type: grey, RGB, RGBA


def _zero_rows(width: int, height: int, colour: int) -> bytes:
    packer = zlib.compressobj(9)
    row = b"\0" * (width * _CHANNELS[colour] + 1)
    return b"".join(packer.compress(row) for _ in range(height)) + packer.flush()


def png(width: int, height: int, extra: bytes = b"", frames: int = 0, colour: int = 0) -> bytes:
    """A PNG (grey unless ``colour`` says RGB or RGBA), all zeros (a deflate
    stream of about 1000:1), with ``extra`` chunks before the image;
    ``frames`` 1x1 APNG frames (grey only) after it.
    A private chunk first hides the animation from a type sniffer that reads
    8 KiB: the file passes for a still PNG and reaches Pillow's APNG decoder."""
    out = [
        b"\x89PNG\r\n\x1a\n",
        chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)),
        chunk(b"prVt", b"\0" * 9000) if frames else b"",
    ]
    if frames:
        out.append(chunk(b"acTL", struct.pack(">II", frames + 1, 0)))
        out.append(chunk(b"fcTL", struct.pack(">IIIIIHHBB", 0, width, height, 0, 0, 1, 10, 0, 0)))
    out += [extra, chunk(b"IDAT", _zero_rows(width, height, colour))]
    pixel = zlib.compress(b"\0\0")
    for index in range(frames):
        sequence = 2 * index + 1
        out.append(chunk(b"fcTL", struct.pack(">IIIIIHHBB", sequence, 1, 1, 0, 0, 1, 10, 0, 0)))
        out.append(chunk(b"fdAT", struct.pack(">I", sequence + 1) + pixel))
    out.append(chunk(b"IEND", b""))
    return b"".join(out)


def _png_frames_for(size: int) -> int:
    return (size - 9300) // 64  # a 1x1 APNG frame is 64 bytes of chunks


# -- JPEG ------------------------------------------------------------------------------

_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def jpeg_with_scans(side: int, scans: int) -> bytes:
    """A progressive JPEG whose last scan is repeated until it has ``scans``:
    libjpeg warns and passes over the whole image once more for each."""
    buffer = io.BytesIO()
    Image.new("L", (side, side), 90).save(buffer, "JPEG", progressive=True, quality=50)
    data = buffer.getvalue()
    starts = [m.start() for m in _MARKER.finditer(data) if data[m.start() + 1] == 0xDA]
    last = data[starts[-1] : data.rindex(b"\xff\xd9")]
    return data[: data.rindex(b"\xff\xd9")] + last * (scans - len(starts)) + b"\xff\xd9"


def jpeg_with_segments(side: int, total: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (side, side), "teal").save(buffer, "JPEG")
    data = buffer.getvalue()
    segment = b"\xff\xe9" + struct.pack(">H", 65535) + b"m" * 65533
    return data[:2] + segment * (total // len(segment) + 1) + data[2:]


# -- WebP ------------------------------------------------------------------------------


def webp_animation(frames: int, canvas: tuple[int, int] | None = None, extra: bytes = b"") -> bytes:
    """1x1 frames, copied until there are ``frames``, on a canvas of the given size."""
    buffer = io.BytesIO()
    first, second = Image.new("RGB", (1, 1), "red"), Image.new("RGB", (1, 1), "blue")
    first.save(buffer, "WEBP", save_all=True, append_images=[second], duration=10, lossless=True)
    data = buffer.getvalue()
    chunks, pos = [], 12
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos + 4 : pos + 8], "little")
        chunks.append(data[pos : pos + 8 + length + (length & 1)])
        pos += 8 + length + (length & 1)
    vp8x, anim = chunks[0], chunks[1]
    frame_chunks = [c for c in chunks if c.startswith(b"ANMF")]
    if canvas is not None:
        width, height = canvas
        vp8x = vp8x[:12] + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = vp8x + anim + extra + b"".join(frame_chunks[i % 2] for i in range(frames))
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def _webp_chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + b"\0" * (len(body) & 1)


# -- the table -------------------------------------------------------------------------


def _encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _noise(side: int, mode: str = "RGB") -> Image.Image:
    return Image.frombytes(mode, (side, side), os.urandom(side * side * len(mode)))


def gradient(width: int, height: int, mode: str) -> Image.Image:
    """Bands that count 0 to 255 across and down: a few hundred KiB as PNG
    or WebP for tens of megapixels, and the most work per pixel that a file
    that small buys from zlib's and libwebp's encoders."""
    if mode == "I;16":
        ramp = b"".join(struct.pack("<H", value) for value in range(65536))
        raw = (ramp * (width * height // 65536 + 1))[: width * height * 2]
        return Image.frombytes("I;16", (width, height), raw)
    across = Image.frombytes(
        "L", (width, height), (bytes(range(256)) * (width // 256 + 1))[:width] * height
    )
    down = Image.frombytes(
        "L", (height, width), (bytes(range(256)) * (height // 256 + 1))[:height] * width
    )
    down = down.transpose(Image.Transpose.TRANSPOSE)
    bands = [across, down, Image.new("L", (width, height), 7), Image.new("L", (width, height), 200)]
    return Image.merge(mode, bands[: len(mode)])


def photo(width: int, height: int, orientation: int = 1) -> bytes:
    """A photo-like JPEG (smooth light, sensor noise) as a camera writes it,
    its EXIF orientation saying how to turn it."""
    light = Image.merge("RGB", [gradient(width, height, "RGBA").getchannel(i) for i in (0, 1, 3)])
    light = light.resize((width // 16, height // 16)).resize((width, height))
    grain = Image.merge("RGB", [Image.effect_noise((width, height), 24)] * 3)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return _encoded(Image.blend(light, grain, 0.25), "JPEG", quality=90, exif=exif)


def screenshot(width: int, height: int) -> bytes:
    """An RGBA screenshot: flat panels, lines of text-like strokes."""
    picture = Image.new("RGBA", (width, height), (246, 246, 246, 255))
    draw = ImageDraw.Draw(picture)
    for top in range(0, height, 24):
        for left in range(16, width - 16, 9):
            if (left * 7 + top) % 11:
                draw.rectangle((left, top + 6, left + 5, top + 16), fill=(40, 40, 48, 255))
    return _encoded(picture, "PNG")


def charge(
    limits: Limits, fmt: str, mode: str, size: tuple[int, int], *, frames: int = 1, **still: bool
) -> int:
    """What the inspection charges for an image, before its first pixel is
    decoded (``inspection._reencode``'s plan), plus its EXIF turn."""
    canvas = size[0] * size[1]
    animated = frames > 1
    sizes = [s for s in limits.thumbnail_sizes if s < max(size)]
    scans = 2 if still.get("progressive") else 1
    total = frames * frame_cost(canvas, mode, fmt, animated=animated, scans=scans)
    total += rgb_pixels(canvas, "RGB") if fmt == "JPEG" and mode not in ("RGB", "L") else 0
    total += rgb_pixels(canvas, mode) if still.get("rotated") else 0
    stored = stored_mode(mode, fmt, animated=animated)
    return total + thumbnail_cost(canvas, stored, {}, fmt, sizes)


def largest(limits: Limits, fmt: str, mode: str, frames: int = 1, **still: bool) -> int:
    """The largest side of a square image whose charge fits the budget (and
    whose canvas fits the pixel limit)."""
    low, high = 1, math.isqrt(limits.max_image_pixels)
    while low < high:
        middle = (low + high + 1) // 2
        fits = charge(limits, fmt, mode, (middle, middle), frames=frames, **still)
        if fits <= limits.max_processed_pixels:
            low = middle
        else:
            high = middle - 1
    return low


def crafted(limits: Limits) -> list[Crafted]:
    size = limits.max_size
    canvas = math.isqrt(limits.max_image_pixels - 1)  # a side whose square is just under
    frames = limits.max_frames

    # The largest side on which ``count`` frames fit the budget.
    def fits(fmt: str, count: int = 1, mode: str = "RGB") -> int:
        return largest(limits, fmt, mode, frames=count)

    still = fits("PNG", mode="L")
    noise = math.isqrt(size // 4)  # a side whose RGB noise fits the size limit
    over_meta = limits.max_metadata + 1
    gif_frames = (size - 100) // (len(_GIF_FRAME) + len(_GIF_PIXEL))
    ztxt = chunk(b"zTXt", b"Comment\0\0" + zlib.compress(b"x" * min(over_meta, 1_000_000)))
    tiff, ico, bmp, mpo = (
        _encoded(Image.new("RGB", (8, 8)), fmt, **opts)
        for fmt, opts in (
            ("TIFF", {}),
            ("ICO", {}),
            ("BMP", {}),
            ("MPO", {"save_all": True, "append_images": [Image.new("RGB", (8, 8))]}),
        )
    )
    return [
        _refused(
            "gif-1x1-frames-huge-canvas",
            "the issue's example: 1x1 frames on a canvas just under the pixel limit",
            gif(canvas, canvas, 20),
            "too_much_work",
        ),
        _refused(
            "gif-many-frames",
            "as many 1x1 frames as the size limit holds",
            gif(1, 1, gif_frames),
            "too_many_frames",
        ),
        _refused(
            "gif-tiny-sub-blocks",
            "one frame whose data comes in 1-byte sub-blocks",
            gif(
                16,
                16,
                1,
                pixel=b"\x02" + b"\x01\x44\x01\x01" + b"\x01\x00" * ((size - 200) // 2) + b"\x00",
            ),
            "too_much_metadata",
        ),
        _refused(
            "gif-comment",
            "a comment extension as large as the metadata limit allows, and one byte more",
            gif(16, 16, 1, extensions=b"\x21\xfe" + _sub_blocks(b"c" * over_meta)),
            "too_much_metadata",
        ),
        Crafted(
            "gif-frames-at-budget",
            "the frame limit, 1x1 frames on the largest canvas the budget allows",
            gif(fits("GIF", frames), fits("GIF", frames), frames),
            ACCEPTED,
            201,
        ),
        Crafted(
            "apng-frames-at-budget",
            "the frame limit, 1x1 APNG frames on the largest canvas the budget allows",
            png(fits("PNG", frames), fits("PNG", frames), frames=frames - 1),
            ACCEPTED,
            201,
        ),
        Crafted(
            "webp-frames-at-budget",
            "the frame limit, 1x1 WebP frames on the largest canvas the budget allows",
            webp_animation(frames, canvas=(fits("WEBP", frames),) * 2),
            ACCEPTED,
            201,
        ),
        _refused(
            "apng-many-frames",
            "as many 1x1 APNG frames as the size limit holds",
            png(1, 1, frames=_png_frames_for(size)),
            "too_many_frames",
        ),
        _refused(
            "apng-huge-canvas",
            "1x1 APNG frames on a canvas just under the pixel limit",
            png(canvas, canvas, frames=3),
            "too_much_work",
        ),
        _refused(
            "png-iccp-bomb",
            "an iCCP profile that inflates past the metadata limit",
            png(8, 8, chunk(b"iCCP", b"icc\0\0" + zlib.compress(b"\0" * over_meta, 9))),
            "too_much_metadata",
        ),
        _refused(
            "png-ztxt-bomb",
            "zTXt chunks that inflate past the metadata limit",
            png(8, 8, ztxt * (over_meta // 1_000_000 + 1)),
            "too_much_metadata",
        ),
        _refused(
            "png-many-chunks",
            "the size limit filled with empty private chunks",
            png(8, 8, chunk(b"prVt", b"") * ((size - 200) // 12)),
            "too_much_metadata",
        ),
        Crafted(
            "png-zlib-stream",
            "a grey still just inside the budget: a deflate stream of about 1000:1",
            png(still, still),
            ACCEPTED,
            201,
        ),
        _refused(
            "png-over-budget",
            "an RGBA still just under the pixel limit, over the work budget",
            png(canvas, canvas, colour=6),
            "too_much_work",
        ),
        _refused(
            "jpeg-many-scans",
            "a progressive JPEG with its last scan repeated",
            jpeg_with_scans(min(still, 2048), limits.max_jpeg_scans * 20),
            "too_many_scans",
        ),
        Crafted(
            "jpeg-scan-limit",
            "a progressive JPEG with exactly the scan limit",
            jpeg_with_scans(min(still, 2048), limits.max_jpeg_scans),
            ACCEPTED,
            201,
        ),
        _refused(
            "jpeg-app-segments",
            "APP9 segments past the metadata limit",
            jpeg_with_segments(8, over_meta),
            "too_much_metadata",
        ),
        Crafted(
            "jpeg-noise",
            "noise: the most a JPEG decoder and encoder do per pixel",
            _encoded(_noise(min(noise, fits("JPEG"))), "JPEG", quality=95),
            ACCEPTED,
            201,
        ),
        _refused(
            "webp-many-frames",
            "as many 1x1 WebP frames as the limit and more",
            webp_animation(limits.max_frames * 5),
            "too_many_frames",
        ),
        _refused(
            "webp-huge-canvas",
            "1x1 WebP frames on a canvas just under the pixel limit",
            webp_animation(4, canvas=(canvas, canvas)),
            "too_much_work",
        ),
        _refused(
            "webp-icc",
            "an ICCP chunk past the metadata limit",
            webp_animation(2, extra=_webp_chunk(b"ICCP", b"\0" * over_meta)),
            "too_much_metadata",
        ),
        Crafted(
            "webp-noise",
            "noise: the most a WebP encoder does per pixel",
            _encoded(_noise(min(noise, fits("WEBP"))), "WEBP", quality=100),
            ACCEPTED,
            201,
        ),
        Crafted(
            "gif-noise",
            "noise in 256 colours, one frame",
            _encoded(_noise(min(fits("GIF", mode="L"), math.isqrt(size * 2 // 3)), "L"), "GIF"),
            ACCEPTED,
            201,
        ),
        *at_budget(limits),
        _refused("mpo", "two JPEGs in one file (Pillow opens it as MPO)", mpo, "bad_image"),
        _refused("tiff", "a TIFF: not a type the gateway decodes", tiff, "type_not_allowed"),
        _refused("ico", "an ICO: not a type the gateway decodes", ico, "type_not_allowed"),
        _refused("bmp", "a BMP: not a type the gateway decodes", bmp, "type_not_allowed"),
        Crafted(
            "text-at-size-limit",
            "plain text as large as the size limit",
            (b"All work and no play makes Jack a dull boy.\n" * (size // 44 + 1))[:size],
            ACCEPTED,
            201,
        ),
    ]


def at_budget(limits: Limits) -> list[Crafted]:
    """Stills of every costly mode on the largest canvas the budget allows,
    and the photos and screenshots the defaults must accept."""
    rows = []
    for fmt, mode, name in (
        ("PNG", "RGBA", "png-rgba-gradient"),
        ("PNG", "RGB", "png-rgb-gradient"),
        ("PNG", "I;16", "png-16bit-gradient"),
        ("WEBP", "RGBA", "webp-rgba-gradient"),
        ("WEBP", "RGB", "webp-rgb-gradient"),
        ("JPEG", "CMYK", "jpeg-cmyk-gradient"),
    ):
        side = largest(limits, fmt, mode)
        rows.append(
            Crafted(
                f"{name}-at-budget",
                f"a {mode} {fmt} gradient on the largest square the budget allows",
                _encoded(gradient(side, side, mode), fmt),
                ACCEPTED,
                201,
            )
        )
    side = largest(limits, "JPEG", "RGB", progressive=True)
    rows.append(
        Crafted(
            "jpeg-progressive-at-budget",
            "a progressive JPEG photo on the largest square the budget allows",
            _encoded(Image.open(io.BytesIO(photo(side, side))), "JPEG", progressive=True),
            ACCEPTED,
            201,
        )
    )
    if limits.max_image_pixels >= 6000 * 4000:
        rows += [
            Crafted(
                "jpeg-24mp-photo-turned",
                "a 24 MP camera photo (6000x4000) whose EXIF says to turn it",
                photo(6000, 4000, orientation=6),
                ACCEPTED,
                201,
            ),
            Crafted(
                "png-12mp-rgba-screenshot",
                "a 12 MP RGBA screenshot (4000x3000)",
                screenshot(4000, 3000),
                ACCEPTED,
                201,
            ),
        ]
    return rows
