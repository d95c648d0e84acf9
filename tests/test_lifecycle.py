"""assistant-request in time; informational events acknowledged first; lifespan and draining."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from voicehooks import (
    AssistantRequest,
    AssistantResponse,
    CallContext,
    ConfigurationError,
    EndOfCallReport,
    Event,
    StatusUpdate,
    VoiceHooks,
)
from voicehooks.testing import WebhookClient

pytestmark = pytest.mark.anyio

SECRET = "whsec_lifecycle"


def make(*, raise_exceptions: bool = True, **options: Any) -> tuple[VoiceHooks, WebhookClient]:
    """An app and its client; ``raise_exceptions=False`` where a test makes user code fail."""
    app = VoiceHooks(secret=SECRET, **options)
    return app, WebhookClient(app, secret=SECRET, raise_exceptions=raise_exceptions)


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
    app, client = make(assistant_request_timeout_seconds=0.2)

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
    app, client = make(max_background_jobs=2)
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
    assert not app.runner.owned


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
    app, client = make(shutdown_grace_seconds=0.2)
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
    assert "1 background job(s) still running after the 0.2 s grace period" in caplog.text
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
        assert hooks.runner.owned
        assert done == []
        release.set()
    assert done == ["m1"]


# -- registration ------------------------------------------------------------------------


async def never(event: EndOfCallReport) -> None: ...


def untyped(event) -> None:  # type: ignore[no-untyped-def]
    ...


def test_handlers_fail_at_registration_with_a_fix() -> None:
    app = VoiceHooks(verify_signatures=False)
    with pytest.raises(ConfigurationError, match="unknown event 'call-ended'"):
        app.on("call-ended")(lambda: None)  # type: ignore[arg-type]  # the runtime check
    with pytest.raises(
        ConfigurationError, match=r"annotated 'EndOfCallReport'.*StatusUpdate, CallContext"
    ):
        app.add_handler("status-update", never)
    with pytest.raises(ConfigurationError, match="'event' has no annotation"):
        app.add_handler("status-update", untyped)
    with pytest.raises(ConfigurationError, match="not callable"):
        app.add_handler("status-update", 42)  # type: ignore[arg-type]


def test_routes_list_every_registration() -> None:
    app = VoiceHooks(verify_signatures=False)
    app.on("status-update", run_before_answer=True)(never_status)

    @app.tool(fire_and_forget=True)
    def ping() -> None:
        """Ping."""

    rows = [(r.kind, r.name, r.function.split(":")[1], r.note) for r in app.routes()]
    assert rows == [
        ("event", "status-update", "never_status", "before answer"),
        ("tool", "ping", "test_routes_list_every_registration.<locals>.ping", "fire-and-forget"),
    ]


def never_status(event: StatusUpdate) -> None: ...


async def test_the_runner_drains_what_finishes_and_cuts_what_does_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, client = make(shutdown_grace_seconds=0.2)
    finished: list[str] = []

    @app.on("status-update")
    async def handler(event: StatusUpdate) -> None:
        await anyio.sleep(0.01 if event.call.id == "fast" else 30)
        finished.append(event.call.id)

    with caplog.at_level(logging.ERROR, "voicehooks"):
        async with client:
            await client.status_update(call_id="fast")
            await client.status_update(call_id="stuck")
            assert app.runner.owned
    assert finished == ["fast"]
    assert re.search(r"handler \S+ \(call stuck\) was cut short", caplog.text)
    assert app.runner.in_flight == []
