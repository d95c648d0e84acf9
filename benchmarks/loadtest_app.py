"""The app ``benchmarks/loadtest.py`` drives: ``voicehooks run benchmarks/loadtest_app.py``.

Every answer is a function of the request alone, so the load test can check each one: tools
echo what they were given, the assistant-request answer names the call. Background work
(status and report handlers, a fire-and-forget tool) is counted, and the counts are printed
when the lifespan ends, after the background runner has drained, so the load test can check
that no accepted delivery's background work went missing.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio

from voicehooks import (
    AssistantRequest,
    AssistantResponse,
    CallContext,
    EndOfCallReport,
    StatusUpdate,
    VoiceHooks,
)

COUNTS_PREFIX = "loadtest background counts:"
"""The line the lifespan prints at shutdown, then ``kind=count`` pairs (loadtest.py reads it)."""

background: Counter[str] = Counter()
_lock = threading.Lock()  # sync handlers run in worker threads, several at once


@asynccontextmanager
async def lifespan(app: VoiceHooks) -> AsyncIterator[None]:
    """Print the background counts once every background job has finished."""
    yield
    pairs = " ".join(f"{kind}={count}" for kind, count in sorted(background.items()))
    # One write: print() writes the parts and the newline separately, and a line another
    # thread wrote between them would hide this one from loadtest.py.
    sys.stdout.write(f"{COUNTS_PREFIX} {pairs}\n")
    sys.stdout.flush()


app = VoiceHooks(lifespan=lifespan)


@app.tool
async def add(a: int, b: int) -> int:
    """Add two numbers (async, on the event loop)."""
    await anyio.sleep(0)
    return a + b


@app.tool
def lookup(order_number: str, context: CallContext) -> dict[str, Any]:
    """Look up a repair order (sync, in a worker thread)."""
    return {"order_number": order_number, "status": "ready", "call": context.call_id}


@app.tool(fire_and_forget=True, async_response="Noted.")
async def note(text: str) -> None:
    """Keep a note after the answer (fire-and-forget)."""
    background["note"] += 1


@app.on("assistant-request")
async def configure(event: AssistantRequest) -> AssistantResponse:
    """Greet the call by its id."""
    return AssistantResponse.override("asst_load", first_message=f"Hello {event.call.id}")


@app.on("status-update")
async def on_status(event: StatusUpdate) -> None:
    """Count, after the answer."""
    background["status-update"] += 1


@app.on("end-of-call-report")
def on_report(event: EndOfCallReport) -> None:
    """Count, after the answer, in a worker thread."""
    with _lock:
        background["end-of-call-report"] += len(event.messages) > 0
