"""voicehooks through its public API only, with every default on.

Signature verification with the 300 s tolerance, tool deadlines, duplicate suppression and
background handlers are whatever ``VoiceHooks(secret=...)`` does by default. ``build`` makes
the same demo application with one setting changed, for the feature-cost level
(``benchmarks.features``).
"""

from __future__ import annotations

from typing import Any

from benchmarks import demo
from voicehooks import AssistantRequest, EndOfCallReport, VoiceHooks

label = "voicehooks"


def make_app(secret: str) -> VoiceHooks:
    """The demo application on voicehooks."""
    return build(secret)


def build(secret: str, *, report_before_answer: bool = False, **settings: Any) -> VoiceHooks:
    """The demo application on ``VoiceHooks(secret=secret, **settings)``.

    Args:
        secret: The webhook secret.
        report_before_answer: Run the report handler before the answer instead of as a
            background job.
        **settings: Passed to ``VoiceHooks``.
    """
    app = VoiceHooks(secret=secret, **settings)
    app.tool(demo.check_order)
    app.tool(demo.check_order_sync)

    @app.on("assistant-request")
    async def choose_assistant(event: AssistantRequest) -> None:
        demo.choose_assistant(event.customer.number)

    @app.on("end-of-call-report", run_before_answer=report_before_answer)
    async def store_report(event: EndOfCallReport) -> None:
        demo.record_report(event.call.id, len(event.messages))

    return app
