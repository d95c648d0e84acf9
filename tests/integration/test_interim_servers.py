"""Over real sockets: ``voicehooks run`` (one or two workers) against a served FakePlatform.

The app is tests/apps/slow_tools.py. The fake platform runs in this process on a loopback
port (uvicorn in a thread), so the test reads what it received directly; the app's tools
write when they returned, on the machine's monotonic clock, which every process shares.
"""

from __future__ import annotations

import http.client
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.helpers.servers import running_server
from voicehooks import sign
from voicehooks.testing import FakePlatform, tool_call, tool_calls

pytestmark = pytest.mark.slow

SECRET = "whsec_interim_server_tests"
API_KEY = "vh-interim-server-key"
TARGET = "tests/apps/slow_tools.py"


def post(port: int, body: bytes) -> tuple[int, Any, float]:
    """POST a signed delivery; the status, the decoded answer and how long it took."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    started = time.monotonic()
    try:
        connection.request("POST", "/", body=body, headers=sign(body, SECRET))
        response = connection.getresponse()
        answer = response.read()
        return response.status, json.loads(answer), time.monotonic() - started
    finally:
        connection.close()


def delivery(name: str, arguments: dict[str, Any], tool_call_id: str, call_id: str) -> bytes:
    return msgspec.json.encode(
        tool_calls(tool_call(name, arguments, id=tool_call_id), call_id=call_id)
    )


def returns(path: Path) -> dict[str, float]:
    lines = path.read_text().splitlines() if path.exists() else []
    return {tool_call_id: float(at) for tool_call_id, at in (line.split() for line in lines)}


def environment(base_url: str, returns_file: Path, **extra: str) -> dict[str, str]:
    return {
        "VOICEHOOKS_SECRET": SECRET,
        "VOICEHOOKS_API_KEY": API_KEY,
        "VOICEHOOKS_API_URL": base_url,
        "LIVE_RETURNS_FILE": str(returns_file),
        **extra,
    }


def wait_for(condition: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the condition did not come true in time")
        time.sleep(0.02)


def test_an_8_s_tool_answers_its_interim_text_at_once_then_its_result_once(
    tmp_path: Path,
) -> None:
    platform = FakePlatform(api_key=API_KEY)
    returns_file = tmp_path / "returns.log"
    with (
        platform.serve() as base_url,
        running_server(TARGET, tmp_path, env=environment(base_url, returns_file)) as server,
    ):
        body = delivery("check_stock", {"sku": "KB-7", "seconds": 8}, "tc-slow", "call-8s")
        status, answer, took = post(server.port, body)
        assert status == 200
        assert answer == {
            "results": [
                {"tool_call_id": "tc-slow", "result": "One moment, I'm checking the stock."}
            ]
        }
        assert 0.9 <= took < 2.5  # the interim answer, ~1 s after the request
        assert platform.received() == []  # nothing yet: the tool is still running
        wait_for(lambda: platform.accepted("call-8s"), timeout=15)
        time.sleep(0.5)  # room for a second command, which must not come
        logs = server.log()
    (command,) = platform.received()
    assert command.status == 200
    assert command.headers["authorization"] == f"Bearer {API_KEY}"
    assert command.body == {
        "type": "inject-context",
        "content": 'Result of the tool check_stock: {"sku":"KB-7","in_stock":4}',
        "trigger_response": True,
    }
    returned = returns(returns_file)["tc-slow"]
    latency = command.at - returned
    assert 0 <= latency < 1.0, latency  # generous: the issue measures <= 200 ms on loopback
    print(f"\ninterim answer after {took * 1000:.0f} ms; late inject {latency * 1000:.1f} ms")
    assert API_KEY not in logs


def test_30_late_results_for_one_call_across_two_workers_keep_the_limit_and_arrive_once(
    tmp_path: Path, backend_url: str
) -> None:
    window = 3.0  # the platform's minute, shortened on both sides
    platform = FakePlatform(api_key=API_KEY, window_seconds=window)
    returns_file = tmp_path / "returns.log"
    env = environment(
        "",
        returns_file,
        VOICEHOOKS_STORE_URL=backend_url,  # Redis, then PostgreSQL
        LIVE_WINDOW_SECONDS=str(window),
    )
    with platform.serve() as base_url:
        env["VOICEHOOKS_API_URL"] = base_url
        with running_server(TARGET, tmp_path, args=["--workers", "2"], env=env) as server:
            bodies = [
                delivery("look_up", {"n": n, "seconds": 0.3}, f"tc-{n}", "call-30")
                for n in range(30)
            ]
            # Each one twice (a duplicate delivery), spread over one window.
            with ThreadPoolExecutor(max_workers=16) as pool:
                futures = []
                for body in bodies:
                    futures += [pool.submit(post, server.port, body) for _ in range(2)]
                    time.sleep(window / 30)
                answers = [future.result() for future in futures]
            assert all(status == 200 for status, _, _ in answers)
            assert [a["results"][0]["result"] for _, a, _ in answers] == ["Still looking."] * 60

            def all_delivered() -> bool:
                return len(_delivered(platform)) >= 30

            wait_for(all_delivered, timeout=4 * window + 10)
            time.sleep(window / 2)  # room for a duplicate, which must not come
    delivered = _delivered(platform)
    assert sorted(delivered) == list(range(30))  # each result exactly once: none lost, none twice
    assert all(r.status == 200 for r in platform.received())  # the limit was kept, not hit
    assert platform.most_in_any_window("call-30") <= 10
    assert len(platform.accepted("call-30")) < 30  # merged
    assert len(returns(returns_file)) == 30  # each tool ran once, across both workers


def _delivered(platform: FakePlatform) -> list[int]:
    found = []
    for command in platform.accepted("call-30"):
        found += [int(n) for n in re.findall(r'\{"n":(\d+)\}', command.body["content"])]
    return found
