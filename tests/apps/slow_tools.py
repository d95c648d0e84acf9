"""The app tests/integration/test_interim_servers.py serves: slow tools that answer with an
interim text.

``LIVE_WINDOW_SECONDS`` shortens the platform's one-minute call-control window, together with
the fake platform's (``FakePlatform(window_seconds=...)``), so a test takes seconds. Each tool
appends ``<tool call id> <monotonic time it returned>`` to ``LIVE_RETURNS_FILE``: the test
compares that with when the fake platform received the result.
"""

from __future__ import annotations

import os
import time

import anyio

from voicehooks import CommandLimit, Platform, ToolCall, VoiceHooks

app = VoiceHooks(
    platform=Platform(
        command_limit=CommandLimit(
            window_seconds=float(os.environ.get("LIVE_WINDOW_SECONDS", "60"))
        )
    )
)


def returned(tool_call_id: str) -> None:
    with open(os.environ["LIVE_RETURNS_FILE"], "a") as file:
        file.write(f"{tool_call_id} {time.monotonic():.6f}\n")


@app.tool(interim="One moment, I'm checking the stock.", interim_after_seconds=1.0)
async def check_stock(sku: str, seconds: float, call: ToolCall) -> dict[str, object]:
    """Check the stock of an article; the warehouse takes ``seconds`` to answer."""
    await anyio.sleep(seconds)
    returned(call.id)
    return {"sku": sku, "in_stock": 4}


@app.tool(interim="Still looking.", interim_after_seconds=0.1)
async def look_up(n: int, seconds: float, call: ToolCall) -> dict[str, int]:
    """Look something up that takes ``seconds``."""
    await anyio.sleep(seconds)
    returned(call.id)
    return {"n": n}
