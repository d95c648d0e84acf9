"""Slow tools in-process: the interim answer, the late result, LiveCall, against FakePlatform."""

from __future__ import annotations

import logging
import time
from typing import Any

import anyio
import pytest

from voicehooks import (
    CallContext,
    ConfigurationError,
    Deadlines,
    LateResult,
    LiveCall,
    Platform,
    StatusUpdate,
    ToolError,
    VoiceHooks,
)
from voicehooks.core.environment import API_KEY, API_KEY_FILE
from voicehooks.observe import Observer, ToolOutcome
from voicehooks.testing import FakePlatform, WebhookClient, tool_call

pytestmark = pytest.mark.anyio

SECRET = "whsec_interim_tests"
INTERIM = "One moment, I'm checking the stock."


class Outcomes(Observer):
    def __init__(self) -> None:
        self.tools: list[tuple[str, str]] = []

    def tool_ended(self, delivery: Any, run: Any) -> None:
        self.tools.append((run.name, run.outcome))


def make_app(platform: FakePlatform, **options: Any) -> VoiceHooks:
    return VoiceHooks(secret=SECRET, **options, platform=Platform(api=platform.client()))


async def one(client: WebhookClient, name: str, call_id: str, **arguments: Any) -> Any:
    """One tool call of the call ``call_id``: its normalized result."""
    (result,) = await client.call_tools(tool_call(name, arguments), call_id=call_id)
    return result


async def wait_for_commands(platform: FakePlatform, count: int, timeout: float = 10) -> None:
    with anyio.fail_after(timeout):
        while len(platform.received()) < count:
            await anyio.sleep(0.005)


@pytest.fixture
def platform() -> FakePlatform:
    return FakePlatform()


async def test_a_slow_tool_answers_its_interim_text_first_then_its_result_once(
    platform: FakePlatform,
) -> None:
    outcomes = Outcomes()
    app = make_app(platform, observers=[outcomes])

    @app.tool(interim=INTERIM, interim_after_seconds=0.3)
    async def check_stock(sku: str) -> dict[str, Any]:
        """Check the stock."""
        await anyio.sleep(1.0)
        return {"sku": sku, "in_stock": 4}

    async with WebhookClient(app, secret=SECRET) as client:
        started = time.monotonic()
        result = await one(client, "check_stock", "call-1", sku="KB-7")
        took = time.monotonic() - started
        assert result == INTERIM
        assert 0.25 <= took < 0.9
        assert platform.received() == []
        assert outcomes.tools == [("check_stock", ToolOutcome.INTERIM)]
        await wait_for_commands(platform, 1)
        await client.wait_for_background()
    (command,) = platform.received()
    assert command.status == 200
    assert command.path == "/api/v1/calls/call-1/control"
    assert command.headers["authorization"] == f"Bearer {platform.api_key}"
    assert command.body == {
        "type": "inject-context",
        "content": 'Result of the tool check_stock: {"sku":"KB-7","in_stock":4}',
        "trigger_response": True,
    }


async def test_a_tool_that_finishes_in_time_answers_as_any_tool(platform: FakePlatform) -> None:
    outcomes = Outcomes()
    app = make_app(platform, observers=[outcomes])

    @app.tool(interim=INTERIM, interim_after_seconds=2)
    async def quick(n: int) -> int:
        """Answer at once."""
        return n + 1

    @app.tool(interim=INTERIM, interim_after_seconds=2)
    async def waits_a_little(n: int) -> int:
        """Answer after a short wait."""
        await anyio.sleep(0.01)
        return n + 2

    async with WebhookClient(app, secret=SECRET) as client:
        assert await client.call_tool("quick", n=1) == 2
        assert len(app.call_control.runs) == 0  # nothing left running
        assert await client.call_tool("waits_a_little", n=1) == 3
        await client.wait_for_background()
    assert platform.received() == []
    assert outcomes.tools == [("quick", ToolOutcome.OK), ("waits_a_little", ToolOutcome.OK)]


async def test_the_other_calls_of_the_request_are_not_held_back(platform: FakePlatform) -> None:
    app = make_app(platform)

    @app.tool(interim=INTERIM, interim_after_seconds=0.2)
    async def slow() -> str:
        """Slow."""
        await anyio.sleep(0.6)
        return "slow done"

    @app.tool
    async def fast() -> str:
        """Fast."""
        return "fast done"

    @app.tool
    async def medium() -> str:
        """Medium."""
        await anyio.sleep(0.1)
        return "medium done"

    async with WebhookClient(app, secret=SECRET) as client:
        started = time.monotonic()
        results = await client.call_tools(
            tool_call("slow", {}), tool_call("fast", {}), tool_call("medium", {}), call_id="c-2"
        )
        assert time.monotonic() - started < 0.5
        assert results == [INTERIM, "fast done", "medium done"]
        await wait_for_commands(platform, 1)
        await client.wait_for_background()
    assert platform.received()[0].body["content"] == "Result of the tool slow: slow done"


@pytest.mark.parametrize(
    ("behaviour", "spoken"),
    [
        ("tool_error", 'Result of the tool late: {"error":"There is no such article."}'),
        ("failure", 'Result of the tool late: {"error":"The tool late failed unexpectedly.'),
        ("timeout", 'Result of the tool late: {"error":"The tool late did not answer in time.'),
    ],
)
async def test_a_late_failure_is_spoken_too(
    platform: FakePlatform, behaviour: str, spoken: str
) -> None:
    app = make_app(platform)

    @app.tool(interim=INTERIM, interim_after_seconds=0.05, timeout_seconds=0.3)
    async def late() -> str:
        """Fails late."""
        await anyio.sleep(0.1 if behaviour != "timeout" else 5)
        if behaviour == "tool_error":
            raise ToolError("There is no such article.")
        raise RuntimeError("a bug")

    async with WebhookClient(app, secret=SECRET, raise_exceptions=False) as client:
        assert await client.call_tool("late") == INTERIM
        await wait_for_commands(platform, 1)
        await client.wait_for_background()
    content = platform.received()[0].body["content"]
    assert content.startswith(spoken)


async def test_a_late_result_for_an_ended_call_goes_to_the_hook_and_the_log(
    platform: FakePlatform, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(platform)
    seen: list[LateResult] = []

    @app.tool(interim=INTERIM, interim_after_seconds=0.05)
    async def slow() -> dict[str, str]:
        """Slow."""
        await anyio.sleep(0.2)
        return {"secret_value": "the caller's order 4711"}

    @app.on_undelivered_result
    def remember(result: LateResult) -> None:  # a sync hook runs in a thread
        seen.append(result)

    platform.end_call("ended-call")
    async with WebhookClient(app, secret=SECRET) as client:
        assert await one(client, "slow", "ended-call") == INTERIM
        with anyio.fail_after(5):
            while not seen:
                await anyio.sleep(0.01)
        await client.wait_for_background()
    (result,) = seen
    assert (result.call_id, result.tool, result.reason) == ("ended-call", "slow", "call_ended")
    assert "4711" in result.text
    assert any("not delivered: call_ended" in r.getMessage() for r in caplog.records)
    assert not any("4711" in r.getMessage() for r in caplog.records)


async def test_an_undelivered_result_hook_gets_the_real_call_id_and_the_log_a_masked_one(
    platform: FakePlatform, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(platform)
    seen: list[LateResult] = []

    @app.tool(interim=INTERIM, interim_after_seconds=0.05)
    async def slow() -> str:
        """Slow."""
        await anyio.sleep(0.1)
        return "done"

    @app.on_undelivered_result
    async def call_back(result: LateResult) -> None:
        seen.append(result)

    call_id = "ended-31612345678-15e534"  # REST call ids may embed the caller's number
    platform.end_call(call_id)
    async with WebhookClient(app, secret=SECRET) as client:
        assert await one(client, "slow", call_id) == INTERIM
        await client.wait_for_background()  # the late run, its delivery and the hook
    # The hook exists to reach the caller again: it needs the id the platform knows.
    assert [result.call_id for result in seen] == [call_id]
    lines = [r.getMessage() for r in caplog.records]
    # Digits joined by a separator count as one number: the "-15" after it is starred too.
    assert any("call ended-***********-**e534 not delivered" in line for line in lines)
    assert not any("31612345678" in line for line in lines)


async def test_a_duplicate_delivery_gets_the_interim_text_and_the_result_goes_once(
    platform: FakePlatform,
) -> None:
    app = make_app(platform)
    runs: list[int] = []

    @app.tool(interim=INTERIM, interim_after_seconds=0.1)
    async def slow() -> str:
        """Slow."""
        runs.append(1)
        await anyio.sleep(0.4)
        return "done"

    call = tool_call("slow", {}, id="tc-dup")
    answers: list[Any] = []

    async def deliver() -> None:
        answers.extend(await client.call_tools(call, call_id="c-dup"))

    async with WebhookClient(app, secret=SECRET) as client:
        async with anyio.create_task_group() as group:
            for _ in range(3):
                group.start_soon(deliver)
        await anyio.sleep(0.5)
        await deliver()  # a redelivery after the result went out
        await client.wait_for_background()
    assert answers == [INTERIM] * 4
    assert runs == [1]
    assert [c.body["content"] for c in platform.received()] == ["Result of the tool slow: done"]


async def test_a_fire_and_forget_tool_can_have_its_result_spoken(platform: FakePlatform) -> None:
    app = make_app(platform)

    @app.tool(fire_and_forget=True, async_response="I'll look it up.", inject_result=True)
    async def look_up(n: int) -> dict[str, int]:
        """Look up."""
        await anyio.sleep(0.05)
        return {"n": n}

    async with WebhookClient(app, secret=SECRET) as client:
        assert await one(client, "look_up", "c-ff", n=7) == "I'll look it up."
        await client.wait_for_background()
    (command,) = platform.received()
    assert command.body["content"] == 'Result of the tool look_up: {"n":7}'


async def test_live_call_is_injected_into_tools_and_handlers(platform: FakePlatform) -> None:
    app = make_app(platform)

    @app.tool
    async def escalate(call: LiveCall, context: CallContext) -> str:
        """Transfer."""
        assert call.call_id == context.call_id
        await call.transfer("+31201234567", message="Putting you through.")
        return "transferring"

    @app.on("status-update")
    async def goodbye(event: StatusUpdate, call: LiveCall) -> None:
        await call.say("Thanks for calling", end_after=True)

    async with WebhookClient(app, secret=SECRET) as client:
        assert await one(client, "escalate", "c-live") == "transferring"
        await client.status_update("in-progress", call_id="c-live")
        await client.wait_for_background()
    assert [c.body for c in platform.received()] == [
        {"type": "transfer", "destination": "+31201234567", "message": "Putting you through."},
        {"type": "say", "content": "Thanks for calling", "end_after": True},
    ]


async def test_a_missing_key_stops_the_startup_only_when_something_needs_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(API_KEY, raising=False)
    monkeypatch.delenv(API_KEY_FILE, raising=False)
    plain = VoiceHooks(secret=SECRET)

    @plain.tool
    async def fine() -> str:
        """Fine."""
        return "ok"

    async with WebhookClient(plain, secret=SECRET) as client:
        assert await client.call_tool("fine") == "ok"
    for needs in ("interim", "live_call"):
        app = VoiceHooks(secret=SECRET)
        if needs == "interim":

            @app.tool(interim=INTERIM)
            async def slow() -> str:
                """Slow."""
                return "ok"
        else:

            @app.on("status-update")
            async def handler(call: LiveCall) -> None: ...

        with pytest.raises(RuntimeError, match="startup failed") as caught:
            async with WebhookClient(app, secret=SECRET):
                pass
        assert isinstance(caught.value.__cause__, ConfigurationError)
        assert API_KEY in str(caught.value.__cause__)


async def test_shutdown_waits_for_a_slow_tool_and_delivers_its_result(
    platform: FakePlatform,
) -> None:
    app = make_app(platform, deadlines=Deadlines(shutdown_grace_seconds=5))

    @app.tool(interim=INTERIM, interim_after_seconds=0.05)
    async def slow() -> str:
        """Slow."""
        await anyio.sleep(0.5)
        return "done"

    async with WebhookClient(app, secret=SECRET) as client:
        assert await one(client, "slow", "c-drain") == INTERIM
        # Leaving the block shuts the app down: it waits for the tool.
    assert [c.body["content"] for c in platform.received()] == ["Result of the tool slow: done"]


async def test_shutdown_cuts_a_slow_tool_after_the_grace_period(
    platform: FakePlatform, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(platform, deadlines=Deadlines(shutdown_grace_seconds=0.2))

    @app.tool(interim=INTERIM, interim_after_seconds=0.05)
    async def endless() -> str:
        """Never ends."""
        await anyio.sleep(30)
        return "never"

    started = time.monotonic()
    async with WebhookClient(app, secret=SECRET) as client:
        assert await one(client, "endless", "c-cut") == INTERIM
    assert time.monotonic() - started < 5
    assert platform.received() == []
    assert any("was cut short" in r.getMessage() for r in caplog.records)


def test_the_interim_text_is_the_tools_message_and_shows_in_routes() -> None:
    app = VoiceHooks(secret=SECRET)

    @app.tool(interim=INTERIM, interim_after_seconds=4)
    async def slow() -> str:
        """Slow."""
        return "ok"

    @app.tool(fire_and_forget=True, inject_result=True)
    async def later() -> str:
        """Later."""
        return "ok"

    slow_definition, later_definition = app.tool_definitions("https://hooks.example.com/")
    assert slow_definition["message"] == INTERIM
    assert slow_definition["async"] is False
    assert "message" not in later_definition
    notes = {route.name: route.note for route in app.routes()}
    assert notes == {"slow": "interim after 4 s", "later": "fire-and-forget, result injected"}
    assert app.uses_call_control


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"interim": " "}, "interim must be a text"),
        ({"interim": "wait", "interim_after_seconds": 0}, "interim_after_seconds"),
        ({"interim": "wait", "interim_after_seconds": 10}, "interim_after_seconds"),
        ({"interim": "wait", "fire_and_forget": True}, "fire-and-forget"),
        ({"inject_result": True}, "inject_result applies to fire_and_forget"),
    ],
)
def test_interim_options_are_checked_at_registration(options: dict[str, Any], message: str) -> None:
    app = VoiceHooks(secret=SECRET)

    async def tool() -> str:
        """A tool."""
        return "ok"

    with pytest.raises(ConfigurationError, match=message):
        app.add_tool(tool, **options)


def two_arguments(result: LateResult, extra: int) -> None: ...


def test_an_undelivered_result_hook_takes_one_argument() -> None:
    app = VoiceHooks(secret=SECRET)
    with pytest.raises(ConfigurationError, match="one argument"):
        app.add_undelivered_result_hook(two_arguments)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="not callable"):
        app.add_undelivered_result_hook("nope")  # type: ignore[arg-type]


async def test_nothing_about_a_late_result_is_logged_but_its_tool_and_masked_call(
    platform: FakePlatform, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = make_app(platform)

    @app.tool(interim=INTERIM, interim_after_seconds=0.05)
    async def slow() -> str:
        """Slow."""
        await anyio.sleep(0.1)
        return "PERSONAL-result-0612345678"

    call_id = "call-_+31612345678_XqaQ"
    async with WebhookClient(app, secret=SECRET) as client:
        await one(client, "slow", call_id)
        await wait_for_commands(platform, 1)
        await client.wait_for_background()
    for record in caplog.records:
        text = record.getMessage()
        assert "PERSONAL" not in text
        assert "31612345678" not in text
        assert platform.api_key not in text


# -- edges -------------------------------------------------------------------------------


async def test_past_max_runs_a_slow_tool_is_refused_without_starting(
    platform: FakePlatform,
) -> None:
    outcomes = Outcomes()
    app = make_app(platform, observers=[outcomes])
    app.call_control.runs.max_runs = 0
    started: list[int] = []

    @app.tool(interim=INTERIM, interim_after_seconds=0.1)
    async def slow() -> str:
        """Slow."""
        started.append(1)
        return "never"

    async with WebhookClient(app, secret=SECRET) as client:
        result = await one(client, "slow", "c-busy")
    assert result == {
        "error": "The tool slow cannot be started right now. Tell the caller it cannot be done now."
    }
    assert started == []
    assert outcomes.tools == [("slow", ToolOutcome.OVERLOADED)]


async def test_a_caller_that_stops_waiting_still_gets_the_result_delivered() -> None:
    from voicehooks.core.tasks import TaskOwner
    from voicehooks.live.interim import InterimRuns

    tasks = TaskOwner(grace_seconds=5.0)
    runs = InterimRuns(tasks)
    delivered: list[str] = []

    async def work() -> str:
        await anyio.sleep(0.2)
        return "late but delivered"

    async def deliver(answer: str) -> None:
        delivered.append(answer)

    with anyio.move_on_after(0.05):  # the request goes away while it waits
        await runs.run(work(), 5.0, deliver, "tool work (call c)")
    assert runs.in_flight == ["tool work (call c)"]
    await tasks.drain()
    assert delivered == ["late but delivered"]
    assert len(runs) == 0


async def test_a_store_that_fails_the_claim_does_not_stop_the_late_result(
    platform: FakePlatform, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.helpers.stores import BrokenStore
    from voicehooks.exceptions import StoreError
    from voicehooks.live.interim import LateResult, LateResults

    async def hook(result: LateResult) -> None:
        raise AssertionError("not expected")

    async with platform.client() as api:
        late = LateResults(api, BrokenStore(StoreError("down")), hook)
        assert await late.deliver(LateResult("c-s", "tc-1", "slow", "done"))
    assert len(platform.accepted("c-s")) == 1
    assert any("sending it unclaimed" in r.getMessage() for r in caplog.records)


async def test_a_failing_undelivered_hook_is_logged(
    platform: FakePlatform, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(platform)

    @app.tool(interim=INTERIM, interim_after_seconds=0.05)
    async def slow() -> str:
        """Slow."""
        await anyio.sleep(0.1)
        return "done"

    @app.on_undelivered_result
    async def broken(result: LateResult) -> None:
        raise RuntimeError("the hook's own bug")

    platform.end_call("c-hook")
    async with WebhookClient(app, secret=SECRET) as client:
        await one(client, "slow", "c-hook")
        await client.wait_for_background()
    assert any("undelivered-result hook" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("behaviour", "spoken"),
    [
        ("tool_error", '{"error":"No such article."}'),
        ("failure", "failed unexpectedly"),
        ("not_json", "could not be sent"),
    ],
)
async def test_a_fire_and_forget_tools_failure_is_spoken_too(
    platform: FakePlatform, behaviour: str, spoken: str
) -> None:
    app = make_app(platform)

    @app.tool(fire_and_forget=True, inject_result=True)
    async def look_up() -> Any:
        """Look up."""
        if behaviour == "tool_error":
            raise ToolError("No such article.")
        if behaviour == "failure":
            raise RuntimeError("a bug")
        return object()  # not JSON

    async with WebhookClient(app, secret=SECRET, raise_exceptions=False) as client:
        await one(client, "look_up", "c-ff-fail")
        await client.wait_for_background()
    (command,) = platform.received()
    assert spoken in command.body["content"]


async def test_an_xai_realtime_call_gets_its_result_and_a_warning(
    platform: FakePlatform, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(platform)

    @app.tool(interim=INTERIM, interim_after_seconds=0.05)
    async def slow() -> str:
        """Slow."""
        await anyio.sleep(0.1)
        return "done"

    async with WebhookClient(app, secret=SECRET) as client:
        await client.call_tools(
            tool_call("slow", {}),
            call={
                "id": "c-xai",
                "type": "web_call",
                "status": "in-progress",
                "pipeline": "xai_realtime",
            },
        )
        await wait_for_commands(platform, 1)
        await client.wait_for_background()
    assert sum("xai_realtime" in r.getMessage() for r in caplog.records) == 1
