"""voicehooks.core.responses: the tool-result normalizers and the assistant-request builders."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.paths import FIXTURES
from voicehooks import AssistantResponse, ToolResult
from voicehooks.pipeline.assistant import validate_assistant_answer
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


@pytest.mark.parametrize(
    ("response", "body"),
    [
        (AssistantResponse.default(), {}),
        (AssistantResponse.reference("A1"), {"assistant_id": "A1"}),
        (
            AssistantResponse.reference("A1", max_duration_seconds=60),
            {"assistant_id": "A1", "assistant_override": {"max_duration_seconds": 60}},
        ),
        (
            AssistantResponse.reference("A1", max_duration_seconds=60, top_level_max_duration=True),
            {"assistant_id": "A1", "max_duration_seconds": 60},
        ),
        (
            AssistantResponse.override("A1", {"llm_config": {"model": "m"}}, first_message="Hi"),
            {
                "assistant_id": "A1",
                "assistant_override": {"llm_config": {"model": "m"}, "first_message": "Hi"},
            },
        ),
        (
            AssistantResponse.override("A1", max_duration_seconds=480, top_level_max_duration=True),
            {"assistant_id": "A1", "assistant_override": {}, "max_duration_seconds": 480},
        ),
        (
            AssistantResponse.inline({"name": "Desk"}, max_duration_seconds=420),
            {"assistant": {"name": "Desk", "max_duration_seconds": 420}},
        ),
        (
            AssistantResponse.inline(
                name="Desk", max_duration_seconds=420, top_level_max_duration=True
            ),
            {"assistant": {"name": "Desk"}, "max_duration_seconds": 420},
        ),
        (AssistantResponse.reject("We are closed."), {"error": "We are closed."}),
    ],
)
def test_builders_produce_exactly_one_documented_mode(
    response: AssistantResponse, body: Any
) -> None:
    assert response.body == body
    assert repr(response) == f"AssistantResponse({body!r})"


def test_the_spec_fixture_answers_validate() -> None:
    import json

    for name in ("override", "reference", "transient"):
        body = json.loads((FIXTURES / f"assistant-response-{name}.json").read_text())
        assert validate_assistant_answer(body) == body


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "must be a dict"),
        ({"assistant": {}, "assistant_id": "x"}, "mixes modes"),
        ({"error": "closed", "assistant": {}}, "mixes modes"),
        ({"assistant_override": {}}, "needs an 'assistant_id'"),
        ({"assistant_id": ""}, "non-empty string"),
        ({"assistant": "config"}, "must be an object"),
        ({"assistant_id": "x", "assistant_override": []}, "must be an object"),
        ({"error": ""}, "non-empty text"),
        ({"max_duration_seconds": -5}, "positive whole number"),
        ({"max_duration_seconds": 1.5}, "positive whole number"),
        ({"max_duration_seconds": True}, "positive whole number"),
        ({"assistantId": "x"}, "unknown keys"),
    ],
)
def test_a_dict_answer_is_validated(body: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_assistant_answer(body)


def test_reject_needs_a_message() -> None:
    with pytest.raises(ValueError, match="message"):
        AssistantResponse.reject("")
