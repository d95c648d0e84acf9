"""Whole-call scenarios (``voicehooks.testing.scenarios``) run in memory against real apps."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.paths import ROOT
from voicehooks import AssistantResponse, CallContext, ToolError, VoiceHooks
from voicehooks.core.events import StatusUpdate
from voicehooks.testing import Scenario, ScenarioError, run_scenario

pytestmark = pytest.mark.anyio

SECRET = "whsec_scenarios"


def make_app() -> tuple[VoiceHooks, dict[str, Any]]:
    app = VoiceHooks(secret=SECRET)
    seen: dict[str, Any] = {"runs": 0, "metadata": [], "call_ids": set()}

    @app.on("assistant-request")
    async def route(context: CallContext) -> AssistantResponse:
        return AssistantResponse.override("asst-1", metadata={"crm_id": "C-7"})

    @app.tool
    async def lookup(order: str, context: CallContext) -> dict[str, Any]:
        """Look an order up."""
        seen["runs"] += 1
        seen["call_ids"].add(context.call_id)
        if order == "none":
            raise ToolError("There is no such order.")
        return {"order": order, "items": [1, 2], "paid": True}

    @app.tool
    async def echo(value: Any) -> Any:
        """Return what it got."""
        return value

    @app.on("status-update")
    async def remember(event: StatusUpdate) -> None:
        seen["metadata"].append(event.metadata)

    return app, seen


async def run_text(text: str, app: VoiceHooks) -> Any:
    return await run_scenario(Scenario.parse(text), app, secret=SECRET)


async def test_one_call_id_runs_through_every_step_and_metadata_is_echoed() -> None:
    app, seen = make_app()
    report = await run_text(
        """
        call_id = "call-42"
        [[step]]
        event = "assistant-request"
        expect.answer = { assistant_id = "asst-1" }
        [[step]]
        event = "tool-calls"
        tool = "lookup"
        arguments = { order = "A1" }
        [[step]]
        event = "status-update"
        status = "ended"
        """,
        app,
    )
    report.check()
    assert report.call_id == "call-42"
    assert seen["call_ids"] == {"call-42"}
    assert seen["metadata"] == [{"crm_id": "C-7"}]


async def test_references_keep_their_type_or_splice_into_text() -> None:
    app, _ = make_app()
    report = await run_text(
        """
        [[step]]
        id = "first"
        event = "tool-calls"
        tool = "lookup"
        arguments = { order = "A1" }
        [[step]]
        event = "tool-calls"
        tools = [
            { name = "echo", arguments.value = "${first.result}" },
            { name = "echo", arguments.value = "${first.result.items.1}" },
            { name = "echo", arguments.value = "order ${1.result.order} of ${call_id}" },
            { name = "echo", arguments.value = "${first.status}" },
        ]
        expect.results = [{ order = "A1", paid = true }, 2, "order A1 of call-7", 200]
        """.replace("[[step]]", 'call_id = "call-7"\n[[step]]', 1),
        app,
    )
    report.check()


async def test_a_resend_is_the_same_delivery_and_runs_once() -> None:
    app, seen = make_app()
    report = await run_text(
        """
        [[step]]
        id = "ask"
        event = "tool-calls"
        tool = "lookup"
        arguments = { order = "A1" }
        [[step]]
        resend = "ask"
        expect.result = { order = "A1" }
        """,
        app,
    )
    report.check()
    assert seen["runs"] == 1


FAILING = [
    ("expect.status = 401", "status: expected 401, got 200"),
    ('expect.result = { order = "B2" }', "result.order: expected 'B2', got 'A1'"),
    ("expect.result = { missing = 1 }", "result.missing: missing (got keys"),
    ("expect.result = { paid = 1 }", "result.paid: expected 1, got True"),
    ("expect.result = { items = [1] }", "result.items: expected 1 items, got [1, 2]"),
    ("expect.result = { items = { a = 1 } }", "result.items: expected a table"),
    ("expect.results = [{}, {}]", "results: expected 2 items"),
    ('expect.error = "no such"', "error: expected an error containing 'no such'"),
    ("expect.within_ms = 0", "within_ms: answered in"),
    ('expect.answer = { results = [{ tool_call_id = "x" }] }', "answer.results[0].tool_call_id"),
]


@pytest.mark.parametrize(("expectation", "failure"), FAILING)
async def test_a_missed_expectation_is_reported_in_words(expectation: str, failure: str) -> None:
    app, _ = make_app()
    text = f"""
        [[step]]
        event = "tool-calls"
        tool = "lookup"
        arguments = {{ order = "A1" }}
        {expectation}
        [[step]]
        event = "status-update"
        """
    report = await run_text(text, app)
    assert not report.ok
    assert report.steps[0].failures[0].startswith(failure), report.steps[0].failures
    assert report.steps[1].ok  # a failed step does not stop the scenario
    with pytest.raises(AssertionError, match="1 passed, 1 failed"):
        report.check()


async def test_a_tool_error_meets_an_error_expectation() -> None:
    app, _ = make_app()
    report = await run_text(
        """
        [[step]]
        event = "tool-calls"
        tool = "lookup"
        arguments = { order = "none" }
        expect.error = "no such order"
        """,
        app,
    )
    report.check()


async def test_a_reference_missing_from_the_answer_stops_the_run() -> None:
    app, _ = make_app()
    report = await run_text(
        """
        [[step]]
        id = "ask"
        event = "tool-calls"
        tool = "lookup"
        arguments = { order = "A1" }
        [[step]]
        event = "tool-calls"
        tool = "echo"
        arguments.value = "${ask.result.nothing}"
        [[step]]
        event = "status-update"
        """,
        app,
    )
    assert not report.ok
    assert len(report.steps) == 1
    assert (
        report.error
        == "step 2 (2): ${ask.result.nothing}: 'ask.result.nothing' is not in the answer"
    )
    assert "stopped: step 2" in report.format()


INVALID = [
    ("name = [", "not valid TOML"),
    ('name = "x"', "no steps"),
    ('colour = 1\n[[step]]\nevent = "status-update"', "unknown top-level key(s) ['colour']"),
    ('[[step]]\nevent = "ringing"', "event must be one of"),
    ('[[step]]\nevent = "status-update"\nwhen = 1', "unknown key(s) ['when']"),
    ('[[step]]\nevent = "tool-calls"', "needs either tool = ... or tools = [...]"),
    ('[[step]]\nevent = "status-update"\ntool = "x"', "belong to tool-calls steps"),
    ('[[step]]\nevent = "tool-calls"\ntool = "x"\nstatus = "ended"', "status belongs to"),
    ('[[step]]\nevent = "status-update"\nexpect.colour = 1', "expect takes"),
    ('[[step]]\nresend = "nope"', "names no earlier step"),
    ('[[step]]\nid = "a"\nevent = "status-update"\n[[step]]\nresend = "a"\nstatus = "x"', "drop"),
    (
        '[[step]]\nid = "a"\nevent = "status-update"\n[[step]]\nid = "a"\nevent = "status-update"',
        "already taken",
    ),
    ('[[step]]\nid = "2"\nevent = "status-update"', "already taken"),
    ('[[step]]\nevent = "status-update"\nfields.x = "${later.answer}"', "not an earlier step"),
    (
        '[[step]]\nid = "a"\nevent = "status-update"\n'
        '[[step]]\nevent = "status-update"\nfields.x = "${a.body}"',
        "after the step comes",
    ),
]


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_an_invalid_file_is_refused_when_loaded(text: str, message: str) -> None:
    with pytest.raises(ScenarioError, match="<scenario>") as error:
        Scenario.parse(text)
    assert message in str(error.value)


def test_an_unreadable_file_is_a_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        Scenario.load(tmp_path / "missing.toml")


async def test_a_thirty_step_scenario_runs() -> None:
    app, seen = make_app()
    steps = "\n".join(
        f'[[step]]\nevent = "tool-calls"\ntool = "lookup"\narguments.order = "A{n}"\n'
        f'expect.result.order = "A{n}"'
        for n in range(30)
    )
    report = await run_text(steps, app)
    report.check()
    assert seen["runs"] == 30


def test_the_documented_scenario_is_a_valid_scenario() -> None:
    page = ROOT / "docs" / "how-to" / "inspect-and-replay.md"
    readme = page.read_text()
    (block,) = re.findall(r"^```toml\n(.*?)^```$", readme, re.MULTILINE | re.DOTALL)
    scenario = Scenario.parse(block)
    assert [step.event for step in scenario.steps] == [
        "assistant-request",
        "tool-calls",
        "tool-calls",
        "tool-calls",
        "status-update",
        "end-of-call-report",
    ]
