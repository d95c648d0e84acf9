"""The app that tests/integration/test_server.py serves with a real ``voicehooks run``."""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio

from voicehooks import AssistantResponse, CallContext, Deadlines, ToolError, VoiceHooks
from voicehooks.core.events import AssistantRequest, EndOfCallReport, StatusUpdate

app = VoiceHooks(deadlines=Deadlines(shutdown_grace_seconds=10))
log = logging.getLogger("voicehooks.live.control")


@app.tool
async def nap(seconds: float, label: str) -> str:
    """Sleep for a while, then answer the label."""
    await anyio.sleep(seconds)
    return label


@app.tool
def blocking(seconds: float) -> str:
    """Block a worker thread for a while."""
    time.sleep(seconds)
    return "unblocked"


@app.tool
async def fail() -> None:
    """Fail with an internal detail."""
    raise RuntimeError("internal-detail-7731")


@app.tool
async def decline() -> None:
    """Decline politely."""
    raise ToolError("That slot is taken.")


@app.tool
async def add(a: int, b: int) -> dict[str, int]:
    """Add two whole numbers.

    Args:
        a: The first.
        b: The second.
    """
    return {"sum": a + b}


@app.on("assistant-request")
async def choose(event: AssistantRequest, context: CallContext) -> Any:
    number = context.customer_number
    if number == "+31600000008":
        await anyio.sleep(8)
    if number == "+31600000009":
        raise RuntimeError("assistant-request bug")
    if number == "+31600000001":
        return AssistantResponse.reject("We are closed.")
    return {"assistant_id": "e2a94f1c-7b3d-4c86-a5e0-19d8f3b6c240"}


@app.on("status-update")
async def on_status(event: StatusUpdate) -> None:
    await anyio.sleep(2)
    log.warning("status handler done for call %s", event.call.id)


@app.on("end-of-call-report")
async def on_report(event: EndOfCallReport) -> None:
    await anyio.sleep(float(event.metadata.get("sleep", 0)))
    log.warning("report stored for call %s", event.call.id)
