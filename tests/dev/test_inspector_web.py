"""``Inspector`` in memory: its pages without JavaScript, refusals, live stream and replay."""

from __future__ import annotations

import html
import logging
import re
import stat
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from voicehooks import CallContext, ToolError, VoiceHooks
from voicehooks.dev.inspector import Inspector
from voicehooks.dev.inspector import web as inspector_web
from voicehooks.dev.inspector.store import MAX_WATCHERS
from voicehooks.observe import ToolStats
from voicehooks.testing import Response, WebhookClient, status_update, tool_call, tool_calls

pytestmark = pytest.mark.anyio

SECRET = "whsec_inspector_web"
CALLER = "+31655018342"
HOST = ("host", "127.0.0.1:8000")


def make() -> tuple[Inspector, WebhookClient, list[bool]]:
    app = VoiceHooks(secret=SECRET)
    replays: list[bool] = []

    @app.tool
    async def lookup(order: str, context: CallContext) -> str:
        """Look an order up."""
        replays.append(context.is_replay)
        if order == "none":
            raise ToolError("No such order.")
        return f"order {order}"

    inspector = Inspector(app, secret=SECRET)
    return inspector, WebhookClient(inspector, secret=SECRET), replays


async def get(client: WebhookClient, path: str, *headers: tuple[str, str]) -> Response:
    return await client.request("GET", path, [b""], [HOST, *headers])


async def post(
    client: WebhookClient, path: str, form: bytes = b"", headers: Sequence[tuple[str, str]] = ()
) -> Response:
    content = ("content-type", "application/x-www-form-urlencoded")
    return await client.request("POST", path, [form], [HOST, content, *headers])


def text(response: Response) -> str:
    return html.unescape(response.content.decode())


async def test_the_list_groups_deliveries_by_call_newest_first() -> None:
    inspector, client, _ = make()
    try:
        empty = await get(client, "/_voicehooks/")
        assert "No deliveries yet" in text(empty)
        await client.post(tool_calls(tool_call("lookup", {"order": "A1"}), call_id="call-1"))
        await client.post(status_update("ended", call_id="call-2"))
        await client.post(tool_calls(tool_call("lookup", {"order": "none"}), call_id="call-1"))
        await client.post(b"{}", headers={"x-webhook-signature": "sha256=00"})
        page = text(await get(client, "/_voicehooks/"))
    finally:
        inspector.recent.stop_capturing_logs()
    assert page.index("Refused or not decoded") < page.index("call-1") < page.index("call-2")
    assert re.findall(r'data-id="(\d+)"', page) == ["4", "3", "1", "2"]
    assert "401</span> rejected_401" in page
    assert "lookup <span" in page
    response = await get(client, "/_voicehooks/")
    assert response.headers["cache-control"] == "no-store"
    assert "default-src 'self'" in response.headers["content-security-policy"]
    fragment = text(await get(client, "/_voicehooks/fragment"))
    assert fragment.startswith('<section class="call">')


async def test_a_delivery_page_masks_until_asked_and_shows_logs_and_tools(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "voicehooks")
    inspector, client, _ = make()
    try:
        await client.post(
            tool_calls(
                tool_call("lookup", {"order": "A1"}),
                call_id="call-31655018342",
                customer_number=CALLER,
            )
        )
        masked = text(await get(client, "/_voicehooks/deliveries/1"))
        revealed = text(await get(client, "/_voicehooks/deliveries/1?reveal=1"))
    finally:
        inspector.recent.stop_capturing_logs()
    assert CALLER not in masked
    assert "+31•••••••42" in masked
    assert "[hidden: 2 characters]" in masked
    assert CALLER in revealed
    assert '"order": "A1"' in revealed
    assert "order A1" in masked  # the answer sent
    assert "x-webhook-signature: sha256=" in masked
    assert "<td>lookup</td>" in masked
    assert "tool-calls call=call-*********** 200" in masked  # the delivery's own log line
    assert "tools=lookup:ok" in masked
    assert "31655018342" not in masked
    assert "call-31655018342" in revealed


@pytest.mark.parametrize("bypass", [False, True])
async def test_a_replay_is_a_new_delivery_flagged_as_a_replay(bypass: bool) -> None:
    inspector, client, seen = make()
    try:
        await client.post(tool_calls(tool_call("lookup", {"order": "A1"}), call_id="c"))
        form = b"bypass_dedupe=1" if bypass else b""
        accept = ("accept", "application/json")
        answer = await post(client, "/_voicehooks/deliveries/1/replay", form, [accept])
        page = text(await get(client, "/_voicehooks/deliveries/1"))
        without_js = await post(client, "/_voicehooks/deliveries/1/replay", form)
    finally:
        inspector.recent.stop_capturing_logs()
    assert answer.status_code == 200
    # Without bypassing, the replay was answered from the first delivery: it says so.
    assert answer.json() == {"id": 2, "status": 200, "duplicate": not bypass}
    assert 'Replayed as</dt><dd><a href="/_voicehooks/deliveries/2">#2</a>' in page
    replayed = text(await get(client, "/_voicehooks/deliveries/2"))
    assert ("the tool did not run again" in replayed) is not bypass
    assert "the tool did not run again" not in page  # the first delivery ran it
    assert without_js.status_code == 303
    assert without_js.headers["location"] == "/_voicehooks/deliveries/3"
    # Without bypassing, the replays are duplicates: answered with the first result, not run.
    assert seen == ([False, True, True] if bypass else [False])
    assert inspector.recent.get(2) is not None
    assert inspector.recent.get(2).delivery.is_replay  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("path", "headers", "status", "message"),
    [
        ("/_voicehooks/deliveries/9/replay", [], 404, "no longer kept"),
        ("/_voicehooks/deliveries/1/replay", [], 409, "refused before decoding"),
        (
            "/_voicehooks/deliveries/1/replay",
            [("origin", "http://evil.example")],
            403,
            "inspector's own page",
        ),
    ],
)
@pytest.mark.parametrize("wants_json", [False, True])
async def test_a_replay_that_cannot_be_done_says_why(
    path: str, headers: list[tuple[str, str]], status: int, message: str, wants_json: bool
) -> None:
    inspector, client, _ = make()
    try:
        await client.post(b"not json")
        accept = [("accept", "application/json")] if wants_json else []
        response = await post(client, path, b"", [*headers, *accept])
    finally:
        inspector.recent.stop_capturing_logs()
    assert response.status_code == status
    assert message in (response.json()["error"] if wants_json else text(response))


@pytest.mark.parametrize(
    ("client_host", "host"),
    [("10.0.0.7", "127.0.0.1:8000"), ("127.0.0.1", "evil.example:8000")],
)
async def test_only_loopback_clients_naming_a_loopback_host_are_answered(
    client_host: str, host: str
) -> None:
    inspector, _, _ = make()
    inspector.recent.stop_capturing_logs()
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/_voicehooks/",
        "headers": [(b"host", host.encode())],
        "client": (client_host, 5000),
        "query_string": b"",
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    await inspector(scope, receive, send)
    assert sent[0]["status"] == 403
    inspector.allow_remote = True
    sent.clear()
    await inspector(scope, receive, send)
    assert sent[0]["status"] == 200


async def test_static_files_and_unknown_pages() -> None:
    inspector, client, _ = make()
    inspector.recent.stop_capturing_logs()
    script = await get(client, "/_voicehooks/static/inspector.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "EventSource" in text(script)
    assert (await get(client, "/_voicehooks/static/inspector.css")).status_code == 200
    assert (await get(client, "/_voicehooks/static/secrets.txt")).status_code == 404
    assert (await get(client, "/_voicehooks/deliveries/5")).status_code == 404
    moved = await get(client, "/_voicehooks")
    assert moved.status_code in (307, 308)
    assert (await get(client, "/elsewhere")).status_code == 404  # the app's own 404


async def test_the_live_stream_announces_deliveries_then_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(inspector_web, "STREAM_SECONDS", 0.5)
    inspector, client, _ = make()
    streamed: list[Response] = []
    try:
        async with anyio.create_task_group() as group:

            async def watch() -> None:
                streamed.append(await get(client, "/_voicehooks/events"))

            group.start_soon(watch)
            await anyio.sleep(0.1)
            await client.post(status_update("ended", call_id="c"))
    finally:
        inspector.recent.stop_capturing_logs()
    (response,) = streamed
    assert response.headers["content-type"].startswith("text/event-stream")
    body = text(response)
    assert body == "retry: 250\n\nevent: delivery\ndata: 1\n\n"  # then it ended by itself


async def test_too_many_live_pages_are_refused() -> None:
    inspector, client, _ = make()
    inspector.recent.stop_capturing_logs()
    held = [inspector.recent.watch() for _ in range(MAX_WATCHERS)]
    response = await get(client, "/_voicehooks/events")
    assert response.status_code == 503
    inspector.recent.close_watchers()
    for watching in held:
        assert watching is not None
        with watching:
            pass


async def test_the_list_outlives_a_restart_and_its_deliveries_can_still_be_replayed(
    tmp_path: Path,
) -> None:
    history = tmp_path / "inspector.jsonl"
    first = Inspector(VoiceHooks(secret=SECRET), secret=SECRET, history=history)
    try:
        async with WebhookClient(first, secret=SECRET) as client:
            await client.post(status_update("ended", call_id="call-31655018342"))
            await client.post(b"\xff not json", headers={"x-webhook-signature": "sha256=00"})
    finally:
        first.recent.stop_capturing_logs()
    assert stat.S_IMODE(history.stat().st_mode) == 0o600
    inspector, client, _ = make()  # a fresh app, as after a reload
    inspector.recent.stop_capturing_logs()
    inspector.recent.load(history)
    before = [entry.id for entry in inspector.recent.newest_first()]
    assert before == [2, 1]
    restored = inspector.recent.get(1)
    assert restored is not None
    assert restored.delivery.status == 200
    assert restored.delivery.call_id == "call-31655018342"
    assert restored.logs == first.recent.get(1).logs  # type: ignore[union-attr]
    assert inspector.recent.get(2).delivery.body == b"\xff not json"  # type: ignore[union-attr]
    accept = ("accept", "application/json")
    answer = await post(client, "/_voicehooks/deliveries/1/replay", b"", [accept])
    assert answer.json() == {
        "id": 3,
        "status": 200,
        "duplicate": False,
    }  # ids go on where they stopped


@pytest.mark.parametrize("content", [None, b"not a saved list\n"])
def test_a_missing_or_broken_history_starts_an_empty_list(
    tmp_path: Path, content: bytes | None
) -> None:
    history = tmp_path / "inspector.jsonl"
    if content is not None:
        history.write_bytes(content)
    inspector = Inspector(VoiceHooks(secret=SECRET), secret=SECRET, history=history)
    inspector.recent.stop_capturing_logs()
    assert inspector.recent.newest_first() == []


async def test_a_history_that_cannot_be_written_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inspector = Inspector(
        VoiceHooks(secret=SECRET), secret=SECRET, history=tmp_path / "missing" / "list.jsonl"
    )
    try:
        async with WebhookClient(inspector, secret=SECRET):
            pass
    finally:
        inspector.recent.stop_capturing_logs()
    assert "the inspector's list could not be kept" in caplog.text


async def test_the_tool_latencies_are_served_for_tools_check() -> None:
    inspector, client, _ = make()
    inspector.recent.stop_capturing_logs()
    async with client:
        assert await client.call_tool("lookup", order="WO-1") == "order WO-1"
        report = (await get(client, "/_voicehooks/tools.json")).json()
        outsider = await client.request(
            "GET", "/_voicehooks/tools.json", [b""], [("host", "example.com")]
        )
    assert report["tools"]["lookup"]["outcomes"] == {"ok": 1}
    assert outsider.status_code == 403  # the inspector's own loopback rule applies
    stats = ToolStats()
    measured = VoiceHooks(secret=SECRET, observers=[stats])
    inspector = Inspector(measured, secret=SECRET)
    inspector.recent.stop_capturing_logs()
    assert inspector.tool_stats is stats  # the app's own is kept, not replaced
    assert sum(isinstance(o, ToolStats) for o in measured.observers.observers) == 1
