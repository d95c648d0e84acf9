"""The platform's events as typed structs: what handlers and tools receive.

One decoder, built once, reads a delivery into the one ``Event`` subclass its
``message.type`` names (``ToolCalls``, ``AssistantRequest``, ``StatusUpdate``,
``EndOfCallReport``). The definitions live in ``voicehooks.core.events``; this is their public
home.
"""

from .core.events import (
    EVENT_NAMES,
    AnyEvent,
    AssistantRequest,
    Call,
    CallStatus,
    CallType,
    Customer,
    DecodeIssue,
    EndOfCallReport,
    EndReason,
    Event,
    EventName,
    Message,
    PhoneNumber,
    StatusUpdate,
    ToolCall,
    ToolCalls,
    ToolFunction,
    UnknownEventType,
    decode_delivery,
)

__all__ = [
    "AnyEvent",
    "AssistantRequest",
    "Call",
    "CallStatus",
    "CallType",
    "Customer",
    "DecodeIssue",
    "EVENT_NAMES",
    "EndOfCallReport",
    "EndReason",
    "Event",
    "EventName",
    "Message",
    "PhoneNumber",
    "StatusUpdate",
    "ToolCall",
    "ToolCalls",
    "ToolFunction",
    "UnknownEventType",
    "decode_delivery",
]
