"""SIGTERM under load against a real ``voicehooks run``: nothing accepted is silently dropped.

32 keep-alive clients send signed deliveries of all four types (tool calls that take a
while, before-answer handlers, end-of-call reports whose background handlers sleep, some far
past the grace period) until the server is gone. Then:

* every delivery the app saw (its handler or tool printed ``seen <call id>``) was answered,
  with the right answer;
* every delivery that got no answer was never seen by the app, and failed at the connection
  (refused, reset, or closed with no byte of an answer). What uvicorn does: on SIGTERM it
  stops listening, closes idle keep-alive connections at once, lets every request whose head
  it has parsed finish with ``Connection: close``, waits for those, and only then runs the
  lifespan shutdown. A request that was still in the socket buffer of an idle connection when
  it was closed never reached the app; for the sender that is the same as a refused
  connection, and safe to retry;
* every background handler that was accepted either finished, or is named in the log by
  event type and call id as cut short when the grace period ran out.
"""

from __future__ import annotations

import http.client
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.helpers.servers import Server, running_server
from voicehooks import sign
from voicehooks.testing import (
    assistant_request,
    end_of_call_report,
    status_update,
    tool_call,
    tool_calls,
)

pytestmark = pytest.mark.slow

SECRET = "whsec_shutdown_under_load_91aa"
GRACE_SECONDS = 1.0
CLIENTS = 32
LOAD_BEFORE_SIGTERM_SECONDS = 1.5
MAX_REQUESTS_PER_CLIENT = 400  # a bound in count, besides the one in time

APP = f'''
import sys
import time

import anyio

from voicehooks import (
    AssistantRequest,
    AssistantResponse,
    CallContext,
    EndOfCallReport,
    StatusUpdate,
    Background,
    Deadlines,
    VoiceHooks,
)

app = VoiceHooks(
    secret="{SECRET}",
    deadlines=Deadlines(shutdown_grace_seconds={GRACE_SECONDS}),
    background=Background(max_running=16),
)


def say(line: str) -> None:
    # One write per line: print() writes each part and the newline separately, and sync
    # handlers write from worker threads, so another line could land in the middle.
    sys.stdout.write(line + "\\n")
    sys.stdout.flush()


def seen(call_id: str) -> None:
    say(f"seen {{call_id}}")


@app.tool
async def wait(milliseconds: int, context: CallContext) -> dict[str, str]:
    """Take a while on the event loop."""
    seen(context.call_id)
    await anyio.sleep(milliseconds / 1000)
    return {{"waited": context.call_id}}


@app.tool
def wait_sync(milliseconds: int, context: CallContext) -> dict[str, str]:
    """Take a while in a worker thread."""
    seen(context.call_id)
    time.sleep(milliseconds / 1000)
    return {{"waited": context.call_id}}


@app.on("assistant-request")
async def configure(event: AssistantRequest) -> AssistantResponse:
    seen(event.call.id)
    return AssistantResponse.override("asst_1", first_message=event.call.id)


@app.on("status-update", run_before_answer=True)
async def status(event: StatusUpdate) -> None:
    seen(event.call.id)
    await anyio.sleep(0.05)


@app.on("end-of-call-report", run_before_answer=True)
def received(event: EndOfCallReport) -> None:
    seen(event.call.id)


@app.on("end-of-call-report")
async def process(event: EndOfCallReport) -> None:
    # duration_seconds carries how long to work, in milliseconds, for the test.
    say(f"background start {{event.call.id}}")
    await anyio.sleep((event.duration_seconds or 0) / 1000)
    say(f"background done {{event.call.id}}")
'''


@dataclass
class Outcome:
    """What one client saw for one delivery."""

    call_id: str
    kind: str
    sent_at: float
    status: int | None = None
    body: bytes = b""
    error: str | None = None
    answered_at: float | None = None


@dataclass
class Load:
    outcomes: list[Outcome] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def record(self, outcome: Outcome) -> None:
        with self.lock:
            self.outcomes.append(outcome)


def delivery(client: int, index: int) -> tuple[str, str, dict[str, Any]]:
    """The index-th delivery of a client: a rotation over every kind of work."""
    call_id = f"c{client}-{index}"
    kind = ("async-tool", "sync-tool", "assistant", "status", "report", "long-report")[
        (client + index) % 6
    ]
    if kind == "async-tool":
        payload = tool_calls(
            tool_call("wait", {"milliseconds": 300}, id=f"t-{call_id}"), call_id=call_id
        )
    elif kind == "sync-tool":
        payload = tool_calls(
            tool_call("wait_sync", {"milliseconds": 200}, id=f"t-{call_id}"), call_id=call_id
        )
    elif kind == "assistant":
        payload = assistant_request(call_id=call_id)
    elif kind == "status":
        payload = status_update("in-progress", call_id=call_id)
    elif kind == "report":
        payload = end_of_call_report(call_id=call_id, duration_seconds=100)
    else:  # far past the grace period: certain to be cut short at shutdown
        payload = end_of_call_report(call_id=call_id, duration_seconds=60_000)
    return call_id, kind, payload


def expected_answer(call_id: str, kind: str) -> Any:
    if kind.endswith("tool"):
        return {"results": [{"tool_call_id": f"t-{call_id}", "result": {"waited": call_id}}]}
    if kind == "assistant":
        return {"assistant_id": "asst_1", "assistant_override": {"first_message": call_id}}
    return {}


def client(port: int, number: int, load: Load) -> None:
    """Send deliveries on one keep-alive connection, reconnecting, until the server is gone."""
    connection: http.client.HTTPConnection | None = None
    refusals = 0
    for index in range(MAX_REQUESTS_PER_CLIENT):
        if load.stop.is_set() or refusals >= 3:
            break
        call_id, kind, payload = delivery(number, index)
        body = msgspec.json.encode(payload)
        outcome = Outcome(call_id, kind, time.monotonic())
        try:
            if connection is None:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            connection.request("POST", "/", body=body, headers=sign(body, SECRET))
            response = connection.getresponse()
            outcome.status, outcome.body = response.status, response.read()
            outcome.answered_at = time.monotonic()
            if response.will_close:
                connection.close()
                connection = None
        except (OSError, http.client.HTTPException) as exc:
            outcome.error = type(exc).__name__
            refusals += isinstance(exc, ConnectionRefusedError)
            if connection is not None:
                connection.close()
                connection = None
            time.sleep(0.02)
        load.record(outcome)
        if number % 2:
            # Think time: idle keep-alive connections at SIGTERM, which uvicorn closes.
            time.sleep(0.05 + 0.01 * (index % 5))
    if connection is not None:
        connection.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    (tmp_path / "shutdown_app.py").write_text(APP)
    with running_server(str(tmp_path / "shutdown_app.py"), tmp_path) as running:
        yield running


def test_sigterm_under_load_answers_everything_accepted_and_names_what_it_cuts(
    server: Server,
) -> None:
    load = Load()
    threads = [
        threading.Thread(target=client, args=(server.port, number, load), daemon=True)
        for number in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    time.sleep(LOAD_BEFORE_SIGTERM_SECONDS)
    sigterm_at = time.monotonic()
    exit_code = server.terminate(timeout=30)
    exited_at = time.monotonic()
    load.stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)

    log = server.log()
    seen = set(re.findall(r"^seen (\S+)$", log, re.MULTILINE))
    started = set(re.findall(r"^background start (\S+)$", log, re.MULTILINE))
    done = set(re.findall(r"^background done (\S+)$", log, re.MULTILINE))
    cut = set(
        re.findall(r"background end-of-call-report handler \S+ \(call (\S+)\) was cut short", log)
    )
    answered = [o for o in load.outcomes if o.status is not None]
    unanswered = [o for o in load.outcomes if o.status is None]

    # Every answer is complete and right.
    for outcome in answered:
        assert outcome.status == 200, outcome
        assert msgspec.json.decode(outcome.body) == expected_answer(outcome.call_id, outcome.kind)
    # Nothing the app saw went unanswered; what went unanswered never reached the app.
    answered_ids = {o.call_id for o in answered}
    assert seen <= answered_ids, sorted(seen - answered_ids)
    assert not seen & {o.call_id for o in unanswered}
    for outcome in unanswered:
        assert outcome.error in (
            "ConnectionRefusedError",
            "ConnectionResetError",
            "BrokenPipeError",
            "RemoteDisconnected",  # closed before a single byte of an answer
        ), outcome
    # Every accepted background handler finished or was named as cut short, never both.
    reports = {o.call_id for o in answered if o.kind.endswith("report")}
    assert reports <= done | cut, sorted(reports - done - cut)
    assert not done & cut
    assert started <= reports
    # What "Nothing accepted is silently dropped" must not hold vacuously for:
    assert answered, "nothing was answered"
    assert unanswered, "the load did not straddle the shutdown"
    assert any(o.answered_at and o.sent_at < sigterm_at < o.answered_at for o in answered), (
        "no request was in flight at SIGTERM"
    )
    assert {o.call_id for o in answered if o.kind == "long-report"} <= cut
    assert done, "no background handler finished within the grace period"
    assert "Traceback" not in log
    # uvicorn re-raises the SIGTERM it handled once shutdown is complete.
    assert exit_code in (0, -15)
    # The grace period bounds the drain: in-flight requests take 0.3 s, background work 1 s.
    assert exited_at - sigterm_at < GRACE_SECONDS + 10
