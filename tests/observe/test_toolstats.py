"""ToolStats: per-tool counts and recent percentiles in fixed memory, and its JSON endpoint."""

from __future__ import annotations

import json
from typing import Any

import pytest

from voicehooks.observe import Delivery, ToolOutcome, ToolRun, ToolStats
from voicehooks.observe.toolstats import UNREGISTERED, StatsEndpoint
from voicehooks.tools.definition import Tool

pytestmark = pytest.mark.anyio


def ended(
    stats: ToolStats, name: str, outcome: str, seconds: float, registered: bool = True
) -> None:
    run = ToolRun(name, "tool_1", registered)
    run.outcome, run.duration_seconds = outcome, seconds
    delivery = Delivery(())
    delivery.tools.append(run)
    stats.tool_ended(delivery, run)  # the pipeline reports only registered tools here
    stats.delivery_answered(delivery)


def test_percentiles_errors_and_timeouts_per_tool() -> None:
    stats = ToolStats()
    for tenth in range(1, 21):  # 0.1 s ... 2.0 s
        ended(stats, "stock", ToolOutcome.OK, tenth / 10)
    ended(stats, "stock", ToolOutcome.ERROR, 0.05)
    ended(stats, "stock", ToolOutcome.FAILED, 0.05)
    ended(stats, "stock", ToolOutcome.TIMEOUT, 8.0)
    ended(stats, "stock", ToolOutcome.INVALID_ARGUMENTS, 0.0)
    ended(stats, "stock", ToolOutcome.DUPLICATE, 0.0)
    summary = stats.summary()["tools"]["stock"]
    assert summary["count"] == 25
    assert summary["timed"] == 23
    assert summary["p50_seconds"] == 1.0
    assert summary["p95_seconds"] == 2.0
    assert summary["max_seconds"] == 8.0
    assert (summary["errors"], summary["timeouts"]) == (2, 1)
    assert summary["outcomes"] == {
        "duplicate": 1,
        "error": 1,
        "failed": 1,
        "invalid_arguments": 1,
        "ok": 20,
        "timeout": 1,
    }


def test_memory_is_a_fixed_window_per_tool_and_one_entry_for_unknown_names() -> None:
    stats = ToolStats(window=4)
    for seconds in (9.0, 9.0, 9.0, 9.0, 0.1, 0.2, 0.3, 0.4):
        ended(stats, "stock", ToolOutcome.OK, seconds)
    for index in range(1000):
        ended(stats, f"invented_{index}", ToolOutcome.UNKNOWN, 0.0, registered=False)
    report = stats.summary()
    assert set(report["tools"]) == {"stock", UNREGISTERED}
    assert report["tools"]["stock"]["max_seconds"] == 0.4  # the 9 s calls left the window
    assert report["tools"]["stock"]["count"] == 8
    assert report["tools"][UNREGISTERED]["outcomes"] == {"unknown": 1000}
    assert report["tools"][UNREGISTERED]["p95_seconds"] is None
    assert report["window"] == 4
    with pytest.raises(ValueError, match="window"):
        ToolStats(window=0)


def test_the_summary_carries_the_coercion_counts_of_registered_tools() -> None:
    def stock(part: str, count: int) -> int:
        """Check the stock of a part."""
        return count

    tool = Tool.from_function(stock)
    tool.coercions["string_to_integer"] += 3
    stats = ToolStats()
    ended(stats, "stock", ToolOutcome.OK, 0.1)
    assert stats.summary({"stock": tool})["tools"]["stock"]["coercions"] == {"string_to_integer": 3}


async def call(app: Any, method: str) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    await app({"type": "http", "method": method, "path": "/"}, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]


async def test_the_endpoint_answers_get_with_json_and_refuses_writes() -> None:
    stats = ToolStats()
    ended(stats, "stock", ToolOutcome.OK, 0.25)
    endpoint = StatsEndpoint(stats)
    status, headers, body = await call(endpoint, "GET")
    assert status == 200
    assert headers[b"content-type"] == b"application/json"
    assert json.loads(body)["tools"]["stock"]["p50_seconds"] == 0.25
    assert (await call(endpoint, "HEAD"))[2] == b""
    status, headers, _ = await call(endpoint, "POST")
    assert (status, headers[b"allow"]) == (405, b"GET, HEAD")


async def test_an_app_with_tool_stats_measures_and_serves_them() -> None:
    from voicehooks import VoiceHooks
    from voicehooks.testing import WebhookClient

    secret = "whsec_toolstats"
    app = VoiceHooks(secret=secret, observers=[ToolStats()])

    @app.tool
    async def stock(part: str, count: int) -> int:
        """Check the stock of a part."""
        return count

    async with WebhookClient(app, secret=secret) as client:
        assert await client.call_tool("stock", part="chain", count="2") == 2
        assert "error" in await client.call_tool("nothing_like_it")
        response = await client.request("GET", "/_voicehooks/tools.json", [], [])
        assert response.status_code == 200
        report = response.json()
        refused = await client.request("POST", "/_voicehooks/tools.json", [b"{}"], [])
    assert report["tools"]["stock"]["outcomes"] == {"ok": 1}
    assert report["tools"]["stock"]["coercions"] == {"string_to_integer": 1}
    assert report["tools"][UNREGISTERED]["outcomes"] == {"unknown": 1}
    assert refused.status_code == 405

    plain = VoiceHooks(secret=secret)
    async with WebhookClient(plain, secret=secret) as client:
        assert (await client.request("GET", "/_voicehooks/tools.json", [], [])).status_code == 404
