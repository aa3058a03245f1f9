"""A Django response, sent over ASGI by the entry point (``protected_media.asgi``).

What Django's ``ASGIHandler.send_response`` does for the responses a media
request gets: the headers and cookies, then the body in one message, or a
streamed file part by part until the client goes away.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from asgiref.typing import ASGIReceiveCallable, ASGISendCallable
from django.http import HttpResponseBase, StreamingHttpResponse


async def send_response(
    response: HttpResponseBase, send: ASGISendCallable, receive: ASGIReceiveCallable
) -> None:
    headers = [(name.encode("ascii"), value.encode("latin-1")) for name, value in response.items()]
    headers += [
        (b"Set-Cookie", morsel.output(header="").encode("ascii").strip())
        for morsel in response.cookies.values()
    ]
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": headers,
            "trailers": False,
        }
    )
    if not isinstance(response, StreamingHttpResponse):
        body = getattr(response, "content", b"")
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return
    # A streamed file (the Python fallback) stops when the client goes away.
    streaming = asyncio.ensure_future(_stream_body(response, send))
    disconnect = asyncio.ensure_future(_disconnected(receive))
    done, _ = await asyncio.wait({streaming, disconnect}, return_when=asyncio.FIRST_COMPLETED)
    for task in (streaming, disconnect):
        if task not in done:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
    if streaming in done:
        streaming.result()


async def _stream_body(response: StreamingHttpResponse, send: ASGISendCallable) -> None:
    parts: AsyncIterator[bytes] = aiter(response)
    try:
        async for part in parts:
            await send({"type": "http.response.body", "body": part, "more_body": True})
    finally:
        # Closes the file at once when the client has gone (Django uses aclosing).
        aclose = getattr(parts, "aclose", None)
        if aclose is not None:
            await aclose()
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnected(receive: ASGIReceiveCallable) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
