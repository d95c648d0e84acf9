"""The identity of a piece of work, derived from what a delivery carries.

The platform documents neither retries nor delivery ids (PLATFORM.md 8 rows 1-2): a tool call
is its (call id, tool call id), an informational event a digest of its type, call id, call
status and event time. Duplicate suppression (``voicehooks.state.dedupe``), the durable
queue's done marks and ``CallContext.delivery_id`` all read these, so they agree.
"""

from __future__ import annotations

import hashlib

import msgspec

from .events import Event, ToolCall

__all__ = ["delivery_id", "event_key", "tool_key"]


def tool_key(call_id: str, tool_call_id: str) -> str:
    """The store key of one tool call. The length prefix keeps ``:`` in ids unambiguous."""
    return f"tool:{len(call_id)}:{call_id}:{tool_call_id}"


def event_key(event: Event) -> str:
    """The store key of an informational delivery: a digest of its identity.

    Kept on the event once made: duplicate suppression and ``delivery_id`` both read it.
    """
    cache = event.__dict__
    key: str | None = cache.get("_key")
    if key is None:
        call = event.call
        identity = _encode_identity((event.type, call.id, call.status, event.timestamp))
        key = cache["_key"] = "event:" + hashlib.sha256(identity).hexdigest()
    return key


_encode_identity = msgspec.json.Encoder().encode


def delivery_id(event: Event, tool_call: ToolCall | None = None) -> str:
    """A stable id of one piece of work: ``tool_call`` of ``event``, or ``event`` itself.

    The same identity duplicate suppression uses, so a redelivery has the same id: 32 hex
    characters, for the user's own idempotency keys.
    """
    if tool_call is not None:
        key = tool_key(event.call.id, tool_call.id).encode()
        return hashlib.sha256(key).hexdigest()[:32]
    return event_key(event)[6:38]  # after "event:"
