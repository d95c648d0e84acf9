"""The floor: a hand-written raw ASGI receiver with msgspec Structs and hmac.

Written to be as fast as possible while doing the same work as every other contender:
HMAC-SHA256 over ``<timestamp>.<body>`` with a 300 s tolerance in both directions, one
msgspec pass into a tagged union of typed events, the tool's arguments decoded into a typed
Struct, the demo tool awaited, the answer encoded by msgspec. No routing, no content-type
check, no deadlines, no duplicate suppression, no logging: only what no receiver can skip.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import hmac
import time
from typing import Any

import msgspec
from starlette.types import ASGIApp, Receive, Scope, Send

from benchmarks import demo

label = "raw ASGI + msgspec + hmac"

TOLERANCE_SECONDS = 300


class Call(msgspec.Struct, gc=False):
    id: str
    type: str
    status: str


class PhoneNumber(msgspec.Struct, gc=False):
    number: str | None = None
    id: str | None = None
    name: str | None = None


class Customer(msgspec.Struct, gc=False):
    number: str | None = None


class Function(msgspec.Struct, gc=False):
    name: str
    arguments: msgspec.Raw = msgspec.Raw(b"{}")


class ToolCall(msgspec.Struct, gc=False):
    id: str
    function: Function
    type: str = "function"


class Base(msgspec.Struct, tag_field="type", gc=False):
    timestamp: datetime.datetime
    call: Call
    phone_number: PhoneNumber | None = None
    customer: Customer | None = None


class ToolCalls(Base, tag="tool-calls"):
    tool_call_list: list[ToolCall] = []


class AssistantRequest(Base, tag="assistant-request"):
    pass


class StatusUpdate(Base, tag="status-update"):
    error: str | None = None
    end_reason: str | None = None


class TranscriptMessage(msgspec.Struct, gc=False):
    role: str
    content: str = ""


class EndOfCallReport(Base, tag="end-of-call-report"):
    duration_seconds: int | None = None
    summary: str | None = None
    messages: list[TranscriptMessage] = []
    analysis: dict[str, Any] | None = None
    recording_url: str | None = None
    started_at: datetime.datetime | None = None
    ended_at: datetime.datetime | None = None
    end_reason: str | None = None


class Delivery(msgspec.Struct, gc=False):
    message: ToolCalls | AssistantRequest | StatusUpdate | EndOfCallReport


class CheckOrderArguments(msgspec.Struct, gc=False):
    order_number: str


class Result(msgspec.Struct, gc=False):
    tool_call_id: str
    result: Any


class Answer(msgspec.Struct, gc=False):
    results: list[Result]


_decode_delivery = msgspec.json.Decoder(Delivery).decode
_decode_arguments = msgspec.json.Decoder(CheckOrderArguments).decode
_encode = msgspec.json.Encoder().encode

_EMPTY = b"{}"
_JSON = (b"content-type", b"application/json")


async def run_tool(call: ToolCall) -> Any:
    """The demo tool ``call`` names, with its decoded arguments, or an error result."""
    name = call.function.name
    try:
        if name == "check_order":
            return await demo.check_order(_decode_arguments(call.function.arguments).order_number)
        if name == "check_order_sync":
            arguments = _decode_arguments(call.function.arguments)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, demo.check_order_sync, arguments.order_number)
    except msgspec.ValidationError:
        return {"error": f"The arguments for {name} were not usable."}
    return {"error": f"There is no tool called {name}."}


def make_app(secret: str) -> ASGIApp:
    """The raw receiver for ``secret``."""
    keyed = hmac.new(secret.encode(), digestmod=hashlib.sha256)
    compare = hmac.compare_digest
    now = time.time

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await _lifespan(scope, receive, send)
            return
        timestamp = signature = None
        for name, value in scope["headers"]:
            if name == b"x-webhook-signature":
                signature = value
            elif name == b"x-webhook-timestamp":
                timestamp = value
        message = await receive()
        body: bytes = message.get("body", b"")
        if message.get("more_body"):
            chunks = [body]
            while message.get("more_body"):
                message = await receive()
                chunks.append(message.get("body", b""))
            body = b"".join(chunks)
        if timestamp is None or signature is None or not timestamp.isdigit():
            await _answer(send, 401, b'{"error":"unsigned"}')
            return
        if abs(now() - int(timestamp)) > TOLERANCE_SECONDS:
            await _answer(send, 401, b'{"error":"stale"}')
            return
        mac = keyed.copy()
        mac.update(timestamp + b".")
        mac.update(body)  # no copy of the body into a concatenation
        if signature.startswith(b"sha256="):
            signature = signature[7:]
        if not compare(mac.hexdigest().encode(), signature):
            await _answer(send, 401, b'{"error":"bad signature"}')
            return
        try:
            event = _decode_delivery(body).message
        except msgspec.DecodeError:
            await _answer(send, 400, b'{"error":"bad payload"}')
            return
        if type(event) is ToolCalls:
            results = [Result(call.id, await run_tool(call)) for call in event.tool_call_list]
            await _answer(send, 200, _encode(Answer(results)))
        elif type(event) is AssistantRequest:
            demo.choose_assistant(event.customer.number if event.customer else None)
            await _answer(send, 200, _EMPTY)
        else:
            await _answer(send, 200, _EMPTY)
            if type(event) is EndOfCallReport:
                demo.record_report(event.call.id, len(event.messages))

    return app


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [_JSON, (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "lifespan":
        return
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
