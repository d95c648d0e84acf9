"""voicehooks.dispatch: one entry point for every event, and jobs that run here or elsewhere."""

from __future__ import annotations

import logging
import threading
from typing import Any

import anyio
import msgspec
import pytest

from voicehooks import CallContext, VoiceHooks
from voicehooks.background import Job
from voicehooks.events import EndOfCallReport, ToolCalls, decode_delivery
from voicehooks.observers import Delivery
from voicehooks.testing import WebhookClient, end_of_call_report, tool_call, tool_calls

pytestmark = pytest.mark.anyio

SECRET = "whsec_dispatch_tests"


def event_of(payload: dict[str, Any]) -> Any:
    return decode_delivery(msgspec.json.encode(payload))


async def test_answer_is_the_one_entry_point_for_every_event_type() -> None:
    app = VoiceHooks(secret=SECRET)

    @app.on("end-of-call-report")
    async def store(event: EndOfCallReport) -> None: ...

    @app.tool
    def add(a: int, b: int) -> int:
        """Add."""
        return a + b

    report = Delivery(())
    report.event = event_of(end_of_call_report(call_id="e1"))
    body, jobs = await app.dispatcher.answer(report)
    assert body == b"{}"
    assert [job.target for job in jobs] == [f"handler:{__name__}:{store.__qualname__}"]

    calls = Delivery(())
    calls.event = event_of(tool_calls(tool_call("add", {"a": 2, "b": 3}, id="t1")))
    body, jobs = await app.dispatcher.answer(calls)
    assert msgspec.json.decode(body) == {"results": [{"tool_call_id": "t1", "result": 5}]}
    assert jobs == []


async def test_a_job_runs_again_from_its_data_alone_as_a_durable_worker_would() -> None:
    app = VoiceHooks(secret=SECRET)
    seen: list[tuple[str, int, str]] = []

    @app.on("end-of-call-report")
    async def store(event: EndOfCallReport, context: CallContext) -> None:
        seen.append((event.call.id, context.attempt, context.delivery_id))

    event = event_of(end_of_call_report(call_id="w1"))
    job = Job(event, f"handler:{__name__}:{store.__qualname__}")
    assert await app.dispatcher.run_job(job, attempt=3) == "done"
    assert seen == [("w1", 3, job.delivery_id)]


async def test_a_job_for_a_handler_that_is_gone_fails_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = VoiceHooks(secret=SECRET)
    job = Job(event_of(end_of_call_report(call_id="g1")), "handler:old_module:removed")
    with caplog.at_level(logging.ERROR, "voicehooks"):
        assert await app.dispatcher.run_job(job) == "failed"
    assert "no end-of-call-report handler old_module:removed is registered" in caplog.text


async def test_a_fire_and_forget_job_whose_tool_is_gone_fails_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = VoiceHooks(secret=SECRET)
    job = Job(event_of(tool_calls(tool_call("vanished", id="t9"))), "tool:t9")
    with caplog.at_level(logging.ERROR, "voicehooks"):
        assert await app.dispatcher.run_job(job) == "failed"
    assert "names no registered tool" in caplog.text


async def test_a_fire_and_forget_call_that_does_not_fit_the_queue_gets_an_error_result() -> None:
    app = VoiceHooks(secret=SECRET, max_queued_jobs=1, max_background_jobs=1)
    release = anyio.Event()

    @app.tool(fire_and_forget=True)
    async def notify(text: str) -> None:
        """Send a text message."""
        await release.wait()

    client = WebhookClient(app, secret=SECRET)
    async with client:
        first = await client.call_tool("notify", text="a")
        second = await client.call_tool("notify", text="b")
        release.set()
    assert first == {"status": "started"}
    assert "cannot be started right now" in second["error"]


async def test_background_work_without_a_deadline_runs_to_its_end() -> None:
    app = VoiceHooks(secret=SECRET, background_timeout_seconds=None)
    done: list[str] = []

    @app.on("end-of-call-report")
    async def slow(event: EndOfCallReport) -> None:
        await anyio.sleep(0.05)
        done.append(event.call.id)

    job = Job(event_of(end_of_call_report(call_id="n1")), f"handler:{__name__}:{slow.__qualname__}")
    assert await app.dispatcher.run_job(job) == "done"
    assert done == ["n1"]


async def test_an_assistant_request_handler_with_hung_threads_answers_the_saved_config(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = VoiceHooks(secret=SECRET, assistant_request_timeout_seconds=0.05, max_abandoned_threads=1)
    release = threading.Event()

    @app.on("assistant-request")
    def choose() -> dict[str, str]:
        release.wait(10)
        return {"assistant_id": "late"}

    client = WebhookClient(app, secret=SECRET)
    try:
        with caplog.at_level(logging.WARNING, "voicehooks"):
            assert await client.assistant_request() == {}  # timed out, thread abandoned
            assert await client.assistant_request() == {}  # refused at once
    finally:
        release.set()
    assert "took longer than" in caplog.text
    assert "has hung threads" in caplog.text


async def test_a_fire_and_forget_tool_raising_tool_error_afterwards_is_only_noted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from voicehooks import ToolError

    app = VoiceHooks(secret=SECRET)

    @app.tool(fire_and_forget=True)
    async def notify(event: ToolCalls) -> None:
        """Notify."""
        raise ToolError("nobody hears this")

    client = WebhookClient(app, secret=SECRET)
    with caplog.at_level(logging.INFO, "voicehooks"):
        assert await client.call_tool("notify") == {"status": "started"}
    assert "raised ToolError after its answer was sent" in caplog.text
