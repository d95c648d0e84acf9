"""``Recorder``: verified deliveries appended as JSON lines by a thread, never by the loop."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
from pathlib import Path

import pytest

from voicehooks.observe import Delivery, ToolRun
from voicehooks.observe.recording import Recorder, read_recording

BODY = b'{"message":{"type":"tool-calls","call":{"id":"c-1"}}}'
HEADERS = [
    (b"host", b"127.0.0.1"),
    (b"content-type", b"application/json"),
    (b"x-webhook-timestamp", b"1767182400"),
    (b"x-webhook-signature", b"sha256=abc"),
    (b"x-webhook-event", b"tool-calls"),
    (b"cookie", b"secret-cookie"),
]


def delivery(
    status: int = 200, body: bytes | None = BODY, event: str | None = "tool-calls"
) -> Delivery:
    record = Delivery(HEADERS)
    record.body = body
    record.event_type = event
    record.call_id = "c-1" if event else None
    record.status = status
    record.outcome = "answered" if status == 200 else f"rejected_{status}"
    record.answer = b'{"results":[{"tool_call_id":"t-1","result":"ok"}]}'
    record.duration_seconds = 0.0123
    run = ToolRun("lookup", "t-1", registered=True)
    run.end("ok")
    record.tools.append(run)
    return record


def test_a_delivery_becomes_one_line_with_the_signed_headers_only(tmp_path: Path) -> None:
    path = tmp_path / "deliveries.jsonl"
    recorder = Recorder(path, raw=True)
    recorder.delivery_answered(delivery())
    recorder.close()
    (line,) = path.read_bytes().splitlines()
    data = json.loads(line)
    assert data["headers"] == {
        "content-type": "application/json",
        "x-webhook-timestamp": "1767182400",
        "x-webhook-signature": "sha256=abc",
        "x-webhook-event": "tool-calls",
    }
    assert data["body"].encode() == BODY  # byte for byte: a replay verifies without --resign
    assert data["redacted"] is False
    (recording,) = read_recording(path)
    assert recording.event == "tool-calls"
    assert recording.call_id == "c-1"
    assert recording.status == 200
    assert recording.outcome == "answered"
    assert recording.duration_ms == 12.3
    assert recording.answer == '{"results":[{"tool_call_id":"t-1","result":"ok"}]}'
    assert [(t.name, t.id, t.outcome) for t in recording.tools] == [("lookup", "t-1", "ok")]
    assert recorder.written == 1


def test_the_file_is_created_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "deliveries.jsonl"
    Recorder(path).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_an_existing_file_is_appended_to_and_warned_about_when_others_can_read_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "deliveries.jsonl"
    path.write_text("")
    path.chmod(0o644)
    for _ in range(2):
        recorder = Recorder(path)
        recorder.delivery_answered(delivery())
        recorder.close()
    assert len(list(read_recording(path))) == 2
    assert "can be read by other users" in caplog.text


@pytest.mark.parametrize(
    "rejected",
    [delivery(status=401), delivery(status=400, event=None), delivery(body=None, event=None)],
)
def test_rejected_or_undecoded_deliveries_are_not_recorded(
    tmp_path: Path, rejected: Delivery
) -> None:
    path = tmp_path / "deliveries.jsonl"
    recorder = Recorder(path)
    recorder.delivery_answered(rejected)
    recorder.close()
    assert path.read_bytes() == b""


def test_a_slow_disk_drops_records_instead_of_blocking(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "deliveries.jsonl"
    size = len(BODY) + len(delivery().answer)
    recorder = Recorder(path, max_pending_bytes=2 * size)
    disk = threading.Event()
    original = recorder._append

    def stuck_write(data: bytes) -> None:
        disk.wait(10)  # the disk hangs until the test lets it go
        original(data)

    monkeypatch.setattr(recorder, "_append", stuck_write)
    with caplog.at_level(logging.WARNING, logger="voicehooks"):
        for _ in range(5):  # returns at once each time: nothing waits for the disk
            recorder.delivery_answered(delivery())
    assert recorder.dropped >= 2
    assert caplog.text.count("falls behind") == 1  # once per run of drops
    disk.set()
    recorder.close()
    assert len(list(read_recording(path))) == 5 - recorder.dropped


def test_a_write_error_is_logged_and_the_recorder_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = Recorder(tmp_path / "deliveries.jsonl")
    calls = []

    def failing_write(data: bytes) -> None:
        calls.append(data)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(recorder, "_append", failing_write)
    recorder.delivery_answered(delivery())
    recorder.close()
    assert "No space left on device" in caplog.text
    assert recorder.written == 0


def test_close_twice_is_harmless(tmp_path: Path) -> None:
    recorder = Recorder(tmp_path / "deliveries.jsonl")
    recorder.close()
    recorder.close()


def test_a_line_that_is_not_a_recording_names_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "deliveries.jsonl"
    recorder = Recorder(path)
    recorder.delivery_answered(delivery())
    recorder.close()
    with open(path, "a") as file:
        file.write("\n{not json\n")
    with pytest.raises(ValueError, match=r"deliveries.jsonl:3: not a recording"):
        list(read_recording(path))


def test_a_record_that_cannot_be_built_is_logged_and_the_next_one_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "deliveries.jsonl"
    recorder = Recorder(path)
    broken = delivery()
    broken.tools = [None]  # type: ignore[list-item]
    recorder.delivery_answered(broken)
    recorder.delivery_answered(delivery())
    recorder.close()
    assert "recording a delivery failed: AttributeError" in caplog.text
    assert len(list(read_recording(path))) == 1


CARD = "4111 1111 1111 1111"
IBAN = "NL91ABNA0417164300"
REPORT = json.dumps(
    {
        "message": {
            "type": "end-of-call-report",
            "call": {"id": "call-+31655018342"},
            "summary": f"The caller paid with card {CARD} from {IBAN}.",
            "analysis": {"notes": f"refund to {IBAN}", "score": 4},
            "messages": [
                {"role": "user", "content": "my card is four one one one one one one one"},
                {"role": "assistant", "content": "go on"},
                {"role": "user", "content": "one one one one one one one one"},
                {
                    "role": "user",
                    "message": "call me on zero six five five zero one eight three four two",
                },
                {"role": "user", "content": [{"type": "text", "text": f"iban {IBAN}"}]},
            ],
        }
    }
).encode()


def test_a_recording_is_redacted_by_default_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "deliveries.jsonl"
    recorder = Recorder(path)
    report = delivery(body=REPORT, event="end-of-call-report")
    report.call_id = "call-+31655018342"
    report.answer = json.dumps({"results": [{"result": f"card {CARD} charged"}]}).encode()
    recorder.delivery_answered(report)
    recorder.close()
    text = path.read_text()
    for secret in (CARD, IBAN, "4111", "31655018342", "zero six", "one one one one"):
        assert secret not in text
    (recording,) = read_recording(path)
    assert recording.redacted
    assert "x-webhook-signature" not in recording.headers  # the body no longer matches it
    body = json.loads(recording.body)["message"]
    assert body["summary"] == "The caller paid with card [card] from [iban]."
    assert body["analysis"] == {"notes": "refund to [iban]", "score": 4}
    turns = body["messages"]
    assert turns[0]["content"] == "my card is [card]"  # a number spoken over two turns
    assert turns[2]["content"] == "[card]"
    assert turns[3]["message"] == "call me on [phone]"
    assert turns[4]["content"] == [{"type": "text", "text": "iban [iban]"}]
    assert recording.call_id == "call-[phone]"
    assert recording.answer == '{"results":[{"result":"card [card] charged"}]}'


def test_a_raw_recording_keeps_everything_and_warns_at_startup(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "deliveries.jsonl"
    with caplog.at_level(logging.WARNING, logger="voicehooks"):
        recorder = Recorder(path, raw=True)
    assert "WITHOUT redaction" in caplog.text
    recorder.delivery_answered(delivery(body=REPORT, event="end-of-call-report"))
    recorder.close()
    (recording,) = read_recording(path)
    assert not recording.redacted
    assert recording.body.encode() == REPORT
