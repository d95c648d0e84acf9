"""Tool contracts: the lint of what the model is given, on real tool schemas and hand-made ones."""

from __future__ import annotations

import datetime
import enum
import sys
import uuid
from typing import Annotated, Any, Literal

import jsonschema
import msgspec
import pytest

from tests.helpers.paths import ROOT
from voicehooks import VoiceHooks
from voicehooks.dev.contracts import DESCRIPTION_MAX_CHARS, PROVIDERS, Finding, lint
from voicehooks.tools.definition import Tool


def definition(**parameters: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": parameters}
    return {
        "name": "book_table",
        "description": "Book a table for the caller.",
        "parameters": schema,
    }


def summary(findings: list[Finding]) -> list[tuple[str, str, str]]:
    return [(f.severity, f.tool, f.path) for f in findings]


@pytest.mark.parametrize("example", ["quickstart", "appointments", "reports_sqlite"])
def test_the_examples_have_no_errors(example: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEHOOKS_SECRET", "whsec_test")
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    module = __import__(example)
    app: VoiceHooks = module.app
    findings = lint(app.tool_definitions("https://hooks.example/"), tools=app.tools)
    assert [f for f in findings if f.severity == "error"] == []
    assert all(f.line().count("\n") == 0 for f in findings)
    sys.modules.pop(example, None)


def test_the_bad_app_has_one_finding_per_problem() -> None:
    from tests.apps.bad_tools import app

    findings = lint(app.tool_definitions(), tools=app.tools)
    assert summary(findings) == [
        ("error", "undocumented", "description"),
        ("error", "wordy", "description"),
        ("error", "untyped", "parameters.properties.order_number"),
        ("warning", "one_choice", "parameters.properties.channel"),
        ("hint", "one_choice", "once_per_call"),
    ]
    assert "2,177 characters" in findings[1].message
    assert f"more than {DESCRIPTION_MAX_CHARS:,}" in findings[1].message


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Seat(msgspec.Struct):
    """Where to sit."""

    row: int
    window: bool = False


def plain(day: datetime.date, party_size: int, note: str = "") -> None:
    """Book a table for the caller.

    Args:
        day: The day, as YYYY-MM-DD.
        party_size: How many people.
        note: Anything the restaurant should know.
    """


def with_enum(colour: Colour, size: Literal[1, 2, 3] = 1) -> None:
    """Paint the bike in a colour.

    Args:
        colour: The colour.
        size: The frame size.
    """


def with_struct(seat: Seat) -> None:
    """Reserve one seat for the caller.

    Args:
        seat: The seat.
    """


def with_tuple(point: tuple[int, int], tags: set[str], blob: bytes, extra: dict[str, int]) -> None:
    """Store a point for the caller.

    Args:
        point: x and y.
        tags: Labels.
        blob: Raw data.
        extra: More numbers.
    """


def with_optional(
    ref: uuid.UUID | None = None, count: Annotated[int, msgspec.Meta(ge=1)] = 1
) -> None:
    """Look a reservation up.

    Args:
        ref: The reservation id.
        count: How many to return.
    """


def undescribed(day: str, mode: str = "fast") -> None:
    """Book a table for the caller.

    Args:
        dya: The day.
        mode: Either fast or slow.
    """


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        (plain, [("hint", "once_per_call", "it says 'book'")]),
        (
            with_enum,
            [
                ("warning", "parameters.$defs", "not supported by google"),
                ("warning", "parameters.properties.colour.$ref", "not supported by google"),
            ],
        ),
        (
            with_struct,
            [
                ("warning", "parameters.$defs", "not supported by google"),
                ("warning", "parameters.properties.seat.$ref", "not supported by google"),
            ],
        ),
        (
            with_tuple,
            [
                ("warning", "parameters.properties.point.prefixItems", "openai, google"),
                ("warning", "parameters.properties.tags.uniqueItems", "openai, google"),
                ("warning", "parameters.properties.blob.contentEncoding", "openai, google"),
                ("warning", "parameters.properties.extra.additionalProperties", "google"),
            ],
        ),
        (with_optional, []),
        (
            undescribed,
            [
                ("warning", "parameters.properties.day", "no description"),
                ("warning", "parameters.properties.mode", "Literal"),
                ("warning", "description", "did you mean 'day'?"),
                ("hint", "once_per_call", "once_per_call=True"),
            ],
        ),
    ],
)
def test_real_tool_schemas_are_valid_json_schema_and_lint_as_expected(
    function: Any, expected: list[tuple[str, str, str]]
) -> None:
    tool = Tool.from_function(function)
    jsonschema.Draft202012Validator.check_schema(tool.parameters)
    findings = lint([tool.definition()], tools={tool.name: tool})
    got = {(f.severity, f.path): f.message for f in findings}
    assert sorted(got) == sorted((severity, path) for severity, path, _ in expected)
    for severity, path, fragment in expected:
        assert fragment in got[severity, path]


def test_enums_of_one_json_type_are_typed_for_gemini() -> None:
    tool = Tool.from_function(with_enum)
    assert tool.parameters["properties"]["size"]["type"] == "integer"
    assert tool.parameters["$defs"]["Colour"]["type"] == "string"


@pytest.mark.parametrize(
    ("entry", "severity", "path", "fragment"),
    [
        (
            definition(day={"type": "string", "description": "d", "default": "x"})
            | {
                "parameters": {
                    "type": "object",
                    "properties": {"day": {"type": "string", "description": "d", "default": "x"}},
                    "required": ["day"],
                }
            },
            "error",
            "parameters.properties.day",
            "required and has a default",
        ),
        (
            {
                "name": "t",
                "description": "Book a table now.",
                "parameters": {"type": "object", "properties": {}, "required": ["ghost"]},
            },
            "error",
            "parameters.required",
            "'ghost', which is not a property",
        ),
        (
            definition(day={"type": "string", "description": "The day."}),
            "warning",
            "parameters.properties.day",
            "optional without a default",
        ),
        (
            definition(day={"description": "The day.", "default": ""}),
            "error",
            "parameters.properties.day",
            'no "type"',
        ),
        (
            definition(day={"type": "string", "description": "d", "enum": [], "default": ""}),
            "error",
            "parameters.properties.day",
            "an empty enum",
        ),
        (
            definition(day={"type": ["string", "null"], "description": "d", "default": None}),
            "warning",
            "parameters.properties.day.type",
            "a list of types",
        ),
        (
            definition(day={"enum": ["a", "b"], "description": "d", "default": "a"}),
            "warning",
            "parameters.properties.day",
            'without "type"',
        ),
        (
            definition(
                day={
                    "type": "string",
                    "not": {"type": "integer"},
                    "description": "d",
                    "default": "",
                }
            ),
            "error",
            "parameters.properties.day.not",
            "openai, xai, google",
        ),
        (
            definition(**{"größe": {"type": "integer", "description": "d", "default": 1}}),  # noqa: PIE804
            "warning",
            "parameters.properties.größe",
            "Gemini accepts parameter names",
        ),
        (
            {"name": "9lives", "description": "Count the lives left."},
            "error",
            "name",
            "not a valid tool name",
        ),
        (
            {"name": "x" * 65, "description": "Count the lives left."},
            "error",
            "name",
            "at most 64 characters",
        ),
        ({"name": "ping", "description": "Ping."}, "warning", "description", "too short"),
        (
            {"name": "ping\n", "description": "Check the line is up."},
            "error",
            "name",
            "not a valid tool name",
        ),
        (
            {"name": "ping", "description": "Check the line is up.", "parameters": []},
            "error",
            "parameters",
            '"type": "object"',
        ),
        (
            {"name": "sms", "description": "Send a text message.", "async_response": "Sent."},
            "warning",
            "async_response",
            "only used by async tools",
        ),
        (
            definition(
                day={"type": "string", "description": "d", "default": "", "allOf": [{}, {}]}
            ),
            "error",
            "parameters.properties.day.allOf",
            "openai, xai, google",
        ),
    ],
)
def test_hand_written_definitions(
    entry: dict[str, Any], severity: str, path: str, fragment: str
) -> None:
    findings = lint([entry])
    assert [(f.severity, f.path) for f in findings] == [(severity, path)], findings
    assert fragment in findings[0].message


def test_a_keyword_only_some_providers_refuse_is_checked_against_the_chosen_ones() -> None:
    tool = Tool.from_function(with_struct)
    assert lint([tool.definition()], providers=["openai", "xai"]) == []
    assert lint([tool.definition()], providers=["mistral"]) == []
    with pytest.raises(ValueError, match="unknown provider"):
        lint([], providers=["anthropic"])
    assert set(PROVIDERS) == {"openai", "mistral", "xai", "google"}


def test_duplicate_names_and_too_many_tools_are_errors() -> None:
    entry = {"name": "ping", "description": "Check the line is up."}
    findings = lint([entry, entry])
    assert summary(findings) == [("error", "ping", "name")]
    findings = lint([{**entry, "name": f"t{i}"} for i in range(129)])
    assert summary(findings) == [("error", "*", "tools")]


@pytest.mark.parametrize(
    ("extra", "stats", "fragments"),
    [
        (
            {},
            {"count": 40, "p95_seconds": 3.2, "timeouts": 0},
            ["95% of 40 measured calls took up to 3.2 s"],
        ),
        ({}, {"count": 40, "p95_seconds": 1.9, "timeouts": 0}, []),
        ({}, {"count": 4, "p95_seconds": 9.0, "timeouts": 0}, []),
        (
            {},
            {"count": 10, "p95_seconds": 8.0, "timeouts": 3},
            ["took up to 8.0 s", "3 of 10 measured calls hit the deadline"],
        ),
        ({"message": "One moment."}, {"count": 40, "p95_seconds": 3.2, "timeouts": 1}, []),
        ({"async": True}, {"count": 40, "p95_seconds": 3.2, "timeouts": 0}, []),
    ],
)
def test_measured_slow_tools_without_a_spoken_message_are_warned_about(
    extra: dict[str, Any], stats: dict[str, Any], fragments: list[str]
) -> None:
    entry = {"name": "stock", "description": "Check the stock of a part.", **extra}
    findings = lint([entry], stats={"stock": stats, "other": stats})
    assert [f.path for f in findings] == ["latency"] * len(fragments)
    for finding, fragment in zip(findings, fragments, strict=True):
        assert finding.severity == "warning"
        assert fragment in finding.message


def test_a_required_list_naming_a_property_twice_is_an_error() -> None:
    entry = definition(day={"type": "string", "description": "The day."})
    entry["parameters"]["required"] = ["day", "day"]
    assert summary(lint([entry])) == [("error", "book_table", "parameters.required")]
    entry["parameters"]["properties"]["day"] = "not a schema"
    entry["parameters"]["required"] = []
    assert lint([entry]) == []


def test_the_choices_of_an_optional_literal_are_seen_through_its_any_of() -> None:
    def paint(colour: Literal["red", "blue"] | None = None) -> None:
        """Paint the caller's bike.

        Args:
            colour: The colour, one of red or blue.
        """

    assert lint([Tool.from_function(paint).definition()]) == []


def booking(day: str) -> str:
    """Create a booking for the caller.

    Args:
        day: The day.
    """
    return day


@pytest.mark.parametrize(
    ("name", "options", "hinted"),
    [
        ("book_table", {}, True),
        ("pay_invoice", {}, True),
        ("send-sms", {}, True),
        ("place_orders", {}, True),
        ("look_up", {}, True),  # the description's first word: "Create"
        ("book_table", {"once_per_call": True}, False),
        ("book_table", {"fire_and_forget": True}, False),
        ("lookup", {"description": "Find the work order number of a repair."}, False),
        ("payload_size", {"description": "Measure a payload."}, False),
    ],
)
def test_side_effect_tools_without_once_per_call_get_a_hint_never_an_error(
    name: str, options: dict[str, Any], hinted: bool
) -> None:
    tool = Tool.from_function(booking, name, **options)
    findings = lint([tool.definition()], tools={tool.name: tool})
    hints = [f for f in findings if f.path == "once_per_call"]
    assert [f.severity for f in hints] == (["hint"] if hinted else [])


def test_mcp_attachments_keep_the_platforms_and_the_providers_limits() -> None:
    from voicehooks.dev.contracts import lint_attachments

    webhook = {"name": "book_table", "description": "Book a table for the caller."}
    entries: list[dict[str, Any]] = [
        webhook,
        {"type": "end_call"},
        {"type": "mcp", "mcp_server_id": "mcp_1", "allowed_tools": [f"t{i}" for i in range(26)]},
        {
            "type": "mcp",
            "mcp_server_id": "mcp_2",
            "allowed_tools": ["kb.search", "book_table", "has space", "x" * 65, "9lives"],
            "required": "yes",
        },
        {"type": "mcp", "allowed_tools": []},
    ]
    lines = [finding.line() for finding in lint_attachments(entries)]
    assert lines == [
        "error: mcp mcp_1: allowed_tools: 26 tools; the platform accepts at most 25 per MCP "
        "attachment: name only those the assistant needs",
        "error: mcp mcp_2: required: must be true or false",
        "error: mcp mcp_2: allowed_tools[1]: 'book_table' is also another tool of the assistant: "
        "the model cannot tell them apart; rename one",
        "error: mcp mcp_2: allowed_tools[2]: 'has space' is not an MCP tool name (1 to 128 ASCII "
        "letters, digits, '_', '-' or '.'): no server offers a tool by that name",
        f"error: mcp mcp_2: allowed_tools[3]: {'x' * 65!r} is not a function name openai, "
        "mistral, xai, google accept(s): rename the tool on the MCP server (letters, digits, "
        "'_' and '-', at most 64)",
        "error: tools[4]: mcp_server_id: missing: give the MCP server's id",
        "warning: mcp mcp_2: allowed_tools[0]: 'kb.search' is not a function name openai, "
        "mistral, xai accept(s): rename the tool on the MCP server (letters, digits, '_' and "
        "'-', at most 64)",
        "warning: mcp mcp_2: allowed_tools[4]: '9lives' is not a function name google accept(s): "
        "rename the tool on the MCP server (letters, digits, '_' and '-', at most 64)",
        "warning: tools[4]: allowed_tools: empty: the assistant gets no tool",
    ]
    only_openai = lint_attachments(entries[3:4], providers=("openai",))
    assert ("error", "allowed_tools[0]") in {(f.severity, f.path) for f in only_openai}
    many = [
        {"type": "mcp", "mcp_server_id": f"m{i}", "allowed_tools": ["a"] * 25} for i in range(6)
    ]
    assert any("150 tools" in f.message for f in lint_attachments(many))
