"""uvicorn's own floor: a bare ASGI application answering ``ok``, no Django.

What uvicorn itself costs per request on the run command's loop and parser:
the part of a media request's time that no check, however lean, can remove.
The benchmark serves it as it serves Django's bare floor (``bench.floor_case``,
uvicorn alone, wrk straight at it) and prints both beside the gateway.
"""

from __future__ import annotations

from typing import Any

BODY = b"ok\n"
START = {
    "type": "http.response.start",
    "status": 200,
    # As Django's floor answers: a length, so nothing goes out chunked.
    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(BODY)).encode())],
}
ANSWER = {"type": "http.response.body", "body": BODY}


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        await send(START)
        await send(ANSWER)
