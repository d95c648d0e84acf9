"""Factories for the four events' JSON payloads, with realistic defaults from the platform's docs.

Each returns the delivery as a plain dict (``{"message": {...}}``). Every keyword a factory does
not know becomes a field of ``message`` and replaces the default of the same name.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from typing import Any

__all__ = [
    "CUSTOMER_NUMBER",
    "PHONE_NUMBER",
    "assistant_request",
    "end_of_call_report",
    "status_update",
    "tool_call",
    "tool_calls",
]

PHONE_NUMBER = {
    "id": "b7e1c9a4-2f36-4d8b-9a15-6c0e3f2d7a81",
    "number": "+31302047715",
    "name": "Rijwielhuis Kade Service Line",
}
"""The platform number the factories' calls come in on."""

CUSTOMER_NUMBER = "+31655018342"
"""The caller's number in the factories' calls."""


def _now_iso() -> str:
    now = datetime.datetime.now(datetime.UTC)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _envelope(
    event_type: str,
    status: str,
    *,
    call_id: str | None,
    call_type: str,
    customer_number: str | None,
    metadata: Mapping[str, Any] | None,
    fields: Mapping[str, Any],
) -> dict[str, Any]:
    web = call_type == "web_call"
    message: dict[str, Any] = {
        "type": event_type,
        "timestamp": _now_iso(),
        "call": {"id": call_id or str(uuid.uuid4()), "type": call_type, "status": status},
        # Web calls have no phone numbers: the platform sends nulls (PLATFORM.md 8 row 27).
        "phone_number": {"id": None, "number": None, "name": None} if web else dict(PHONE_NUMBER),
        "customer": {"number": None if web else customer_number},
    }
    if metadata is not None:
        message["assistant"] = {"metadata": dict(metadata)}
    message.update(fields)
    return {"message": message}


def tool_call(
    name: str, arguments: Mapping[str, Any] | str | None = None, *, id: str | None = None
) -> dict[str, Any]:
    """One entry of a ``tool-calls`` delivery's ``tool_call_list``.

    Args:
        name: The tool the model calls.
        arguments: The model's arguments: a dict, or a JSON string as OpenAI-style engines
            send them. ``{}`` when omitted.
        id: The tool call id the answer must echo; a fresh ``tool_…`` id when omitted. Reuse
            an id (with the same ``call_id``) to simulate a redelivery.

    Examples:
        >>> tool_call("check_repair_status", {"order_number": "WO-2291"}, id="tool_1")
        ... # doctest: +NORMALIZE_WHITESPACE
        {'id': 'tool_1', 'type': 'function',
         'function': {'name': 'check_repair_status', 'arguments': {'order_number': 'WO-2291'}}}
    """
    return {
        "id": id or f"tool_{uuid.uuid4().hex[:12]}",
        "type": "function",
        "function": {"name": name, "arguments": {} if arguments is None else arguments},
    }


def tool_calls(
    *calls: Mapping[str, Any],
    call_id: str | None = None,
    call_type: str = "inbound_phone_call",
    customer_number: str | None = CUSTOMER_NUMBER,
    metadata: Mapping[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A ``tool-calls`` delivery carrying ``calls`` (build each with ``tool_call``).

    Args:
        *calls: The entries of ``tool_call_list``, in order.
        call_id: The call's id; a fresh UUID when omitted.
        call_type: ``inbound_phone_call``, ``outbound_phone_call`` or ``web_call`` (web calls
            carry no phone numbers).
        customer_number: The caller's number (E.164), or ``None``.
        metadata: Sent as ``assistant.metadata``, what an assistant-request answer attached.
        **fields: Other ``message`` fields; they replace the defaults of the same name.

    Examples:
        >>> body = tool_calls(tool_call("add", {"a": 1}), call_id="call-1")
        >>> body["message"]["type"], body["message"]["call"]["status"]
        ('tool-calls', 'in-progress')
    """
    return _envelope(
        "tool-calls",
        "in-progress",
        call_id=call_id,
        call_type=call_type,
        customer_number=customer_number,
        metadata=metadata,
        fields={"tool_call_list": list(calls), **fields},
    )


def assistant_request(
    *,
    call_id: str | None = None,
    customer_number: str | None = CUSTOMER_NUMBER,
    **fields: Any,
) -> dict[str, Any]:
    """An ``assistant-request`` delivery: an inbound call is ringing and waits for its config.

    Args:
        call_id: The call's id; a fresh UUID when omitted.
        customer_number: The caller's number (E.164), or ``None`` for a withheld number.
        **fields: Other ``message`` fields; they replace the defaults of the same name.

    Examples:
        >>> assistant_request(call_id="call-1")["message"]["call"]
        {'id': 'call-1', 'type': 'inbound_phone_call', 'status': 'ringing'}
    """
    return _envelope(
        "assistant-request",
        "ringing",
        call_id=call_id,
        call_type="inbound_phone_call",
        customer_number=customer_number,
        metadata=None,
        fields=fields,
    )


def status_update(
    status: str = "in-progress",
    *,
    call_id: str | None = None,
    call_type: str = "inbound_phone_call",
    customer_number: str | None = CUSTOMER_NUMBER,
    metadata: Mapping[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A ``status-update`` delivery: the call's status is now ``status``.

    Once ended, ``end_reason`` defaults to ``user_hangup``; ``ended-with-error`` also carries
    an ``error`` text, as the platform sends it.

    Args:
        status: The new ``call.status``: ``in-progress``, ``ended``, ``ended-with-error``, or
            any other string (the platform may add statuses).
        call_id: The call's id; a fresh UUID when omitted.
        call_type: ``inbound_phone_call``, ``outbound_phone_call`` or ``web_call``.
        customer_number: The caller's number (E.164), or ``None``.
        metadata: Sent as ``assistant.metadata``.
        **fields: Other ``message`` fields (``end_reason``, ``error``, ...); they replace the
            defaults of the same name.

    Examples:
        >>> status_update("ended")["message"]["end_reason"]
        'user_hangup'
    """
    if status.startswith("ended"):
        fields.setdefault("end_reason", "user_hangup")
    if status == "ended-with-error":
        fields.setdefault("error", "Speech-to-text connection failed")
    return _envelope(
        "status-update",
        status,
        call_id=call_id,
        call_type=call_type,
        customer_number=customer_number,
        metadata=metadata,
        fields=fields,
    )


def end_of_call_report(
    *,
    call_id: str | None = None,
    call_type: str = "inbound_phone_call",
    customer_number: str | None = CUSTOMER_NUMBER,
    metadata: Mapping[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """An ``end-of-call-report`` delivery with a summary, a short transcript and an analysis.

    Args:
        call_id: The call's id; a fresh UUID when omitted.
        call_type: ``inbound_phone_call``, ``outbound_phone_call`` or ``web_call``.
        customer_number: The caller's number (E.164), or ``None``.
        metadata: Sent as ``assistant.metadata``, the usual way to find the CRM record.
        **fields: Other ``message`` fields (``duration_seconds``, ``summary``, ``messages``,
            ``analysis``, ``recording_url``, ``started_at``, ``ended_at``, ``end_reason``);
            they replace the defaults of the same name.

    Examples:
        >>> report = end_of_call_report(duration_seconds=12)["message"]
        >>> report["duration_seconds"], report["call"]["status"], len(report["messages"])
        (12, 'ended', 3)
    """
    report: dict[str, Any] = {
        "duration_seconds": 95,
        "summary": "The caller asked whether their bike was ready; it is ready for pickup.",
        "messages": [
            {"role": "assistant", "content": "Good morning, Rijwielhuis Kade, how can I help?"},
            {"role": "user", "content": "Is my bike ready? Order WO-2291."},
            {"role": "assistant", "content": "Yes, WO-2291 is ready for pickup."},
        ],
        "analysis": {"intent": "repair-status", "resolved": True},
        "end_reason": "user_hangup",
    }
    report.update(fields)
    return _envelope(
        "end-of-call-report",
        "ended",
        call_id=call_id,
        call_type=call_type,
        customer_number=customer_number,
        metadata=metadata,
        fields=report,
    )
