"""Logs and metrics over real servers: ``voicehooks run`` (text, JSON, several workers),
plain uvicorn, gunicorn with uvicorn workers, and a FastAPI parent app, each on a free port.

Every server gets the same deliveries: a tool-calls delivery whose call id carries a phone
number and whose tools answer, decline, crash and do not exist, with markers in every
argument, result and error message; and an unsigned one (401). The logs must show the
per-delivery line and the rejection with time, level and logger name, and never a marker,
the phone number or the secret.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import sys
import time
from pathlib import Path

import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.servers import Server, running_command, running_server
from voicehooks import sign
from voicehooks.testing import tool_call, tool_calls

pytestmark = pytest.mark.slow

SECRET = "whsec_OBSERVED_secret_5e2"
ARGUMENT_MARKER = "ARGUMENT-MARKER-5a1"  # the same strings as in tests/apps/observed.py
RESULT_MARKER = "RESULT-MARKER-77e"
TOOL_ERROR_MARKER = "TOOL-ERROR-MARKER-c40"
ENV = {"VOICEHOOKS_SECRET": SECRET}
CALL_ID = "call-_+31612345678_XqaQ"
TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
NEVER_LOGGED = {
    "secret": SECRET,
    "argument": ARGUMENT_MARKER,
    "result": RESULT_MARKER,
    "tool error message": TOOL_ERROR_MARKER,
    "number in the call id": "31612345678",
    "customer number": "31655018342",
}


def post(port: int, path: str, body: bytes, *, signed: bool = True) -> int:
    headers = sign(body, SECRET) if signed else {"content-type": "application/json"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def post_answer(port: int, body: bytes) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/", body=body, headers=sign(body, SECRET))
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def get(port: int, path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


DELIVERY = msgspec.json.encode(
    tool_calls(
        tool_call("lookup", {"order_number": ARGUMENT_MARKER}),
        tool_call("decline", {"reason": ARGUMENT_MARKER}),
        tool_call("crash", {"note": ARGUMENT_MARKER}),
        tool_call("no_such_tool", {"x": ARGUMENT_MARKER}),
        call_id=CALL_ID,
    )
)


def exercise(server: Server, path: str = "/") -> None:
    assert post(server.port, path, DELIVERY) == 200
    assert post(server.port, path, DELIVERY, signed=False) == 401


def wait_for(server: Server, pattern: str, timeout: float = 10.0) -> str:
    """The server's log once ``pattern`` matches a line of it (the line comes after the answer)."""
    deadline = time.monotonic() + timeout
    while True:
        log = server.log()
        if re.search(pattern, log, re.MULTILINE):
            return log
        if time.monotonic() > deadline:
            raise AssertionError(f"no line matches {pattern!r} in:\n{log}")
        time.sleep(0.05)


def assert_nothing_private(log: str) -> None:
    leaked = {what for what, marker in NEVER_LOGGED.items() if marker in log}
    assert not leaked, f"the log shows: {sorted(leaked)}\n{log}"


def assert_text_lines(server: Server) -> None:
    log = wait_for(server, rf"^{TIME} INFO voicehooks: tool-calls ")
    assert re.search(rf"^{TIME} WARNING voicehooks: rejected 401", log, re.MULTILINE), log
    assert re.search(rf"^{TIME} INFO observed: looking an order up$", log, re.MULTILINE), log
    assert_nothing_private(log)


def json_lines(log: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.splitlines() if line.strip()]


@pytest.fixture
def observed_env() -> dict[str, str]:
    return {**ENV, "OBSERVED_SETUP": "1"}


@pytest.mark.parametrize("with_setup_line", [False, True])
def test_voicehooks_run_shows_text_lines_with_time_level_and_logger_once(
    tmp_path: Path, with_setup_line: bool
) -> None:
    env = {**ENV, "OBSERVED_SETUP": "1"} if with_setup_line else ENV
    # Two workers: each imports the app after uvicorn configured its logging.
    args = ["--workers", "2"] if with_setup_line else []
    with running_server("tests/apps/observed.py", tmp_path, env=env, args=args) as server:
        exercise(server)
        assert_text_lines(server)
        log = server.log()
    # The app's setup() line leaves voicehooks run's configuration alone: no doubled lines.
    assert len(re.findall(r"INFO voicehooks: tool-calls ", log)) == 1


def test_voicehooks_run_json_logs_are_one_object_per_line_without_private_values(
    tmp_path: Path,
) -> None:
    args = ["--log-format", "json"]
    with running_server("tests/apps/observed.py", tmp_path, env=ENV, args=args) as server:
        exercise(server)
        wait_for(server, r'"logger":"voicehooks","message":"tool-calls ')
        log = server.log()
    lines = json_lines(log)  # every line, uvicorn's own included, is one JSON object
    assert all(list(line)[:4] == ["time", "level", "logger", "message"] for line in lines)
    (delivery,) = [line for line in lines if str(line["message"]).startswith("tool-calls ")]
    assert delivery["level"] == "INFO"
    assert delivery["event"] == "tool-calls"
    assert delivery["call_id"] == "call-_+***********_XqaQ"
    assert delivery["status"] == 200
    assert isinstance(delivery["duration_ms"], float)
    assert delivery["tools"] == [
        {"name": "lookup", "outcome": "ok"},
        {"name": "decline", "outcome": "error"},
        {"name": "crash", "outcome": "failed"},
        {"name": "?", "outcome": "unknown"},
    ]
    (rejection,) = [line for line in lines if str(line["message"]).startswith("rejected 401")]
    assert rejection["level"] == "WARNING"
    assert_nothing_private(log)


def test_voicehooks_run_passes_a_log_config_file_through(tmp_path: Path) -> None:
    args = ["--log-config", "examples/logging.yaml", "--log-level", "debug"]
    with running_server("tests/apps/observed.py", tmp_path, env=ENV, args=args) as server:
        exercise(server)
        log = wait_for(server, r'"logger":"voicehooks","message":"tool-calls ')
    lines = json_lines(log)
    assert {"voicehooks", "observed", "uvicorn.error"} <= {line["logger"] for line in lines}
    assert_nothing_private(log)


def test_plain_uvicorn_shows_the_lines_after_the_one_line_setup(
    tmp_path: Path, observed_env: dict[str, str]
) -> None:
    argv = lambda port: [  # noqa: E731
        sys.executable, "-m", "uvicorn", "tests.apps.observed:app", "--port", str(port),
    ]  # fmt: skip
    with running_command(argv, tmp_path, env=observed_env) as server:
        exercise(server)
        assert_text_lines(server)


def test_a_fastapi_parent_under_uvicorn_shows_the_lines_as_json(
    tmp_path: Path, observed_env: dict[str, str]
) -> None:
    argv = lambda port: [  # noqa: E731
        sys.executable, "-m", "uvicorn", "tests.apps.observed:parent", "--port", str(port),
    ]  # fmt: skip
    env = {**observed_env, "OBSERVED_LOG_FORMAT": "json"}
    with running_command(argv, tmp_path, env=env) as server:
        exercise(server, "/hooks/")
        log = wait_for(server, r'"logger":"voicehooks","message":"tool-calls ')
    lines = json_lines(log)  # uvicorn's lines too: setup() restyled its handlers
    assert {"voicehooks", "observed", "uvicorn.error"} <= {line["logger"] for line in lines}
    assert_nothing_private(log)


def test_gunicorn_with_uvicorn_workers_shows_the_lines_after_the_one_line_setup(
    tmp_path: Path, observed_env: dict[str, str]
) -> None:
    argv = lambda port: [  # noqa: E731
        sys.executable, "-m", "gunicorn", "tests.apps.observed:app",
        "--bind", f"127.0.0.1:{port}", "--workers", "1",
        "--worker-class", "uvicorn_worker.UvicornWorker",
    ]  # fmt: skip
    with running_command(argv, tmp_path, env=observed_env) as server:
        exercise(server)
        assert_text_lines(server)


def scrape(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, text = get(server.port, "/metrics")
    assert status == 200, text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def two_workers(kind: str, tmp_path: Path) -> contextlib.AbstractContextManager[Server]:
    if kind == "voicehooks run":
        args = ["--workers", "2", "--metrics"]
        return running_server("tests/apps/observed.py", tmp_path, env=ENV, args=args)
    # gunicorn, as the README documents it: an empty multiprocess directory and the switch.
    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = {**ENV, "VOICEHOOKS_METRICS": "1", "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    argv = lambda port: [  # noqa: E731
        sys.executable, "-m", "gunicorn", "tests.apps.observed:app",
        "--bind", f"127.0.0.1:{port}", "--workers", "2",
        "--worker-class", "uvicorn_worker.UvicornWorker",
    ]  # fmt: skip
    return running_command(argv, tmp_path, env=env)


@pytest.mark.parametrize("kind", ["voicehooks run", "gunicorn"])
def test_two_workers_count_every_delivery_exactly_once(tmp_path: Path, kind: str) -> None:
    with two_workers(kind, tmp_path) as server:
        wait_for(server, r"Started server process(.|\n)*Started server process")
        pids: set[int] = set()
        sent = 0
        # Until both workers have answered (bounded), then a fixed number more.
        while (len(pids) < 2 and sent < 200) or sent < 30:
            body = msgspec.json.encode(tool_calls(tool_call("whoami", id=f"t{sent}")))
            status, answer = post_answer(server.port, body)
            assert status == 200
            pids.add(int(json.loads(answer)["results"][0]["result"]))
            sent += 1
        for _ in range(5):
            assert post(server.port, "/", DELIVERY, signed=False) == 401
        assert len(pids) == 2, "one worker answered everything; the sum proves nothing"
        for _ in range(4):  # each scrape may reach either worker: all must agree
            values = scrape(server)
            key = (("event", "tool-calls"), ("outcome", "answered"), ("transport", "webhook"))
            assert values[("voicehooks_deliveries_total", key)] == sent
            key = (("event", "_unknown"), ("outcome", "rejected_401"), ("transport", "webhook"))
            assert values[("voicehooks_deliveries_total", key)] == 5
            key = (("outcome", "ok"), ("tool", "whoami"), ("transport", "webhook"))
            assert values[("voicehooks_tool_calls_total", key)] == sent
            tool_count = "voicehooks_tool_duration_seconds_count"
            assert values[(tool_count, (("tool", "whoami"), ("transport", "webhook")))] == sent
