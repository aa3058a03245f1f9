"""What the attack suite shares: raw bytes on the wire, and ways to read an answer."""

from __future__ import annotations

import email.policy
import io
import socket
import struct
import zlib
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from PIL import Image

from ..harness import RawResponse, Stack

PRIVATE_TEXT = b"alice's private notes, canary 7f3a9c\n"
# Headers every answer of Django's carries (its middleware) and nginx's own
# answers never do: how a client tells who answered.
DJANGO_FINGERPRINT = ("x-frame-options", "cross-origin-opener-policy")
MEDIA_SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'; sandbox",
    "referrer-policy": "no-referrer",
    "cross-origin-resource-policy": "same-origin",
}


@dataclass(frozen=True)
class WireResponse:
    status: int
    header_list: list[tuple[str, str]]
    body: bytes

    @property
    def headers(self) -> dict[str, str]:
        return dict(self.header_list)


def wire(stack: Stack, request: bytes, timeout: float = 30) -> WireResponse | None:
    """Send bytes no HTTP library would send; None when nginx closes without an answer."""
    data = b""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=timeout) as connection:
        connection.sendall(request)
        try:
            while chunk := connection.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    if not data:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    header_list = [
        (name.strip().lower(), value.strip())
        for name, _, value in (line.partition(":") for line in lines)
    ]
    return WireResponse(int(status_line.split()[1]), header_list, body)


def get_line(target: bytes, *extra: bytes) -> bytes:
    lines = [b"GET " + target + b" HTTP/1.1", b"Host: 127.0.0.1", *extra, b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def signature(response: RawResponse | WireResponse) -> tuple[int, list[tuple[str, str]], bytes]:
    """Everything a client can compare between two answers, but the date."""
    headers = [(name, value) for name, value in response.header_list if name != "date"]
    return response.status, headers, response.body


def answered_by_django(response: RawResponse | WireResponse) -> bool:
    names = {name for name, _ in response.header_list}
    return all(name in names for name in DJANGO_FINGERPRINT)


def accel_headers(response: RawResponse | WireResponse) -> list[str]:
    return [name for name, _ in response.header_list if name.startswith("x-accel")]


def stored_path(stack: Stack, url: str) -> Path:
    """The file on disk behind a media URL (found by its key, as an attacker
    who guessed the layout would)."""
    key = url.rsplit("/", 1)[1]
    [path] = stack.private_root.glob(f"**/{key}.*")
    return path


def parse_disposition(value: str) -> tuple[str, list[str], str | None, list[str]]:
    """(disposition, filename parameter names, filename, parse defects), as
    the standard library's HTTP header parser reads the header."""
    parsed = email.policy.HTTP.header_factory("Content-Disposition", value)
    message = EmailMessage(policy=email.policy.HTTP)
    message["Content-Disposition"] = value
    params = message.get_params(header="Content-Disposition") or [("", "")]
    names = [key for key, _ in params[1:] if key.lower().startswith("filename")]
    defects = [type(defect).__name__ for defect in parsed.defects]
    return params[0][0], names, message.get_filename(), defects


def png(size: tuple[int, int] = (16, 12)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def png_declaring(width: int, height: int) -> bytes:
    """A valid PNG header for a huge image, in a few dozen bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def multipart(parts: list[tuple[str, bytes]], boundary: str = "attack-boundary") -> bytes:
    """A multipart body from raw Content-Disposition parameters and contents."""
    body = b""
    for disposition, content in parts:
        body += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; {disposition}\r\n'
                "Content-Type: text/plain\r\n\r\n"
            ).encode()
            + content
            + b"\r\n"
        )
    return body + f"--{boundary}--\r\n".encode()


def create_record(stack: Stack, *, key: str, name: str, owner: str, data: bytes) -> None:
    """A file and its record as a site's own upload_to could store them."""
    stack.shell(
        "\n".join(
            [
                "from pathlib import Path",
                "from django.conf import settings",
                "from django.contrib.auth.models import User",
                "from protected_media.models import ProtectedFile, StoredFile",
                f"path = Path(settings.SENDFILE_ROOT) / {name!r}",
                "path.parent.mkdir(parents=True, exist_ok=True)",
                f"path.write_bytes({data!r})",
                f"StoredFile.objects.create(key={key!r}, name={name!r}, original_name='f.txt',",
                f"    size={len(data)}, content_type='text/plain',",
                "    source='protected_media.protectedfile.file')",
                f"ProtectedFile.objects.create(owner=User.objects.get(username={owner!r}),",
                f"    file={name!r})",
            ]
        )
    )
