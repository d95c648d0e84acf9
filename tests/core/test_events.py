"""voicehooks.core.events: every fixture decodes; web calls, unknown fields and types; raw
access."""

from __future__ import annotations

import datetime
import gc
import json
import re

import msgspec
import pytest

from tests.helpers.paths import FIXTURES
from voicehooks.core.events import (
    EVENT_NAMES,
    AssistantRequest,
    Call,
    CallStatus,
    EndOfCallReport,
    StatusUpdate,
    ToolCalls,
    UnknownEventType,
    decode_delivery,
)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("assistant-request.json", AssistantRequest),
        ("tool-calls.json", ToolCalls),
        ("tool-calls-multi.json", ToolCalls),
        ("status-update-in-progress.json", StatusUpdate),
        ("status-update-ended.json", StatusUpdate),
        ("end-of-call-report.json", EndOfCallReport),
    ],
)
def test_every_spec_fixture_decodes_to_its_event(name: str, expected: type) -> None:
    event = decode_delivery(fixture(name))
    assert type(event) is expected
    assert event.call.id == "3f8c2d1e-6b7a-4c59-9e0d-2a1b4c6d8e0f"
    assert event.raw == json.loads(fixture(name))["message"]
    assert EVENT_NAMES[event.type] is expected


def test_tool_calls_fields() -> None:
    event = decode_delivery(fixture("tool-calls-multi.json"))
    assert isinstance(event, ToolCalls)
    names = [call.name for call in event.tool_call_list]
    assert names == ["book_service_slot", "send_sms_confirmation", "check_repair_status"]
    assert event.tool_call_list[2].arguments == {"order_number": "WO-2317"}
    assert event.metadata["crm_contact_id"] == "CNT-40817"
    assert event.customer.number == "+31655018342"
    assert event.phone_number.name == "Rijwielhuis Kade Service Line"


def test_end_of_call_report_fields() -> None:
    event = decode_delivery(fixture("end-of-call-report.json"))
    assert isinstance(event, EndOfCallReport)
    assert event.duration_seconds == 342
    assert event.end_reason == "user_hangup"
    assert len(event.messages) == 6
    assert event.messages[0].role == "assistant"
    assert event.analysis is not None
    assert event.analysis["resolved"] is True
    assert event.started_at == datetime.datetime(2026, 1, 14, 9, 41, 9, 3000, tzinfo=datetime.UTC)
    assert event.assistant is not None
    assert "analysis_plan" in event.assistant


def test_a_long_transcript_decodes_without_feeding_the_garbage_collector() -> None:
    # Transcript turns are plain values outside the collector's bookkeeping: decoding a
    # 2,000-turn report must not count 2,000 allocations towards the next collection.
    report = json.loads(fixture("end-of-call-report.json"))
    report["message"]["messages"] = [
        {"role": "user" if i % 2 else "assistant", "content": f"turn {i}"} for i in range(2000)
    ]
    body = json.dumps(report).encode()
    gc.disable()
    try:
        gc.collect()
        before = gc.get_count()[0]
        event = decode_delivery(body)
        allocated = gc.get_count()[0] - before
    finally:
        gc.enable()
    assert isinstance(event, EndOfCallReport)
    assert [m.content for m in event.messages[:2]] == ["turn 0", "turn 1"]
    assert event.messages[1].role == "user"
    assert event.messages[0] == event.messages[0].__class__(role="assistant", content="turn 0")
    assert allocated < 100


def test_status_update_exposes_the_new_status() -> None:
    event = decode_delivery(fixture("status-update-ended.json"))
    assert isinstance(event, StatusUpdate)
    assert event.status == CallStatus.ENDED
    assert event.end_reason == "user_hangup"


def envelope(**message: object) -> bytes:
    base: dict[str, object] = {
        "type": "status-update",
        "timestamp": "2026-01-14T09:41:09.003Z",
        "call": {"id": "c1", "type": "web_call", "status": "in-progress"},
    }
    base.update(message)
    return msgspec.json.encode({"message": base})


def test_web_calls_with_null_numbers_decode() -> None:
    event = decode_delivery(
        envelope(phone_number={"id": None, "number": None, "name": None}, customer={"number": None})
    )
    assert event.phone_number.number is None
    assert event.customer.number is None
    assert event.assistant is None
    assert event.metadata == {}


def test_missing_phone_number_and_customer_default_to_empty() -> None:
    event = decode_delivery(envelope())
    assert event.phone_number.number is None
    assert event.customer.number is None


def test_unknown_fields_and_statuses_pass_through() -> None:
    event = decode_delivery(
        envelope(call={"id": "c1", "type": "sip_call", "status": "on-hold", "new": 1}, extra=[1])
    )
    assert event.call == Call(id="c1", type="sip_call", status="on-hold")
    assert event.raw["extra"] == [1]


def test_an_unknown_event_type_is_reported_with_its_call_id() -> None:
    with pytest.raises(UnknownEventType) as info:
        decode_delivery(envelope(type="transcript"))
    assert info.value.event_type == "transcript"
    assert info.value.call_id == "c1"


def test_an_unknown_event_type_without_a_call_has_no_call_id() -> None:
    with pytest.raises(UnknownEventType) as info:
        decode_delivery(b'{"message": {"type": "hang"}}')
    assert info.value.call_id is None


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b"{}", "message"),
        (b'{"message": []}', "$.message"),
        (b'{"message": {"call": {"id": "c1"}}}', "type"),
        (b'{"message": {"type": 7}}', "$.message.type"),
        (envelope(type="tool-calls", tool_call_list={}), "$.message.tool_call_list"),
        (envelope(type="tool-calls", tool_call_list=None), "$.message.tool_call_list"),
        (envelope(type="tool-calls"), "tool_call_list"),
        (envelope(type="tool-calls", tool_call_list=["x"]), "$.message.tool_call_list[0]"),
        (
            envelope(type="tool-calls", tool_call_list=[{"id": 5, "function": {"name": "a"}}]),
            "$.message.tool_call_list[0].id",
        ),
        (
            envelope(type="tool-calls", tool_call_list=[{"function": {"name": "a"}}]),
            "$.message.tool_call_list[0]",
        ),
        (
            envelope(type="tool-calls", tool_call_list=[{"id": "t1", "function": {}}]),
            "$.message.tool_call_list[0].function",
        ),
    ],
)
def test_only_the_envelopes_essentials_are_refused_with_their_path(body: bytes, path: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=re.escape(path)):
        decode_delivery(body)


def test_invalid_json_is_a_decode_error() -> None:
    with pytest.raises(msgspec.DecodeError):
        decode_delivery(b'{"message": ')


def test_arguments_as_a_json_string_are_decoded() -> None:
    body = envelope(
        type="tool-calls",
        tool_call_list=[
            {"id": "t1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},
            {"id": "t2", "type": "function", "function": {"name": "f", "arguments": "not json"}},
            {"id": "t3", "type": "function", "function": {"name": "f", "arguments": [1]}},
            {"id": "t4", "function": {"name": "f"}},
        ],
    )
    event = decode_delivery(body)
    assert isinstance(event, ToolCalls)
    assert [call.arguments for call in event.tool_call_list] == [{"a": 1}, {}, {}, {}]
    assert event.tool_call_list[3].type == "function"


def test_raw_of_an_event_built_in_code_reencodes_it() -> None:
    event = StatusUpdate(
        timestamp=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        call=Call(id="c9", type="web_call", status="ended"),
    )
    assert event.raw["type"] == "status-update"
    assert event.raw["call"]["id"] == "c9"
    assert event.assistant is None


def test_assistant_that_is_not_an_object_reads_as_empty() -> None:
    event = decode_delivery(envelope(assistant=[1, 2]))
    assert event.assistant == {}
    assert event.metadata == {}
    event = decode_delivery(envelope(assistant={"metadata": "nope"}))
    assert event.metadata == {}
