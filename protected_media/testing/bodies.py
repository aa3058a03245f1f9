"""Reading a response's method and body for the assertions, from Django's test
clients or httpx, without using the body up: a streamed body read here is put
back, so the test can read it again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync
from django.http import HttpResponse, StreamingHttpResponse

if TYPE_CHECKING:
    from .assertions import Response


def method(response: Response) -> str:
    try:
        request: Any = getattr(response, "request", None)
    except RuntimeError:  # httpx, when no request was attached
        return "GET"
    if isinstance(request, Mapping):  # Django's test clients: WSGI environ or ASGI scope
        return str(request.get("REQUEST_METHOD") or request.get("method") or "GET").upper()
    return str(getattr(request, "method", None) or "GET").upper()


def body(response: Response) -> bytes:
    if isinstance(response, StreamingHttpResponse):
        if response.is_async:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                pass
            else:
                raise RuntimeError("Inside an event loop: await the a-prefixed assertion.")
            data = async_to_sync(_ajoin)(response)
        else:
            data = b"".join(_iterate(response.streaming_content))
        _put_back(response, data)
        return data
    if isinstance(response, HttpResponse):
        return response.content
    return bytes(getattr(response, "content", b""))


async def abody(response: Response) -> bytes:
    if isinstance(response, StreamingHttpResponse):
        if response.is_async:
            data = await _ajoin(response)
        else:
            data = b"".join(_iterate(response.streaming_content))
        _put_back(response, data)
        return data
    return body(response)


async def _ajoin(response: StreamingHttpResponse) -> bytes:
    content = response.streaming_content
    assert isinstance(content, AsyncIterator)
    return b"".join([chunk async for chunk in content])


def _iterate(content: object) -> Iterable[bytes]:
    assert isinstance(content, Iterable)
    return content


def _put_back(response: StreamingHttpResponse, data: bytes) -> None:
    # The body was read to be compared: give the test the same bytes to read again.
    response.streaming_content = _areplay(data) if response.is_async else [data]


async def _areplay(data: bytes) -> AsyncIterator[bytes]:
    yield data
