"""Whether an upload is plain text: UTF-8, without controls, without markup.

Read in chunks with an incremental decoder: the limit may be large, and a
whole upload never needs to be in memory at once.
"""

from __future__ import annotations

import codecs
from typing import Any

from django.core.files import File

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


def is_plain_text(upload: File[Any]) -> bool:
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
