"""A deliberately bad app: each tool has one problem ``voicehooks tools --check`` must report."""

from __future__ import annotations

from typing import Any, Literal

from voicehooks import VoiceHooks

app = VoiceHooks(verify_signatures=False)


@app.tool(description=" ")  # stands in for "no docstring", which registration refuses
def undocumented(order_number: str) -> str:
    """(The description= option replaces this line.)

    Args:
        order_number: The work order number.
    """
    return order_number


@app.tool(description="Look a repair up. " + "Very detailed explanation. " * 80)
def wordy(order_number: str) -> str:
    """(The description= option replaces this line.)

    Args:
        order_number: The work order number.
    """
    return order_number


@app.tool
def one_choice(order_number: str, channel: Literal["sms"]) -> str:
    """Send the repair status to the caller.

    Args:
        order_number: The work order number.
        channel: How to send it.
    """
    return channel


@app.tool
def untyped(order_number: Any) -> str:
    """Return the repair status for a work order number.

    Args:
        order_number: The work order number.
    """
    return str(order_number)
