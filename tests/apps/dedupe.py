"""The app that tests/integration/test_dedupe_servers.py serves: every run is appended to a
shared file.

Several processes (uvicorn workers, or separate "hosts") append to ``$DEDUPE_RUNS_FILE`` with
``O_APPEND``, so the file counts executions across all of them.
"""

from __future__ import annotations

import os
import uuid

import anyio

from voicehooks import CallState, VoiceHooks
from voicehooks.core.events import EndOfCallReport

app = VoiceHooks(secret=os.environ.get("VOICEHOOKS_SECRET") or "whsec_dedupe_server_tests")


def record(line: str) -> None:
    path = os.environ.get("DEDUPE_RUNS_FILE")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{line} {os.getpid()}\n".encode())  # one write: lines never mix
        finally:
            os.close(fd)


@app.tool
async def book(slot: str) -> dict[str, object]:
    """Book an appointment slot, slowly enough for duplicates to arrive meanwhile."""
    record(f"book {slot}")
    await anyio.sleep(0.3)
    return {"booked": slot, "pid": os.getpid(), "reference": uuid.uuid4().hex}


@app.on("end-of-call-report", run_before_answer=True)
def save(report: EndOfCallReport) -> None:
    record(f"report {report.call.id}")


@app.tool(once_per_call=True)
async def reserve(slot: str, party: int) -> dict[str, object]:
    """Reserve a table once per intent, slowly enough for the model's retries to arrive."""
    record(f"reserve {slot} {party}")
    await anyio.sleep(0.3)
    return {"reserved": slot, "pid": os.getpid(), "reference": uuid.uuid4().hex}


@app.tool
async def remember(item: str, state: CallState) -> int:
    """Add an item to the call's cart."""
    cart = await state.get("cart", list[str], [])
    await state.set("cart", [*cart, item])
    return len(cart) + 1


@app.tool
async def recall(state: CallState) -> list[str]:
    """The call's cart."""
    return await state.get("cart", list[str], [])
