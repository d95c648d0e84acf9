"""Workflow checks: tool nodes decoded as a live call decodes them, conversation tools diffed."""

from __future__ import annotations

from typing import Any

import pytest

from voicehooks import VoiceHooks
from voicehooks.dev.workflows import WorkflowError, check, read_workflow

URL = "https://hooks.example.com/voice"
app = VoiceHooks(verify_signatures=False)


@app.tool
def book_table(party_size: int, day: str, window_seat: bool = False) -> str:
    """Book a table for the caller.

    Args:
        party_size: How many people.
        day: The day, as YYYY-MM-DD.
        window_seat: Whether they want to sit by the window.
    """
    return "booked"


@app.tool
def opening_hours() -> str:
    """Say when the restaurant is open today."""
    return "12-22"


OURS = app.tool_definitions(URL)


def tool_node(node_id: str, name: str, arguments: Any = None, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "tool", "tool_name": name, "arguments": arguments, **extra}


def lines(nodes: list[dict[str, Any]]) -> list[str]:
    return [p.line() for p in check(nodes, app.tools, OURS, url=URL)]


def test_tool_nodes_pass_with_the_coercions_a_live_call_applies() -> None:
    nodes = [
        tool_node("book", "book_table", {"party_size": "4", "day": "2026-12-24"}),
        tool_node("hours", "opening_hours"),
        tool_node("hours_again", "opening_hours", {}),
        {"id": "bye", "type": "end"},
    ]
    assert lines(nodes) == []


def test_each_problem_is_one_line_naming_the_node() -> None:
    nodes = [
        tool_node("typo", "book_tabel", {"party_size": 2, "day": "2026-12-24"}),
        tool_node("words", "book_table", {"party_size": "four", "day": "2026-12-24"}),
        tool_node("missing", "book_table", {"day": "2026-12-24"}),
        tool_node("boolean", "book_table", {"party_size": 2, "day": "x", "window_seat": "yes"}),
        tool_node("listed", "book_table", ["not", "an", "object"]),
        tool_node("crm", "crm_lookup", {"id": 1}, url="https://crm.example.org/hooks"),
        tool_node("ours_by_url", "crm_lookup", url=URL + "/"),
    ]
    assert lines(nodes) == [
        "node typo: tool_name 'book_tabel' is not a tool of the app (did you mean 'book_table'?)",
        "node words: book_table: static arguments: The arguments for book_table were not usable: "
        "the argument 'party_size' must be a whole number, for example 4 (it was a string)",
        "node missing: book_table: static arguments: The arguments for book_table were not "
        "usable: the argument 'party_size' is missing (a whole number, for example 4)",
        "node boolean: book_table: static arguments: The arguments for book_table were not "
        "usable: the argument 'window_seat' must be true or false (it was a string)",
        "node listed: book_table: arguments must be an object",
        "node ours_by_url: tool_name 'crm_lookup' is not a tool of the app",
    ]


def test_conversation_tools_are_compared_like_an_assistants() -> None:
    renamed = {
        **OURS[0],
        "parameters": {
            **OURS[0]["parameters"],
            "properties": {
                "party": OURS[0]["parameters"]["properties"]["party_size"],
                "day": OURS[0]["parameters"]["properties"]["day"],
                "window_seat": OURS[0]["parameters"]["properties"]["window_seat"],
            },
            "required": ["party", "day"],
        },
    }
    nested_hours = {
        "type": "function",
        "function": {k: OURS[1][k] for k in ("name", "description", "parameters")},
        "server": {"url": URL},
    }
    nodes: list[dict[str, Any]] = [
        {"id": "greet", "type": "conversation", "tools": [nested_hours, {"type": "end_call"}]},
        {"id": "take_booking", "type": "conversation", "tools": [renamed]},
        {
            "id": "elsewhere",
            "type": "conversation",
            "tools": [{"name": "crm_lookup", "description": "x", "url": "https://crm.example.org"}],
        },
        {
            "id": "stale",
            "type": "conversation",
            "tools": [{"name": "old_tool", "description": "x"}],
        },
        {"id": "broken", "type": "conversation", "tools": [{"description": "no name"}]},
    ]
    assert lines(nodes) == [
        "node take_booking: book_table: parameters.party_size: renamed: the assistant calls it "
        "'party' (did you mean 'party_size'?); paste the app's definition",
        "node stale: old_tool: only in the assistant: no tool of the app has this name",
        "node broken: tools: tools[0] has no name",
    ]


@pytest.mark.parametrize(
    "data",
    [
        {"workflow": {"id": "wf", "definition": {"entry_node": "a", "nodes": []}}},
        {"id": "wf", "definition": {"entry_node": "a", "nodes": []}},
        {"entry_node": "a", "nodes": []},
    ],
)
def test_every_workflow_shape_is_read(data: Any) -> None:
    assert read_workflow(data) == []


@pytest.mark.parametrize("data", [[], {"workflow": {}}, {"nodes": "x"}, {"nodes": [1]}])
def test_what_is_no_workflow_is_refused(data: Any) -> None:
    with pytest.raises(WorkflowError, match="expected a workflow"):
        read_workflow(data)
