"""What a careful user writes on Starlette: stdlib ``json``, dataclasses, hand validation.

One ``Route``, ``Request.body()``, ``hmac`` over ``<timestamp>.<body>`` with the 300 s
tolerance, ``json.loads``, then the dict checked field by field into slotted dataclasses,
and a ``JSONResponse``. Tool calls run one after the other; a sync tool goes to Starlette's
thread pool.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from benchmarks import demo

label = "Starlette + json + dataclasses"

TOLERANCE_SECONDS = 300


class Invalid(ValueError):
    """The payload does not have the expected shape."""


@dataclass(slots=True)
class Call:
    id: str
    type: str
    status: str


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(slots=True)
class TranscriptMessage:
    role: str
    content: str


@dataclass(slots=True)
class Event:
    type: str
    timestamp: datetime.datetime
    call: Call
    phone_number: str | None
    customer_number: str | None


@dataclass(slots=True)
class ToolCalls(Event):
    tool_call_list: list[ToolCall]


@dataclass(slots=True)
class EndOfCallReport(Event):
    duration_seconds: int | None
    summary: str | None
    messages: list[TranscriptMessage]
    analysis: dict[str, Any] | None
    recording_url: str | None
    started_at: datetime.datetime | None
    ended_at: datetime.datetime | None
    end_reason: str | None


def _get(data: dict[str, Any], key: str, kind: type[Any], *, required: bool = True) -> Any:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, kind):
        raise Invalid(f"{key}: expected {kind.__name__}")
    return value


def _object(data: dict[str, Any], key: str, *, required: bool = True) -> dict[str, Any]:
    value = _get(data, key, dict, required=required)
    return value if value is not None else {}


def _time(data: dict[str, Any], key: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(_get(data, key, str))


def _optional_time(data: dict[str, Any], key: str) -> datetime.datetime | None:
    value = _get(data, key, str, required=False)
    return datetime.datetime.fromisoformat(value) if value is not None else None


def parse_event(payload: Any) -> Event:
    """Check ``payload`` (the decoded body) and build its typed event."""
    if not isinstance(payload, dict):
        raise Invalid("expected an object")
    message = _object(payload, "message")
    kind = _get(message, "type", str)
    raw_call = _object(message, "call")
    call = Call(
        _get(raw_call, "id", str), _get(raw_call, "type", str), _get(raw_call, "status", str)
    )
    common = (
        kind,
        _time(message, "timestamp"),
        call,
        _get(_object(message, "phone_number", required=False), "number", str, required=False),
        _get(_object(message, "customer", required=False), "number", str, required=False),
    )
    if kind == "tool-calls":
        calls = []
        for entry in _get(message, "tool_call_list", list):
            if not isinstance(entry, dict):
                raise Invalid("tool_call_list: expected objects")
            function = _object(entry, "function")
            calls.append(
                ToolCall(
                    _get(entry, "id", str),
                    _get(function, "name", str),
                    _object(function, "arguments", required=False),
                )
            )
        return ToolCalls(*common, tool_call_list=calls)
    if kind == "end-of-call-report":
        transcript = []
        for entry in _get(message, "messages", list, required=False) or ():
            if not isinstance(entry, dict):
                raise Invalid("messages: expected objects")
            transcript.append(
                TranscriptMessage(
                    _get(entry, "role", str), _get(entry, "content", str, required=False) or ""
                )
            )
        return EndOfCallReport(
            *common,
            duration_seconds=_get(message, "duration_seconds", int, required=False),
            summary=_get(message, "summary", str, required=False),
            messages=transcript,
            analysis=_get(message, "analysis", dict, required=False),
            recording_url=_get(message, "recording_url", str, required=False),
            started_at=_optional_time(message, "started_at"),
            ended_at=_optional_time(message, "ended_at"),
            end_reason=_get(message, "end_reason", str, required=False),
        )
    if kind in ("assistant-request", "status-update"):
        return Event(*common)
    raise Invalid(f"unknown event type {kind}")


async def run_tool(call: ToolCall) -> Any:
    """Validate the arguments by hand and run the tool."""
    order_number = call.arguments.get("order_number")
    if not isinstance(order_number, str):
        return {"error": f"The arguments for {call.name} were not usable."}
    if call.name == "check_order":
        return await demo.check_order(order_number)
    if call.name == "check_order_sync":
        return await run_in_threadpool(demo.check_order_sync, order_number)
    return {"error": f"There is no tool called {call.name}."}


def make_app(secret: str) -> Starlette:
    """The demo application on Starlette."""
    key = secret.encode()

    async def webhook(request: Request) -> Response:
        body = await request.body()
        timestamp = request.headers.get("x-webhook-timestamp", "")
        signature = request.headers.get("x-webhook-signature", "").removeprefix("sha256=")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
            return JSONResponse({"error": "missing or stale timestamp"}, status_code=401)
        expected = hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return JSONResponse({"error": "bad signature"}, status_code=401)
        try:
            event = parse_event(json.loads(body))
        except ValueError:  # json.JSONDecodeError and Invalid
            return JSONResponse({"error": "bad payload"}, status_code=400)
        if isinstance(event, ToolCalls):
            results = [
                {"tool_call_id": call.id, "result": await run_tool(call)}
                for call in event.tool_call_list
            ]
            return JSONResponse({"results": results})
        if event.type == "assistant-request":
            demo.choose_assistant(event.customer_number)
        elif isinstance(event, EndOfCallReport):
            demo.record_report(event.call.id, len(event.messages))
        return JSONResponse({})

    return Starlette(routes=[Route("/", webhook, methods=["POST"])])
