"""voicehooks through its public API only, with every default on.

Signature verification with the 300 s tolerance, tool deadlines, duplicate suppression and
background handlers are whatever ``VoiceHooks(secret=...)`` does by default.
"""

from __future__ import annotations

from benchmarks import demo
from voicehooks import AssistantRequest, EndOfCallReport, VoiceHooks

label = "voicehooks"


def make_app(secret: str) -> VoiceHooks:
    """The demo application on voicehooks."""
    app = VoiceHooks(secret=secret)
    app.tool(demo.check_order)
    app.tool(demo.check_order_sync)

    @app.on("assistant-request")
    async def choose_assistant(event: AssistantRequest) -> None:
        demo.choose_assistant(event.customer.number)

    @app.on("end-of-call-report")
    async def store_report(event: EndOfCallReport) -> None:
        demo.record_report(event.call.id, len(event.messages))

    return app
