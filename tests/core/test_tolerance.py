"""voicehooks.core.tolerance: a drifted field never costs a delivery; the essentials stay strict.

Each row is a delivery whose fields drifted from the documented types (numbers, nulls, wrong
containers, epoch times, unknown nested fields). Every one must reach its handler with the
values it could keep, in-process and over a real socket, and name what it could not read.
"""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.helpers.servers import Server, running_server
from voicehooks import VoiceHooks, sign
from voicehooks.core.events import (
    AssistantRequest,
    EndOfCallReport,
    Event,
    StatusUpdate,
    ToolCalls,
    decode_delivery,
)
from voicehooks.core.tolerance import MAX_DEPTH, DecodeIssue, repair
from voicehooks.testing import (
    WebhookClient,
    assistant_request,
    end_of_call_report,
    status_update,
    tool_call,
    tool_calls,
)

SECRET = "whsec_tolerance_tests"
EPOCH = 1767182400  # 2025-12-31T12:00:00Z

# (id, payload, what the handler must see, the paths named as unreadable)
DRIFTED: list[tuple[str, dict[str, Any], dict[str, Any], list[str]]] = [
    (
        "report-float-duration",
        end_of_call_report(call_id="r1", duration_seconds=95.0),
        {"duration_seconds": 95},
        [],
    ),
    (
        "report-string-duration",
        end_of_call_report(call_id="r2", duration_seconds="95"),
        {"duration_seconds": 95},
        [],
    ),
    (
        "report-null-transcript-content",
        end_of_call_report(
            call_id="r3",
            messages=[{"role": "assistant", "content": None}, {"role": "user", "content": "hi"}],
        ),
        {"contents": ["", "hi"]},
        [],
    ),
    (
        "report-null-customer",
        end_of_call_report(call_id="r4", customer=None),
        {"customer": None},
        [],
    ),
    ("report-numeric-summary", end_of_call_report(call_id="r5", summary=12), {"summary": "12"}, []),
    (
        "report-null-status",
        end_of_call_report(call={"id": "r6", "type": "web_call", "status": None}),
        {"status": ""},
        [],
    ),
    (
        "report-wrong-containers",
        end_of_call_report(call_id="r7", analysis="n/a", messages={"role": "user"}),
        {"analysis": None, "contents": []},
        ["$.message.messages", "$.message.analysis"],
    ),
    (
        "report-unreadable-duration-and-time",
        end_of_call_report(call_id="r8", duration_seconds=9.5, started_at="at noon"),
        {"duration_seconds": None},
        ["$.message.duration_seconds", "$.message.started_at"],
    ),
    (
        "report-epoch-past-any-float",
        end_of_call_report(call_id="r11", started_at=-(10**312), ended_at=10**400, timestamp=EPOCH),
        {"timestamp": "2025-12-31T12:00:00+00:00", "ended_at": None},
        ["$.message.started_at", "$.message.ended_at"],
    ),
    (
        "report-nan-and-infinity-strings",
        end_of_call_report(call_id="r12", duration_seconds="NaN", ended_at="Infinity"),
        {"duration_seconds": None, "ended_at": None},
        ["$.message.duration_seconds", "$.message.ended_at"],
    ),
    (
        "report-epoch-milliseconds",
        end_of_call_report(call_id="r9", timestamp=EPOCH * 1000, ended_at=EPOCH),
        {"timestamp": "2025-12-31T12:00:00+00:00", "ended_at": "2025-12-31T12:00:00+00:00"},
        [],
    ),
    (
        "report-unknown-nested-fields",
        end_of_call_report(
            call={
                "id": "r10",
                "type": "inbound_phone_call",
                "status": "ended",
                "region": {"eu": True},
            },
            transcript_v2=[1, 2],
        ),
        {"status": "ended"},
        [],
    ),
    (
        "status-number-and-null-fields",
        status_update("ended", call_id="s1", end_reason=7, error=None, timestamp=EPOCH),
        {"end_reason": "7", "timestamp": "2025-12-31T12:00:00+00:00"},
        [],
    ),
    (
        "status-timestamp-past-any-float",
        status_update("ended", call_id="s3", timestamp=10**312),
        {"timestamp": None},
        ["$.message.timestamp"],
    ),
    (
        "status-list-for-string",
        status_update("ended-with-error", call_id="s2", error=["stt", "down"]),
        {"error": None},
        ["$.message.error"],
    ),
    (
        "assistant-request-null-phone-number-and-object-timestamp",
        assistant_request(call_id="a1", phone_number=None, timestamp={"at": "now"}),
        {"timestamp": None},
        ["$.message.timestamp"],
    ),
    (
        "tool-calls-drifted-envelope",
        tool_calls(
            tool_call("echo", {"text": "ok"}, id="t1"),
            call_id="c1",
            customer="+31600000000",
            timestamp=str(EPOCH),
        ),
        {"result": "ok"},
        ["$.message.customer"],
    ),
]


def build_app(seen: list[tuple[Event, dict[str, Any]]]) -> VoiceHooks:
    app = VoiceHooks(secret=SECRET)

    def record(event: Event) -> None:
        seen.append((event, facts(event)))

    app.on("end-of-call-report", run_before_answer=True)(record)
    app.on("status-update", run_before_answer=True)(record)

    @app.on("assistant-request")
    def choose(event: AssistantRequest) -> None:
        record(event)

    @app.tool
    def echo(text: str, event: ToolCalls) -> str:
        """Say the text back."""
        record(event)
        return text

    return app


def facts(event: Event) -> dict[str, Any]:
    """What the table's expectations speak of, read from the typed event."""
    found: dict[str, Any] = {
        "status": event.call.status,
        "customer": event.customer.number,
        "timestamp": event.timestamp.isoformat() if event.timestamp else None,
    }
    if isinstance(event, EndOfCallReport):
        found.update(
            duration_seconds=event.duration_seconds,
            summary=event.summary,
            contents=[message.content for message in event.messages],
            analysis=event.analysis,
            ended_at=event.ended_at.isoformat() if event.ended_at else None,
        )
    if isinstance(event, StatusUpdate):
        found.update(end_reason=event.end_reason, error=event.error)
    return found


def check(
    seen: list[tuple[Event, dict[str, Any]]], expected: dict[str, Any], paths: list[str]
) -> None:
    assert len(seen) == 1
    event, found = seen[0]
    for key, value in expected.items():
        if key != "result":
            assert found[key] == value, key
    assert [issue.path for issue in event.decode_issues] == paths


pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("payload", "expected", "paths"), [row[1:] for row in DRIFTED], ids=[row[0] for row in DRIFTED]
)
async def test_a_drifted_delivery_reaches_its_handler_with_what_could_be_kept(
    payload: dict[str, Any],
    expected: dict[str, Any],
    paths: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[tuple[Event, dict[str, Any]]] = []
    client = WebhookClient(build_app(seen), secret=SECRET)
    with caplog.at_level(logging.DEBUG, "voicehooks"):
        response = await client.post(payload)
    assert response.status_code == 200, response
    if "result" in expected:
        assert response.json()["results"][0]["result"] == expected["result"]
    check(seen, expected, paths)
    warnings = [r for r in caplog.records if "could not be read" in r.getMessage()]
    assert len(warnings) == (1 if paths else 0)  # one WARNING per delivery, naming the paths
    for path in paths:
        assert path in warnings[0].getMessage()


async def test_the_warning_names_paths_and_types_never_values(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[tuple[Event, dict[str, Any]]] = []
    client = WebhookClient(build_app(seen), secret=SECRET)
    payload = end_of_call_report(
        call_id="call-_+31612345678_XqaQ",
        summary={"said": "my number is +31612345678"},
        duration_seconds="ninety-five",
    )
    with caplog.at_level(logging.DEBUG, "voicehooks"):
        response = await client.post(payload)
    assert response.status_code == 200
    assert "31612345678" not in caplog.text
    assert "ninety-five" not in caplog.text
    assert "$.message.summary (expected string)" in caplog.text
    assert "$.message.duration_seconds (expected integer)" in caplog.text


def test_a_delivery_that_fits_takes_the_strict_path_and_has_no_issues() -> None:
    event = decode_delivery(msgspec.json.encode(end_of_call_report(duration_seconds=95)))
    assert event.decode_issues == ()
    assert "_issues" not in event.__dict__


def test_the_raw_payload_of_a_repaired_delivery_is_the_one_that_arrived() -> None:
    payload = end_of_call_report(duration_seconds=95.0, customer=None)
    event = decode_delivery(msgspec.json.encode(payload))
    assert event.raw == payload["message"]


def test_user_data_typed_any_passes_through_untouched() -> None:
    analysis = {"score": None, "nested": {"n": "4"}, "list": [None, 1.0]}
    event = decode_delivery(
        msgspec.json.encode(end_of_call_report(analysis=analysis, duration_seconds="5"))
    )
    assert isinstance(event, EndOfCallReport)
    assert event.analysis == analysis


def test_a_tool_call_keeps_its_arguments_exactly() -> None:
    payload = tool_calls(tool_call("book", {"party_size": None, "when": 1.0}), customer=5)
    event = decode_delivery(msgspec.json.encode(payload))
    assert isinstance(event, ToolCalls)
    assert event.tool_call_list[0].arguments == {"party_size": None, "when": 1.0}


# -- over a real socket ------------------------------------------------------------------

APP = '''
import sys

from voicehooks import VoiceHooks
from voicehooks.core.events import Event

app = VoiceHooks()


def record(event: Event) -> None:
    issues = ",".join(issue.path for issue in event.decode_issues)
    sys.stdout.write(f"handled {event.type} {event.call.id} [{issues}]\\n")
    sys.stdout.flush()


app.on("end-of-call-report", run_before_answer=True)(record)
app.on("status-update", run_before_answer=True)(record)
app.on("assistant-request")(record)


@app.tool
def echo(text: str, event: Event) -> str:
    """Say the text back."""
    record(event)
    return text
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("tolerance")
    (folder / "drift_app.py").write_text(APP)
    with running_server(
        str(folder / "drift_app.py"), folder, env={"VOICEHOOKS_SECRET": SECRET}
    ) as running:
        yield running


def post(port: int, body: bytes) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/", body=body, headers=sign(body, SECRET))
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.slow
def test_every_drifted_delivery_reaches_its_handler_over_a_real_socket(server: Server) -> None:
    for name, payload, _, paths in DRIFTED:
        status, body = post(server.port, msgspec.json.encode(payload))
        assert status == 200, (name, body)
        message = payload["message"]
        call_id = (message.get("call") or {}).get("id")
        assert f"handled {message['type']} {call_id} [{','.join(paths)}]" in server.log(), name


@pytest.mark.slow
@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b"not json", "not valid JSON"),
        (b'{"msg": {}}', "message"),
        (b'{"message": {"call": {"id": "c1"}}}', "type"),
        (b'{"message": {"type": 7}}', "$.message.type"),
        (
            b'{"message": {"type": "tool-calls", "tool_call_list": [{"id": 1}]}}',
            "$.message.tool_call_list[0].id",
        ),
    ],
)
def test_the_essentials_are_still_refused_over_a_real_socket(
    server: Server, body: bytes, path: str
) -> None:
    status, answer = post(server.port, body)
    assert status == 400
    assert path in json.loads(answer)["error"]


def nested(depth: int, key: str = "call", **fields: Any) -> bytes:
    """A report whose ``key`` holds arrays ``depth`` deep (the message is level 1)."""
    payload = end_of_call_report(call_id="deep", **fields)
    payload["message"][key] = HOLE
    body = msgspec.json.encode(payload)
    return body.replace(f'"{HOLE}"'.encode(), b"[" * depth + b"]" * depth, 1)


HOLE = "__HOLE__"


async def test_a_message_nested_up_to_the_bound_is_repaired() -> None:
    seen: list[tuple[Event, dict[str, Any]]] = []
    client = WebhookClient(build_app(seen), secret=SECRET)
    response = await client.post(nested(MAX_DEPTH - 1))
    assert response.status_code == 200
    assert [issue.path for issue in seen[0][0].decode_issues] == ["$.message.call"]


# The same answer on every Python: 3.11's msgspec gives up near 1000 levels, 3.13's near
# 10,000, and the bound lies below both.
@pytest.mark.parametrize("depth", [MAX_DEPTH, 3000])
async def test_a_message_nested_past_the_bound_is_a_400_naming_the_field(depth: int) -> None:
    seen: list[tuple[Event, dict[str, Any]]] = []
    client = WebhookClient(build_app(seen), secret=SECRET)
    response = await client.post(nested(depth))
    assert response.status_code == 400
    assert "at `$.message.call`" in response.json()["error"]
    if depth == MAX_DEPTH:
        assert response.json()["error"] == (
            "the payload does not fit the webhook envelope: "
            "Nested more than 128 levels deep - at `$.message.call`"
        )
    assert seen == []


async def test_a_deep_key_the_sender_made_up_is_not_echoed() -> None:
    client = WebhookClient(build_app([]), secret=SECRET)
    drifted = nested(MAX_DEPTH, key="SENDER-KEY-MARKER", duration_seconds="ninety")
    response = await client.post(drifted)
    assert response.status_code == 400
    assert response.json()["error"].endswith("Nested more than 128 levels deep - at `$.message`")


class Reading(msgspec.Struct):
    level: float = 0.0


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-Infinity", "1e999"])
def test_nan_and_infinity_strings_are_not_read_as_numbers(value: str) -> None:
    repaired, issues = repair({"level": value}, Reading)
    assert repaired == {}
    assert issues == [DecodeIssue("$.message.level", "number")]


def test_issue_paths_are_written_as_json_paths(tmp_path: Path) -> None:
    payload = end_of_call_report(messages=[{"role": "user", "content": "a"}, 5, {"role": 3}])
    event = decode_delivery(msgspec.json.encode(payload))
    assert isinstance(event, EndOfCallReport)
    assert [(i.path, i.expected) for i in event.decode_issues] == [
        ("$.message.messages[1]", "object"),
    ]
    assert [(m.role, m.content) for m in event.messages] == [("user", "a"), ("3", "")]
