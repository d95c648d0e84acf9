"""voicehooks.pipeline.dispatch: one entry point for every event type; tool calls (concurrency,
isolation, deadlines, normalisation, raw handlers); assistant-request in time; jobs."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any

import anyio
import msgspec
import pytest

from voicehooks import (
    AssistantRequest,
    AssistantResponse,
    Background,
    CallContext,
    ConfigurationError,
    Deadlines,
    Duplicates,
    EndOfCallReport,
    Event,
    Limits,
    MemoryStore,
    ToolCall,
    ToolCalls,
    ToolError,
    ToolResult,
    VoiceHooks,
)
from voicehooks.core.events import decode_delivery, delivery_id
from voicehooks.observe import Delivery
from voicehooks.testing import WebhookClient, end_of_call_report, tool_call, tool_calls
from voicehooks.work.jobs import Job

pytestmark = pytest.mark.anyio


def make(*, raise_exceptions: bool = True, **options: Any) -> tuple[VoiceHooks, WebhookClient]:
    """An app and its client; ``raise_exceptions=False`` where a test makes user code fail."""
    app = VoiceHooks(secret=SECRET, **options)
    return app, WebhookClient(app, secret=SECRET, raise_exceptions=raise_exceptions)


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
    assert (await app.dispatcher.run_job(job, attempt=3)).outcome == "done"
    assert seen == [("w1", 3, job.delivery_id)]


async def test_a_job_for_a_handler_that_is_gone_fails_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = VoiceHooks(secret=SECRET)
    job = Job(event_of(end_of_call_report(call_id="g1")), "handler:old_module:removed")
    with caplog.at_level(logging.ERROR, "voicehooks"):
        assert (await app.dispatcher.run_job(job)).outcome == "failed"
    assert "no end-of-call-report handler old_module:removed is registered" in caplog.text


async def test_a_fire_and_forget_job_whose_tool_is_gone_fails_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = VoiceHooks(secret=SECRET)
    job = Job(event_of(tool_calls(tool_call("vanished", id="t9"))), "tool:t9")
    with caplog.at_level(logging.ERROR, "voicehooks"):
        assert (await app.dispatcher.run_job(job)).outcome == "failed"
    assert "names no registered tool" in caplog.text


async def test_a_fire_and_forget_call_that_does_not_fit_the_queue_gets_an_error_result() -> None:
    app = VoiceHooks(secret=SECRET, background=Background(max_queued_jobs=1, max_running=1))
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
    app = VoiceHooks(secret=SECRET, deadlines=Deadlines(background_seconds=None))
    done: list[str] = []

    @app.on("end-of-call-report")
    async def slow(event: EndOfCallReport) -> None:
        await anyio.sleep(0.05)
        done.append(event.call.id)

    job = Job(event_of(end_of_call_report(call_id="n1")), f"handler:{__name__}:{slow.__qualname__}")
    assert (await app.dispatcher.run_job(job)).outcome == "done"
    assert done == ["n1"]


async def test_an_assistant_request_handler_with_hung_threads_answers_the_saved_config(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = VoiceHooks(
        secret=SECRET,
        deadlines=Deadlines(assistant_request_seconds=0.05),
        limits=Limits(max_abandoned_threads=1),
    )
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


# -- tool-calls --------------------------------------------------------------------------


async def test_calls_in_one_request_run_concurrently_in_order_and_isolated() -> None:
    app, client = make(raise_exceptions=False)

    @app.tool
    async def nap(seconds: float, label: str) -> str:
        """Sleep, then answer the label."""
        await anyio.sleep(seconds)
        return label

    @app.tool
    async def explode() -> None:
        """Always fails."""
        raise RuntimeError("boom")

    calls = [
        tool_call("nap", {"seconds": 0.5, "label": "a"}, id="c1"),
        tool_call("explode", {}, id="c2"),
        tool_call("nap", {"seconds": 0.5, "label": "b"}, id="c3"),
        tool_call("nap", {"seconds": 0.0, "label": "c"}, id="c4"),
        tool_call("nap", {"seconds": 0.5, "label": "d"}, id="c5"),
    ]
    started = time.perf_counter()
    response = await client.post(tool_calls(*calls))
    elapsed = time.perf_counter() - started
    body = response.json()
    assert [r["tool_call_id"] for r in body["results"]] == ["c1", "c2", "c3", "c4", "c5"]
    results = [r["result"] for r in body["results"]]
    assert results[0] == "a"
    assert results[2:] == ["b", "c", "d"]
    assert "failed unexpectedly" in results[1]["error"]
    assert elapsed < 1.2  # serial would be 1.5 s


async def test_a_call_past_its_deadline_is_cut_and_its_sibling_survives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = make(deadlines=Deadlines(tool_seconds=0.2))

    @app.tool
    async def slow() -> str:
        """Takes forever."""
        await anyio.sleep(30)
        return "never"

    @app.tool
    async def fast() -> str:
        """Answers at once."""
        return "done"

    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, "voicehooks"):
        results = await client.call_tools(tool_call("slow", id="s"), tool_call("fast", id="f"))
    assert time.perf_counter() - started < 2
    assert "did not answer in time" in results[0]["error"]
    assert results[1] == "done"
    assert "tool slow" in caplog.text
    assert "timed out after 0.2 s" in caplog.text


async def test_a_tools_own_timeout_overrides_the_apps() -> None:
    app, client = make(deadlines=Deadlines(tool_seconds=5))

    @app.tool(timeout_seconds=0.1)
    async def impatient() -> str:
        """Has a short deadline."""
        await anyio.sleep(2)
        return "late"

    result = await client.call_tool("impatient")
    assert "did not answer in time" in result["error"]


async def test_a_sync_tool_past_its_deadline_is_abandoned_and_its_late_result_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = make(deadlines=Deadlines(tool_seconds=0.1))
    finished = threading.Event()

    @app.tool
    def blocking() -> str:
        """Blocks its thread."""
        time.sleep(0.4)
        finished.set()
        return "late"

    with caplog.at_level(logging.WARNING, "voicehooks"):
        result = await client.call_tool("blocking")
        assert "did not answer in time" in result["error"]
        await anyio.to_thread.run_sync(finished.wait, 5)
        await anyio.sleep(0.05)
    assert "finished after it was abandoned; its result was discarded" in caplog.text


async def test_an_abandoned_sync_tool_that_raises_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = make(deadlines=Deadlines(tool_seconds=0.1))
    done = threading.Event()

    @app.tool
    def blocking_failure() -> str:
        """Blocks, then fails."""
        try:
            time.sleep(0.3)
            raise ValueError("late failure")
        finally:
            done.set()

    with caplog.at_level(logging.ERROR, "voicehooks"):
        await client.call_tool("blocking_failure")
        await anyio.to_thread.run_sync(done.wait, 5)
        await anyio.sleep(0.05)
    assert "raised after it was abandoned" in caplog.text


async def test_a_sync_tool_runs_in_a_thread_and_does_not_block_other_requests() -> None:
    app, client = make()
    loop_thread = threading.get_ident()
    seen: dict[str, Any] = {}

    @app.tool
    def blocking() -> str:
        """Blocks its thread for a while."""
        seen["thread"] = threading.get_ident()
        time.sleep(0.5)
        seen["blocking_done"] = time.perf_counter()
        return "slow"

    @app.tool
    async def quick() -> str:
        """Answers at once."""
        seen["quick_done"] = time.perf_counter()
        return "fast"

    async with anyio.create_task_group() as group:
        group.start_soon(client.call_tool, "blocking")
        await anyio.sleep(0.05)
        group.start_soon(client.call_tool, "quick")
    assert seen["thread"] != loop_thread
    assert seen["quick_done"] < seen["blocking_done"]


async def test_tool_error_text_reaches_the_caller_and_other_exceptions_do_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = make(raise_exceptions=False)

    @app.tool
    async def taken() -> None:
        """Fails politely."""
        raise ToolError("That slot is taken. Offer another time.")

    @app.tool
    async def buggy() -> None:
        """Fails with internals."""
        detail = "-".join(("db", "password", "table"))  # a runtime value, not source text
        raise KeyError(detail)

    with caplog.at_level(logging.ERROR, "voicehooks"):
        results = await client.call_tools(
            tool_call("taken", id="t1"), tool_call("buggy", id="t2"), call_id="call-err"
        )
    assert results[0] == {"error": "That slot is taken. Offer another time."}
    assert "db-password-table" not in msgspec.json.encode(results).decode()
    assert results[1]["error"].startswith("The tool buggy failed unexpectedly")
    record = next(r for r in caplog.records if "buggy" in r.getMessage())
    assert "call-err" in record.getMessage()
    # the traceback is in the log, not on the wire; the message stays out of both
    assert "Traceback" in record.getMessage()
    assert "KeyError (message withheld)" in record.getMessage()
    assert "db-password-table" not in caplog.text


class Point(msgspec.Struct):
    x: int


@dataclasses.dataclass
class Pair:
    a: int
    b: int


@pytest.mark.parametrize(
    ("returned", "expected"),
    [
        ({"status": "ready"}, {"status": "ready"}),
        ({"result": {"status": "ready"}}, {"status": "ready"}),
        ({"error": "No work order found"}, {"error": "No work order found"}),
        ({"results": [{"tool_call_id": "ID", "result": 42}]}, 42),
        ({"results": [{"tool_call_id": "other", "result": 7}]}, 7),
        ({"result": 1, "note": "two keys: direct"}, {"result": 1, "note": "two keys: direct"}),
        ({"error": 5}, {"error": 5}),
        (ToolResult({"result": "literal"}), {"result": "literal"}),
        ("plain text", "plain text"),
        (3.5, 3.5),
        (None, None),
        ([1, 2], [1, 2]),
        (True, True),
        (Point(1), {"x": 1}),
        (Pair(1, 2), {"a": 1, "b": 2}),
    ],
)
async def test_whatever_a_tool_returns_is_normalized_to_the_object_format(
    returned: Any, expected: Any
) -> None:
    app, client = make()

    @app.tool
    async def answer() -> Any:
        """Returns the parametrized value."""
        return returned

    response = await client.post(tool_calls(tool_call("answer", id="ID")))
    assert response.status_code == 200
    assert response.json() == {"results": [{"tool_call_id": "ID", "result": expected}]}


async def test_a_result_that_cannot_be_encoded_is_an_error_result(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = make(raise_exceptions=False)
    reports: list[BaseException] = []
    app.add_error_hook(lambda exc, event: reports.append(exc))

    @app.tool
    async def weird() -> object:
        """Returns something JSON cannot hold."""
        return object()

    with caplog.at_level(logging.ERROR, "voicehooks"):
        result = await client.call_tool("weird")
    assert "could not be sent" in result["error"]
    assert "cannot be encoded" in caplog.text
    assert len(reports) == 1


async def test_injected_parameters_receive_the_event_the_call_and_the_context() -> None:
    app, client = make()
    seen: dict[str, Any] = {}

    @app.tool
    async def inspect_call(
        query: str, event: ToolCalls, call: ToolCall, context: CallContext, any_event: Event
    ) -> str:
        """Records what it receives."""
        seen.update(query=query, event=event, call=call, context=context, any_event=any_event)
        return "ok"

    await client.call_tools(
        tool_call("inspect_call", {"query": "Sanne"}, id="tool-9"),
        call_id="call-9",
        metadata={"crm": "CNT-1"},
    )
    assert seen["query"] == "Sanne"
    assert seen["event"].call.id == "call-9"
    assert seen["any_event"] is seen["event"]
    assert seen["call"].id == "tool-9"
    assert seen["call"].arguments == {"query": "Sanne"}
    assert seen["context"] == CallContext(
        call_id="call-9",
        call_type="inbound_phone_call",
        call_status="in-progress",
        customer_number="+31655018342",
        phone_number="+31302047715",
        assistant_metadata={"crm": "CNT-1"},
        delivery_id=delivery_id(seen["event"], seen["call"]),
    )
    assert len(seen["context"].delivery_id) == 32


async def test_bad_arguments_do_not_run_the_tool() -> None:
    app, client = make()
    ran: list[int] = []

    @app.tool
    async def count(n: int) -> int:
        """Counts."""
        ran.append(n)
        return n

    result = await client.call_tool("count", n="three")
    assert "the argument 'n' must be a whole number, for example 4" in result["error"]
    assert ran == []
    result = await client.call_tools(tool_call("count", '{"n": 3}'))
    assert result == [3]


async def test_an_unknown_tool_gets_an_error_result_and_one_warning_with_a_stub(
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, client = make()
    with caplog.at_level(logging.WARNING, "voicehooks"):
        first = await client.call_tool("lookup_contact", query="+31699999999", limit=3, exact=True)
        await client.call_tool("lookup_contact", query="again")
    assert first == {
        "error": "There is no tool called lookup_contact on this server. Do not call it again."
    }
    warnings = [r for r in caplog.records if "lookup_contact" in r.getMessage()]
    assert len(warnings) == 1
    text = warnings[0].getMessage()
    assert '@app.tool("lookup_contact")' in text
    assert "async def lookup_contact(query: str, limit: int, exact: bool)" in text
    assert "+31699999999" not in caplog.text  # argument values never reach the log


async def test_a_raw_handler_gets_only_the_unclaimed_calls() -> None:
    app, client = make()
    received: list[list[str]] = []

    @app.tool
    async def known() -> str:
        """A registered tool."""
        return "known"

    @app.on("tool-calls")
    async def fallback(event: ToolCalls) -> dict[str, Any]:
        received.append([call.name for call in event.tool_call_list])
        return {
            "results": [
                {"tool_call_id": c.id, "result": c.name.upper()} for c in event.tool_call_list
            ]
        }

    results = await client.call_tools(
        tool_call("alpha", id="1"), tool_call("known", id="2"), tool_call("beta", id="3")
    )
    assert results == ["ALPHA", "known", "BETA"]
    assert received == [["alpha", "beta"]]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ({"results": [{"tool_call_id": "x", "result": {"ok": 1}}]}, {"ok": 1}),
        ({"result": {"ok": 2}}, {"ok": 2}),
        ({"ok": 3}, {"ok": 3}),
        ({"error": "Nope"}, {"error": "Nope"}),
        (None, None),
    ],
    ids=["object", "simple", "direct", "error", "none"],
)
async def test_a_raw_handler_may_answer_in_any_of_the_four_formats(
    answer: Any, expected: Any
) -> None:
    app, client = make()
    app.add_handler("tool-calls", lambda: answer)
    response = await client.post(tool_calls(tool_call("anything", id="x")))
    assert response.json() == {"results": [{"tool_call_id": "x", "result": expected}]}


async def test_a_raw_handler_error_format_applies_to_each_of_its_calls() -> None:
    app, client = make()

    @app.on("tool-calls")
    async def down() -> dict[str, str]:
        return {"error": "CRM is down"}

    results = await client.call_tools(tool_call("a", id="1"), tool_call("b", id="2"))
    assert results == [{"error": "CRM is down"}] * 2


async def test_a_failing_or_slow_raw_handler_answers_errors() -> None:
    app, client = make(raise_exceptions=False, deadlines=Deadlines(tool_seconds=0.1))
    mode = {"value": "raise"}

    @app.on("tool-calls")
    async def flaky() -> str:
        if mode["value"] == "raise":
            raise RuntimeError("internal")
        if mode["value"] == "tool-error":
            raise ToolError("Ask again later.")
        if mode["value"] == "bad":
            return object()  # type: ignore[return-value]
        await anyio.sleep(5)
        return "late"

    assert "failed unexpectedly" in (await client.call_tool("z"))["error"]
    mode["value"] = "tool-error"
    assert await client.call_tool("z") == {"error": "Ask again later."}
    mode["value"] = "bad"
    assert "could not be sent" in (await client.call_tool("z"))["error"]
    mode["value"] = "slow"
    assert "did not answer in time" in (await client.call_tool("z"))["error"]


async def test_a_multi_call_answer_without_ids_is_an_error_per_call() -> None:
    app, client = make()
    app.add_handler("tool-calls", lambda: {"direct": "but for two calls"})
    results = await client.call_tools(tool_call("a", id="1"), tool_call("b", id="2"))
    assert all("did not say which call" in r["error"] for r in results)


async def test_a_fire_and_forget_tool_is_answered_at_once_and_runs_afterwards() -> None:
    app, client = make()
    release = anyio.Event()
    done: list[str] = []

    @app.tool(fire_and_forget=True, async_response="The text is on its way.")
    async def send_sms(text: str) -> None:
        """Send a text."""
        await release.wait()
        done.append(text)

    @app.tool(fire_and_forget=True)
    def log_call() -> None:
        """Log the call somewhere slow."""
        done.append("logged")

    async with client:
        results = await client.call_tools(
            tool_call("send_sms", {"text": "hi"}, id="1"), tool_call("log_call", id="2")
        )
        assert results == ["The text is on its way.", {"status": "started"}]
        assert "hi" not in done
        release.set()
    assert sorted(done) == ["hi", "logged"]


async def test_a_failing_fire_and_forget_tool_is_logged_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = make(raise_exceptions=False)
    reports: list[str] = []

    @app.on_error
    async def report(exc: BaseException, event: Event) -> None:
        reports.append(f"{type(exc).__name__}:{event.call.id}")

    @app.tool(fire_and_forget=True)
    async def broken() -> None:
        """Fails in the background."""
        raise ValueError("bg")

    with caplog.at_level(logging.ERROR, "voicehooks"):
        async with client:
            await client.call_tools(tool_call("broken"), call_id="call-bg")
    assert reports == ["ValueError:call-bg"]
    assert "tool broken (call call-bg) raised ValueError" in caplog.text


async def test_error_hooks_see_tool_exceptions_but_not_tool_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = make(raise_exceptions=False)
    seen: list[tuple[str, str]] = []

    @app.on_error
    def first(exc: BaseException, event: Event) -> None:
        seen.append((type(exc).__name__, event.type))

    @app.on_error
    def broken_hook(exc: BaseException, event: Event) -> None:
        raise RuntimeError("hook bug")

    @app.tool
    async def fails() -> None:
        """Fails."""
        raise LookupError("x")

    @app.tool
    async def declines() -> None:
        """Declines."""
        raise ToolError("no")

    with caplog.at_level(logging.ERROR, "voicehooks"):
        await client.call_tools(tool_call("fails"), tool_call("declines"))
    assert seen == [("LookupError", "tool-calls")]
    assert "error hook" in caplog.text


def test_an_error_hook_must_take_two_arguments() -> None:
    app = VoiceHooks(verify_signatures=False)
    with pytest.raises(Exception, match="two arguments"):
        app.add_error_hook(lambda exc: None)  # type: ignore[arg-type,misc]
    with pytest.raises(Exception, match="not callable"):
        app.add_error_hook("nope")  # type: ignore[arg-type]


async def test_an_empty_tool_call_list_is_an_empty_object_answer() -> None:
    _, client = make()
    response = await client.post(tool_calls())
    assert response.json() == {"results": []}


async def test_without_a_lifespan_a_fire_and_forget_tool_runs_after_the_answer_is_sent() -> None:
    app, client = make()
    order: list[str] = []

    @app.tool(fire_and_forget=True)
    async def slow_notify() -> None:
        """Runs after the answer."""
        await anyio.sleep(0.05)
        order.append("tool finished")

    body = msgspec.json.encode(tool_calls(tool_call("slow_notify", id="ff")))
    headers = [(k.encode(), v.encode()) for k, v in client.signed_headers(body).items()]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body}

    async def send(message: Any) -> None:
        if message["type"] == "http.response.body":
            order.append("answer sent")

    await app({"type": "http", "method": "POST", "path": "/", "headers": headers}, receive, send)
    assert order == ["answer sent", "tool finished"]


@pytest.mark.parametrize("stuck_is_sync", [False, True], ids=["async", "sync"])
@pytest.mark.parametrize("stuck_at", [0, 1, 2])
async def test_a_call_cut_by_its_deadline_leaves_its_still_running_siblings_alone(
    stuck_at: int, stuck_is_sync: bool
) -> None:
    # The first call that suspends goes on in the request's own task, the later ones in tasks
    # of their own: a deadline in either place must cut only its own call.
    app, client = make(deadlines=Deadlines(tool_seconds=5))

    async def stuck_async() -> str:
        await anyio.sleep(30)
        return "never"

    def stuck_sync() -> str:
        time.sleep(0.6)  # abandoned at its deadline; its thread ends on its own
        return "late"

    app.add_tool(
        stuck_sync if stuck_is_sync else stuck_async,
        "stuck",
        description="Never answers in time.",
        timeout_seconds=0.1,
    )

    @app.tool
    async def slower(label: str) -> str:
        """Still running when the stuck call is cut."""
        await anyio.sleep(0.4)
        return label

    calls = [tool_call("slower", {"label": label}, id=label) for label in "xy"]
    calls.insert(stuck_at, tool_call("stuck", id="s"))
    started = time.perf_counter()
    results = await client.call_tools(*calls)
    assert "did not answer in time" in results[stuck_at]["error"]
    assert [r for i, r in enumerate(results) if i != stuck_at] == ["x", "y"]
    assert time.perf_counter() - started < 3


async def test_warnings_about_unknown_tools_are_bounded_and_rate_limited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = make()
    with caplog.at_level(logging.WARNING, "voicehooks"):
        for i in range(40):
            await client.call_tools(*(tool_call(f"invented_{i}_{j}") for j in range(10)))
    warnings = [r for r in caplog.records if "which is not registered" in r.getMessage()]
    assert len(warnings) == 10  # at most 10 a minute, whatever the model invents
    assert len(app.dispatcher.tool_calls.unknown_tools.names) <= 128


async def test_a_sync_error_hook_runs_off_the_event_loop() -> None:
    app, client = make(raise_exceptions=False)
    loop_thread = threading.get_ident()
    hook_threads: list[int] = []

    @app.on_error
    def record(exc: BaseException, event: Event) -> None:
        hook_threads.append(threading.get_ident())

    @app.tool
    def broken() -> None:
        """Breaks."""
        raise RuntimeError("bug")

    await client.call_tool("broken")
    assert len(hook_threads) == 1
    assert hook_threads[0] != loop_thread


async def test_a_hanging_error_hook_does_not_hold_the_answer_past_its_budget(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = make(raise_exceptions=False)

    @app.on_error
    async def hangs(exc: BaseException, event: Event) -> None:
        await anyio.sleep(30)

    @app.tool
    def broken() -> None:
        """Breaks."""
        raise RuntimeError("bug")

    started = time.perf_counter()
    with caplog.at_level(logging.ERROR, "voicehooks"):
        result = await client.call_tool("broken")
    assert "failed unexpectedly" in result["error"]
    assert time.perf_counter() - started < 6
    assert "took longer than 2 s" in caplog.text


# -- assistant-request -------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        {},
        {"assistant_id": "e2a94f1c"},
        {"assistant_id": "e2a94f1c", "assistant_override": {"first_message": "Hoi Sanne!"}},
        {"assistant": {"name": "After hours", "first_message": "We are closed."}},
        {"error": "We are closed. Call back tomorrow from nine."},
        {"max_duration_seconds": 300},
    ],
)
async def test_dict_answers_come_back_exactly_as_returned(answer: dict[str, Any]) -> None:
    app, client = make()
    app.add_handler("assistant-request", lambda: answer)
    assert await client.assistant_request() == answer


async def test_builder_answers_and_call_context() -> None:
    app, client = make()

    @app.on("assistant-request")
    async def route(event: AssistantRequest, context: CallContext) -> AssistantResponse:
        assert event.call.status == "ringing"
        if context.customer_number == "+31600000001":
            return AssistantResponse.reject("Sorry, we are closed.")
        return AssistantResponse.override("A-1", first_message="Hi!")

    assert await client.assistant_request(customer_number="+31600000001") == {
        "error": "Sorry, we are closed."
    }
    assert await client.assistant_request() == {
        "assistant_id": "A-1",
        "assistant_override": {"first_message": "Hi!"},
    }


async def test_no_handler_answers_the_saved_configuration() -> None:
    _, client = make()
    assert await client.assistant_request() == {}


async def test_a_slow_handler_is_answered_empty_within_its_budget(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = make(deadlines=Deadlines(assistant_request_seconds=0.2))

    @app.on("assistant-request")
    async def slow() -> dict[str, Any]:
        await anyio.sleep(8)
        return {"assistant_id": "never"}

    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, "voicehooks"):
        assert await client.assistant_request(call_id="call-slow") == {}
    assert time.perf_counter() - started < 2
    assert "longer than 0.2 s" in caplog.text
    assert "call-slow" in caplog.text


@pytest.mark.parametrize(
    "answer",
    [
        {"assistant": {}, "assistant_id": "x"},
        "not a dict",
        {"assistant": {"bad": object()}},
    ],
    ids=["mixed-modes", "not-a-dict", "unencodable"],
)
async def test_an_unusable_answer_is_logged_and_answered_empty(
    answer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    app, client = make()
    app.add_handler("assistant-request", lambda: answer)
    with caplog.at_level(logging.ERROR, "voicehooks"):
        assert await client.assistant_request() == {}
    assert "unusable answer" in caplog.text


async def test_a_failing_handler_is_answered_empty_logged_and_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = make(raise_exceptions=False)
    reports: list[str] = []
    app.add_error_hook(lambda exc, event: reports.append(event.call.id))

    @app.on("assistant-request")
    def broken(event: AssistantRequest) -> dict[str, Any]:
        raise RuntimeError("crm unavailable")

    with caplog.at_level(logging.ERROR, "voicehooks"):
        assert await client.assistant_request(call_id="call-ar") == {}
    assert reports == ["call-ar"]
    assert "raised RuntimeError" in caplog.text


def test_a_second_assistant_request_handler_fails_at_import_time() -> None:
    app = VoiceHooks(verify_signatures=False)
    app.add_handler("assistant-request", answer_default)
    with pytest.raises(ConfigurationError, match="already answers assistant-request"):
        app.add_handler("assistant-request", answer_default)
    with pytest.raises(ConfigurationError, match="cannot read the signature of dict"):
        VoiceHooks(verify_signatures=False).add_handler("assistant-request", dict)


def answer_default() -> dict[str, Any]:
    return {}


async def test_a_report_touches_the_store_for_call_state_only_where_an_app_keeps_some() -> None:
    class Counting(MemoryStore):
        forgotten = 0

        async def forget(self, key: str) -> None:
            Counting.forgotten += 1
            await super().forget(key)

    store = Counting()
    app = VoiceHooks(secret=SECRET, duplicates=Duplicates(store=store))

    @app.on("end-of-call-report")
    async def archive(report: EndOfCallReport) -> None:
        pass

    async with WebhookClient(app, secret=SECRET) as client:
        await client.end_of_call_report(call_id="plain")
        await client.wait_for_background()
    assert Counting.forgotten == 0  # no CallState, no once_per_call: nothing to clear

    @app.tool(once_per_call=True)
    async def book(slot: str) -> str:
        """Book a slot."""
        return slot

    async with WebhookClient(app, secret=SECRET) as client:
        await client.end_of_call_report(call_id="keeps")
        await client.wait_for_background()
    assert Counting.forgotten > 0
