"""voicehooks.observe.observers: the one seam, called at each point, never able to change an
answer."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from voicehooks import Observer, ToolError, VoiceHooks
from voicehooks.core.events import EndOfCallReport
from voicehooks.observe import Delivery, JobRun, ToolRun
from voicehooks.observe.observers import ObserverSet
from voicehooks.testing import WebhookClient, tool_call

pytestmark = pytest.mark.anyio

SECRET = "whsec_observer_tests"


class Recorder(Observer):
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def delivery_started(self, delivery: Delivery) -> None:
        self.calls.append(("delivery_started", delivery.event_type))

    def delivery_answered(self, delivery: Delivery) -> None:
        self.calls.append(
            ("delivery_answered", (delivery.event_type, delivery.status, delivery.outcome))
        )

    def tool_started(self, delivery: Delivery, run: ToolRun) -> None:
        self.calls.append(("tool_started", run.name))

    def tool_ended(self, delivery: Delivery, run: ToolRun) -> None:
        self.calls.append(("tool_ended", (run.name, run.outcome)))

    def job_started(self, job: JobRun) -> None:
        self.calls.append(("job_started", job.name))

    def job_ended(self, job: JobRun) -> None:
        self.calls.append(("job_ended", (job.name.rsplit(".", 1)[-1], job.outcome)))


def make(*, raise_exceptions: bool = True) -> tuple[VoiceHooks, Recorder, WebhookClient]:
    """An app, its observer and its client; ``raise_exceptions=False`` where user code fails."""
    recorder = Recorder()
    app = VoiceHooks(secret=SECRET, observers=[recorder])
    return app, recorder, WebhookClient(app, secret=SECRET, raise_exceptions=raise_exceptions)


async def test_a_tool_delivery_is_observed_from_start_to_answer() -> None:
    app, recorder, client = make()

    @app.tool
    def ok() -> str:
        """Fine."""
        return "fine"

    @app.tool
    def refuses() -> str:
        """Says no."""
        raise ToolError("No.")

    await client.call_tools(tool_call("ok"), tool_call("refuses"), tool_call("ghost"))
    assert recorder.calls[0] == ("delivery_started", None)
    assert ("tool_ended", ("tool ok", "ok")) not in recorder.calls  # names are tool names
    assert ("tool_ended", ("ok", "ok")) in recorder.calls
    assert ("tool_ended", ("refuses", "error")) in recorder.calls
    assert recorder.calls[-1] == ("delivery_answered", ("tool-calls", 200, "answered"))
    started = [name for kind, name in recorder.calls if kind == "tool_started"]
    assert started == ["ok", "refuses"]  # an unknown tool is recorded, not run


async def test_background_jobs_are_observed_with_their_outcome() -> None:
    app, recorder, client = make(raise_exceptions=False)

    @app.on("end-of-call-report")
    async def store(event: EndOfCallReport) -> None:
        await anyio.sleep(0)

    @app.on("end-of-call-report")
    def broken(event: EndOfCallReport) -> None:
        raise RuntimeError("boom")

    async with client:
        await client.end_of_call_report()
        await client.wait_for_background()
    ended = sorted(value for kind, value in recorder.calls if kind == "job_ended")
    assert ended == [("broken", "failed"), ("store", "done")]


async def test_rejections_and_duplicates_are_observed_with_their_outcome() -> None:
    app, recorder, client = make()

    @app.on("status-update")
    async def noop() -> None: ...

    await client.post(b"not json")
    body = __import__("msgspec").json.encode(
        __import__("voicehooks.testing", fromlist=["status_update"]).status_update(call_id="d1")
    )
    await client.post(body)
    await client.post(body)
    answered = [value for kind, value in recorder.calls if kind == "delivery_answered"]
    assert answered == [
        (None, 400, "rejected_400"),
        ("status-update", 200, "answered"),
        ("status-update", 200, "duplicate"),
    ]


async def test_a_failing_observer_is_logged_once_and_changes_no_answer(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(Observer):
        def delivery_answered(self, delivery: Delivery) -> None:
            raise KeyError(delivery.call_id)

    app = VoiceHooks(secret=SECRET)
    app.add_observer(Broken())

    @app.tool
    def ok() -> str:
        """Fine."""
        return "fine"

    client = WebhookClient(app, secret=SECRET)
    with caplog.at_level(logging.ERROR, "voicehooks"):
        assert await client.call_tool("ok") == "fine"
        assert await client.call_tool("ok") == "fine"
    failures = [r for r in caplog.records if "Broken.delivery_answered raised" in r.getMessage()]
    assert len(failures) == 1


def test_an_empty_observer_set_is_falsy_so_the_pipeline_skips_it() -> None:
    observers = ObserverSet()
    assert not observers
    observers.add(Observer())  # overrides nothing: serves routes at most, never called
    assert not observers
    assert not observers.active

    class Counts(Observer):
        def delivery_answered(self, delivery: Delivery) -> None:
            pass

    observers.add(Counts())
    assert observers
    assert observers.active


async def test_the_delivery_record_holds_what_an_inspector_needs() -> None:
    seen: list[Delivery] = []

    class Keep(Observer):
        def delivery_answered(self, delivery: Delivery) -> None:
            seen.append(delivery)

    app = VoiceHooks(secret=SECRET, observers=[Keep()])

    @app.tool
    def echo(text: str) -> str:
        """Echo."""
        return text

    client = WebhookClient(app, secret=SECRET)
    await client.call_tool("echo", text="hi")
    (delivery,) = seen
    assert delivery.body is not None
    assert b'"echo"' in delivery.body
    assert delivery.answer.startswith(b'{"results":')
    assert dict(delivery.headers)[b"x-webhook-event"] == b"tool-calls"
    assert delivery.duration_seconds > 0
    assert [(run.name, run.outcome, run.registered) for run in delivery.tools] == [
        ("echo", "ok", True)
    ]


def test_each_point_calls_only_the_observers_that_override_it() -> None:
    class EndsOnly(Observer):
        def __init__(self) -> None:
            self.seen: list[str] = []

        def delivery_answered(self, delivery: Delivery) -> None:
            self.seen.append("answered")

    class Everything:  # duck-typed, not a subclass: every method counts
        def __init__(self) -> None:
            self.seen: list[str] = []

        def __getattr__(self, name: str) -> Callable[..., None]:
            return lambda *args: self.seen.append(name)

    ends, everything = EndsOnly(), Everything()
    observers = ObserverSet([ends, everything])  # type: ignore[list-item]
    delivery = Delivery([])
    observers.delivery_started(delivery)
    observers.delivery_answered(delivery)
    assert ends.seen == ["answered"]
    assert everything.seen == ["delivery_started", "delivery_answered"]


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("delivery_started", ("delivery",)),
        ("delivery_answered", ("delivery",)),
        ("tool_started", ("delivery", "run")),
        ("tool_ended", ("delivery", "run")),
        ("job_started", ("job",)),
        ("job_ended", ("job",)),
        ("dead_letters_trimmed", ("count", "bound")),
    ],
)
def test_an_observer_failing_at_any_point_is_logged_once_per_method(
    method: str, args: tuple[str, ...], caplog: pytest.LogCaptureFixture
) -> None:
    class Failing(Observer):
        pass

    def fail(self: Observer, *given: object) -> None:
        raise RuntimeError("secret detail")

    setattr(Failing, method, fail)
    observers = ObserverSet([Failing()])
    records = {
        "delivery": Delivery([]),
        "run": ToolRun("t", "tc", True),
        "job": JobRun("status-update", "c", "h", "d", 1, {}),
        "count": 3,
        "bound": "age",
    }
    for _ in range(3):
        getattr(observers, method)(*(records[name] for name in args))
    (logged,) = [r for r in caplog.records if "observer" in r.getMessage()]
    assert f"Failing.{method} raised RuntimeError" in logged.getMessage()
    assert "secret detail" not in logged.getMessage()
