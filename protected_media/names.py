"""File names: the client's name is data to clean, the stored name is ours."""

from __future__ import annotations

import posixpath
import unicodedata

import filetype

MAX_ORIGINAL_NAME_LENGTH = 200
# Linux keeps at most 255 bytes of a file name and browsers shorten longer
# ones, not always around the extension: the served name stays well below.
MAX_SERVED_NAME_BYTES = 200
FALLBACK_NAME = "file"
# The extension for a type nobody has a safe one for: opaque data everywhere.
OPAQUE_EXTENSION = ".bin"

# The extension each type is served under, then the ones a client may have
# used for it and keeps. The served extension is the canonical one of the
# detected type, so a PDF sent as "doc.html" is saved as "doc.pdf": a browser
# or a desktop chooses what opens a saved file by its name alone.
EXTENSIONS: dict[str, tuple[str, ...]] = {
    "image/png": (".png",),
    "image/jpeg": (".jpg", ".jpeg", ".jpe"),
    "image/gif": (".gif",),
    "image/webp": (".webp",),
    "image/tiff": (".tif", ".tiff"),
    "image/bmp": (".bmp",),
    "image/x-icon": (".ico",),
    "image/avif": (".avif",),
    # Only ".txt": not ".csv" (a spreadsheet runs its formulas), not ".md"
    # (previewers render the HTML in it), and no name the standard MIME
    # tables do not map to text/plain.
    "text/plain": (".txt",),
    "application/pdf": (".pdf",),
    "application/gzip": (".gz",),
    "application/octet-stream": (OPAQUE_EXTENSION,),
}
# A second guard: names that a browser or a desktop would run, install, or
# render as a document with script. No type maps to one of these; a type the
# detector would name so (an executable an operator allowlisted) is served as
# opaque data.
UNSAFE_EXTENSIONS = frozenset(
    """
    .htm .html .xht .xhtml .shtm .shtml .svg .svgz .xml .xsl .xslt .xbl .rdf
    .js .mjs .cjs .jse .vbs .vbe .wsf .wsh .wsc .sct .hta .mht .mhtml .php .asp .aspx
    .url .lnk .desktop .webloc .website .inetloc .scf .library-ms .search-ms
    .exe .com .scr .pif .cpl .msi .msp .mst .msc .dll .bat .cmd .ps1 .psm1 .psd1
    .reg .inf .jar .jnlp .class .swf .spl .xap .appref-ms .application .gadget
    .app .command .tool .workflow .pkg .dmg .sh .bash .zsh .csh .ksh .py .pyw .pl .rb
    .elf .run .deb .rpm .apk .appx .msix .crx .xpi .vsix .ps .eps .settingcontent-ms
    """.split()
)

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


def served_name(original_name: str, *, content_type: str) -> str:
    """The name a file of ``content_type`` is sent back under.

    The client's name with the canonical extension of the served type: its
    own extension is kept only when it is one the type accepts (``.jpeg`` for
    a JPEG), otherwise replaced (``doc.html`` holding a PDF is ``doc.pdf``).
    Tricks around the extension are gone before it is read: trailing dots and
    spaces, invisible characters such as U+202E (``sanitize_original_name``),
    and a length a browser would shorten. Idempotent.
    """
    accepted = extensions_for(content_type)
    name = sanitize_original_name(original_name)
    stem, dot, extension = name.rpartition(".")
    if dot and stem and f".{extension.lower()}" in accepted:
        extension = f".{extension}"
    else:
        stem, extension = (stem if dot and stem else name), accepted[0]
    budget = MAX_SERVED_NAME_BYTES - len(extension.encode())
    # Cutting UTF-8 mid-character drops the partial character.
    stem = _trim(stem.encode()[:budget].decode(errors="ignore")) or FALLBACK_NAME
    return sanitize_original_name(stem + extension)


def extensions_for(content_type: str) -> tuple[str, ...]:
    """The extensions a served type accepts, the canonical one first; never
    one in ``UNSAFE_EXTENSIONS``."""
    mime = content_type.partition(";")[0].strip().lower()
    accepted = EXTENSIONS.get(mime) or _DETECTED.get(mime) or (OPAQUE_EXTENSION,)
    safe = tuple(extension for extension in accepted if extension not in UNSAFE_EXTENSIONS)
    return safe or (OPAQUE_EXTENSION,)


def _detected_extensions() -> dict[str, tuple[str, ...]]:
    # The detector's own table names every type an operator can allowlist
    # beyond ours, so a detected type always has the extension it was found as.
    table: dict[str, tuple[str, ...]] = {}
    for kind in filetype.types:
        if kind.mime and kind.extension and kind.mime not in EXTENSIONS:
            extension = f".{kind.extension.lower()}"
            table[kind.mime] = (*table.get(kind.mime, ()), extension)
    return table


_DETECTED = _detected_extensions()
