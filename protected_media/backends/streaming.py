"""The Python fallback: streams the file with aiofiles, for development and for
sites without nginx. Answers HEAD, one byte range (206/416) and conditional
requests (304) the way nginx does, so both paths look alike to a client.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import aiofiles
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified, StreamingHttpResponse
from django.utils.http import http_date, parse_http_date_safe

from ..headers import CACHE_CONTROL
from ..nginx.render import MEDIA_SECURITY_HEADERS

CHUNK_SIZE = 192 * 1024
_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")
# What nginx adds to every answer of its internal location (security rule 5),
# so a file served here cannot run, load anything, or be framed either.
_SECURITY_HEADERS = dict(MEDIA_SECURITY_HEADERS)


async def asendfile(
    request: HttpRequest, root: Path, name: str, *, headers: dict[str, str]
) -> HttpResponse | StreamingHttpResponse | None:
    """The response for the file ``name`` under ``root``, or None when there is
    no such regular file reachable without a symlink."""
    path = root / name
    info = await asyncio.get_running_loop().run_in_executor(None, _file_info, root, path)
    if info is None:
        return None
    size = info.st_size
    # nginx's own validators, so a client that switches path keeps its cache.
    etag = f'"{int(info.st_mtime):x}-{size:x}"'
    last_modified = http_date(info.st_mtime)
    validators = {"ETag": etag, "Last-Modified": last_modified}
    cache = {CACHE_CONTROL: headers[CACHE_CONTROL], **_SECURITY_HEADERS}

    if not_modified(request, etag=etag, mtime=int(info.st_mtime)):
        return HttpResponseNotModified(headers={**validators, **cache})

    span = None
    if _range_applies(request, etag, last_modified):
        span = byte_range(request.headers.get("Range"), size)
    if span == "unsatisfiable":
        return HttpResponse(
            status=416,
            headers={"Content-Range": f"bytes */{size}", **cache},
        )

    start, length = span if isinstance(span, tuple) else (0, size)
    response_headers = {
        **headers,
        **_SECURITY_HEADERS,
        **validators,
        "Accept-Ranges": "bytes",
        "Content-Length": str(length),
    }
    if span:
        response_headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
    body = _aread(path, start, length) if request.method != "HEAD" else _empty()
    return StreamingHttpResponse(body, status=206 if span else 200, headers=response_headers)


def _file_info(root: Path, path: Path) -> os.stat_result | None:
    # As nginx's `disable_symlinks on from=<root>`: no part of the path below
    # the root may be a link, so a planted symlink cannot reach another file.
    if os.path.realpath(path) != os.path.join(os.path.realpath(root), path.relative_to(root)):
        return None
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info if stat.S_ISREG(info.st_mode) else None


def not_modified(request: HttpRequest, *, etag: str, mtime: int) -> bool:
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
        return "*" in tags or etag in tags
    since = parse_http_date_safe(request.headers.get("If-Modified-Since") or "")
    # nginx's default (if_modified_since exact): only an equal date matches.
    return since is not None and since == mtime


def byte_range(header: str | None, size: int) -> tuple[int, int] | str | None:
    """(start, length) for one satisfiable range, "unsatisfiable", or None for
    the whole file. Several ranges are answered with the whole file, as nginx
    does with ``max_ranges 1``."""
    if not header or "," in header:
        return None
    match = _RANGE_RE.fullmatch(header.strip())
    if not match or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if first:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
        if last and int(last) < start:
            return None
    else:
        suffix = int(last)
        if suffix == 0:
            return "unsatisfiable"
        start, end = max(size - suffix, 0), size - 1
    if start >= size:
        return "unsatisfiable"
    return start, end - start + 1


def _range_applies(request: HttpRequest, etag: str, last_modified: str) -> bool:
    if_range = request.headers.get("If-Range")
    return if_range is None or if_range.strip() in (etag, last_modified)


async def _aread(path: Path, start: int, length: int) -> AsyncIterator[bytes]:
    # aiofiles reads in its threads. Reading into one buffer made here, rather
    # than letting each read allocate its chunk there, keeps the big
    # allocations in the event loop's thread: memory freed by one thread's
    # allocator arena is not reused by another's, and the process grows.
    buffer = bytearray(min(CHUNK_SIZE, length))
    view = memoryview(buffer)
    async with aiofiles.open(path, "rb", buffering=0) as handle:
        await handle.seek(start)
        remaining = length
        while remaining > 0:
            count = await handle.readinto(view[: min(CHUNK_SIZE, remaining)])
            if not count:
                break
            remaining -= count
            yield bytes(view[:count])


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator
