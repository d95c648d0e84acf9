"""voicehooks.testing.factories: deliveries as the platform sends them, with fresh ids."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from voicehooks import AssistantRequest, EndOfCallReport, StatusUpdate, ToolCalls
from voicehooks.core.events import decode_delivery
from voicehooks.testing import (
    CUSTOMER_NUMBER,
    assistant_request,
    end_of_call_report,
    status_update,
    tool_call,
    tool_calls,
)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (tool_calls(tool_call("add", {"a": 1})), ToolCalls),
        (assistant_request(), AssistantRequest),
        (status_update(), StatusUpdate),
        (end_of_call_report(), EndOfCallReport),
    ],
)
def test_each_factory_builds_a_delivery_the_decoder_accepts(
    payload: dict[str, Any], expected: type[Any]
) -> None:
    event = decode_delivery(msgspec.json.encode(payload))
    assert type(event) is expected
    assert event.customer.number == CUSTOMER_NUMBER
    assert event.phone_number.number is not None
    assert event.timestamp is not None
    assert event.timestamp.tzinfo is not None


def test_factories_make_fresh_ids_unless_given() -> None:
    first, second = status_update(), status_update()
    assert first["message"]["call"]["id"] != second["message"]["call"]["id"]
    assert tool_call("a")["id"] != tool_call("a")["id"]
    assert status_update(call_id="call-7")["message"]["call"]["id"] == "call-7"
    assert tool_call("a", id="tool_7")["id"] == "tool_7"


def test_factory_keywords_replace_the_defaults() -> None:
    report = end_of_call_report(duration_seconds=3, summary="short", messages=[])["message"]
    assert (report["duration_seconds"], report["summary"], report["messages"]) == (3, "short", [])
    custom_time = "2026-01-14T09:41:07.412Z"
    assert status_update(timestamp=custom_time)["message"]["timestamp"] == custom_time
    request = assistant_request(customer_number=None)["message"]
    assert request["customer"] == {"number": None}


@pytest.mark.parametrize(
    ("status", "end_reason", "error"),
    [
        ("in-progress", None, None),
        ("ended", "user_hangup", None),
        ("ended-with-error", "user_hangup", "Speech-to-text connection failed"),
    ],
)
def test_status_update_fills_what_the_platform_sends_with_a_status(
    status: str, end_reason: str | None, error: str | None
) -> None:
    event = decode_delivery(msgspec.json.encode(status_update(status)))
    assert isinstance(event, StatusUpdate)
    assert (event.status, event.end_reason, event.error) == (status, end_reason, error)


def test_web_calls_carry_no_phone_numbers() -> None:
    event = decode_delivery(msgspec.json.encode(end_of_call_report(call_type="web_call")))
    assert event.call.type == "web_call"
    assert event.customer.number is None
    assert (event.phone_number.number, event.phone_number.id) == (None, None)


def test_metadata_arrives_as_assistant_metadata() -> None:
    body = tool_calls(tool_call("a"), metadata={"crm_contact_id": "CNT-1"})
    assert decode_delivery(msgspec.json.encode(body)).metadata == {"crm_contact_id": "CNT-1"}


def test_tool_call_arguments_may_be_a_json_string() -> None:
    body = tool_calls(tool_call("add", '{"a": 1, "b": 2}'))
    event = decode_delivery(msgspec.json.encode(body))
    assert isinstance(event, ToolCalls)
    assert event.tool_call_list[0].arguments == {"a": 1, "b": 2}
