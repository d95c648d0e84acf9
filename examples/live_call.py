"""No dead air: a slow tool answers with an interim text, and its result follows by itself.

What it shows: ``check_stock`` asks a slow warehouse system. If it has not answered after
``interim_after_seconds``, the caller hears "One moment, I'm checking the stock." at once; the
tool keeps running, and its result is spoken into the live call (``inject-context`` with
``trigger_response``) the moment it is ready. ``escalate`` uses ``LiveCall`` to transfer the
call. A result that can no longer be delivered (the caller hung up) reaches
``on_undelivered_result``, here to queue a call back.

Run it with a webhook secret and a platform API key (``VOICEHOOKS_API_KEY`` or
``VOICEHOOKS_API_KEY_FILE``; the app refuses to start without one, naming the variable):

    VOICEHOOKS_SECRET=whsec_dev_only VOICEHOOKS_API_KEY=sk_... voicehooks run examples/live_call.py

and in another shell, with the same ``VOICEHOOKS_SECRET``, send it a signed test event; the
answer is the interim text, and the stock follows into the call (here: a call control request
to the platform, which a test points at ``voicehooks.testing.FakePlatform``):

    voicehooks send tool-calls --tool check_stock --args '{"sku": "KB-7"}'
"""

from __future__ import annotations

import logging

import anyio

from voicehooks import LateResult, LiveCall, ToolError, VoiceHooks

app = VoiceHooks()  # secret(s) from VOICEHOOKS_SECRET, API key from VOICEHOOKS_API_KEY

log = logging.getLogger("live_call")

STOCK = {"KB-7": 4, "KB-9": 0}
WAREHOUSE_SECONDS = 5.0  # how long the (simulated) warehouse system takes to answer
CALL_BACKS: list[str] = []  # calls whose result never reached the caller


@app.tool(interim="One moment, I'm checking the stock.", interim_after_seconds=2.0)
async def check_stock(sku: str) -> dict[str, int | str]:
    """Check how many of an article are in stock.

    Args:
        sku: The article number, like KB-7.
    """
    await anyio.sleep(WAREHOUSE_SECONDS)  # the warehouse system is slow
    if sku not in STOCK:
        raise ToolError(f"There is no article {sku}. Ask the caller to check the number.")
    return {"sku": sku, "in_stock": STOCK[sku]}


@app.tool
async def escalate(call: LiveCall) -> str:
    """Transfer the caller to a person in the workshop."""
    await call.transfer("+31201234567", message="I'll put you through to the workshop.")
    return "The call is being transferred."


@app.on_undelivered_result
async def call_back_later(result: LateResult) -> None:
    # Not the result itself: it may hold personal data; the call id is enough to find it.
    log.info("%s for a call could not be delivered (%s)", result.tool, result.reason)
    CALL_BACKS.append(result.call_id)
