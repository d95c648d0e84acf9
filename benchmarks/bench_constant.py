"""The server's ceiling: a bare ASGI app that reads the body and answers a constant.

It checks nothing and decodes nothing, so it only runs over HTTP, where it shows what
uvicorn itself costs per request; it is not part of the conformance check.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from benchmarks.bench_raw import _lifespan

label = "constant (uvicorn ceiling)"

_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")],
}
_BODY = {"type": "http.response.body", "body": b"{}"}


def make_app(secret: str) -> ASGIApp:
    """Answer ``{}`` to everything; ``secret`` is ignored."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await _lifespan(scope, receive, send)
            return
        message = await receive()
        while message.get("more_body"):
            message = await receive()
        await send(_START)
        await send(_BODY)

    return app
