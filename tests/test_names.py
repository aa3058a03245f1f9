import pytest
from hypothesis import given
from hypothesis import strategies as st

from protected_media.keys import KEY_LENGTH, is_key, new_key
from protected_media.names import (
    FALLBACK_NAME,
    UNSAFE_EXTENSIONS,
    extensions_for,
    is_safe_stored_name,
    sanitize_original_name,
    served_name,
    stored_name,
)


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("My report (final).pdf", "My report (final).pdf"),
        ("e\u0301te\u0301.txt", "\u00e9t\u00e9.txt"),  # NFD becomes NFC
        ("日本語.png", "日本語.png"),
        ("a;b.txt", "a;b.txt"),
        ('"quoted".txt', '"quoted".txt'),
        ("back\\slash.txt", "slash.txt"),  # a Windows path: keep the last part
        ("C:\\Users\\me\\cv.pdf", "cv.pdf"),
        ("../../etc/passwd", "passwd"),
        ("new\r\nline.txt", "newline.txt"),  # header injection
        ("nul\x00byte.txt", "nulbyte.txt"),
        ("gpj\u202eexe.jpg", "gpjexe.jpg"),  # right-to-left override disguise
        ("", FALLBACK_NAME),
        (".", FALLBACK_NAME),
        ("..", FALLBACK_NAME),
        ("  .hidden  ", "hidden"),
        ("dir/", FALLBACK_NAME),
    ],
)
def test_original_names_are_cleaned(sent: str, kept: str) -> None:
    assert sanitize_original_name(sent) == kept


def test_long_names_keep_their_extension() -> None:
    cleaned = sanitize_original_name("x" * 300 + ".pdf")
    assert len(cleaned) == 200
    assert cleaned.endswith("x.pdf")


@given(st.text(max_size=400))
def test_sanitizer_invariants(name: str) -> None:
    cleaned = sanitize_original_name(name)
    assert cleaned not in ("", ".", "..")
    assert "/" not in cleaned and "\\" not in cleaned
    assert not any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in cleaned)
    assert len(cleaned) <= 200
    assert sanitize_original_name(cleaned) == cleaned


@pytest.mark.parametrize(
    ("name", "content_type", "served"),
    [
        ("doc.html", "application/pdf", "doc.pdf"),  # the type decides
        ("x.html", "text/plain", "x.txt"),
        ("report", "application/pdf", "report.pdf"),  # no extension: the type's
        ("photo.jpeg", "image/jpeg", "photo.jpeg"),  # one the type accepts: kept
        ("photo.JPG", "image/jpeg", "photo.JPG"),
        ("photo.png", "image/jpeg", "photo.jpg"),
        ("notes.csv", "text/plain", "notes.txt"),  # a spreadsheet runs formulas
        ("doc.html.", "application/pdf", "doc.pdf"),  # trailing dot
        ("doc.html ", "application/pdf", "doc.pdf"),  # trailing space
        ("doc.HTML", "text/plain", "doc.txt"),
        ("doc.html::$DATA", "application/pdf", "doc.pdf"),  # an NTFS stream
        ("fdp\u202e.html", "application/pdf", "fdp.pdf"),  # U+202E: "fdplmth.pdf" on screen
        ("doc.pdf.html", "application/pdf", "doc.pdf.pdf"),
        ("doc.html%00.pdf", "application/pdf", "doc.html%00.pdf"),  # sent as filename*
        (".html", "text/plain", "html.txt"),
        ("", "text/plain", "file.txt"),
        ("a.exe", "application/x-msdownload", "a.bin"),  # the detector's own extension runs
        ("a.swf", "application/x-shockwave-flash", "a.bin"),
        ("a.zip", "application/zip", "a.zip"),  # the detector's table for other types
        ("a.svg", "image/svg+xml", "a.bin"),  # a type with no safe extension
        ("a.txt", "text/plain; charset=utf-8", "a.txt"),
        ("a" * 250 + ".html", "application/pdf", "a" * 195 + ".pdf"),
        ("\u65e5" * 150 + ".txt", "text/plain", "\u65e5" * 65 + ".txt"),  # 200 bytes at most
    ],
)
def test_served_names_take_the_types_extension(name: str, content_type: str, served: str) -> None:
    assert served_name(name, content_type=content_type) == served


def test_no_type_is_served_under_an_extension_that_runs() -> None:
    import filetype

    for kind in filetype.types:
        assert not set(extensions_for(kind.mime)) & UNSAFE_EXTENSIONS, kind.mime
    for unsafe in ("text/html", "image/svg+xml", "application/xml", "text/javascript"):
        assert extensions_for(unsafe) == (".bin",)


def test_keys_carry_128_random_bits() -> None:
    keys = {new_key() for _ in range(1000)}
    assert len(keys) == 1000
    assert all(len(key) == KEY_LENGTH and is_key(key) for key in keys)


@pytest.mark.parametrize(
    "value", ["", "short", "a" * 21, "a" * 23, "a" * 21 + "/", "a" * 21 + "%", "a" * 21 + "\n"]
)
def test_malformed_keys_are_refused(value: str) -> None:
    assert not is_key(value)


@pytest.mark.parametrize(
    ("folder", "expected"),
    [
        ("profile_pics", "profile_pics/K.png"),
        ("profile_pics/", "profile_pics/K.png"),
        ("", "K.png"),
        ("a/./b", "a/b/K.png"),
    ],
)
def test_stored_names_are_built_by_the_server(folder: str, expected: str) -> None:
    assert stored_name(folder=folder, key="K", extension=".png") == expected


def test_stored_names_stay_inside_the_root() -> None:
    with pytest.raises(ValueError):
        stored_name(folder="../outside", key="K", extension=".png")


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("files/abc.txt", True),
        ("a b/%41?.txt", True),
        ("/etc/passwd", False),
        ("files/../x", False),
        ("files//x", False),
        ("x\x00", False),
        ("x\r\nX-Accel-Redirect: y", False),
        ("a\\b", False),
        ("", False),
    ],
)
def test_unsafe_stored_names_are_recognised(name: str, safe: bool) -> None:
    assert is_safe_stored_name(name) is safe
