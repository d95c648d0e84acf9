"""Drift: reading exported assistants in every shape, and each kind of difference."""

from __future__ import annotations

import copy
import re
from typing import Any

import msgspec
import pytest

from voicehooks.dev.drift import DriftError, diff, read_definitions
from voicehooks.tools.definition import Tool

URL = "https://hooks.example.com/voice"


def book_table(
    party_size: int, day: str, seating: str = "inside", child_seat: bool | None = None
) -> None:
    """Book a table for the caller.

    Args:
        party_size: How many people.
        day: The day, as YYYY-MM-DD.
        seating: Inside or outside.
        child_seat: Whether a child seat is needed.
    """


OURS = [Tool.from_function(book_table).definition(URL)]


def nested(entry: dict[str, Any]) -> dict[str, Any]:
    function = {k: entry[k] for k in ("name", "description", "parameters")}
    return {"type": "function", "function": function, "server": {"url": entry["url"]}}


@pytest.mark.parametrize(
    "data",
    [
        {"assistant": {"webhook_url": URL, "llm_config": {"tools": OURS}}},
        {"webhook_url": URL, "llm_config": {"tools": OURS}},
        {"tools": OURS},
        OURS,
        [nested(OURS[0])],
        [
            {
                **nested(OURS[0]),
                "async": False,
                "function": {**nested(OURS[0])["function"], "strict": True},
            }
        ],
        [*OURS, {"type": "end_call"}, {"type": "transferCall", "destinations": []}],
        [{"type": "mcp", "mcp_server_id": "mcp_1", "allowed_tools": ["kb"]}, *OURS],
    ],
)
def test_every_accepted_shape_reads_as_the_same_definitions(data: Any) -> None:
    definitions, _ = read_definitions(copy.deepcopy(data))
    assert diff(OURS, definitions) == []


def test_an_assistant_without_tools_has_none() -> None:
    assert read_definitions({"assistant": {"name": "Front desk"}}) == ([], None)
    assert read_definitions({"llm_config": None}) == ([], None)
    assert read_definitions({"llm_config": {"model": "gpt-4o"}}) == ([], None)


def test_the_url_beats_server_url_and_the_assistant_url_is_returned() -> None:
    entry = {**nested(OURS[0]), "url": "https://direct.example/"}
    (flat,), webhook_url = read_definitions(
        {"assistant": {"webhook_url": URL, "llm_config": {"tools": [entry]}}}
    )
    assert flat["url"] == "https://direct.example/"
    assert webhook_url == URL


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x"}, "expected an assistant"),
        ("text", "expected an assistant"),
        ([1], "tools[0] is a int"),
        ([{"description": "No name."}], "tools[0] has no name"),
    ],
)
def test_other_shapes_are_refused(data: Any, message: str) -> None:
    with pytest.raises(DriftError, match=re.escape(message)):
        read_definitions(data)


def changed(change: Any) -> list[dict[str, Any]]:
    theirs = copy.deepcopy(OURS)
    change(theirs[0])
    return theirs


def rename(entry: dict[str, Any]) -> None:
    properties = entry["parameters"]["properties"]
    properties["partysize"] = properties.pop("party_size")
    entry["parameters"]["required"] = ["partysize", "day"]


def set_path(*path: str, value: Any) -> Any:
    def change(entry: dict[str, Any]) -> None:
        node = entry
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


def drop(*path: str) -> Any:
    def change(entry: dict[str, Any]) -> None:
        node = entry
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return change


PARAMS = ("parameters", "properties")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            rename,
            [
                (
                    "parameters.party_size",
                    "renamed: the assistant calls it 'partysize' (did you mean 'party_size'?)",
                )
            ],
        ),
        (drop(*PARAMS, "seating"), [("parameters.seating", "missing in the assistant")]),
        (
            set_path(*PARAMS, "voucher", value={"type": "string"}),
            [("parameters.voucher", "only in the assistant")],
        ),
        (
            set_path(*PARAMS, "party_size", "type", value="string"),
            [("parameters.party_size", "type string in the assistant, integer in the app")],
        ),
        (
            set_path("parameters", "required", value=["party_size"]),
            [("parameters.day", "required only in the app")],
        ),
        (
            set_path(*PARAMS, "day", "format", value="date"),
            [("parameters.day", "format 'date' in the assistant, None in the app")],
        ),
        (
            set_path(*PARAMS, "seating", "enum", value=["inside"]),
            [("parameters.seating", "enum differs: values only in the assistant: ['inside']")],
        ),
        (
            set_path(*PARAMS, "child_seat", value={"type": "string"}),
            [("parameters.child_seat", "type string in the assistant, boolean in the app")],
        ),
        (
            set_path("url", value="https://old.example/"),
            [("url", "the assistant calls https://old.example/, the app expects " + URL)],
        ),
        (set_path("url", value=URL + "/"), []),
        (set_path("async", value=True), [("async", "True in the assistant, False in the app")]),
        (set_path("async_response", value="On it."), [("message", "the spoken message differs")]),
        (set_path("description", value="Book."), [("description", "differs")]),
    ],
)
def test_each_kind_of_drift_is_one_line(change: Any, expected: list[tuple[str, str]]) -> None:
    differences = diff(OURS, changed(change))
    assert [d.path for d in differences] == [path for path, _ in expected]
    for difference, (_, fragment) in zip(differences, expected, strict=True):
        assert fragment in difference.message
        assert difference.line().startswith("book_table: ")


def test_tools_missing_on_either_side_suggest_a_name() -> None:
    theirs = changed(set_path("name", value="book_tables"))
    lines = [d.line() for d in diff(OURS, theirs)]
    assert lines == [
        "book_table: missing in the assistant (did you mean 'book_tables'?): add the app's "
        "definition",
        "book_tables: only in the assistant: no tool of the app has this name",
    ]


def test_a_tool_without_url_is_called_at_the_assistant_url() -> None:
    theirs = changed(drop("url"))
    assert diff(OURS, theirs, webhook_url=URL) == []
    assert [d.path for d in diff(OURS, theirs)] == ["url"]
    assert diff([{**OURS[0], "url": None}], theirs) == []


class Bike(msgspec.Struct):
    brand: str
    kind: str = "city"


def book(bike: Bike, bikes: list[Bike] | None = None) -> None:
    """Book a repair for the caller's bike."""


def test_nested_types_are_compared_through_their_references() -> None:
    ours = [Tool.from_function(book).definition()]
    theirs = copy.deepcopy(ours)
    theirs[0]["parameters"]["$defs"]["Bike"]["properties"]["kind"] = {"type": "integer"}
    lines = [d.line() for d in diff(ours, theirs)]
    assert lines == [
        "book: parameters.bike.kind: type integer in the assistant, string in the app",
        "book: parameters.bikes[].kind: type integer in the assistant, string in the app",
    ]


def schema_of(**properties: Any) -> list[dict[str, Any]]:
    parameters = {"type": "object", "properties": properties}
    return [{"name": "t", "description": "A tool for the test.", "parameters": parameters}]


@pytest.mark.parametrize(
    ("ours", "theirs", "message"),
    [
        ({"type": ["string", "null"]}, {"type": "string"}, None),
        ({"enum": ["a", "b"]}, {"type": "string", "enum": ["a", "b"]}, None),
        (
            {"enum": [1, "a"]},
            {"type": "string", "enum": [1, "a"]},
            "type string in the assistant, any",
        ),
        (
            {"properties": {"x": {"type": "string"}}},
            {"type": "object", "properties": {"x": {"type": "string"}}},
            None,
        ),
        ({"$ref": "#/$defs/Missing"}, {}, None),
        (
            {"$ref": "#/$defs/Missing"},
            {"type": "integer"},
            "type integer in the assistant, any in the app",
        ),
        (
            {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            {"type": "string"},
            "type string in the assistant, any",
        ),
        ("not a schema", {"type": "string"}, "type string in the assistant, any"),
    ],
)
def test_loose_hand_made_schemas_compare_by_their_meaning(
    ours: Any, theirs: Any, message: str | None
) -> None:
    differences = diff(schema_of(x=ours), schema_of(x=theirs))
    if message is None:
        assert differences == []
    else:
        assert len(differences) == 1
        assert differences[0].message.startswith(message)


def test_a_nested_tool_without_any_url_reads_without_one() -> None:
    (flat,), _ = read_definitions([{"type": "function", "function": {"name": "t"}}])
    assert flat == {"name": "t"}


class Part(msgspec.Struct):
    name: str
    parts: list[Part] = []


def assemble(part: Part) -> None:
    """Assemble a bike from its parts."""


def test_a_recursive_type_is_compared_once_not_until_the_stack_runs_out() -> None:
    ours = [Tool.from_function(assemble).definition()]
    assert diff(ours, copy.deepcopy(ours)) == []
    theirs = copy.deepcopy(ours)
    theirs[0]["parameters"]["$defs"]["Part"]["properties"]["name"] = {"type": "integer"}
    assert [d.line() for d in diff(ours, theirs)] == [
        "assemble: parameters.part.name: type integer in the assistant, string in the app"
    ]
