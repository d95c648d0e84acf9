"""voicehooks.pipeline.toolcalls: tool results normalized, and answers read back by call id."""

from __future__ import annotations

from collections import Counter
from typing import Any

import anyio
import msgspec
import pytest

from tests.helpers.paths import FIXTURES
from voicehooks import (
    CallContext,
    ConfigurationError,
    Duplicates,
    EndOfCallReport,
    MemoryStore,
    Observer,
    Platform,
    ToolError,
    ToolResult,
    VoiceHooks,
)
from voicehooks.core.records import Delivery, ToolOutcome, ToolRun
from voicehooks.pipeline.toolcalls import FAILED, STILL_WORKING
from voicehooks.state.dedupe import intent_key
from voicehooks.testing import (
    FakePlatform,
    ManualClock,
    WebhookClient,
    normalize_result,
    results_from_response,
    tool_call,
    tool_calls,
)


@pytest.mark.parametrize(
    ("body", "ids", "expected"),
    [
        (
            {"results": [{"tool_call_id": "b", "result": 2}, {"tool_call_id": "a", "result": 1}]},
            ["a", "b"],
            [1, 2],
        ),
        (
            {"results": [{"tool_call_id": "a", "result": 1}]},
            ["a", "b"],
            [1, {"error": "The answer had no result for this call."}],
        ),
        ({"results": [{"tool_call_id": "zzz", "result": 9}]}, ["a"], [9]),
        ({"results": ["junk"]}, ["a"], [{"error": "The answer had no result for this call."}]),
        ({"result": {"x": 1}}, ["a"], [{"x": 1}]),
        ({"x": 1}, ["a"], [{"x": 1}]),
        ({"error": "down"}, ["a", "b"], [{"error": "down"}, {"error": "down"}]),
        ("text", ["a"], ["text"]),
        (
            {"x": 1},
            ["a", "b"],
            [{"error": "The answer did not say which call this result belongs to."}] * 2,
        ),
        ({"results": []}, [], []),
    ],
)
def test_results_from_response_reads_all_four_formats(
    body: Any, ids: list[str], expected: list[Any]
) -> None:
    assert results_from_response(body, ids) == expected


def test_the_fixture_formats_read_back(tmp_path: Any) -> None:
    import json

    obj = json.loads((FIXTURES / "tool-response-object.json").read_text())
    ids = ["tool_3NpW8cYe5HjD", "tool_6ZbT1gUa4QsM", "tool_2VhX5rKe8WnP"]
    assert results_from_response(obj, ids)[1] == {"sent": True, "message_id": "sms_0c41e9d2"}
    simple = json.loads((FIXTURES / "tool-response-simple.json").read_text())
    direct = json.loads((FIXTURES / "tool-response-direct.json").read_text())
    assert results_from_response(simple, ["x"]) == results_from_response(direct, ["x"]) == [direct]
    error = json.loads((FIXTURES / "tool-response-error.json").read_text())
    assert results_from_response(error, ["x"]) == [error]


def test_tool_result_is_never_read_as_a_format() -> None:
    assert normalize_result(ToolResult({"results": [1]}), "a") == {"results": [1]}
    assert normalize_result({"results": "not a list"}, "a") == {"results": "not a list"}


# -- once_per_call: one run per intent -----------------------------------------------------


def booking_app(**options: Any) -> tuple[VoiceHooks, Counter[str], anyio.Event]:
    """An app whose ``book`` tool counts its runs and waits for ``release`` before answering."""
    app = VoiceHooks(secret="whsec_once")
    runs: Counter[str] = Counter()
    release = anyio.Event()

    @app.tool(once_per_call=True, **options)
    async def book(slot: str, party: int, notes: dict[str, Any] | None = None) -> dict[str, Any]:
        """Book a table."""
        runs[slot] += 1
        await release.wait()
        return {"booked": slot, "party": party, "run": runs[slot]}

    return app, runs, release


async def call(client: WebhookClient, arguments: Any, id: str, call_id: str = "call-1") -> Any:
    (result,) = await client.call_tools(tool_call("book", arguments, id=id), call_id=call_id)
    return result


@pytest.mark.anyio
async def test_a_retry_with_a_new_id_while_the_first_runs_waits_and_gets_the_same_answer() -> None:
    app, runs, release = booking_app()
    answers: list[Any] = []
    async with (
        WebhookClient(app, secret="whsec_once") as client,
        anyio.create_task_group() as group,
    ):
        group.start_soon(lambda: _append(answers, call(client, {"slot": "9", "party": 4}, "a")))
        await anyio.sleep(0.05)  # the first run is going
        group.start_soon(lambda: _append(answers, call(client, {"slot": "9", "party": 4}, "b")))
        await anyio.sleep(0.05)
        release.set()
    assert runs == {"9": 1}
    assert answers == [{"booked": "9", "party": 4, "run": 1}] * 2


async def _append(into: list[Any], work: Any) -> None:
    into.append(await work)


@pytest.mark.anyio
async def test_four_concurrent_equal_calls_run_once_whatever_key_order_or_string_numbers() -> None:
    app, runs, release = booking_app()
    variants = [
        {"slot": "9", "party": 4, "notes": {"a": 1, "b": 2}},
        {"party": 4, "slot": "9", "notes": {"b": 2, "a": 1}},
        {"slot": "9", "party": "4", "notes": {"a": 1, "b": 2}},
        '{"notes": {"b": 2, "a": 1}, "party": "4", "slot": "9"}',
    ]
    answers: list[Any] = []
    async with WebhookClient(app, secret="whsec_once") as client:
        async with anyio.create_task_group() as group:
            for i, arguments in enumerate(variants):
                group.start_soon(_append, answers, call(client, arguments, f"tc-{i}"))
            await anyio.sleep(0.1)
            release.set()
        assert runs == {"9": 1}
        assert len(answers) == 4
        assert all(a == answers[0] for a in answers)
        # Later, with other ids, still the first answer; other arguments run.
        again = {"slot": "9", "party": 4, "notes": {"a": 1, "b": 2}}
        assert await call(client, again, "tc-9") == answers[0]
        assert (await call(client, {"slot": "9", "party": 5}, "tc-10"))["party"] == 5


class Outcomes(Observer):
    def __init__(self) -> None:
        self.seen: list[str] = []

    def tool_ended(self, delivery: Delivery, run: ToolRun) -> None:
        self.seen.append(run.outcome)


@pytest.mark.anyio
@pytest.mark.parametrize("failure", ["tool_error", "exception", "timeout"])
async def test_a_failure_is_not_remembered_so_the_models_retry_runs_again(failure: str) -> None:
    outcomes = Outcomes()
    app = VoiceHooks(secret="whsec_once", observers=[outcomes])
    runs: list[int] = []

    @app.tool(once_per_call=True, timeout_seconds=0.2)
    async def book(slot: str) -> str:
        """Book a slot."""
        runs.append(1)
        if len(runs) == 1:
            if failure == "tool_error":
                raise ToolError("that slot is taken")
            if failure == "exception":
                raise RuntimeError("the booking system is down")
            await anyio.sleep(5)
        return "booked"

    async with WebhookClient(app, secret="whsec_once", raise_exceptions=False) as client:
        first = await call(client, {"slot": "9"}, "a")
        assert "error" in first
        assert await call(client, {"slot": "9"}, "b") == "booked"
        assert await call(client, {"slot": "9"}, "c") == "booked"  # now remembered
    assert len(runs) == 2
    assert outcomes.seen[1:] == [ToolOutcome.OK, ToolOutcome.REPEAT]


@pytest.mark.anyio
async def test_different_calls_book_independently_and_a_custom_key_defines_the_intent() -> None:
    app = VoiceHooks(secret="whsec_once")
    runs: list[str] = []

    def same_slot(arguments: Any, context: CallContext) -> Any:
        return arguments.slot  # the party size does not make another booking

    @app.tool(once_per_call=True, key=same_slot)
    async def book(slot: str, party: int) -> str:
        """Book a slot."""
        runs.append(slot)
        return f"booked {slot} for {party}"

    async with WebhookClient(app, secret="whsec_once") as client:
        assert await call(client, {"slot": "9", "party": 2}, "a") == "booked 9 for 2"
        assert await call(client, {"slot": "9", "party": 3}, "b") == "booked 9 for 2"
        assert await call(client, {"slot": "9", "party": 3}, "a", "call-2") == "booked 9 for 3"
    assert runs == ["9", "9"]


@pytest.mark.anyio
async def test_a_key_with_a_ttl_is_remembered_across_calls() -> None:
    app = VoiceHooks(secret="whsec_once")
    runs: list[str] = []

    @app.tool(
        once_per_call=True,
        key=lambda arguments, context: (context.customer_number, arguments.slot),
        key_ttl_seconds=60,
    )
    async def book(slot: str) -> str:
        """Book a slot."""
        runs.append(slot)
        return "booked"

    async with WebhookClient(app, secret="whsec_once") as client:
        for call_id in ("call-1", "call-2"):
            assert await call(client, {"slot": "9"}, "a", call_id) == "booked"
    assert runs == ["9"]


@pytest.mark.anyio
@pytest.mark.parametrize("interim", [None, "One moment while I book that."])
async def test_a_repeat_whose_deadline_ends_first_is_told_to_wait_and_never_runs_again(
    interim: str | None,
) -> None:
    outcomes = Outcomes()
    app = VoiceHooks(
        secret="whsec_once", observers=[outcomes], platform=Platform(api=FakePlatform().client())
    )
    runs: list[int] = []
    options: dict[str, Any] = (
        {"timeout_seconds": 0.2}
        if interim is None
        else {"interim": interim, "interim_after_seconds": 0.2}
    )

    @app.tool(once_per_call=True, **options)
    async def book(slot: str) -> str:
        """Book a slot."""
        runs.append(1)
        return "booked"

    # Another worker runs this very intent and has not finished.
    key = intent_key("call-1", "book", b'{"slot":"9"}')
    async with WebhookClient(app, secret="whsec_once") as client:
        assert await app.call_control.store.claim(key, 60)
        answer = await call(client, {"slot": "9"}, "b")
        assert answer == (interim or STILL_WORKING.format(name="book"))
        await app.call_control.store.put_result(key, b'"booked elsewhere"', 60)
        assert await call(client, {"slot": "9"}, "c") == "booked elsewhere"
    assert runs == []
    assert outcomes.seen == [ToolOutcome.REPEAT, ToolOutcome.REPEAT]


@pytest.mark.anyio
async def test_unusable_arguments_and_a_failing_key_are_answered_without_a_run() -> None:
    app = VoiceHooks(secret="whsec_once")

    def broken(arguments: Any, context: CallContext) -> Any:
        raise KeyError("nope")

    @app.tool(once_per_call=True)
    async def book(party: int) -> str:
        """Book a table."""
        return "booked"

    @app.tool(once_per_call=True, key=broken)
    async def pay(amount: int) -> str:
        """Pay."""
        return "paid"

    async with WebhookClient(app, secret="whsec_once", raise_exceptions=False) as client:
        (bad,) = await client.call_tools(tool_call("book", {"party": "many"}), call_id="c")
        assert "party" in bad["error"]
        (failed,) = await client.call_tools(tool_call("pay", {"amount": 1}), call_id="c")
        assert failed == {"error": FAILED.format(name="pay")}


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"key": lambda a, c: a}, "need once_per_call=True"),
        ({"once_per_call": True, "fire_and_forget": True}, "fire-and-forget"),
        ({"once_per_call": True, "key": "slot"}, "must be a function"),
        ({"once_per_call": True, "key_ttl_seconds": 60}, "needs key="),
        ({"once_per_call": True, "key": lambda a, c: a, "key_ttl_seconds": 0}, "> 0"),
    ],
)
def test_once_per_call_options_are_checked_at_registration(
    options: dict[str, Any], fragment: str
) -> None:
    app = VoiceHooks(verify_signatures=False)
    with pytest.raises(ConfigurationError, match=fragment):

        @app.tool(**options)
        async def book(slot: str) -> str:
            """Book a slot."""
            return slot


@pytest.mark.anyio
async def test_an_interim_tools_repeat_after_its_late_result_gets_the_result_not_a_second_run() -> (
    None
):
    platform = FakePlatform()
    app = VoiceHooks(secret="whsec_once", platform=Platform(api=platform.client()))
    release = anyio.Event()
    runs: list[int] = []

    @app.tool(once_per_call=True, interim="One moment.", interim_after_seconds=0.1)
    async def book(slot: str) -> str:
        """Book a slot."""
        runs.append(1)
        await release.wait()
        return "booked"

    async with WebhookClient(app, secret="whsec_once") as client:
        assert await call(client, {"slot": "9"}, "a") == "One moment."
        assert await call(client, {"slot": "9"}, "b") == "One moment."  # still going
        release.set()
        await client.wait_for_background()
        assert await call(client, {"slot": "9"}, "c") == "booked"
    assert runs == [1]
    assert len(platform.received()) == 1  # the late result was injected once


@pytest.mark.anyio
@pytest.mark.parametrize("store_failure", ["process", "reject"])
async def test_a_failing_store_runs_the_intent_anyway_or_refuses_it(store_failure: Any) -> None:
    from tests.helpers.stores import BrokenStore
    from voicehooks import Duplicates
    from voicehooks.exceptions import StoreError

    store = BrokenStore(StoreError("down"))
    app = VoiceHooks(
        secret="whsec_once", duplicates=Duplicates(store=store, store_failure=store_failure)
    )
    runs: list[int] = []

    @app.tool(once_per_call=True, deduplicate=False)
    async def book(slot: str) -> str:
        """Book a slot."""
        runs.append(1)
        return "booked"

    async with WebhookClient(app, secret="whsec_once", raise_exceptions=False) as client:
        response = await client.post(
            msgspec.json.encode(tool_calls(tool_call("book", {"slot": "9"}), call_id="c"))
        )
    assert response.status_code == (200 if store_failure == "process" else 503)
    assert runs == ([1] if store_failure == "process" else [])


# -- how long an intent is remembered ---------------------------------------------------------


def quick_booking_app(store: MemoryStore) -> tuple[VoiceHooks, Counter[str]]:
    """A ``once_per_call`` booking tool that answers at once, on ``store``, remembered 100 s."""
    app = VoiceHooks(
        secret="whsec_once", duplicates=Duplicates(store=store, intent_ttl_seconds=100.0)
    )
    runs: Counter[str] = Counter()

    @app.tool(once_per_call=True)
    async def book(slot: str) -> str:
        """Book a slot."""
        runs[slot] += 1
        return f"booked {slot}"

    @app.on("end-of-call-report")
    async def archive(report: EndOfCallReport) -> None:
        pass

    return app, runs


@pytest.mark.anyio
async def test_an_intent_is_forgotten_once_its_calls_report_is_handled() -> None:
    app, runs = quick_booking_app(MemoryStore())
    async with WebhookClient(app, secret="whsec_once") as client:
        await call(client, {"slot": "9"}, "a", call_id="call-r")
        await call(client, {"slot": "9"}, "b", call_id="call-r")  # a repeat: remembered
        assert runs["9"] == 1
        await client.end_of_call_report(call_id="call-r")
        await client.wait_for_background()
        await call(client, {"slot": "9"}, "c", call_id="call-r")  # the call is over: forgotten
    assert runs["9"] == 2


@pytest.mark.anyio
async def test_an_intent_is_remembered_for_its_ttl_after_its_last_use() -> None:
    clock = ManualClock(0)
    app, runs = quick_booking_app(MemoryStore(clock=clock))
    async with WebhookClient(app, secret="whsec_once") as client:
        await call(client, {"slot": "9"}, "a")
        clock.advance(60)
        await call(client, {"slot": "9"}, "b")  # used again: 100 s from now
        clock.advance(70)  # 130 s after the run, 70 s after the last use
        assert await call(client, {"slot": "9"}, "c") == "booked 9"
        assert runs["9"] == 1
        clock.advance(101)
        await call(client, {"slot": "9"}, "d")  # unused for longer than its TTL
    assert runs["9"] == 2
