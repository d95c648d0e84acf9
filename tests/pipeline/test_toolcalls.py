"""voicehooks.pipeline.toolcalls: tool results normalized, and answers read back by call id."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.paths import FIXTURES
from voicehooks import ToolResult
from voicehooks.testing import normalize_result, results_from_response


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
