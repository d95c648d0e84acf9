"""``redact_json`` / ``redact_body``: a whole webhook body, its transcripts read turn by turn."""

from __future__ import annotations

import json

from voicehooks.privacy import redact_body, redact_json

CARD = "4111 1111 1111 1111"


def test_every_string_is_redacted_and_numbers_and_keys_stay() -> None:
    document = {
        "summary": f"card {CARD}",
        "analysis": {"iban": "NL91ABNA0417164300", "stars": 5, "ok": True, "none": None},
        "ids": ["call-+31655018342", "WO-2291"],
        "timestamp": 1767182400,
    }
    assert redact_json(document) == {
        "summary": "card [card]",
        "analysis": {"iban": "[iban]", "stars": 5, "ok": True, "none": None},
        "ids": ["call-[phone]", "WO-2291"],
        "timestamp": 1767182400,
    }


IBAN = "NL91ABNA0417164300"


def test_a_number_spoken_over_turns_is_found_in_each_shape_of_turn() -> None:
    turns = [
        {"role": "user", "content": "my card is four one one one one one one one"},
        {"role": "assistant", "message": "go on", "seconds_from_start": 3},
        {"role": "user", "content": [{"type": "text", "text": "one one one one one one one one"}]},
        {"role": "tool", "content": [{"type": "tool_call", "arguments": {"iban": IBAN}}]},
    ]  # fmt: skip
    assert redact_json({"messages": turns}) == {
        "messages": [
            {"role": "user", "content": "my card is [card]"},
            {"role": "assistant", "message": "go on", "seconds_from_start": 3},
            {"role": "user", "content": [{"type": "text", "text": "[card]"}]},
            {"role": "tool", "content": [{"type": "tool_call", "arguments": {"iban": "[iban]"}}]},
        ]
    }


def test_turns_far_apart_in_time_are_read_alone() -> None:
    turns = [
        {"role": "user", "content": "four one one one one one one one", "seconds_from_start": 1},
        {"role": "user", "content": "one one one one one one one one", "seconds_from_start": 60},
    ]
    assert redact_json(turns) == turns


def test_a_body_is_redacted_and_one_that_is_not_json_as_text() -> None:
    body = json.dumps({"message": {"summary": f"card {CARD}"}}).encode()
    assert json.loads(redact_body(body)) == {"message": {"summary": "card [card]"}}
    assert redact_body(f"not json, card {CARD}".encode()) == b"not json, card [card]"
    assert redact_body(b"nul zes vijf vijf nul een acht drie vier twee", languages=["nl"]) == (
        b"[phone]"
    )
