"""Slow and broken clients against a real ``voicehooks run`` (uvicorn with httptools).

What happens, observed and pinned down here (SECURITY.md "Slow clients" tells the story):

* A client that sends its body slowly, stops halfway, or connects and sends nothing holds its
  connection and nothing else: every other delivery is answered as usual. The body is read
  before the signature can be checked, so this costs an attacker no secret; hence the bound
  below.
* A client that disconnects halfway through its body: the app receives ``http.disconnect``,
  answers nothing and runs nothing. No task is left behind (shutdown is immediate).
* A client that disconnects after sending its delivery but before the answer: nothing is
  cancelled. uvicorn does not cancel the request task, so tools (async, and sync in their
  thread) and before-answer handlers run to their end, background handlers run as usual,
  and the answer is discarded by uvicorn without an error.
* A body must arrive within ``Deadlines(body_seconds=...)`` (10 s by default):
  uvicorn sets no such limit, so the app answers a client that stalls mid-body with 408 and
  ``connection: close``; a SIGTERM is therefore never held up by it for longer.
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.helpers.servers import Server, running_server
from voicehooks import sign
from voicehooks.testing import end_of_call_report, status_update, tool_call, tool_calls

pytestmark = pytest.mark.slow

SECRET = "whsec_slow_clients_7c2e"
GRACE_SECONDS = 0.5
# The body-read timeout proposed in SECURITY.md; the app passes it once VoiceHooks takes it.
BODY_TIMEOUT_SECONDS = 0.5
BODY_TIMEOUT_OPTION = f", body_seconds={BODY_TIMEOUT_SECONDS}"

APP = f'''
import sys
import time

import anyio

from voicehooks import CallContext, Deadlines, EndOfCallReport, StatusUpdate, VoiceHooks

app = VoiceHooks(
    secret="{SECRET}",
    deadlines=Deadlines(shutdown_grace_seconds={GRACE_SECONDS}{BODY_TIMEOUT_OPTION}),
)


def say(word: str, call_id: str) -> None:
    # One write per line: print() writes each part and the newline separately, and the sync
    # tool writes from a worker thread, so another line could land in the middle.
    sys.stdout.write(f"{{word}} {{call_id}}\\n")
    sys.stdout.flush()


@app.tool
async def slow(seconds: float, context: CallContext) -> str:
    """Sleep on the event loop."""
    say("start", context.call_id)
    await anyio.sleep(seconds)
    say("done", context.call_id)
    return "slept"


@app.tool
def slow_sync(seconds: float, context: CallContext) -> str:
    """Sleep in a worker thread."""
    say("start", context.call_id)
    time.sleep(seconds)
    say("done", context.call_id)
    return "slept"


@app.on("status-update", run_before_answer=True)
async def before_answer(event: StatusUpdate) -> None:
    say("start", event.call.id)
    await anyio.sleep(0.5)
    say("done", event.call.id)


@app.on("end-of-call-report")
async def in_background(event: EndOfCallReport) -> None:
    say("start", event.call.id)
    await anyio.sleep(0.5)
    say("done", event.call.id)
'''


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    (tmp_path / "slow_app.py").write_text(APP)
    with running_server(str(tmp_path / "slow_app.py"), tmp_path) as running:
        yield running


# -- raw HTTP ----------------------------------------------------------------------------


def request_bytes(payload: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """The head and body of a signed delivery, as the platform would send them."""
    body = msgspec.json.encode(payload)
    headers = {**sign(body, SECRET), "host": "127.0.0.1", "content-length": str(len(body))}
    head = "POST / HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode(), body


def connect(server: Server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def post(server: Server, payload: Mapping[str, Any], timeout: float = 10) -> tuple[int, bytes]:
    head, body = request_bytes(payload)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:] if line)
        connection.request("POST", "/", body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def closed_or_answered(sock: socket.socket, within: float) -> bytes | None:
    """What the server sent before closing, or ``None`` if it did neither within ``within``."""
    sock.settimeout(within)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return received


def wait_for_log(server: Server, pattern: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = server.log()
        if re.search(pattern, log):
            return log
        time.sleep(0.05)
    raise AssertionError(f"{pattern!r} not in the server log:\n{server.log()}")


def terminate_within(server: Server, seconds: float) -> float:
    """SIGTERM; return how long the exit took, or fail (and kill) after ``seconds``."""
    started = time.monotonic()
    try:
        server.terminate(timeout=seconds)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
        raise AssertionError(f"the server was still running {seconds} s after SIGTERM") from None
    return time.monotonic() - started


# -- tests -------------------------------------------------------------------------------


def test_stalled_idle_and_broken_clients_do_not_delay_other_deliveries(server: Server) -> None:
    held: list[socket.socket] = []
    with contextlib.ExitStack() as stack:
        for index in range(20):
            head, body = request_bytes(status_update(call_id=f"stalled-{index}"))
            stalled = stack.enter_context(connect(server))
            stalled.sendall(head + body[: len(body) // 2])  # and then nothing more
            idle = stack.enter_context(connect(server))  # connects, sends nothing
            trickle = stack.enter_context(connect(server))
            trickle.sendall(head[:10])  # a few bytes of the head
            held += [stalled, idle, trickle]
        for index in range(20):
            started = time.monotonic()
            status, body = post(
                server, tool_calls(tool_call("slow", {"seconds": 0}), call_id=f"ok-{index}")
            )
            assert status == 200
            assert msgspec.json.decode(body)["results"][0]["result"] == "slept"
            # Generous: the point is "not queued behind the stalled clients", not speed.
            assert time.monotonic() - started < 5
    log = server.log()
    assert "stalled-" not in log  # no handler ran for a body that never arrived
    assert "Traceback" not in log


def test_a_client_gone_mid_body_leaves_nothing_running(server: Server) -> None:
    for index, payload in enumerate(
        [
            status_update(call_id="gone-status"),
            end_of_call_report(call_id="gone-report"),
            tool_calls(tool_call("slow", {"seconds": 30}), call_id="gone-tool"),
        ]
    ):
        head, body = request_bytes(payload)
        with connect(server) as sock:
            sock.sendall(head + body[: len(body) // (index + 2)])
            time.sleep(0.1)
    status, _ = post(server, status_update(call_id="after"))
    assert status == 200
    # Nothing started for the broken deliveries, and nothing lingers: uvicorn waits for every
    # request task before it exits, so a prompt exit means none is left.
    terminate_within(server, 10)
    log = server.log()
    assert "gone-" not in log
    assert "Traceback" not in log


def test_a_client_gone_before_the_answer_cancels_nothing(server: Server) -> None:
    deliveries = {
        "gone-async-tool": tool_calls(
            tool_call("slow", {"seconds": 0.5}), call_id="gone-async-tool"
        ),
        "gone-sync-tool": tool_calls(
            tool_call("slow_sync", {"seconds": 0.5}), call_id="gone-sync-tool"
        ),
        "gone-before-answer": status_update(call_id="gone-before-answer"),
        "gone-background": end_of_call_report(call_id="gone-background"),
    }
    for call_id, payload in deliveries.items():
        head, body = request_bytes(payload)
        with connect(server) as sock:
            sock.sendall(head + body)
            wait_for_log(server, rf"start {call_id}\b")
        # The socket is closed now, while the tool or handler is still running.
    for call_id in deliveries:
        wait_for_log(server, rf"done {call_id}\b")
    status, _ = post(server, status_update(call_id="after"))
    assert status == 200
    log = server.log()
    assert "Traceback" not in log
    assert "cut short" not in log
    assert "abandoned" not in log


def test_a_client_that_stalls_mid_body_is_cut_off_in_bounded_time(server: Server) -> None:
    head, body = request_bytes(status_update(call_id="stalled"))
    with connect(server) as sock:
        sock.sendall(head + body[:20])
        received = closed_or_answered(sock, BODY_TIMEOUT_SECONDS + 2.5)
    assert received is not None, "the stalled connection was still open"
    if received:
        assert received.startswith(b"HTTP/1.1 408"), received


def test_sigterm_is_not_held_up_by_a_client_stalled_mid_body(server: Server) -> None:
    head, body = request_bytes(status_update(call_id="stalled"))
    with connect(server) as sock:
        sock.sendall(head + body[:20])
        time.sleep(0.2)
        terminate_within(server, GRACE_SECONDS + 3)
