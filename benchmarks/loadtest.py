"""Load test: 100,000 signed deliveries at concurrency 64 against ``voicehooks run``, checked.

``make loadtest`` (or ``python -m benchmarks.loadtest``) starts ``voicehooks run
benchmarks/loadtest_app.py`` on a free loopback port (one uvicorn worker, uvloop and
httptools, pinned to CPU 0 when there are two) and drives it from this process (pinned to CPU
1) over 64 keep-alive connections with raw asyncio streams. The deliveries rotate over the
four event types: tool calls to an async tool, a sync tool, both in one delivery, and a
fire-and-forget tool; assistant-requests; status-updates; end-of-call-reports. Every
delivery has its own call id and tool-call ids (duplicate suppression is on by default, and
a repeat would be answered from the store rather than run).

Checked: every answer is a 200 with exactly the expected body (each tool result under its
tool-call id, the assistant answer naming the call, ``{}`` for the rest); after a SIGTERM the
app reports that every accepted status-update, end-of-call-report and fire-and-forget tool
ran its background work; the server log holds no error. Reported: throughput, latency
percentiles (send to last byte of the answer), and the server's RSS before the load and at
every tenth of it.

Bounded in count (``--requests``) and time (``--time-limit``, 10 minutes by default: the run
is aborted and fails past it). The exit code is 0 only for a complete run with zero errors.
The client shares the machine with the server, so throughput is a floor for the server, not
a benchmark (``make bench`` compares frameworks with wrk).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from voicehooks.core.signing import sign
from voicehooks.testing import (
    assistant_request,
    end_of_call_report,
    status_update,
    tool_call,
    tool_calls,
)

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "benchmarks" / "loadtest_app.py"
SECRET = "whsec_loadtest_only_not_a_real_secret"
COUNTS_PREFIX = "loadtest background counts:"  # printed by loadtest_app at shutdown

ROTATION = (
    "add",
    "lookup",
    "add+lookup",
    "note",
    "add",
    "lookup",
    "assistant-request",
    "status-update",
    "status-update",
    "end-of-call-report",
)
"""One delivery kind per request index, in this order, round and round."""

QUIET = ("--log-level", "warning")  # one INFO line per delivery would measure the terminal


@dataclass(frozen=True)
class Delivery:
    """One request on the wire and the answer it must get."""

    kind: str
    request: bytes
    expected: Any


def make_delivery(index: int, run: str, port: int) -> Delivery:
    """The ``index``-th delivery of run ``run``: unique ids, freshly signed."""
    kind = ROTATION[index % len(ROTATION)]
    call_id = f"load-{run}-{index}"
    a, b, order = index, index % 97, f"WO-{index}"
    add = tool_call("add", {"a": a, "b": b}, id=f"{call_id}-t0")
    lookup = tool_call("lookup", {"order_number": order}, id=f"{call_id}-t1")
    found = {"order_number": order, "status": "ready", "call": call_id}
    payload: dict[str, Any]
    if kind == "add":
        payload = tool_calls(add, call_id=call_id)
        expected: Any = {"results": [{"tool_call_id": add["id"], "result": a + b}]}
    elif kind == "lookup":
        payload = tool_calls(lookup, call_id=call_id)
        expected = {"results": [{"tool_call_id": lookup["id"], "result": found}]}
    elif kind == "add+lookup":
        payload = tool_calls(add, lookup, call_id=call_id)
        expected = {
            "results": [
                {"tool_call_id": add["id"], "result": a + b},
                {"tool_call_id": lookup["id"], "result": found},
            ]
        }
    elif kind == "note":
        note = tool_call("note", {"text": f"note {index}"}, id=f"{call_id}-t0")
        payload = tool_calls(note, call_id=call_id)
        expected = {"results": [{"tool_call_id": note["id"], "result": "Noted."}]}
    elif kind == "assistant-request":
        payload = assistant_request(call_id=call_id)
        expected = {
            "assistant_id": "asst_load",
            "assistant_override": {"first_message": f"Hello {call_id}"},
        }
    elif kind == "status-update":
        payload = status_update("in-progress", call_id=call_id)
        expected = {}
    else:
        payload = end_of_call_report(call_id=call_id)
        expected = {}
    body = msgspec.json.encode(payload)
    headers = sign(body, SECRET, event=payload["message"]["type"])
    head = [f"POST / HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-length: {len(body)}\r\n"]
    head += [f"{name}: {value}\r\n" for name, value in headers.items()]
    return Delivery(kind, "".join(head).encode() + b"\r\n" + body, expected)


@dataclass
class Results:
    """What the clients saw."""

    total: int
    latencies_ms: list[float] = field(default_factory=list)
    sent: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    rss_kib: list[tuple[int, int]] = field(default_factory=list)  # (completed, VmRSS)

    @property
    def completed(self) -> int:
        return len(self.latencies_ms)

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.examples) < 5:
            self.examples.append(f"{kind}: {detail[:300]}")


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """Status, body and whether the server will close the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    closing = False
    for line in head.lower().split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip() == b"close":
            closing = True
    return status, await reader.readexactly(length), closing


async def client(
    port: int, run: str, indices: Iterator[int], results: Results, decode: Callable[[bytes], Any]
) -> None:
    """Send deliveries on one keep-alive connection until ``indices`` runs out."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for index in indices:
            delivery = make_delivery(index, run, port)
            results.sent[delivery.kind] += 1
            started = time.perf_counter()
            try:
                writer.write(delivery.request)
                status, body, closing = await read_answer(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                results.error("connection", f"{delivery.kind} #{index}: {exc!r}")
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            results.latencies_ms.append((time.perf_counter() - started) * 1000)
            if status != 200:
                results.error("status", f"{delivery.kind} #{index}: {status} {body!r}")
            elif decode(body) != delivery.expected:
                results.error("answer", f"{delivery.kind} #{index}: {body!r}")
            if closing:
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


def rss_kib(pid: int) -> int:
    """The resident set size of process ``pid``, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


async def drive(
    port: int, pid: int, total: int, concurrency: int, time_limit: float
) -> tuple[Results, float, bool]:
    """Run the load; return the results, the elapsed seconds and whether it finished in time."""
    results = Results(total)
    results.rss_kib.append((0, rss_kib(pid)))
    indices = iter(range(total))  # shared: each client takes the next index
    run = f"{int(time.time())}-{os.getpid()}"
    decode = msgspec.json.Decoder().decode
    milestones = [total * step // 10 for step in range(1, 11)]

    async def watch() -> None:
        while milestones:
            if results.completed >= milestones[0]:
                results.rss_kib.append((milestones.pop(0), rss_kib(pid)))
            else:
                await asyncio.sleep(0.05)

    started = time.perf_counter()
    clients = [client(port, run, indices, results, decode) for _ in range(concurrency)]
    watcher = asyncio.ensure_future(watch())
    try:
        await asyncio.wait_for(asyncio.gather(*clients), timeout=time_limit)
        finished = True
    except TimeoutError:
        finished = False
    elapsed = time.perf_counter() - started
    if finished:
        await asyncio.wait_for(watcher, timeout=5)
    watcher.cancel()
    return results, elapsed, finished


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def start_server(port: int, log_path: Path, pin: bool) -> subprocess.Popen[bytes]:
    env = {**os.environ, "VOICEHOOKS_SECRET": SECRET, "PYTHONUNBUFFERED": "1"}
    env.pop("VOICEHOOKS_REDIS_URL", None)  # the in-memory store: one process
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "voicehooks", "run", str(APP), "--port", str(port), *QUIET],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )
    if pin:
        os.sched_setaffinity(process.pid, {0})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited early:\n{log_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"the server did not listen on {port} within 30 s")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def background_counts(log: str) -> dict[str, int]:
    for line in log.splitlines():
        if line.startswith(COUNTS_PREFIX):
            pairs = line[len(COUNTS_PREFIX) :].split()
            return {k: int(v) for k, v in (pair.split("=") for pair in pairs)}
    return {}


def report(
    results: Results, elapsed: float, finished: bool, counts: dict[str, int], log: str, args: Any
) -> dict[str, Any]:
    """Print the summary and return it as data."""
    ordered = sorted(results.latencies_ms)
    expected_counts = {
        "status-update": results.sent["status-update"],
        "end-of-call-report": results.sent["end-of-call-report"],
        "note": results.sent["note"],
    }
    rss = [(done, kib) for done, kib in results.rss_kib]
    middle = next((kib for done, kib in rss if done >= results.total // 2), rss[-1][1])
    summary: dict[str, Any] = {
        "requests": results.total,
        "completed": results.completed,
        "finished_in_time": finished,
        "concurrency": args.concurrency,
        "elapsed_seconds": round(elapsed, 2),
        "throughput_rps": round(results.completed / elapsed, 1) if elapsed else 0.0,
        "latency_ms": {
            name: round(percentile(ordered, q), 2) if ordered else None
            for name, q in (("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p999", 0.999))
        }
        | {"max": round(ordered[-1], 2) if ordered else None},
        "errors": dict(results.errors),
        "error_examples": results.examples,
        "sent": dict(results.sent),
        "background_expected": expected_counts,
        "background_done": counts,
        "rss_kib": [{"completed": done, "vmrss": kib} for done, kib in rss],
        "rss_growth_after_middle_kib": rss[-1][1] - middle,
        "server_log_errors": [
            line for line in log.splitlines() if "Traceback" in line or "ERROR" in line
        ][:5],
    }
    mib = [f"{done:,}: {kib / 1024:.1f}" for done, kib in rss]
    lat = summary["latency_ms"]
    print(
        f"voicehooks load test: {results.total} signed deliveries, concurrency {args.concurrency}"
    )
    print(f"  mix: {', '.join(f'{k} {v}' for k, v in sorted(results.sent.items()))}")
    print(
        f"  completed {results.completed}/{results.total} in {elapsed:.1f} s"
        f" = {summary['throughput_rps']:.0f} requests/s"
        + ("" if finished else f" (ABORTED at the {args.time_limit:.0f} s limit)")
    )
    print(f"  errors: {sum(results.errors.values())} {dict(results.errors) or ''}")
    for example in results.examples:
        print(f"    {example}")
    print(
        f"  latency ms: p50 {lat['p50']}  p90 {lat['p90']}  p99 {lat['p99']}"
        f"  p99.9 {lat['p999']}  max {lat['max']}"
    )
    print(f"  server RSS MiB by requests completed: {' | '.join(mib)}")
    print(
        f"    start {rss[0][1] / 1024:.1f}, middle {middle / 1024:.1f}, end {rss[-1][1] / 1024:.1f}"
        f" (end - middle: {summary['rss_growth_after_middle_kib'] / 1024:+.1f} MiB)"
    )
    print(f"  background work done / accepted: {counts} / {expected_counts}")
    if summary["server_log_errors"]:
        print(f"  server log errors: {summary['server_log_errors']}")
    return summary


def main(argv: list[str] | None = None) -> int:
    """Entry point; the exit code is 0 only for a complete run with zero errors."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds; then abort")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args(argv)
    pin = len(os.sched_getaffinity(0)) >= 2
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="voicehooks-loadtest-") as tmp:
        log_path = Path(tmp) / "server.log"
        server = start_server(port, log_path, pin)
        try:
            if pin:
                os.sched_setaffinity(0, {1})
            results, elapsed, finished = run_loop(
                drive(port, server.pid, args.requests, args.concurrency, args.time_limit)
            )
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        log = log_path.read_text(errors="replace")
    summary = report(results, elapsed, finished, background_counts(log), log, args)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    ok = (
        finished
        and results.completed == args.requests
        and not results.errors
        and summary["background_done"] == summary["background_expected"]
        and not summary["server_log_errors"]
    )
    print("  PASS" if ok else "  FAIL")
    return 0 if ok else 1


def run_loop(coroutine: Any) -> Any:
    """Run ``coroutine`` on uvloop when it is installed (it is, with uvicorn[standard])."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - plain asyncio works too, just slower
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


if __name__ == "__main__":
    raise SystemExit(main())
