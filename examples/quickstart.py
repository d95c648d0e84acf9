"""Quick start: one tool and one end-of-call-report handler.

What it shows: a tool is a typed, documented function (the docstring and the ``Args:`` lines
become the description and JSON Schema the model sees); ``ToolError`` sends the caller a
message the assistant can say aloud; an ``end-of-call-report`` handler runs after the
platform has had its answer.

Run it with ``make run`` (it sets a development secret), or:

    VOICEHOOKS_SECRET=whsec_dev_only voicehooks run examples/quickstart.py

and in another shell, with the same ``VOICEHOOKS_SECRET``, send it a signed test event:

    voicehooks send tool-calls --tool check_repair_status --args '{"order_number": "WO-2291"}'

Then point the assistant's webhook at http://<host>:8000/ and add the tool definitions that
``voicehooks tools examples/quickstart.py`` prints to its ``llm_config.tools``.
"""

from __future__ import annotations

import logging

from voicehooks import EndOfCallReport, ToolError, VoiceHooks

app = VoiceHooks()  # secret(s) from VOICEHOOKS_SECRET

log = logging.getLogger("quickstart")

REPAIRS = {"WO-2291": "ready for pickup", "WO-2317": "waiting for parts"}


@app.tool("check_repair_status")
async def check_repair_status(order_number: str) -> dict[str, str]:
    """Return the repair status for a work order number given by the caller.

    Args:
        order_number: The work order number, like WO-2291.
    """
    status = REPAIRS.get(order_number.strip().upper())
    if status is None:
        raise ToolError(
            f"There is no work order {order_number}. Ask the caller to check the number."
        )
    return {"order_number": order_number, "status": status}


@app.on("end-of-call-report")
async def store_report(event: EndOfCallReport) -> None:
    # Runs after the platform has been answered. Never log the transcript or phone numbers.
    log.info(
        "call %s ended after %s s (%s)", event.call.id, event.duration_seconds, event.end_reason
    )
