"""Whether an upload is plain text (UTF-8, without controls, without markup),
and if not, why: the refusal tells a person what to fix.

Read in chunks with an incremental decoder: the limit may be large, and a
whole upload never needs to be in memory at once.
"""

from __future__ import annotations

import codecs
from typing import Any, Literal

from django.core.files import File

# Why bytes are not plain text. "binary": a NUL byte, which no text has, so
# the upload is some format we do not know rather than text to fix.
TextFault = Literal["binary", "markup", "control_characters", "not_utf8"]

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


def text_fault(upload: File[Any]) -> TextFault | None:
    """None for plain text, else the first reason it is not. Markup is
    looked for before controls and the encoding: a page with a stray control
    byte or a Latin-1 accent is still, first of all, a page."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    upload.seek(0)
    tail = b""
    first: bytes | None = None  # the first byte that is not blank
    try:
        for index, chunk in enumerate(upload.chunks()):
            data = chunk.encode() if isinstance(chunk, str) else chunk
            if b"\x00" in data:
                return "binary"
            window = tail + data.lower()
            if any(marker in window for marker in _MARKUP_MARKERS):
                return "markup"
            tail = window[-_MARKER_OVERLAP:]
            if data.translate(None, _TEXT_BYTES):
                return "control_characters"
            decoder.decode(data)
            if first is None:
                rest = (data.removeprefix(codecs.BOM_UTF8) if index == 0 else data).lstrip(_BLANK)
                first = rest[:1] or None
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return "not_utf8"
    finally:
        upload.seek(0)
    # A document that opens with a tag is markup (XML, or HTML and SVG
    # fragments the markers miss), whatever tags it uses.
    return "markup" if first == b"<" else None
