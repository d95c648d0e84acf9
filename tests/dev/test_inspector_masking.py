"""The inspector's masking rule: what is hidden by default, and what stays readable."""

from __future__ import annotations

from typing import Any

import pytest

from voicehooks.dev.inspector.masking import mask, mask_phone_numbers
from voicehooks.testing import end_of_call_report, tool_call, tool_calls


def message(payload: dict[str, Any]) -> dict[str, Any]:
    masked: dict[str, Any] = mask(payload)["message"]
    return masked


def test_phone_numbers_keep_their_country_code_and_last_two_digits() -> None:
    masked = message(tool_calls(tool_call("t"), customer_number="+31655018342"))
    assert masked["customer"] == {"number": "+31•••••••42"}
    assert masked["phone_number"]["number"] == "+31•••••••15"
    assert masked["phone_number"]["name"] == "Rijwielhuis Kade Service Line"  # a business line


def test_what_was_said_is_hidden_but_its_size_shows() -> None:
    masked = message(end_of_call_report(summary="Sanne asked about WO-2291."))
    assert masked["summary"] == "[hidden: 26 characters]"
    assert masked["messages"][1] == {"role": "user", "content": "[hidden: 32 characters]"}
    assert masked["analysis"] == {"intent": "[hidden: 13 characters]", "resolved": True}
    assert masked["duration_seconds"] == 95
    assert masked["end_reason"] == "user_hangup"


@pytest.mark.parametrize(
    "arguments",
    [
        {"name": "Sanne de Vries", "party": 4, "when": {"day": "2026-01-16"}},
        '{"name": "Sanne de Vries", "party": 4, "when": {"day": "2026-01-16"}}',
    ],
)
def test_tool_argument_values_are_hidden_and_their_keys_kept(arguments: Any) -> None:
    masked = message(tool_calls(tool_call("book", arguments, id="t1"), call_id="c1"))
    (call,) = masked["tool_call_list"]
    assert call["id"] == "t1"
    assert call["function"]["name"] == "book"
    assert call["function"]["arguments"] == {
        "name": "[hidden: 14 characters]",
        "party": "[hidden number]",
        "when": {"day": "[hidden: 10 characters]"},
    }
    assert masked["call"]["id"] == "c1"


def test_arguments_that_are_not_json_are_hidden_whole() -> None:
    masked = message(tool_calls(tool_call("book", "Sanne, tomorrow")))
    assert masked["tool_call_list"][0]["function"]["arguments"] == "[hidden: 15 characters]"


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("+31 6 5501 8342", "+31••••••••••42"),
        ("0655018342", "065•••••42"),
        ("2026-01-16", "2026-01-16"),  # a date, not a number
        ("WO-2291", "WO-2291"),
        ("12345678", "12345678"),  # too short without a +
        (42, 42),
        (True, True),
    ],
)
def test_only_what_looks_like_a_phone_number_is_masked_in_answers(value: Any, masked: Any) -> None:
    assert mask_phone_numbers({"results": [{"result": value}]}) == {"results": [{"result": masked}]}
