"""A walk over an image's container, before any pixel is decoded.

Pillow learns how many frames a GIF holds by reading the whole file, and
decodes each frame on the full canvas; a JPEG's decoder passes over the whole
image once per scan; a PNG's text and ICC chunks are inflated when the file
is opened. This walk counts frames, scans and the bytes of metadata from the
container's own framing, stopping as soon as a limit is passed, so that an
upload over a limit is refused before it costs anything. Its counts are a
bound for the decode loop, not a replacement for it: the loop charges the
pixel budget again as Pillow really decodes.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Survey:
    frames: int  # frames found, stopping one past the limit
    scans: int  # a JPEG's scans (start-of-scan markers), stopping one past the limit
    # Metadata (decompressed) plus the framing of every chunk, block or
    # segment: each costs Python-level work in Pillow however small it is.
    metadata: int


@dataclass(frozen=True)
class Limits:
    frames: int
    scans: int
    metadata: int


def survey(data: bytes, pillow_format: str, limits: Limits) -> Survey:
    """Counts for ``data`` in ``pillow_format``. A container that does not
    parse ends the walk where it breaks: Pillow refuses it or decodes less."""
    return _WALKS[pillow_format](data, limits)


def _gif(data: bytes, limits: Limits) -> Survey:
    frames = metadata = 0
    if len(data) < 13:
        return Survey(0, 0, 0)
    flags = data[10]
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    end = len(data)
    while pos < end and frames <= limits.frames and metadata <= limits.metadata:
        block = data[pos]
        if block == 0x21 and pos + 1 < end:  # an extension: comment, application...
            label = data[pos + 1]
            pos, framing, payload = _sub_blocks(data, pos + 2, limits.metadata - metadata)
            # A graphic control block (0xF9) times a frame; the rest is metadata.
            metadata += framing + (0 if label == 0xF9 else payload)
        elif block == 0x2C and pos + 10 <= end:  # an image descriptor: one frame
            frames += 1
            flags = data[pos + 9]
            pos += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) + 1
            pos, framing, _ = _sub_blocks(data, pos, limits.metadata - metadata)
            metadata += framing
        else:
            break  # the trailer (0x3B), or bytes Pillow will not read either
    return Survey(frames, 0, metadata)


def _sub_blocks(data: bytes, pos: int, allowance: int) -> tuple[int, int, int]:
    # (position after the terminator, blocks seen, bytes of payload); stops
    # early once the blocks alone exceed what the metadata limit allows.
    blocks = payload = 0
    end = len(data)
    while pos < end:
        size = data[pos]
        pos += 1
        if size == 0:
            break
        blocks += 1
        payload += size
        pos += size
        if blocks > allowance:
            break
    return pos, blocks, payload


_PNG_FRAMING = 12  # length, type and CRC of every chunk
_PNG_IMAGE_CHUNKS = {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND", b"acTL", b"fcTL", b"fdAT"}
_PNG_COMPRESSED = {b"zTXt", b"iCCP"}


def _png(data: bytes, limits: Limits) -> Survey:
    pos, end = 8, len(data)
    frames = declared = metadata = 0
    while pos + 8 <= end and frames <= limits.frames and metadata <= limits.metadata:
        (length,) = struct.unpack_from(">I", data, pos)
        kind = bytes(data[pos + 4 : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        pos += _PNG_FRAMING + length
        metadata += _PNG_FRAMING
        if kind == b"acTL" and len(body) >= 4:
            (declared,) = struct.unpack_from(">I", body)
        elif kind == b"fcTL":
            frames += 1
        elif kind not in _PNG_IMAGE_CHUNKS:
            metadata += _png_metadata(kind, body, limits.metadata - metadata + 1)
        if kind == b"IEND":
            break
    # Pillow believes acTL's count; an animation without fcTL is one image.
    return Survey(max(frames, declared, 1), 0, metadata)


def _png_metadata(kind: bytes, body: bytes, allowance: int) -> int:
    # What Pillow keeps of the chunk once inflated, stopped one byte past
    # the allowance (the inflate of a bomb stops there too).
    compressed: bytes | None = None
    if kind in _PNG_COMPRESSED:
        compressed = body.partition(b"\0")[2][1:]
    elif kind == b"iTXt":
        rest = body.partition(b"\0")[2]
        if rest[:1] == b"\x01":
            compressed = rest[2:].partition(b"\0")[2].partition(b"\0")[2]
    if compressed is None:
        return len(body)
    inflater = zlib.decompressobj()
    try:
        return len(body) + len(inflater.decompress(compressed, max(allowance, 1)))
    except zlib.error:
        return len(body)  # Pillow drops a chunk that does not inflate


_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_JPEG_STANDALONE = {0xD8, 0xD9, 0x01}
_JPEG_IMAGE_SEGMENTS = {*range(0xC0, 0xD0), 0xDA, 0xDB, 0xDD}  # SOFn, DHT, DAC, SOS, DQT, DRI


def _jpeg(data: bytes, limits: Limits) -> Survey:
    scans = metadata = 0
    pos, end = 2, len(data)
    while scans <= limits.scans and metadata <= limits.metadata:
        found = _JPEG_MARKER.search(data, pos)
        if found is None:
            break
        marker = data[found.start() + 1]
        pos = found.end()
        metadata += 4  # the marker and its length
        if marker == 0xD9:
            break  # end of image: anything after it is not decoded
        if marker in _JPEG_STANDALONE or pos + 2 > end:
            continue
        (length,) = struct.unpack_from(">H", data, pos)
        if marker == 0xDA:
            scans += 1
        elif marker not in _JPEG_IMAGE_SEGMENTS:
            metadata += length  # APPn and comments: EXIF, ICC, XMP, text
        # A segment's length covers itself; entropy-coded data follows a
        # scan's header, and the search above skips it (stuffed 0xFF00).
        pos += length
    return Survey(1, scans, metadata)


_WEBP_IMAGE_CHUNKS = {b"VP8 ", b"VP8L", b"VP8X", b"ANIM", b"ANMF", b"ALPH"}


def _webp(data: bytes, limits: Limits) -> Survey:
    pos, end = 12, min(len(data), 8 + _le32(data, 4)) if len(data) >= 12 else 0
    frames = metadata = 0
    while pos + 8 <= end and frames <= limits.frames and metadata <= limits.metadata:
        kind = bytes(data[pos : pos + 4])
        length = _le32(data, pos + 4)
        metadata += 8
        if kind == b"ANMF":
            frames += 1
        elif kind not in _WEBP_IMAGE_CHUNKS:
            metadata += length  # ICCP, EXIF, XMP and unknown chunks
        pos += 8 + length + (length & 1)
    return Survey(max(frames, 1), 0, metadata)


def _le32(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos : pos + 4], "little") if pos + 4 <= len(data) else 0


_WALKS = {"GIF": _gif, "PNG": _png, "JPEG": _jpeg, "WEBP": _webp}
