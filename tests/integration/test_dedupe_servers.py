"""Over real sockets: once-only processing across uvicorn workers and hosts sharing one store
(Redis or PostgreSQL).

The served app (tests/apps/dedupe.py) appends a line per execution to one file with
``O_APPEND``, so executions are counted across every process.
"""

from __future__ import annotations

import http.client
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis

from tests.helpers.redis_server import RedisServer
from tests.helpers.servers import running_server
from voicehooks import sign
from voicehooks.testing import end_of_call_report, tool_call, tool_calls

pytestmark = pytest.mark.slow

SECRET = "whsec_dedupe_server_tests"
TARGET = "tests/apps/dedupe.py"
SLOT = "Tuesday 09:30 with Anneke"  # never to appear in a log line


def post(port: int, body: bytes, timestamp: int) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/", body=body, headers=sign(body, SECRET, timestamp))
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def post_all(requests: list[tuple[int, bytes, int]]) -> list[tuple[int, bytes]]:
    """Send every request at once, each on its own connection."""
    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(lambda request: post(*request), requests))


def booking(slot: str, call_id: str = "call-1") -> bytes:
    return msgspec.json.encode(
        tool_calls(tool_call("book", {"slot": slot}, id=f"tc-{slot}"), call_id=call_id)
    )


def executions(runs_file: Path) -> Counter[str]:
    """How often each thing ran, over all processes (each line ends with the pid)."""
    lines = runs_file.read_text().splitlines() if runs_file.exists() else []
    return Counter(line.rsplit(" ", 1)[0] for line in lines)


def store_lines(logs: str) -> list[str]:
    """What the servers said about the store: the first thing to read when a test fails."""
    return [line for line in logs.splitlines() if "store" in line]


def environment(url: str, runs_file: Path) -> dict[str, str]:
    return {
        "VOICEHOOKS_SECRET": SECRET,
        "VOICEHOOKS_STORE_URL": url,
        "DEDUPE_RUNS_FILE": str(runs_file),
    }


def test_two_workers_sharing_a_store_run_each_tool_call_once(
    tmp_path: Path, backend_url: str
) -> None:
    runs_file = tmp_path / "runs.log"
    env = environment(backend_url, runs_file)
    slots = [f"slot-{i}" for i in range(4)]
    now = int(time.time())
    with running_server(TARGET, tmp_path, args=["--workers", "2"], env=env) as server:
        # Each tool call four times at once, each copy re-signed with its own timestamp.
        requests = [(server.port, booking(slot), now + k) for slot in slots for k in range(4)]
        answers = post_all(requests)
        logs = server.log()
    assert [status for status, _ in answers] == [200] * len(requests)
    for i in range(len(slots)):
        copies = {body for _, body in answers[4 * i : 4 * i + 4]}
        assert len(copies) == 1, store_lines(logs)  # every copy got the first run's answer
    assert executions(runs_file) == Counter({f"book {slot}": 1 for slot in slots})


def test_two_hosts_sharing_redis_run_once_expire_keys_and_outlive_redis(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    runs_file = tmp_path / "runs.log"
    env = environment(redis_server.url, runs_file)
    now = int(time.time())
    report = msgspec.json.encode(end_of_call_report(call_id="call-1"))
    client = redis.Redis.from_url(redis_server.url)
    with (
        running_server(TARGET, tmp_path, env=env) as host_a,
        running_server(TARGET, tmp_path, env=env) as host_b,
    ):
        hosts = [host_a.port, host_b.port]
        # One tool call, delivered three times to each host at once.
        answers = post_all([(hosts[i % 2], booking(SLOT), now + i) for i in range(6)])
        # One report, replayed exactly (same timestamp, same signature) to both hosts.
        reports = post_all([(port, report, now) for port in hosts])
        ttls = [client.ttl(key) for key in client.keys("voicehooks:*")]
        redis_server.stop()
        after = [post(port, booking(f"after-{port}"), now) for port in hosts]
        logs = host_a.log() + host_b.log()
    client.close()

    assert [status for status, _ in answers] == [200] * 6
    assert len({body for _, body in answers}) == 1, store_lines(logs)
    assert reports == [(200, b"{}")] * 2
    assert len(ttls) == 3  # the tool call's claim and result, the report's claim
    assert all(0 < ttl <= 3600 for ttl in ttls)
    # Redis gone: both hosts still answer, run the call, and say why it was unguarded.
    assert [status for status, _ in after] == [200, 200]
    assert b"after-" in after[0][1]
    assert executions(runs_file) == Counter(
        {
            f"book {SLOT}": 1,
            "report call-1": 1,
            f"book after-{hosts[0]}": 1,
            f"book after-{hosts[1]}": 1,
        }
    )
    assert logs.count("processing the delivery anyway") == 2
    assert SLOT not in logs


def test_the_models_retries_with_new_ids_run_once_across_two_workers_sharing_a_store(
    tmp_path: Path, backend_url: str
) -> None:
    runs_file = tmp_path / "runs.log"
    env = environment(backend_url, runs_file)
    now = int(time.time())

    def reserve(tool_call_id: str, arguments: dict[str, Any], call_id: str = "call-1") -> bytes:
        call = tool_call("reserve", arguments, id=tool_call_id)
        return msgspec.json.encode(tool_calls(call, call_id=call_id))

    same: list[dict[str, Any]] = [{"slot": "9", "party": 4}, {"party": "4", "slot": "9"}]
    with running_server(TARGET, tmp_path, args=["--workers", "2"], env=env) as server:
        # Four tool calls, each with its own id, for one intent; and another call's own.
        requests = [(server.port, reserve(f"tc-{k}", same[k % 2]), now + k) for k in range(4)]
        requests.append((server.port, reserve("tc-0", same[0], "call-2"), now))
        answers = post_all(requests)
        # Call state: written through one request, read through others, whichever worker.
        for k, item in enumerate(["tea", "milk", "jam"]):
            remember = tool_calls(tool_call("remember", {"item": item}), call_id="call-3")
            assert post(server.port, msgspec.json.encode(remember), now + k)[0] == 200
        recalled = post_all(
            [
                (
                    server.port,
                    msgspec.json.encode(tool_calls(tool_call("recall"), call_id="call-3")),
                    now + 10 + k,
                )
                for k in range(4)
            ]
        )
        logs = server.log()
    assert [status for status, _ in answers] == [200] * 5
    results = [msgspec.json.decode(body)["results"][0]["result"] for _, body in answers]
    assert all(result == results[0] for result in results[:4]), store_lines(logs)
    assert results[4] != results[0]  # another call reserves on its own
    assert executions(runs_file) == Counter({"reserve 9 4": 2})
    for status, body in recalled:
        assert status == 200
        assert msgspec.json.decode(body)["results"][0]["result"] == ["tea", "milk", "jam"]
    assert "milk" not in logs  # call state is never logged
