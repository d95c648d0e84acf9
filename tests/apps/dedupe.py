"""The app that tests/integration/test_dedupe_servers.py serves: every run is appended to a
shared file.

Several processes (uvicorn workers, or separate "hosts") append to ``$DEDUPE_RUNS_FILE`` with
``O_APPEND``, so the file counts executions across all of them.
"""

from __future__ import annotations

import os
import uuid

import anyio

from voicehooks import VoiceHooks
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
