"""Over a real socket: `voicehooks run` (uvicorn) answering, timing out, draining, mounted."""

from __future__ import annotations

import functools
import json
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.helpers import servers
from tests.helpers.paths import ROOT
from tests.helpers.servers import Server, free_port, running_server, wait_until_listening
from voicehooks.testing import (
    assistant_request,
    end_of_call_report,
    results_from_response,
    status_update,
    tool_call,
    tool_calls,
)

pytestmark = pytest.mark.slow

SECRET = "whsec_live_server_tests"
ENV = {"VOICEHOOKS_SECRET": SECRET}

post = functools.partial(servers.post, secret=SECRET)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server("tests/apps/live.py", tmp_path_factory.mktemp("live"), env=ENV) as live:
        yield live


def call_tools(server: Server, *calls: dict[str, Any], **options: Any) -> tuple[list[Any], float]:
    started = time.perf_counter()
    status, _, body = post(server, tool_calls(*calls, **options))
    elapsed = time.perf_counter() - started
    assert status == 200
    answer = json.loads(body)
    assert [r["tool_call_id"] for r in answer["results"]] == [c["id"] for c in calls]
    return results_from_response(answer, [c["id"] for c in calls]), elapsed


# -- the core receiver -------------------------------------------------------------------

GOOD = msgspec.json.encode(status_update())


@pytest.mark.parametrize(
    ("options", "status", "message"),
    [
        ({"method": "GET"}, 405, "not allowed"),
        ({"headers": {"content-type": "text/plain"}}, 415, "application/json"),
        ({"signed": False}, 401, "missing X-Webhook-Timestamp"),
        ({"headers": {"x-webhook-signature": "sha256=" + "0" * 64}}, 401, "does not match"),
        ({"headers": {"x-webhook-timestamp": "12ab"}}, 401, "whole number"),
        ({"headers": {"x-webhook-timestamp": "1000000000"}}, 401, "old"),
        ({"body": b"{not json"}, 400, "not valid JSON"),
        ({"body": b'{"message": {"type": "tool-calls"}}'}, 400, "does not fit"),
        ({"path": "/elsewhere"}, 404, "not found"),
    ],
)
def test_bad_input_over_a_real_socket(
    server: Server, options: dict[str, Any], status: int, message: str
) -> None:
    body = options.pop("body", GOOD)
    headers = dict(options.pop("headers", {}))
    if "x-webhook-timestamp" in headers:  # keep the signature consistent with the odd stamp
        headers.setdefault("x-webhook-signature", "sha256=" + "1" * 64)
    got, response_headers, raw = post(server, body, headers=headers, **options)
    assert got == status
    assert response_headers["content-type"] == "application/json"
    assert message in json.loads(raw)["error"]


def read_answer(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_a_body_announced_too_large_is_refused_before_it_is_sent(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 52428800\r\n\r\n"
        )
        answer = read_answer(sock)  # the server closes: connection: close
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"larger than the limit" in answer


def test_a_body_that_grows_too_large_is_refused_while_it_streams_in(server: Server) -> None:
    # Chunked, so no length announces it. The client pauses after each chunk and stops as soon
    # as the answer comes: the server has then read everything sent when it closes (bytes
    # left unread would make its close a reset, and the answer would be lost in transit).
    chunk = b"x" * 65536
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        for _ in range(1024 * 1024 // len(chunk) + 1):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            if select.select([sock], [], [], 0.05)[0]:
                break
        answer = read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"larger than the limit" in answer


def test_an_unknown_event_type_is_acknowledged(server: Server) -> None:
    status, _, body = post(server, {"message": {"type": "hang", "call": {"id": "x"}}})
    assert (status, json.loads(body)) == (200, {})


# -- tools -------------------------------------------------------------------------------


def test_typed_arguments_bind_also_from_a_json_string(server: Server) -> None:
    results, _ = call_tools(
        server,
        tool_call("add", {"a": 2, "b": 3}),
        tool_call("add", '{"a": 4, "b": 5}'),
        tool_call("add", {"a": "two", "b": 3}),
    )
    assert results[:2] == [{"sum": 5}, {"sum": 9}]
    assert "the argument 'a' must be a whole number" in results[2]["error"]


def test_five_calls_with_three_sleeps_run_concurrently_in_order_with_errors_isolated(
    server: Server,
) -> None:
    results, elapsed = call_tools(
        server,
        tool_call("nap", {"seconds": 1.5, "label": "one"}),
        tool_call("fail"),
        tool_call("nap", {"seconds": 1.5, "label": "two"}),
        tool_call("decline"),
        tool_call("nap", {"seconds": 1.5, "label": "three"}),
    )
    assert 1.4 < elapsed < 3.5  # about 1.5 s, not 4.5 s
    assert results[0] == "one"
    assert results[2] == "two"
    assert results[4] == "three"
    assert results[3] == {"error": "That slot is taken."}
    assert "failed unexpectedly" in results[1]["error"]
    assert "internal-detail-7731" not in json.dumps(results)


def test_a_30_second_tool_is_cut_before_10_seconds_and_its_sibling_survives(server: Server) -> None:
    results, elapsed = call_tools(
        server,
        tool_call("nap", {"seconds": 30, "label": "never"}),
        tool_call("add", {"a": 1, "b": 1}),
    )
    assert elapsed < 10
    assert "did not answer in time" in results[0]["error"]
    assert results[1] == {"sum": 2}


def test_a_sync_tool_does_not_block_other_requests(server: Server) -> None:
    with ThreadPoolExecutor(2) as pool:
        blocking = pool.submit(call_tools, server, tool_call("blocking", {"seconds": 2}))
        time.sleep(0.3)
        quick, quick_elapsed = call_tools(server, tool_call("add", {"a": 1, "b": 2}))
        slow, _ = blocking.result()
    assert quick == [{"sum": 3}]
    assert quick_elapsed < 1.5
    assert slow == ["unblocked"]


# -- lifecycle ---------------------------------------------------------------------------


def test_assistant_request_answers_come_back_exactly_as_returned(server: Server) -> None:
    status, _, body = post(server, assistant_request(customer_number="+31600000001"))
    assert (status, json.loads(body)) == (200, {"error": "We are closed."})
    _, _, body = post(server, assistant_request())
    assert json.loads(body) == {"assistant_id": "e2a94f1c-7b3d-4c86-a5e0-19d8f3b6c240"}


def test_an_8_second_assistant_request_handler_is_answered_empty_within_5_seconds(
    server: Server,
) -> None:
    started = time.perf_counter()
    status, _, body = post(server, assistant_request(customer_number="+31600000008"))
    assert time.perf_counter() - started < 5
    assert (status, json.loads(body)) == (200, {})


def test_a_raising_assistant_request_handler_is_answered_empty(server: Server) -> None:
    status, _, body = post(server, assistant_request(customer_number="+31600000009"))
    assert (status, json.loads(body)) == (200, {})


def test_a_status_update_is_acknowledged_at_once_and_its_handler_completes(server: Server) -> None:
    started = time.perf_counter()
    status, _, body = post(server, status_update("ended", call_id="ack-first-1"))
    assert time.perf_counter() - started < 1  # the handler sleeps 2 s
    assert (status, json.loads(body)) == (200, {})
    deadline = time.monotonic() + 10
    while "status handler done for call ack-first-1" not in server.log():
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)


def test_the_log_has_one_line_per_delivery_and_no_payload_values(server: Server) -> None:
    post(server, end_of_call_report(call_id="log-line-1"))
    deadline = time.monotonic() + 10
    while "end-of-call-report call=log-line-1 200" not in server.log():
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)
    log = server.log()
    assert "+31655018342" not in log
    assert SECRET not in log
    assert "WO-2291" not in log


def test_sigterm_lets_a_running_report_handler_finish_within_the_grace_period(
    tmp_path: Path,
) -> None:
    with running_server("tests/apps/live.py", tmp_path, env=ENV) as live:
        status, _, _ = post(live, end_of_call_report(call_id="drain-1", metadata={"sleep": 2}))
        assert status == 200
        time.sleep(0.2)
        started = time.perf_counter()
        # uvicorn re-raises the signal after a graceful shutdown, so -SIGTERM is a clean exit
        assert live.terminate() in (0, -15)
        assert time.perf_counter() - started < 10
        log = live.log()
    assert "report stored for call drain-1" in log
    assert "cut short" not in log


def test_mounted_in_fastapi_without_lifespan_wiring_a_report_handler_still_runs(
    tmp_path: Path,
) -> None:
    port = free_port()
    log_path = tmp_path / "mounted.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "tests.apps.mounted:parent", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**__import__("os").environ, **ENV},
            cwd=str(ROOT),
            text=True,
        )
    try:
        wait_until_listening(port, process)
        status, _, body = post(port, end_of_call_report(call_id="mounted-9"), path="/hooks/")
        assert (status, json.loads(body)) == (200, {})
        deadline = time.monotonic() + 10
        while "mounted report stored for call mounted-9" not in log_path.read_text():
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
    finally:
        process.terminate()
        process.wait(timeout=20)


# -- the CLI -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module_xyz:app", "no such module"),
        ("tests/apps/nope.py", "no such file"),
        ("tests.apps.live:missing", "has no attribute 'missing'"),
        ("tests.apps.live:log", "not a VoiceHooks app"),
        (":app", "is not a target"),
    ],
)
def test_a_bad_target_is_a_one_line_error_with_exit_code_2(target: str, message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "voicehooks", "run", target],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        env={**__import__("os").environ, **ENV},
        timeout=60,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_target_without_a_secret_says_how_to_set_one() -> None:
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("VOICEHOOKS_")}
    result = subprocess.run(
        [sys.executable, "-m", "voicehooks", "run", "tests/apps/live.py"],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        env=env,
        timeout=60,
    )
    assert result.returncode == 2
    assert "VOICEHOOKS_SECRET" in result.stderr
    assert "Traceback" not in result.stderr
