"""``SyncWebhookClient``: the test kit's client for plain, synchronous tests."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
import pytest

from voicehooks import EndOfCallReport, StatusUpdate, ToolError, VoiceHooks
from voicehooks.testing import SyncWebhookClient, status_update, tool_call

SECRET = "whsec_sync_client"


def lifespan_app(events: list[str]) -> VoiceHooks:
    @asynccontextmanager
    async def lifespan(app: VoiceHooks) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    app = VoiceHooks(secret=SECRET, lifespan=lifespan)

    @app.tool
    def lookup(order_number: str) -> dict[str, str]:
        """A sync tool: it runs in a worker thread."""
        if order_number != "WO-1":
            raise ToolError("No such order.")
        return {"status": "ready"}

    @app.on("end-of-call-report")
    def store(event: EndOfCallReport) -> None:
        time.sleep(0.01)
        events.append(f"stored {event.call.id}")

    return app


def test_with_runs_the_lifespan_and_every_method_blocks_until_answered() -> None:
    events: list[str] = []
    with SyncWebhookClient(lifespan_app(events), secret=SECRET) as client:
        assert events == ["startup"]
        assert client.call_tool("lookup", order_number="WO-1") == {"status": "ready"}
        assert client.call_tools(tool_call("lookup", {"order_number": "X"})) == [
            {"error": "No such order."}
        ]
        assert client.assistant_request() == {}
        assert client.status_update("ended").status_code == 200
        response = client.end_of_call_report(call_id="call-1")
        assert (response.status_code, response.json()) == (200, {})
        client.wait_for_background()
        assert events == ["startup", "stored call-1"]
    assert events == ["startup", "stored call-1", "shutdown"]


def test_without_with_each_request_runs_to_its_end_on_a_loop_of_its_own() -> None:
    events: list[str] = []
    client = SyncWebhookClient(lifespan_app(events), secret=SECRET)
    assert client.end_of_call_report(call_id="call-2").status_code == 200
    assert events == ["stored call-2"]  # no lifespan, and the handler has finished
    assert client.post(b"{}", signed=False).status_code == 401


def test_post_and_signed_headers_send_edge_cases() -> None:
    app = VoiceHooks(secret=SECRET)
    seen: list[str] = []

    @app.on("status-update")
    async def track(event: StatusUpdate) -> None:
        seen.append(event.status)

    with SyncWebhookClient(app, secret=SECRET) as client:
        body = msgspec.json.encode(status_update("ended"))
        headers = client.signed_headers(body, timestamp=int(time.time()) - 301)
        stale = client.post(body, headers=headers)
        assert stale.status_code == 401
        assert "old" in stale.text
        assert client.post(body, path="/elsewhere").status_code == 404
        pieces, signed = [body[:10], body[10:]], client.signed_headers(body)
        answer = client.request("POST", "/", pieces, list(signed.items()))
        assert answer.status_code == 200
    assert seen == ["ended"]
    assert client.secret == SECRET


def test_an_assertion_inside_with_surfaces_as_itself() -> None:
    def a_failing_test() -> None:
        with SyncWebhookClient(VoiceHooks(secret=SECRET), secret=SECRET) as client:
            assert client.status_update().status_code == 200
            raise AssertionError("the user's own check")

    with pytest.raises(AssertionError, match="the user's own check") as caught:
        a_failing_test()
    assert caught.type is AssertionError


def test_a_failing_startup_raises_and_leaves_no_thread_behind() -> None:
    @asynccontextmanager
    async def lifespan(app: VoiceHooks) -> AsyncIterator[None]:
        if app.path == "/":
            raise OSError("database unreachable")
        yield

    before = threading.active_count()
    client = SyncWebhookClient(VoiceHooks(secret=SECRET, lifespan=lifespan), secret=SECRET)
    with pytest.raises(RuntimeError, match="startup failed: OSError: database unreachable"):
        client.__enter__()
    assert threading.active_count() == before
    assert client.status_update().status_code == 200  # usable without a lifespan


def test_a_bug_in_a_tool_is_raised_from_the_call_unless_told_otherwise() -> None:
    app = VoiceHooks(secret=SECRET)

    @app.tool
    def divide(a: int, b: int) -> float:
        """Divide; a bug when b is 0."""
        return a / b

    with SyncWebhookClient(app, secret=SECRET) as client, pytest.raises(ZeroDivisionError):
        client.call_tool("divide", a=1, b=0)
    with SyncWebhookClient(app, secret=SECRET, raise_exceptions=False) as client:
        assert "failed unexpectedly" in client.call_tool("divide", a=1, b=0)["error"]
    assert app.error_hooks == []
