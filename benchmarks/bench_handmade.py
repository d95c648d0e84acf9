"""The second floor: the raw receiver plus voicehooks' default features, written by hand.

What a careful team would add to ``bench_raw`` before taking it to production, each the
shortest way it can be written: the Content-Type and body-size checks, duplicate suppression
in a bounded dict (a tool call is its call id and tool call id; a duplicate gets the stored
answer), a deadline on every tool and on the assistant-request handler, a tool's exception
answered as an error result, the per-delivery log line when INFO is on, and the report
handler as a task after the answer. The benchmarks run with logging at WARNING, as they run
voicehooks, so the line costs its level check here too.

Between the floor and voicehooks, this one splits the gap: ``handmade / raw`` is what the
features cost written by hand, ``voicehooks / handmade`` what the framework adds on top.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections import OrderedDict
from typing import Any

import msgspec
from starlette.types import ASGIApp, Receive, Scope, Send

from benchmarks import bench_raw, demo
from benchmarks.bench_raw import (
    TOLERANCE_SECONDS,
    Answer,
    AssistantRequest,
    EndOfCallReport,
    Result,
    ToolCall,
    ToolCalls,
    _answer,
    _decode_delivery,
    _encode,
    _lifespan,
)

label = "raw + the same features by hand"

MAX_BODY_BYTES = 1 << 20
MAX_REMEMBERED = 50_000
TOOL_SECONDS = 8.0
ASSISTANT_SECONDS = 4.0

_EMPTY = b"{}"
_log = logging.getLogger("handmade")


def make_app(secret: str) -> ASGIApp:
    """The hand-written receiver with features, for ``secret``."""
    keyed = hmac.new(secret.encode(), digestmod=hashlib.sha256)
    compare = hmac.compare_digest
    now = time.time
    # (call id, tool call id) -> the encoded result, or None while the first run goes on.
    seen: OrderedDict[tuple[str, str], Any] = OrderedDict()
    background: set[asyncio.Task[None]] = set()

    async def run_tool(call: ToolCall) -> Any:
        name = call.function.name
        try:
            async with asyncio.timeout(TOOL_SECONDS):
                return await bench_raw.run_tool(call)
        except TimeoutError:
            return {"error": f"The tool {name} did not answer in time."}
        except Exception:
            return {"error": f"The tool {name} failed unexpectedly."}

    async def once(call_id: str, call: ToolCall) -> Any:
        key = (call_id, call.id)
        if key in seen:
            return seen[key]  # a duplicate: the first answer (a real one would wait for it)
        seen[key] = None
        if len(seen) > MAX_REMEMBERED:
            seen.popitem(last=False)
        result = seen[key] = await run_tool(call)
        return result

    async def report(event: EndOfCallReport) -> None:
        demo.record_report(event.call.id, len(event.messages))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await _lifespan(scope, receive, send)
            return
        started = time.perf_counter()
        timestamp = signature = content_type = None
        for name, value in scope["headers"]:
            if name == b"x-webhook-signature":
                signature = value
            elif name == b"x-webhook-timestamp":
                timestamp = value
            elif name == b"content-type":
                content_type = value
        if content_type is None or not content_type.startswith(b"application/json"):
            await _answer(send, 415, b'{"error":"not JSON"}')
            return
        message = await receive()
        body: bytes = message.get("body", b"")
        if message.get("more_body"):
            chunks = [body]
            while message.get("more_body"):
                message = await receive()
                chunks.append(message.get("body", b""))
            body = b"".join(chunks)
        if len(body) > MAX_BODY_BYTES:
            await _answer(send, 413, b'{"error":"too large"}')
            return
        if timestamp is None or signature is None or not timestamp.isdigit():
            await _answer(send, 401, b'{"error":"unsigned"}')
            return
        if abs(now() - int(timestamp)) > TOLERANCE_SECONDS:
            await _answer(send, 401, b'{"error":"stale"}')
            return
        mac = keyed.copy()
        mac.update(timestamp + b".")
        mac.update(body)
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
            call_id = event.call.id
            results = [Result(call.id, await once(call_id, call)) for call in event.tool_call_list]
            await _answer(send, 200, _encode(Answer(results)))
        elif type(event) is AssistantRequest:
            try:
                async with asyncio.timeout(ASSISTANT_SECONDS):
                    demo.choose_assistant(event.customer.number if event.customer else None)
            except Exception:
                pass  # the saved configuration: {}
            await _answer(send, 200, _EMPTY)
        else:
            await _answer(send, 200, _EMPTY)
            if type(event) is EndOfCallReport:
                task = asyncio.get_running_loop().create_task(report(event))
                background.add(task)
                task.add_done_callback(background.discard)
        if _log.isEnabledFor(logging.INFO):
            _log.info(
                "%s call=%s 200 %.1fms",
                type(event).__struct_config__.tag,
                event.call.id[:8],
                1000 * (time.perf_counter() - started),
            )

    return app
