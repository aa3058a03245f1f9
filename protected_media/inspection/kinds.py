"""What people call each type of file: one table, from which the refusals,
a page's list of what it accepts and its script's own check take their words,
so that none of them shows a MIME type where a name will do.

``accepted(allowed_types)`` words a list of types ("images (PNG, JPEG, GIF,
WebP), PDFs and plain text"); ``not_accepted(content_type, allowed_types)``
is the sentence refusing a file of that type (``refusals`` gives it for
every type the table names); ``TEXT_REFUSALS`` the reason
and sentence for text that is not plain text (``plain_text.text_fault``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .plain_text import TextFault


@dataclass(frozen=True)
class Kind:
    name: str  # "Word document"
    extensions: tuple[str, ...]  # (".docx",)
    plural: str  # "Word documents"
    article: str  # "a", "an", or "" for a name that takes none ("plain text")
    # Kinds of one group are worded together when several are accepted:
    # "images (PNG, JPEG)", each by its short name.
    group: str = ""
    short: str = ""
    # Text that a browser renders as a document: never stored as plain text.
    markup: bool = False

    @property
    def label(self) -> str:
        """ "PNG image (.png)": the name, and the extensions people see."""
        if not self.extensions:
            return self.name
        return f"{self.name} ({', '.join(self.extensions)})"


def _kind(
    name: str,
    *extensions: str,
    plural: str = "",
    article: str = "a",
    group: str = "",
    short: str = "",
    markup: bool = False,
) -> Kind:
    return Kind(name, extensions, plural or f"{name}s", article, group, short, markup)


def _image(short: str, *extensions: str, name: str = "", article: str = "a") -> Kind:
    name = name or f"{short} image"
    return _kind(name, *extensions, article=article, group="images", short=short)


def _audio(short: str, *extensions: str) -> Kind:
    name = f"{short} audio"
    return _kind(name, *extensions, plural=name, article="", group="audio", short=short)


def _video(short: str, *extensions: str, article: str = "a") -> Kind:
    return _kind(f"{short} video", *extensions, article=article, group="videos", short=short)


def _archive(short: str, *extensions: str, article: str = "a") -> Kind:
    return _kind(f"{short} archive", *extensions, article=article, group="archives", short=short)


# Content type (as the inspection detects it, or as a browser guesses it from
# a name) -> what people call it. The order is the order of the worded lists.
KINDS: dict[str, Kind] = {
    "image/png": _image("PNG", ".png"),
    "image/jpeg": _image("JPEG", ".jpg", ".jpeg"),
    "image/gif": _image("GIF", ".gif"),
    "image/webp": _image("WebP", ".webp"),
    "image/apng": _image("APNG", ".png", name="animated PNG image", article="an"),
    "image/avif": _image("AVIF", ".avif", article="an"),
    "image/heic": _image("HEIC", ".heic"),
    "image/tiff": _image("TIFF", ".tif", ".tiff"),
    "image/bmp": _image("BMP", ".bmp"),
    "image/x-icon": _image("ICO", ".ico", name="Windows icon"),
    "image/vnd.adobe.photoshop": _image("Photoshop", ".psd"),
    "image/svg+xml": _kind(
        "SVG image", ".svg", article="an", group="images", short="SVG", markup=True
    ),
    "application/pdf": _kind("PDF", ".pdf"),
    "text/plain": _kind("plain text", ".txt", plural="plain text", article=""),
    "text/html": _kind("HTML page", ".html", ".htm", article="an", markup=True),
    "application/xhtml+xml": _kind("XHTML page", ".xhtml", article="an", markup=True),
    "text/xml": _kind("XML file", ".xml", article="an", markup=True),
    "application/xml": _kind("XML file", ".xml", article="an", markup=True),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": _kind(
        "Word document", ".docx"
    ),
    "application/msword": _kind("Word 97-2003 document", ".doc"),
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": _kind(
        "Excel spreadsheet", ".xlsx", article="an"
    ),
    "application/vnd.ms-excel": _kind("Excel 97-2003 spreadsheet", ".xls", article="an"),
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": _kind(
        "PowerPoint presentation", ".pptx"
    ),
    "application/vnd.ms-powerpoint": _kind("PowerPoint 97-2003 presentation", ".ppt"),
    "application/vnd.oasis.opendocument.text": _kind("OpenDocument text", ".odt", article="an"),
    "application/vnd.oasis.opendocument.spreadsheet": _kind(
        "OpenDocument spreadsheet", ".ods", article="an"
    ),
    "application/vnd.oasis.opendocument.presentation": _kind(
        "OpenDocument presentation", ".odp", article="an"
    ),
    "application/rtf": _kind("rich text document", ".rtf"),
    "application/epub+zip": _kind("EPUB e-book", ".epub", article="an"),
    "application/zip": _archive("ZIP", ".zip"),
    "application/x-7z-compressed": _archive("7-Zip", ".7z"),
    "application/x-rar-compressed": _archive("RAR", ".rar"),
    "application/x-tar": _archive("tar", ".tar"),
    "application/gzip": _archive("gzip", ".gz"),
    "audio/mpeg": _audio("MP3", ".mp3"),
    "audio/mp4": _audio("M4A", ".m4a"),
    "audio/aac": _audio("AAC", ".aac"),
    "audio/ogg": _audio("Ogg", ".ogg"),
    "audio/x-flac": _audio("FLAC", ".flac"),
    "audio/x-wav": _audio("WAV", ".wav"),
    "video/mp4": _video("MP4", ".mp4", article="an"),
    "video/webm": _video("WebM", ".webm"),
    "video/quicktime": _video("QuickTime", ".mov"),
    "video/x-matroska": _video("Matroska", ".mkv"),
    "video/x-msvideo": _video("AVI", ".avi", article="an"),
    "application/x-msdownload": _kind("Windows program", ".exe"),
}

MARKUP_TYPES = tuple(content_type for content_type, kind in KINDS.items() if kind.markup)

UNKNOWN_KIND = "This kind of file"

# Text that is not plain text -> the refusal's reason and sentence. A file
# with a NUL byte ("binary") is no text at all: it is refused as a kind of
# file we do not know.
TEXT_REFUSALS: dict[TextFault, tuple[str, str]] = {
    "markup": (
        "text_with_markup",
        "This text file contains markup (HTML or XML); text is accepted only as plain text, "
        "without tags.",
    ),
    "control_characters": (
        "text_with_control_characters",
        "This text file contains control characters (such as terminal colour codes); text is "
        "accepted only as plain text.",
    ),
    "not_utf8": (
        "text_not_utf8",
        "This text file is not in UTF-8; save it as UTF-8 and upload it again.",
    ),
}


def label(content_type: str) -> str:
    """ "PNG image (.png)"; a type the table does not know, as itself."""
    kind = KINDS.get(content_type)
    return kind.label if kind else content_type


def accepted(allowed_types: Iterable[str]) -> str:
    """The allowed types in words, in the table's order, a group's kinds
    together: "images (PNG, JPEG, GIF, WebP), PDFs and plain text". A type
    the table does not know is named as itself, last."""
    allowed = list(dict.fromkeys(allowed_types))
    order = {content_type: index for index, content_type in enumerate(KINDS)}
    known = sorted((t for t in allowed if t in KINDS), key=order.__getitem__)
    groups: dict[str, list[Kind]] = {}
    slots: list[Kind | str] = []  # a kind, or the name of the group it opens
    for content_type in known:
        kind = KINDS[content_type]
        if not kind.group:
            slots.append(kind)
        elif kind.group not in groups:
            groups[kind.group] = [kind]
            slots.append(kind.group)
        else:
            groups[kind.group].append(kind)
    phrases = [_phrase(slot, groups) for slot in slots]
    phrases += [t for t in allowed if t not in KINDS]
    return _in_words(list(dict.fromkeys(phrases)))


def not_accepted(content_type: str | None, allowed_types: Iterable[str]) -> str:
    """The refusal of a file of this type: "A Word document (.docx) is not
    accepted here; you can upload images (PNG, JPEG, GIF, WebP), PDFs and
    plain text." For a type the table does not know (or none), "This kind
    of file is not accepted here; ..."."""
    kind = KINDS.get(content_type or "")
    subject = f"{kind.article} {kind.label}".strip() if kind else UNKNOWN_KIND
    subject = subject[:1].upper() + subject[1:]
    choices = accepted(allowed_types)
    if not choices:
        return f"{subject} is not accepted here; no kind of file is."
    return f"{subject} is not accepted here; you can upload {choices}."


def refusals(allowed_types: Iterable[str]) -> dict[str, str]:
    """``not_accepted`` of each type the table names and the list leaves out:
    for a page's script, to refuse a file before sending it in the words the
    server would answer with."""
    allowed = tuple(allowed_types)
    return {
        content_type: not_accepted(content_type, allowed)
        for content_type in KINDS
        if content_type not in allowed
    }


def _phrase(slot: Kind | str, groups: dict[str, list[Kind]]) -> str:
    if isinstance(slot, Kind):
        return slot.plural
    members = groups[slot]
    if len(members) == 1:
        return members[0].plural
    return f"{slot} ({', '.join(dict.fromkeys(kind.short for kind in members))})"


def _in_words(phrases: list[str]) -> str:
    if len(phrases) <= 1:
        return "".join(phrases)
    return f"{', '.join(phrases[:-1])} and {phrases[-1]}"
