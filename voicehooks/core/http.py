"""The JSON media type, as every endpoint of the app accepts it.

The webhook (``voicehooks.app``) and the MCP endpoint (``voicehooks.mcp``) check their
requests' ``Content-Type`` with ``is_json``, so both refuse the same ones; the MCP endpoint
reads its body with the app's own reader (``VoiceHooks._read_body``), under the same limits.
"""

from __future__ import annotations

from typing import Final

__all__ = ["JSON", "is_json"]

JSON: Final = b"application/json"


def is_json(content_type: bytes | None) -> bool:
    """Whether a ``Content-Type`` is JSON: ``application/json``, in UTF-8 if a charset is named.

    Examples:
        >>> is_json(b"application/json; charset=utf-8"), is_json(b"text/plain")
        (True, False)
    """
    if content_type is None:
        return False
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
