"""``voicehooks replay`` against a real ``voicehooks run``, from hand-made recordings."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from click.testing import CliRunner

from tests.helpers.paths import ROOT
from tests.helpers.servers import Server, running_server
from voicehooks.cli import main
from voicehooks.core.signing import sign
from voicehooks.observe import Delivery
from voicehooks.observe.recording import Recorder, Recording
from voicehooks.testing import status_update, tool_call, tool_calls

SECRET = "whsec_cli_replay"
QUICKSTART = str(ROOT / "examples" / "quickstart.py")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("replay")
    with running_server(QUICKSTART, directory, env={"VOICEHOOKS_SECRET": SECRET}) as running:
        yield running


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("VOICEHOOKS_SECRET", SECRET)
    return CliRunner()


def recording(payload: dict[str, Any], answer: Any, *, stamp: int | None = None) -> Recording:
    body = json.dumps(payload).encode()
    event = payload["message"]["type"]
    headers = sign(body, SECRET, int(time.time()) if stamp is None else stamp, event=event)
    tools = [
        {"name": call["function"]["name"], "id": call["id"], "outcome": "ok", "ms": 0.1}
        for call in payload["message"].get("tool_call_list", [])
    ]
    return msgspec.convert(
        {
            "received_at": time.time(),
            "event": event,
            "call_id": payload["message"]["call"]["id"],
            "headers": headers,
            "body": body.decode(),
            "status": 200,
            "outcome": "answered",
            "answer": json.dumps(answer),
            "duration_ms": 1.0,
            "tools": tools,
        },
        Recording,
    )


def write(path: Path, *recordings: Recording) -> str:
    path.write_bytes(b"".join(msgspec.json.encode(r) + b"\n" for r in recordings))
    return str(path)


def lookup(order: str, call_id: str, status: str) -> Recording:
    payload = tool_calls(
        tool_call("check_repair_status", {"order_number": order}, id="tool_1"), call_id=call_id
    )
    result = {"order_number": order, "status": status}
    return recording(payload, {"results": [{"tool_call_id": "tool_1", "result": result}]})


def test_the_same_answers_exit_0(server: Server, runner: CliRunner, tmp_path: Path) -> None:
    path = write(
        tmp_path / "r.jsonl",
        lookup("WO-2291", "call-a", "ready for pickup"),
        recording(status_update("ended", call_id="call-a"), {}),
    )
    result = runner.invoke(main, ["replay", path, "--url", server.url + "/"])
    assert result.exit_code == 0, result.output
    assert "same    1 tool-calls         call=call-a 200" in result.output
    assert result.output.splitlines()[-1] == "2 replayed: 2 same, 0 different"


def test_a_changed_answer_is_a_diff_and_exit_1(
    server: Server, runner: CliRunner, tmp_path: Path
) -> None:
    path = write(tmp_path / "r.jsonl", lookup("WO-2317", "call-b", "ready for pickup"))
    result = runner.invoke(main, ["replay", path, "--url", server.url + "/", "--resign"])
    assert result.exit_code == 1
    assert "DIFF    1 tool-calls" in result.output
    assert '-        "status": "ready for pickup"' in result.output
    assert '+        "status": "waiting for parts"' in result.output
    assert "1 replayed: 0 same, 1 different" in result.output


def test_stale_signatures_need_resign(server: Server, runner: CliRunner, tmp_path: Path) -> None:
    old = recording(status_update("ended", call_id="call-c"), {}, stamp=int(time.time()) - 3600)
    path = write(tmp_path / "r.jsonl", old)
    stale = runner.invoke(main, ["replay", path, "--url", server.url + "/"])
    assert stale.exit_code == 1
    assert "-status 200" in stale.output
    assert "+status 401" in stale.output
    assert "add --resign" in stale.output
    fresh = runner.invoke(main, ["replay", path, "--url", server.url + "/", "--resign"])
    assert fresh.exit_code == 0, fresh.output


@pytest.mark.parametrize(
    ("filters", "count"),
    [
        (["event=tool-calls"], 2),
        (["call=call-d"], 2),
        (["tool=check_repair_status", "call=call-e"], 1),
        (["status=200", "outcome=answered"], 3),
        (["tool=nothing"], 0),
    ],
)
def test_filters_narrow_what_is_sent(
    server: Server, runner: CliRunner, tmp_path: Path, filters: list[str], count: int
) -> None:
    path = write(
        tmp_path / "r.jsonl",
        lookup("WO-2291", "call-d", "ready for pickup"),
        recording(status_update("ended", call_id="call-d"), {}),
        lookup("WO-2291", "call-e", "ready for pickup"),
    )
    args = [arg for text in filters for arg in ("--filter", text)]
    result = runner.invoke(main, ["replay", path, "--url", server.url + "/", "--resign", *args])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == f"{count} replayed: {count} same, 0 different"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--filter", "colour=red"], "write KEY=VALUE"),
        (["--filter", "event"], "write KEY=VALUE"),
    ],
)
def test_usage_errors_exit_2(
    runner: CliRunner, tmp_path: Path, args: list[str], message: str
) -> None:
    path = write(tmp_path / "r.jsonl")
    result = runner.invoke(main, ["replay", path, *args])
    assert result.exit_code == 2
    assert message in result.output


def test_resign_without_a_secret_and_a_broken_file_are_usage_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("VOICEHOOKS_SECRET", raising=False)
    path = write(tmp_path / "r.jsonl")
    result = CliRunner().invoke(main, ["replay", path, "--resign"])
    assert result.exit_code == 2
    assert "--resign needs" in result.output
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{}\n")
    result = CliRunner().invoke(main, ["replay", str(broken)])
    assert result.exit_code == 2
    assert "broken.jsonl:1: not a recording" in result.output
    result = CliRunner().invoke(main, ["replay", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 2
    assert "cannot read" in result.output


def test_a_redacted_recording_replays_with_resign_and_the_output_is_redacted(
    server: Server, runner: CliRunner, tmp_path: Path
) -> None:
    """The Recorder's own line (redacted by default) signed again; the call id's number and a
    card in the changed answer are printed as their kinds."""
    path = tmp_path / "r.jsonl"
    recorder = Recorder(path)
    delivery = Delivery([])
    payload = tool_calls(
        tool_call("check_repair_status", {"order_number": "WO-2291"}, id="tool_1"),
        call_id="call-+31655018342",
    )
    delivery.body = json.dumps(payload).encode()
    delivery.event_type, delivery.call_id = "tool-calls", "call-+31655018342"
    delivery.status, delivery.outcome = 200, "answered"
    card = {"tool_call_id": "tool_1", "result": "card 4111 1111 1111 1111 on file"}
    delivery.answer = json.dumps({"results": [card]}).encode()
    recorder.delivery_answered(delivery)
    recorder.close()
    unsigned = runner.invoke(main, ["replay", str(path), "--url", server.url + "/"])
    assert unsigned.exit_code == 2
    assert "is redacted" in unsigned.output
    assert "--resign" in unsigned.output
    result = runner.invoke(main, ["replay", str(path), "--url", server.url + "/", "--resign"])
    assert result.exit_code == 1, result.output  # the answer differs: the card was redacted
    assert "DIFF    1 tool-calls         call=call-[phone] 200" in result.output
    assert '"result": "card [card] on file"' in result.output
    assert "4111" not in result.output
    assert "31655018342" not in result.output
