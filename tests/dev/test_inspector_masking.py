"""The inspector's masking rule: what is hidden by default, and what stays readable."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from voicehooks.dev.inspector.masking import mask, mask_id, mask_phone_numbers
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


def test_the_arguments_of_an_mcp_call_are_hidden_too() -> None:
    call = {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "tools/call",
        "params": {"name": "book", "arguments": {"name": "Sanne de Vries", "party": 4}},
    }
    assert mask(call)["params"] == {
        "name": "book",
        "arguments": {"name": "[hidden: 14 characters]", "party": "[hidden number]"},
    }


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


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("(065) 501-8342", "(06•••••••••42"),
        ("tel:+31655018342", "tel:+31•••••••42"),
        ("Transfer to +31 6 55018342 failed: busy", "Transfer to +31•••••••••42 failed: busy"),
        ("card 4111 1111 1111 1111, IBAN NL91ABNA0417164300", "card [card], IBAN [iban]"),
        (
            "mail jan@example.nl about WO-2291 on 2026-01-16",
            "mail [email] about WO-2291 on 2026-01-16",
        ),
        (31655018342, "316••••••42"),  # a JSON number lost the +
        (655018342, "655••••42"),  # ... or the 0
        (20260116, 20260116),  # a date as a number stays
    ],
)
def test_the_detector_masks_inside_any_value_where_it_is_not_hidden_whole(
    value: Any, masked: Any
) -> None:
    payload = {"message": {"type": "status-update", "status": "ended", "error": value,
                           "metadata": {"note": value}}}  # fmt: skip
    result = message(payload)
    assert result["error"] == masked
    assert result["metadata"] == {"note": masked}
    assert mask_phone_numbers({"result": value}) == {"result": masked}


def test_turns_with_a_message_key_or_a_list_content_are_hidden() -> None:
    turns = [
        {"role": "user", "message": "my number is 0655018342"},
        {"role": "user", "content": [{"type": "text", "text": "four one one one"}]},
    ]
    masked = message({"message": {"type": "end-of-call-report", "messages": turns}})
    assert masked["messages"] == [
        {"role": "user", "message": "[hidden: 23 characters]"},
        {"role": "user", "content": [{"type": "[hidden: 4 characters]",
                                      "text": "[hidden: 16 characters]"}]},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("call_id", "shown"),
    [
        ("call-+31-6-5501-8342", "call-+31••••••••••42"),
        ("call-_+31612345678_XqaQ", "call-_+31•••••••78_XqaQ"),
        ("3f8c2d1e-6b7a-4c59-9e0d-2a1b4c6d8e0f", "3f8c2d1e-6b7a-4c59-9e0d-2a1b4c6d8e0f"),
        (None, "-"),
    ],
)
def test_call_ids_with_phone_numbers_are_masked_separators_and_all(
    call_id: str | None, shown: str
) -> None:
    assert mask_id(call_id) == shown
    if call_id is not None:
        assert message({"message": {"call": {"id": call_id}}})["call"]["id"] == shown


def test_the_detector_is_not_imported_on_the_request_path() -> None:
    code = (
        "import sys, voicehooks, voicehooks.app, voicehooks.testing\n"
        "assert not [m for m in sys.modules if m.startswith('voicehooks.privacy')], 'imported'\n"
        "assert 'phonenumbers' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
