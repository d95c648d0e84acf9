"""voicehooks.pipeline.assistant: the assistant-request builders and the check of a dict answer."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers.paths import FIXTURES
from voicehooks import AssistantResponse
from voicehooks.pipeline.assistant import validate_assistant_answer


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
