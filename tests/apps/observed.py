"""The app tests/integration/test_observability_servers.py serves: under ``voicehooks run``,
plain uvicorn, gunicorn with uvicorn workers, and mounted in FastAPI (``parent``). Its only
logging setup is the one documented line, in the format ``OBSERVED_LOG_FORMAT`` names."""

from __future__ import annotations

import logging
import os

from fastapi import FastAPI

import voicehooks.core.logs
from voicehooks import ToolError, VoiceHooks
from voicehooks.core.events import EndOfCallReport

if os.environ.get("OBSERVED_SETUP") == "1":
    voicehooks.core.logs.setup(format="json" if os.environ.get("OBSERVED_LOG_FORMAT") else "text")

app = VoiceHooks()
log = logging.getLogger("observed")

ARGUMENT_MARKER = "ARGUMENT-MARKER-5a1"
RESULT_MARKER = "RESULT-MARKER-77e"
TOOL_ERROR_MARKER = "TOOL-ERROR-MARKER-c40"


@app.tool
async def lookup(order_number: str) -> str:
    """Look an order up."""
    log.info("looking an order up")  # the app's own INFO line: shown too
    return f"{RESULT_MARKER} for {order_number}"


@app.tool
async def decline(reason: str) -> None:
    """Decline with a message for the caller."""
    raise ToolError(f"{TOOL_ERROR_MARKER}: {reason}")


@app.tool
async def crash(note: str) -> None:
    """Fail unexpectedly, with a payload value in the exception's message."""
    raise KeyError(note)


@app.tool
async def whoami() -> int:
    """The serving process's id: which worker answered."""
    return os.getpid()


@app.on("end-of-call-report")
async def store(event: EndOfCallReport) -> None:
    log.info("report stored")


parent = FastAPI()
parent.mount("/hooks", app)
