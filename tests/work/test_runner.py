"""voicehooks.work.runner: informational events acknowledged first, bounded after-the-answer
work that never starves a live tool, lifespans that drain it, and every job accepted ending
as done, failed or cut."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from voicehooks import (
    Background,
    CallContext,
    ConfigurationError,
    Deadlines,
    EndOfCallReport,
    Event,
    Limits,
    StatusUpdate,
    VoiceHooks,
)
from voicehooks.testing import CUSTOMER_NUMBER, WebhookClient, end_of_call_report
from voicehooks.work.jobs import Job

pytestmark = pytest.mark.anyio

SECRET = "whsec_background_tests"


def make(*, raise_exceptions: bool = True, **options: Any) -> tuple[VoiceHooks, WebhookClient]:
    """An app and its client; ``raise_exceptions=False`` where a test makes user code fail."""
    app = VoiceHooks(secret=SECRET, **options)
    return app, WebhookClient(app, secret=SECRET, raise_exceptions=raise_exceptions)


async def test_a_full_queue_refuses_with_503_and_retry_after_and_accepts_again_once_drained(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = make(background=Background(max_queued_jobs=3, max_running=1))
    release = anyio.Event()
    handled: list[str] = []

    @app.on("end-of-call-report")
    async def slow_crm(event: EndOfCallReport) -> None:
        await release.wait()
        handled.append(event.call.id)

    with caplog.at_level(logging.WARNING, "voicehooks"):
        async with client:
            answers = [await client.end_of_call_report(call_id=f"c{i}") for i in range(6)]
            assert [answer.status_code for answer in answers] == [200, 200, 200, 503, 503, 503]
            refused = answers[3]
            assert refused.headers["retry-after"] == "5"
            assert "queue is full" in refused.json()["error"]
            release.set()
            await client.wait_for_background()
            again = await client.end_of_call_report(call_id="c3")
            assert again.status_code == 200
            await client.wait_for_background()
    assert sorted(handled) == ["c0", "c1", "c2", "c3"]
    full = [r for r in caplog.records if "queue is full" in r.getMessage()]
    assert len(full) == 1  # one line per episode, not one per refusal
    assert any("has room again" in r.getMessage() for r in caplog.records)


async def test_the_queue_is_bounded_in_bytes_too() -> None:
    body_size = len(__import__("msgspec").json.encode(end_of_call_report()))
    app, client = make(background=Background(max_queued_bytes=int(body_size * 1.5), max_running=1))
    release = anyio.Event()

    @app.on("end-of-call-report")
    async def slow(event: EndOfCallReport) -> None:
        await release.wait()

    async with client:
        first = await client.end_of_call_report(call_id="b1")
        second = await client.end_of_call_report(call_id="b2")
        release.set()
    assert first.status_code == 200
    assert second.status_code == 503


async def test_a_refused_delivery_is_not_remembered_as_a_duplicate() -> None:
    app, client = make(background=Background(max_queued_jobs=1, max_running=1))
    release = anyio.Event()
    handled: list[str] = []

    @app.on("end-of-call-report")
    async def slow(event: EndOfCallReport) -> None:
        await release.wait()
        handled.append(event.call.id)

    payload = end_of_call_report(call_id="again")
    async with client:
        await client.end_of_call_report(call_id="first")
        refused = await client.post(payload)
        release.set()
        await client.wait_for_background()
        retried = await client.post(payload)  # the same delivery, sent again
        await client.wait_for_background()
    assert refused.status_code == 503
    assert retried.status_code == 200
    assert handled == ["first", "again"]


async def test_blocked_background_handlers_never_delay_a_live_sync_tool() -> None:
    app, client = make(
        limits=Limits(max_background_threads=8), background=Background(max_running=64)
    )
    release = threading.Event()

    @app.on("status-update")
    def blocking_crm(event: StatusUpdate) -> None:
        release.wait(20)

    @app.tool
    def lookup(query: str) -> str:
        """Look a contact up."""
        time.sleep(0.01)
        return f"found {query}"

    try:
        async with client:
            for i in range(40):
                await client.status_update(call_id=f"s{i}")
            started = time.perf_counter()
            result = await client.call_tool("lookup", query="Sanne")
            elapsed = time.perf_counter() - started
            release.set()
    finally:
        release.set()
    assert result == "found Sanne"
    assert elapsed < 4  # 0.1.0: "did not answer in time" after the 8 s deadline


async def test_a_hanging_sync_tool_leaves_a_bounded_number_of_threads(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A deadline long enough for a thread to start on a loaded machine: a call given up
    # before its thread started is never run, and so never abandoned.
    app, client = make(
        deadlines=Deadlines(tool_seconds=0.5), limits=Limits(max_abandoned_threads=3)
    )
    release = threading.Event()

    @app.tool(deduplicate=False)
    def hangs() -> str:
        """Never answers in time."""
        release.wait(20)
        return "late"

    before = threading.active_count()
    try:
        with caplog.at_level(logging.WARNING, "voicehooks"):
            results = [await client.call_tool("hangs") for _ in range(6)]
        grew = threading.active_count() - before
    finally:
        release.set()
    assert all("did not answer in time" in r["error"] for r in results[:3])
    assert all("cannot be started right now" in r["error"] for r in results[3:])
    assert grew <= 3 + 1  # the abandoned ones, and at most one idle worker
    assert "refusing a new one instead of starting another thread" in caplog.text
    with anyio.fail_after(5):
        while app.tools["hangs"].fn.abandoned:
            await anyio.sleep(0.01)


async def test_without_a_lifespan_a_cancelled_request_names_the_jobs_it_did_not_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = make()
    ran: list[str] = []

    @app.on("end-of-call-report")
    async def first(event: EndOfCallReport) -> None:
        ran.append("first")
        await anyio.sleep(30)

    @app.on("end-of-call-report")
    async def second(event: EndOfCallReport) -> None:
        ran.append("second")

    with caplog.at_level(logging.ERROR, "voicehooks"):
        with anyio.move_on_after(0.2):
            await client.end_of_call_report(call_id="cancelled")
    assert ran == ["first"]
    assert re.search(
        r"end-of-call-report handler \S+first \(call cancelled\) was cut short", caplog.text
    )
    assert re.search(
        r"end-of-call-report handler \S+second \(call cancelled\) was cut short before it ran",
        caplog.text,
    )
    assert app.runner.in_flight == []


async def test_jobs_waiting_for_a_slot_at_shutdown_are_named_as_cut(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = make(
        deadlines=Deadlines(shutdown_grace_seconds=0.1), background=Background(max_running=1)
    )

    @app.on("status-update")
    async def slow(event: StatusUpdate) -> None:
        await anyio.sleep(30)

    with caplog.at_level(logging.ERROR, "voicehooks"):
        async with client:
            await client.status_update(call_id="running")
            await client.status_update(call_id="waiting")
    assert re.search(r"\(call running\) was cut short$", caplog.text, re.MULTILINE)
    assert re.search(r"\(call waiting\) was cut short before it ran", caplog.text)


async def test_a_failing_and_a_timed_out_job_end_logged(caplog: pytest.LogCaptureFixture) -> None:
    app, client = make(raise_exceptions=False, deadlines=Deadlines(background_seconds=0.05))

    @app.on("end-of-call-report")
    async def broken(event: EndOfCallReport) -> None:
        raise ValueError(f"crm said no to {event.customer.number}")

    @app.on("end-of-call-report")
    async def stuck(event: EndOfCallReport) -> None:
        await anyio.sleep(30)

    with caplog.at_level(logging.ERROR, "voicehooks"):
        async with client:
            await client.end_of_call_report(call_id="f1")
            await client.wait_for_background()
    assert re.search(r"handler \S+broken \(call f1\) raised ValueError", caplog.text)
    assert re.search(r"handler \S+stuck \(call f1\) did not finish within 0.1 s", caplog.text)
    assert CUSTOMER_NUMBER not in caplog.text


def test_a_job_knows_its_size_and_its_delivery_id() -> None:
    import msgspec

    from voicehooks.core.events import decode_delivery

    body = msgspec.json.encode(end_of_call_report(call_id="j1"))
    event = decode_delivery(body)
    job = Job(event, "handler:m:f")
    assert job.size == len(body)
    assert job.delivery_id == Job(decode_delivery(body), "handler:m:g").delivery_id
    assert len(job.delivery_id) == 32


# -- informational events ----------------------------------------------------------------


async def test_status_updates_are_acknowledged_before_their_handler_finishes() -> None:
    app, client = make()
    release = anyio.Event()
    done: list[str] = []

    @app.on("status-update")
    async def slow(event: StatusUpdate) -> None:
        await release.wait()
        done.append(event.status)

    async with client:
        response = await client.status_update("ended", call_id="c1")
        assert (response.status_code, response.json()) == (200, {})
        assert done == []  # answered while the handler still waits
        assert app.runner.in_flight == [("status-update", "c1")]
        release.set()
    assert done == ["ended"]


async def test_several_handlers_may_listen_and_failures_are_isolated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = make(raise_exceptions=False)
    seen: list[str] = []
    reports: list[tuple[str, str]] = []

    @app.on("end-of-call-report")
    async def store(event: EndOfCallReport) -> None:
        seen.append(f"store:{event.duration_seconds}")

    @app.on("end-of-call-report")
    def crash(event: Event) -> None:
        raise ValueError("disk full")

    @app.on("end-of-call-report")
    def notify(context: CallContext) -> None:
        seen.append(f"notify:{context.call_id}")

    app.add_error_hook(lambda exc, event: reports.append((type(exc).__name__, event.type)))
    with caplog.at_level(logging.ERROR, "voicehooks"):
        async with client:
            await client.end_of_call_report(call_id="c7")
    assert sorted(seen) == ["notify:c7", "store:95"]
    assert reports == [("ValueError", "end-of-call-report")]
    assert "end-of-call-report handler" in caplog.text
    assert "(call c7) raised ValueError" in caplog.text


async def test_run_before_answer_handlers_finish_before_the_answer() -> None:
    app, client = make()
    done: list[str] = []

    @app.on("status-update", run_before_answer=True)
    async def first(event: StatusUpdate) -> None:
        await anyio.sleep(0.05)
        done.append("before")

    async with client:
        await client.status_update()
        assert done == ["before"]


def test_run_before_answer_is_only_for_informational_events() -> None:
    app = VoiceHooks(verify_signatures=False)
    with pytest.raises(ConfigurationError, match="run_before_answer"):
        app.on("tool-calls", run_before_answer=True)(lambda: None)


async def test_background_concurrency_is_bounded() -> None:
    app, client = make(background=Background(max_running=2))
    running = 0
    peak = 0

    @app.on("status-update")
    async def busy() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.05)
        running -= 1

    async with client:
        for _ in range(6):
            await client.status_update()
    assert peak == 2


async def test_without_a_lifespan_handlers_run_after_the_answer_in_the_request() -> None:
    app, client = make()
    order: list[str] = []

    @app.on("status-update")
    async def handler() -> None:
        order.append("handler")

    response = await client.status_update()  # no `async with`: no lifespan ran
    order.append("returned")
    assert response.status_code == 200
    assert order == ["handler", "returned"]
    assert not app.tasks.is_open


# -- lifespan ----------------------------------------------------------------------------


async def test_the_user_lifespan_wraps_the_background_work() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: VoiceHooks) -> AsyncIterator[dict[str, Any]]:
        events.append("startup")
        app.state.pool = "pool"
        yield {"db": "pool"}
        events.append("teardown")

    app, client = make(lifespan=lifespan)

    @app.on("end-of-call-report")
    async def store(event: EndOfCallReport) -> None:
        await anyio.sleep(0.1)
        events.append(f"stored with {app.state.pool}")

    async with client:
        await client.end_of_call_report()
        events.append("answered")
    assert events == ["startup", "answered", "stored with pool", "teardown"]


async def test_shutdown_cuts_what_outlives_the_grace_period_and_names_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = make(deadlines=Deadlines(shutdown_grace_seconds=0.2))
    finished: list[str] = []

    @app.on("end-of-call-report")
    async def slow(event: EndOfCallReport) -> None:
        await anyio.sleep(0.05 if event.call.id == "quick" else 30)
        finished.append(event.call.id)

    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, "voicehooks"):
        async with client:
            await client.end_of_call_report(call_id="quick")
            await client.end_of_call_report(call_id="stuck-call")
    assert time.perf_counter() - started < 5
    assert finished == ["quick"]
    assert "1 background task(s) still running after the 0.2 s grace period" in caplog.text
    assert re.search(
        r"background end-of-call-report handler \S+slow \(call stuck-call\) was cut short",
        caplog.text,
    )


async def test_a_composed_lifespan_owns_background_work_of_a_mounted_app() -> None:
    from starlette.applications import Starlette
    from starlette.routing import Mount

    hooks = VoiceHooks(secret=SECRET)
    release = anyio.Event()
    done: list[str] = []

    @hooks.on("status-update")
    async def handler(event: StatusUpdate) -> None:
        await release.wait()
        done.append(event.call.id)

    @asynccontextmanager
    async def parent_lifespan(parent: Starlette) -> AsyncIterator[None]:
        async with hooks.lifespan():
            yield

    parent = Starlette(routes=[Mount("/hooks", app=hooks)], lifespan=parent_lifespan)
    async with WebhookClient(parent, secret=SECRET, path="/hooks/") as client:
        await client.status_update(call_id="m1")
        assert hooks.tasks.is_open
        assert done == []
        release.set()
    assert done == ["m1"]


async def test_the_runner_drains_what_finishes_and_cuts_what_does_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = make(deadlines=Deadlines(shutdown_grace_seconds=0.2))
    finished: list[str] = []

    @app.on("status-update")
    async def handler(event: StatusUpdate) -> None:
        await anyio.sleep(0.01 if event.call.id == "fast" else 30)
        finished.append(event.call.id)

    with caplog.at_level(logging.ERROR, "voicehooks"):
        async with client:
            await client.status_update(call_id="fast")
            await client.status_update(call_id="stuck")
            assert app.tasks.is_open
    assert finished == ["fast"]
    assert re.search(r"handler \S+ \(call stuck\) was cut short", caplog.text)
    assert app.runner.in_flight == []
