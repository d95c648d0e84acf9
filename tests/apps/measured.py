"""An app that measures its tools (``tool_stats=True``), for ``voicehooks tools --check --url``."""

from __future__ import annotations

import anyio

from voicehooks import VoiceHooks
from voicehooks.observe import ToolStats

app = VoiceHooks(unknown_arguments="forbid", observers=[ToolStats()])


@app.tool
async def check_stock(part: str, count: int = 1) -> dict[str, object]:
    """Check whether the workshop has a part in stock.

    Args:
        part: The part's name, like "brake pads".
        count: How many the caller needs.
    """
    await anyio.sleep(0.12)
    return {"part": part, "in_stock": count <= 3}


@app.tool
async def opening_hours() -> str:
    """Tell the caller when the workshop is open today."""
    return "9:00 to 18:00"
