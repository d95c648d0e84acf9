"""Re-measures the 0.1.0 figures of "Nothing accepted is lost" against a real ``voicehooks run``.

``python -m benchmarks.bounded`` starts the app below on a free loopback port and prints:

1. 10,000 end-of-call-reports of ~49 KiB while every background slot is held by a slow CRM:
   how many were accepted (200) and refused (503 + Retry-After), and the server's RSS before
   and after (0.1.0: all 10,000 accepted, 35 -> 1,036 MiB, all lost at SIGTERM).
2. A 10 ms sync tool while 40 sync status-update handlers block for 25 s: its latency
   (0.1.0: "did not answer in time" after 8 s).
3. Two waves of 20 calls to a sync tool that hangs past its deadline: the server's thread
   count after each (0.1.0: 5 -> 45 -> 86).

Traffic goes only to the server it starts on 127.0.0.1, bounded in count and time; the server
is stopped by its PID at the end.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgspec

from voicehooks import sign
from voicehooks.testing import end_of_call_report, status_update, tool_call, tool_calls

__all__ = ["main"]

SECRET = "whsec_bounded_benchmark"
APP = """
import threading
import time

import anyio

from voicehooks import Deadlines, VoiceHooks

app = VoiceHooks(deadlines=Deadlines(tool_seconds=0.5))
release = threading.Event()


@app.on("end-of-call-report")
async def slow_crm() -> None:
    await anyio.sleep(60)


@app.on("status-update")
def blocking_crm() -> None:
    release.wait(25)


@app.tool
def quick(x: int) -> int:
    '''Answer fast.'''
    time.sleep(0.01)
    return x


@app.tool(deduplicate=False)
def hangs() -> None:
    '''Hang past the deadline.'''
    time.sleep(30)
"""


def _post(port: int, payload: dict[str, object]) -> tuple[int, float]:
    body = msgspec.json.encode(payload)
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/", body=body, headers=sign(body, SECRET))
        response = connection.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    finally:
        connection.close()


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def _server_pid(process: subprocess.Popen[bytes]) -> int:
    return process.pid  # one worker, no reload: uvicorn serves in the process it was started as


def main() -> int:
    """Run the three measurements and print them as JSON lines."""
    folder = Path(tempfile.mkdtemp(prefix="voicehooks-bounded-"))
    (folder / "bounded_app.py").write_text(APP)
    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "voicehooks",
            "run",
            str(folder / "bounded_app.py"),
            "--port",
            str(port),
            "--log-level",
            "error",
        ],
        env={**os.environ, "VOICEHOOKS_SECRET": SECRET},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                _post(port, status_update("ended", call_id="warmup"))
                break
            except OSError:
                time.sleep(0.1)
        pid = _server_pid(process)
        padding = [{"role": "user", "content": "x" * 480} for _ in range(100)]  # ~49 KiB
        before = _rss_mib(pid)
        with ThreadPoolExecutor(16) as pool:
            statuses = list(
                pool.map(
                    lambda i: _post(port, end_of_call_report(call_id=f"r{i}", messages=padding))[0],
                    range(10_000),
                )
            )
        print(
            json.dumps(
                {
                    "reports": 10_000,
                    "accepted_200": statuses.count(200),
                    "refused_503": statuses.count(503),
                    "rss_mib_before": round(before, 1),
                    "rss_mib_after": round(_rss_mib(pid), 1),
                }
            )
        )
        with ThreadPoolExecutor(40) as pool:
            list(pool.map(lambda i: _post(port, status_update(call_id=f"s{i}"))[0], range(40)))
        status, seconds = _post(port, tool_calls(tool_call("quick", {"x": 7})))
        print(
            json.dumps(
                {
                    "blocked_background_handlers": 40,
                    "sync_tool_status": status,
                    "sync_tool_ms": round(seconds * 1000, 1),
                }
            )
        )
        counts = [_threads(pid)]
        for _ in range(2):
            with ThreadPoolExecutor(20) as pool:
                list(pool.map(lambda i: _post(port, tool_calls(tool_call("hangs"))), range(20)))
            counts.append(_threads(pid))
        print(json.dumps({"threads_before_and_after_two_waves_of_20_hung_calls": counts}))
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
