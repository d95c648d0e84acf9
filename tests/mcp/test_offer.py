"""Which tools MCP offers, why the others are not, and where the reasons are shown."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from click.testing import CliRunner

from tests.apps.mcp_tools import make_app
from tests.conftest import SECRET
from voicehooks import CallContext, ToolCall, ToolCalls, VoiceHooks
from voicehooks.cli import main
from voicehooks.mcp import offered
from voicehooks.testing import WebhookClient

WITHHELD = {
    "hang_up": "it takes a LiveCall, and MCP carries no call",
    "remember": "it takes a CallState, and MCP carries no call",
    "call_id": "it takes a CallContext, and MCP carries no call (CallContext | None would do)",
    "charge": "once_per_call: its intents are kept per call, and MCP carries no call",
    "send_brochure": "fire-and-forget: it runs after its answer, as a job of a platform delivery",
    "slow_search": "it has an interim text: its late result is spoken into the call",
}


def test_offered_splits_the_tools_with_a_reason_for_each_withheld_one() -> None:
    tools, withheld = offered(make_app(("t",), secret=SECRET))
    assert [tool.name for tool in tools] == ["book_table", "opening_hours", "whoami", "crash"]
    assert withheld == WITHHELD


def test_the_event_and_the_tool_call_are_withheld_too() -> None:
    app = VoiceHooks(secret=SECRET)

    @app.tool
    async def raw(event: ToolCalls) -> None:
        """Reads the event."""

    @app.tool
    async def own(call: ToolCall) -> None:
        """Reads its call."""

    assert offered(app) == (
        [],
        {
            "raw": "it takes the event of a platform delivery",
            "own": "it takes the ToolCall of a platform delivery",
        },
    )


@pytest.mark.anyio
async def test_an_optional_context_is_no_model_argument_and_is_filled_on_the_webhook() -> None:
    app = VoiceHooks(secret=SECRET)
    seen: list[Any] = []

    @app.tool
    async def whoami(context: CallContext | None, name: str) -> str:
        """Who."""
        seen.append(context)
        return name

    assert list(app.tools["whoami"].parameters["properties"]) == ["name"]
    assert await WebhookClient(app).call_tool("whoami", name="x") == "x"
    assert isinstance(seen[0], CallContext)


def test_check_hints_at_what_mcp_withholds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEHOOKS_SECRET", SECRET)
    monkeypatch.setenv("VOICEHOOKS_MCP_TOKEN", "t")
    result = CliRunner().invoke(main, ["tools", "tests/apps/mcp_served.py", "--check"])
    for name, reason in WITHHELD.items():
        assert f"hint: {name}: mcp: not offered over MCP: {reason}" in result.output


@pytest.mark.anyio
async def test_the_startup_line_names_the_withheld_tools(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The LiveCall tool needs an API key at startup; nothing here calls the API.
    monkeypatch.setenv("VOICEHOOKS_API_KEY", "unused")
    app = make_app(("t",), secret=SECRET)
    with caplog.at_level(logging.INFO, logger="voicehooks"):
        async with app.lifespan():
            pass
    assert "MCP endpoint at /mcp offers 4 tool(s)" in caplog.text
    assert "withholds 6 tool(s) that need a call: hang_up (it takes a LiveCall" in caplog.text


def test_routes_names_the_mcp_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEHOOKS_SECRET", SECRET)
    monkeypatch.setenv("VOICEHOOKS_MCP_TOKEN", "t")
    result = CliRunner().invoke(main, ["routes", "tests/apps/mcp_served.py"])
    assert "POST /mcp  (MCP: 4 tool(s) offered, 6 withheld)" in result.output
