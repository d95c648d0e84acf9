"""What the model gets back when its call does not fit: the coercions accepted, the errors sent."""

from __future__ import annotations

import copy
import datetime
import enum
import json
from typing import Annotated, Any, Literal

import msgspec
import pytest

from voicehooks import ConfigurationError, VoiceHooks
from voicehooks.core.events import ToolCall, ToolFunction
from voicehooks.testing import WebhookClient, tool_call
from voicehooks.tools.arguments import COERCIONS, resolve_ref
from voicehooks.tools.definition import ArgumentError, Tool

pytestmark = pytest.mark.anyio

SECRET = "whsec_arguments"


class Size(enum.IntEnum):
    SMALL = 1
    LARGE = 2


class Seat(msgspec.Struct):
    row: int
    window: bool = False


def book_table(
    party_size: int,
    day: datetime.date,
    price: float = 0.0,
    outside: bool = False,
    table: Literal["1", "2"] = "1",
    size: Size = Size.SMALL,
    floor: Literal[0, 1] = 0,
    children: int | None = None,
    seats: list[Seat] | None = None,
    pair: tuple[int, int] | None = None,
    counts: dict[str, int] | None = None,
    either: int | str = 0,
) -> None:
    """Book a table for the caller.

    Args:
        party_size: How many people.
        day: The day, as YYYY-MM-DD.
    """


def bind(arguments: Any, unknown: str = "ignore") -> tuple[dict[str, Any], dict[str, int]]:
    tool = Tool.from_function(book_table, unknown_arguments=unknown)  # type: ignore[arg-type]
    raw = msgspec.Raw(msgspec.json.encode(arguments))
    kwargs = tool.bind(ToolCall("t1", ToolFunction("book_table", raw)))
    return kwargs, dict(tool.coercions)


BASE = {"party_size": 4, "day": "2026-01-16"}


@pytest.mark.parametrize(
    ("arguments", "expected", "counted"),
    [
        ({"party_size": "4"}, {"party_size": 4}, {"string_to_integer": 1}),
        ({"party_size": 4.0}, {"party_size": 4}, {"float_to_integer": 1}),
        ({"party_size": "4.0"}, {"party_size": 4}, {"string_to_integer": 1}),
        ({"party_size": "-0"}, {"party_size": 0}, {"string_to_integer": 1}),
        ({"party_size": "1e3"}, {"party_size": 1000}, {"string_to_integer": 1}),
        ({"price": "12.50"}, {"price": 12.5}, {"string_to_number": 1}),
        ({"outside": "true"}, {"outside": True}, {"string_to_boolean": 1}),
        ({"outside": "False"}, {"outside": False}, {"string_to_boolean": 1}),
        ({"table": 2}, {"table": "2"}, {"to_choice": 1}),
        ({"floor": "1"}, {"floor": 1}, {"to_choice": 1}),
        ({"size": "2"}, {"size": Size.LARGE}, {"to_choice": 1}),
        ({"children": "2"}, {"children": 2}, {"string_to_integer": 1}),
        (
            {"seats": [{"row": "3", "window": "true"}]},
            {"seats": [Seat(3, True)]},
            {"string_to_integer": 1, "string_to_boolean": 1},
        ),
        ({"pair": ["1", 2.0]}, {"pair": (1, 2)}, {"string_to_integer": 1, "float_to_integer": 1}),
        ({"counts": {"a": "5"}}, {"counts": {"a": 5}}, {"string_to_integer": 1}),
        # Past float's range (309 digits and up), as the same digits unquoted are taken.
        ({"party_size": "9" * 309}, {"party_size": int("9" * 309)}, {"string_to_integer": 1}),
        ({"children": "-1" + "0" * 400}, {"children": -(10**400)}, {"string_to_integer": 1}),
    ],
)
def test_unambiguous_coercions_are_accepted_and_counted(
    arguments: dict[str, Any], expected: dict[str, Any], counted: dict[str, int]
) -> None:
    kwargs, counts = bind({**BASE, **arguments})
    for name, value in expected.items():
        assert kwargs[name] == value
        assert type(kwargs[name]) is type(value)
    assert counts == counted
    assert set(counts) <= set(COERCIONS)


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({"party_size": "four"}, "'party_size' must be a whole number, for example 4"),
        ({"party_size": " 4"}, "'party_size' must be a whole number"),
        ({"party_size": "+4"}, "'party_size' must be a whole number"),
        ({"party_size": 4.5}, "'party_size' must be a whole number"),
        ({"party_size": "4.5"}, "'party_size' must be a whole number"),
        (
            {"party_size": True},
            "'party_size' must be a whole number, for example 4 (it was a boolean)",
        ),
        ({"party_size": "0x10"}, "'party_size' must be a whole number"),
        ({"price": "nan"}, "'price' must be a number"),
        ({"price": "inf"}, "'price' must be a number"),
        ({"price": "1e400"}, "'price' must be a number"),
        ({"price": "9" * 309}, "'price' must be a number"),
        ({"party_size": "9" * 4301}, "'party_size' must be a whole number"),
        ({"children": "null"}, "'children' must be a whole number"),
        ({"outside": "yes"}, "'outside' must be true or false"),
        ({"outside": 1}, "'outside' must be true or false (it was an integer)"),
        ({"outside": "1"}, "'outside' must be true or false"),
        ({"table": 3}, '\'table\' must be one of "1", "2"'),
        ({"either": 4.0}, "'either' must be"),
    ],
)
def test_ambiguous_values_are_errors_that_do_not_blame_the_caller(
    arguments: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(ArgumentError) as info:
        bind({**BASE, **arguments})
    text = str(info.value)
    assert fragment in text
    assert text.endswith("Call book_table again with a corrected value.")
    assert "caller" not in text


def test_a_coercion_does_not_hide_a_second_problem() -> None:
    with pytest.raises(ArgumentError, match="'day' must be a date as YYYY-MM-DD"):
        bind({"party_size": "4", "day": "Friday"})


def test_arguments_as_a_json_string_are_coerced_too() -> None:
    kwargs, counts = bind(json.dumps({**BASE, "party_size": "4"}))
    assert kwargs["party_size"] == 4
    assert counts == {"string_to_integer": 1}


def test_unknown_arguments_are_ignored_by_default() -> None:
    kwargs, _ = bind({**BASE, "partysize": 3})
    assert "partysize" not in kwargs


def test_forbidden_unknown_arguments_name_the_nearest_parameter() -> None:
    with pytest.raises(ArgumentError) as info:
        bind({"day": "2026-01-16", "party_size": 4, "partysize": 3}, unknown="forbid")
    text = str(info.value)
    assert "'partysize' is not an argument of book_table. Did you mean 'party_size'?" in text
    assert "Its arguments are: party_size, day, price," in text
    assert text.endswith("Call book_table again with only those.")
    kwargs, _ = bind({**BASE, "party_size": "4"}, unknown="forbid")
    assert kwargs["party_size"] == 4


def test_a_tool_without_parameters_may_forbid_any_argument() -> None:
    def ping() -> str:
        """Check the line is up."""
        return "pong"

    tool = Tool.from_function(ping, unknown_arguments="forbid")
    raw = msgspec.Raw(b'{"loud": true}')
    with pytest.raises(ArgumentError, match="Its arguments are: none"):
        tool.bind(ToolCall("t1", ToolFunction("ping", raw)))
    assert tool.bind(ToolCall("t1", ToolFunction("ping", msgspec.Raw(b"{}")))) == {}


def test_the_policy_is_validated_at_registration() -> None:
    app = VoiceHooks(verify_signatures=False)
    with pytest.raises(ConfigurationError, match="unknown_arguments must be 'ignore' or 'forbid'"):
        app.add_tool(book_table, unknown_arguments="drop")  # type: ignore[arg-type]


def test_forbidding_leaves_the_definition_as_it_is() -> None:
    forbidding = Tool.from_function(book_table, unknown_arguments="forbid")
    assert forbidding.definition() == Tool.from_function(book_table).definition()


async def test_a_model_sending_party_size_as_a_string_gets_its_booking() -> None:
    app = VoiceHooks(secret=SECRET)
    booked: list[int] = []

    @app.tool
    async def reserve(party_size: int, day: datetime.date) -> dict[str, Any]:
        """Book a table for the caller.

        Args:
            party_size: How many people.
            day: The day, as YYYY-MM-DD.
        """
        booked.append(party_size)
        return {"reference": "T-17", "party_size": party_size}

    async with WebhookClient(app, secret=SECRET) as client:
        result = await client.call_tool("reserve", party_size="4", day="2026-01-16")
        assert result == {"reference": "T-17", "party_size": 4}
        (again,) = await client.call_tools(
            tool_call("reserve", json.dumps({"party_size": "four", "day": "2026-01-16"}))
        )
    assert booked == [4]
    assert again["error"].startswith("The arguments for reserve were not usable: ")
    assert "caller" not in again["error"]
    assert dict(app.tools["reserve"].coercions) == {"string_to_integer": 1}


async def test_a_number_too_large_for_a_float_costs_no_other_call_of_the_delivery() -> None:
    app = VoiceHooks(secret=SECRET)

    @app.tool
    async def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @app.tool
    async def scale(factor: float) -> float:
        """Scale by a factor."""
        return factor

    async with WebhookClient(app, secret=SECRET) as client:
        results = await client.call_tools(
            tool_call("add", {"a": "9" * 309, "b": 1}, id="huge_int"),
            tool_call("scale", {"factor": "9" * 309}, id="huge_float"),
            tool_call("add", {"a": 2, "b": 3}, id="plain"),
        )
    assert results[0] == 10**309
    assert results[1]["error"].startswith("The arguments for scale were not usable: ")
    assert "'factor' must be a number" in results[1]["error"]
    assert results[2] == 5


class Window(msgspec.Struct):
    start: Annotated[int, msgspec.Meta(ge=0, le=23)]


def constrained(
    hour: Annotated[int, msgspec.Meta(ge=0, le=23)] = 9,
    guests: Annotated[int, msgspec.Meta(ge=1)] = 1,
    discount: Annotated[float, msgspec.Meta(le=0.5)] = 0.0,
    code: Annotated[str, msgspec.Meta(pattern="^[A-Z]{2}-[0-9]+$")] = "WO-1",
    tags: list[int] | None = None,
    names: Annotated[list[str], msgspec.Meta(min_length=1, max_length=3)] | None = None,
    ids: Annotated[list[str], msgspec.Meta(max_length=2)] | None = None,
    choice: Literal["a", "b"] = "a",
    pair: tuple[int, int] | None = None,
    windows: dict[str, Window] | None = None,
) -> None:
    """Check every kind of constraint the error text describes."""


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({"hour": 30}, "'hour' must be a whole number from 0 to 23, for example 9."),
        ({"guests": 0}, "'guests' must be a whole number of at least 1, for example 1."),
        ({"discount": 0.9}, "'discount' must be a number of at most 0.5, for example 0.0."),
        ({"code": "wo-1"}, "'code' must be a string matching the pattern ^[A-Z]{2}-[0-9]+$."),
        ({"tags": "1"}, "'tags' must be a list, each item a whole number, for example 4 (it was"),
        ({"names": []}, "'names' must be a list of 1 to 3 items, each item a string"),
        ({"ids": ["a", "b", "c"]}, "'ids' must be a list of at most 2 items, each item a string"),
        ({"choice": "a", "hour": "x"}, "'hour' must be a whole number from 0 to 23"),
        ({"pair": ["1", 2, 3]}, "'pair[0]' must be a whole number, for example 4 (it was a st"),
        ({"pair": [1, 2, 3]}, "'pair' must be a list of exactly 2 items. Call"),
        (
            {"windows": {"am": {"start": "25"}}},
            "'windows[...].start' must be a whole number from 0",
        ),
        ({"windows": {"am": {"start": "7"}}, "hour": "x"}, "'hour' must be"),
    ],
)
def test_constraints_are_described_in_words(arguments: dict[str, Any], fragment: str) -> None:
    tool = Tool.from_function(constrained)
    raw = msgspec.Raw(msgspec.json.encode(arguments))
    with pytest.raises(ArgumentError) as info:
        tool.bind(ToolCall("t1", ToolFunction("constrained", raw)))
    assert fragment in str(info.value)


def test_arguments_that_are_not_json_at_all_say_so() -> None:
    tool = Tool.from_function(book_table)
    for raw in (
        b'{"party_size": ',
        b'{"party_size": true, "day": ',
        b'"{\\"party_size\\": "',
        b"\xff",
    ):
        with pytest.raises(ArgumentError, match="they are not valid JSON"):
            tool.bind(ToolCall("t1", ToolFunction("book_table", msgspec.Raw(raw))))


async def test_the_app_wide_policy_applies_unless_a_tool_sets_its_own() -> None:
    app = VoiceHooks(secret=SECRET, unknown_arguments="forbid")

    @app.tool
    async def strict(day: str) -> str:
        """Echo the day the caller gave."""
        return day

    @app.tool(unknown_arguments="ignore")
    async def lenient(day: str) -> str:
        """Echo the day the caller gave."""
        return day

    async with WebhookClient(app, secret=SECRET) as client:
        refused = await client.call_tool("strict", day="monday", dya="tuesday")
        assert "'dya' is not an argument of strict. Did you mean 'day'?" in refused["error"]
        assert await client.call_tool("lenient", day="monday", dya="tuesday") == "monday"
    with pytest.raises(ConfigurationError, match="unknown_arguments must be"):
        VoiceHooks(verify_signatures=False, unknown_arguments="drop")  # type: ignore[arg-type]


# -- the one $ref resolver (the lint and the diff read schemas through it too) --------------

ROOT_SCHEMA: dict[str, Any] = {
    "$defs": {
        "Hour": {"type": "integer", "minimum": 0},
        "Start": {"$ref": "#/$defs/Hour", "description": "When it starts."},
        "A": {"$ref": "#/$defs/B"},
        "B": {"$ref": "#/$defs/A"},
        "Self": {"$ref": "#/$defs/Self"},
        "Tree": {"type": "object", "properties": {"children": {"items": {"$ref": "#/$defs/Tree"}}}},
        "Maybe": {"anyOf": [{"$ref": "#/$defs/Maybe"}, {"type": "null"}]},
        "a/b~c": {"type": "string"},
    },
    "definitions": {"Day": {"type": "string", "format": "date"}},
    "prefixItems": [{"type": "boolean"}],
}


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        ({"type": "string"}, {"type": "string"}),
        ({"$ref": "#/$defs/Hour"}, {"type": "integer", "minimum": 0}),
        # A chain, each level's own keys kept over what it points to.
        (
            {"$ref": "#/$defs/Start", "default": 9},
            {"type": "integer", "minimum": 0, "description": "When it starts.", "default": 9},
        ),
        ({"$ref": "#/definitions/Day"}, {"type": "string", "format": "date"}),
        ({"$ref": "#/$defs/a~1b~0c"}, {"type": "string"}),  # JSON pointer escapes
        ({"$ref": "#/prefixItems/0"}, {"type": "boolean"}),
        # An optional reads as its schema, the outer keys kept; two types stay a choice.
        (
            {"anyOf": [{"$ref": "#/$defs/Hour"}, {"type": "null"}], "default": None},
            {"type": "integer", "minimum": 0, "default": None},
        ),
        (
            {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        ),
        # What cannot be followed stays as it is.
        ({"$ref": "#/$defs/Missing"}, {"$ref": "#/$defs/Missing"}),
        (
            {"$ref": "https://schemas.example/hour.json"},
            {"$ref": "https://schemas.example/hour.json"},
        ),
        ({"$ref": "#/$defs/Hour/type"}, {"$ref": "#/$defs/Hour/type"}),  # not an object
        # Cycles end where they close, in any shape.
        ({"$ref": "#/$defs/A"}, {"$ref": "#/$defs/A"}),
        ({"$ref": "#/$defs/Self"}, {"$ref": "#/$defs/Self"}),
        ({"$ref": "#/$defs/Maybe"}, {"$ref": "#/$defs/Maybe"}),
        ({"$ref": "#"}, {**ROOT_SCHEMA}),
    ],
)
def test_resolve_ref_follows_local_references_and_stops_at_cycles(
    node: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert resolve_ref(ROOT_SCHEMA, node) == expected


def test_resolve_ref_leaves_what_is_not_an_object_and_does_not_change_the_schema() -> None:
    before = copy.deepcopy(ROOT_SCHEMA)
    assert resolve_ref(ROOT_SCHEMA, None) is None
    assert resolve_ref(ROOT_SCHEMA, ["not", "a", "schema"]) is None
    resolve_ref(ROOT_SCHEMA, {"$ref": "#/$defs/Start", "default": 9})
    assert before == ROOT_SCHEMA


def test_resolve_ref_does_not_follow_again_what_a_walker_followed_on_its_way() -> None:
    followed: set[str] = set()
    tree = resolve_ref(ROOT_SCHEMA, {"$ref": "#/$defs/Tree"}, followed)
    assert tree is not None
    assert followed == {"#/$defs/Tree"}
    child = tree["properties"]["children"]["items"]
    assert resolve_ref(ROOT_SCHEMA, child, followed) == {"$ref": "#/$defs/Tree"}


def test_an_optional_arguments_default_is_its_example_in_the_error() -> None:
    def lift(floor: int | None = 3) -> None:
        """Call the lift."""

    tool = Tool.from_function(lift)
    with pytest.raises(ArgumentError, match="'floor' must be a whole number, for example 3 "):
        tool.bind(ToolCall("t1", ToolFunction("lift", msgspec.Raw(b'{"floor": "top"}'))))
