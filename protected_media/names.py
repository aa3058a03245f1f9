"""File names: the client's name is data to clean, the stored name is ours."""

from __future__ import annotations

import posixpath
import unicodedata

MAX_ORIGINAL_NAME_LENGTH = 200
FALLBACK_NAME = "file"

# Cc: C0/C1 controls (CR, LF, NUL, ESC...). Cf: invisible format characters,
# among them U+202E RIGHT-TO-LEFT OVERRIDE, which disguises "gpj.exe" as "exe.jpg".
_STRIPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


def sanitize_original_name(name: str, *, max_length: int = MAX_ORIGINAL_NAME_LENGTH) -> str:
    """The client's file name, safe to keep as metadata and to send back in a header.

    Keeps only the last path component (browsers and scripts send full paths),
    normalises to NFC, drops control and format characters, trims spaces and
    dots at the ends, and caps the length while keeping the extension. Never
    returns an empty name, ".", ".." or a name with a separator. Idempotent.
    """
    name = unicodedata.normalize("NFC", name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch) not in _STRIPPED_CATEGORIES)
    name = _trim(name)
    if len(name) > max_length:
        stem, dot, extension = name.rpartition(".")
        if dot and stem and len(extension) <= 16:
            name = _trim(stem[: max_length - len(extension) - 1]) + "." + extension
        else:
            name = _trim(name[:max_length])
    if not name.strip("."):
        return FALLBACK_NAME
    return name


def _trim(name: str) -> str:
    return name.strip().strip(".").strip()


def stored_name(*, folder: str, key: str, extension: str) -> str:
    """``<folder>/<key><extension>``: every part chosen by the server."""
    folder = posixpath.normpath(folder.replace("\\", "/")).strip("/")
    if folder in ("", "."):
        return f"{key}{extension}"
    if folder == ".." or folder.startswith("../"):
        raise ValueError("upload_to must stay inside the private root")
    return f"{folder}/{key}{extension}"


def is_safe_stored_name(name: str) -> bool:
    """A storage-relative name that cannot leave the private root or split
    nginx's redirect value. Records hold only names we made; this is the
    last line of defence before a name becomes a path."""
    if not name or name.startswith("/") or any(ch in name for ch in "\x00\r\n\\"):
        return False
    return all(part not in ("", ".", "..") for part in name.split("/"))
