"""The JSON Schemas `voicehooks tools` prints accept exactly the arguments the tools accept.

The model builds its arguments from the schema; the tool decodes them with msgspec. If the two
disagree, the model is told one thing and refused another. Each sample is checked both ways:
valid for the schema if and only if the tool binds it.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import msgspec
import pytest
from click.testing import CliRunner

from tests.helpers.paths import ROOT
from voicehooks.cli import main
from voicehooks.core.events import ToolCall, ToolFunction
from voicehooks.tools.definition import ArgumentError, Tool

SAMPLES: list[tuple[str, str, Any, bool]] = [
    ("examples/quickstart.py", "check_repair_status", {"order_number": "WO-2291"}, True),
    ("examples/quickstart.py", "check_repair_status", {}, False),
    ("examples/quickstart.py", "check_repair_status", {"order_number": 2291}, False),
    ("examples/appointments.py", "available_slots", {"day": "2026-01-16"}, True),
    ("examples/appointments.py", "available_slots", {"day": "16 January"}, False),
    (
        "examples/appointments.py",
        "book_appointment",
        {"day": "2026-01-16", "slot": "14:30", "bike_brand": "Gazelle"},
        True,
    ),
    (
        "examples/appointments.py",
        "book_appointment",
        {
            "day": "2026-01-16",
            "slot": "14:30",
            "bike_brand": "Gazelle",
            "bike_kind": "cargo",
            "service": "repair",
        },
        True,
    ),
    (
        "examples/appointments.py",
        "book_appointment",
        {"day": "2026-01-16", "slot": "14:31", "bike_brand": "Gazelle"},
        False,
    ),
    (
        "examples/appointments.py",
        "book_appointment",
        {"day": "2026-01-16", "slot": "14:30", "bike_kind": "city"},
        False,
    ),
    (
        "examples/appointments.py",
        "book_appointment",
        {"day": "2026-01-16", "slot": "14:30", "bike_brand": "G", "bike_kind": "tandem"},
        False,
    ),
]


def definitions(target: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, Any]]:
    monkeypatch.delenv("VOICEHOOKS_SECRET", raising=False)
    result = CliRunner().invoke(main, ["tools", str(ROOT / target), "--url", "https://x/"])
    assert result.exit_code == 0, result.output
    return {entry["name"]: entry for entry in json.loads(result.output)}


@pytest.mark.parametrize(("target", "tool", "arguments", "valid"), SAMPLES)
def test_the_printed_schema_and_the_tool_agree_on_every_sample(
    target: str, tool: str, arguments: Any, valid: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = definitions(target, monkeypatch)[tool]["parameters"]
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    assert validator.is_valid(arguments) is valid

    from voicehooks.cli import load_target

    app, _, _ = load_target(str(ROOT / target))
    registered: Tool = app.tools[tool]
    call = ToolCall("t1", ToolFunction(tool, msgspec.Raw(msgspec.json.encode(arguments))))
    if valid:
        registered.bind(call)
    else:
        with pytest.raises(ArgumentError):
            registered.bind(call)


def test_every_definition_has_the_platform_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    for target in ("examples/quickstart.py", "examples/appointments.py"):
        for entry in definitions(target, monkeypatch).values():
            assert set(entry) <= {
                "name",
                "description",
                "url",
                "async",
                "async_response",
                "parameters",
            }
            assert entry["parameters"]["type"] == "object"
            assert entry["description"]
