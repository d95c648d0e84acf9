"""The HTTP details every endpoint of the app shares: the JSON media type, and reading a body
under its size limit.

The webhook (``voicehooks.app``) and the MCP endpoint (``voicehooks.mcp``) read their requests
with these, so both refuse the same bodies the same way.
"""

from __future__ import annotations

from typing import Final

from starlette.types import Receive

from .exceptions import PayloadTooLarge

__all__ = ["JSON", "is_json", "read_body"]

JSON: Final = b"application/json"


def is_json(content_type: bytes | None) -> bool:
    """Whether a ``Content-Type`` is JSON: ``application/json``, in UTF-8 if a charset is named.

    Examples:
        >>> is_json(b"application/json; charset=utf-8"), is_json(b"text/plain")
        (True, False)
    """
    if content_type is None:
        return False
    if content_type == JSON:
        return True
    media, _, params = content_type.partition(b";")
    if media.strip().lower() != JSON:
        return False
    for param in params.split(b";"):
        key, _, value = param.partition(b"=")
        if key.strip().lower() == b"charset" and value.strip().strip(b'"').lower() not in (
            b"utf-8",
            b"utf8",
        ):
            return False
    return True


async def read_body(receive: Receive, max_bytes: int) -> bytes | None:
    """The request's whole body, or ``None`` if the client went away before it arrived.

    Raises:
        PayloadTooLarge: It is larger than ``max_bytes``; checked per chunk, so an oversized
            body is refused without being held in memory.
    """
    message = await receive()
    if message["type"] != "http.request":
        return None
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > max_bytes:
            raise PayloadTooLarge(_too_large(max_bytes))
        return body
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(_too_large(max_bytes))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _too_large(max_bytes: int) -> str:
    return f"the body is larger than the limit of {max_bytes} bytes"
