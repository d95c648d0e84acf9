"""Durable mode's price: acknowledgement latency in-process vs durable, and worker throughput.

``make bench-durable`` (or ``python -m benchmarks.durable``) starts a private ``redis-server``
(``appendonly yes``, ``appendfsync everysec``, as production should run it) and a private
PostgreSQL cluster (``synchronous_commit=on``: a commit is answered once its WAL is written;
``fsync=off``, so the disk's flush is not in the figures: on a real disk each commit adds
it, shared by the commits that wait together), and for each:

1. **Acknowledgement latency**: ``voicehooks run benchmarks/loadtest_app.py`` without, then
   with ``VOICEHOOKS_QUEUE_URL``; signed end-of-call-reports (the ~30 KB ``report`` workload
   of ``benchmarks/workloads.py``) over one keep-alive connection, one at a time (the latency a
   single platform request sees), then 16 at a time. Reported: p50 and p99 from sending the
   request to the last byte of the ``{}``. In-process, the answer goes out before the handler
   runs; durable, after the entry is in the queue (one script call on Redis, one committed
   statement on PostgreSQL) and the duplicate store's claim (on the same server: several
   receivers must share it).
2. **Worker throughput**: ``--entries`` reports are put in the stream, then one
   ``voicehooks worker`` (``--concurrency`` 8, then 32) is started and timed until the stream
   is empty: entries per second, handler included (a sync handler that counts the report).
3. **Sealing** (``VOICEHOOKS_QUEUE_KEY``): CPU microseconds to seal one entry and to open it
   (``voicehooks.work.sealing``, AES-256-GCM), for entries of 1, 30 and 256 KiB, the best of
   5 rounds, in this process. ``--sealing-only`` runs just this, without Redis or servers.

Client, servers, worker and the queue's server share the machine, so these are floors, and
only comparable within one run. Bounded in count; the whole run takes about two minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.loadtest import percentile, read_answer
from benchmarks.workloads import make_pool
from tests.helpers.paths import ROOT
from tests.helpers.postgres_server import running_postgres
from tests.helpers.redis_server import running_redis
from tests.helpers.servers import running_server
from voicehooks.state.postgres import run_statement
from voicehooks.work.durable import queue_from_url
from voicehooks.work.pgqueue import PostgresQueue
from voicehooks.work.queue import RedisQueue
from voicehooks.work.sealing import Sealer

APP = "benchmarks/loadtest_app.py"
SECRET = "whsec_bench_durable_only"
QUIET = ["--log-level", "warning"]


def report_requests(count: int, port: int, run: str) -> list[bytes]:
    """``count`` distinct signed ~30 KB end-of-call-reports (``benchmarks/workloads.py``)."""
    pool = make_pool("report", count, stream=run, secret=SECRET)
    requests = []
    for i in range(len(pool)):
        head = [f"POST / HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"]
        head += [f"{name.decode()}: {value.decode()}\r\n" for name, value in pool.headers(i)[1:]]
        requests.append("".join(head).encode() + b"\r\n" + pool.body(i))
    return requests


async def latencies(port: int, total: int, concurrency: int, run: str) -> list[float]:
    """Milliseconds per request; every answer must be a 200."""
    requests = report_requests(total, port, run)
    pending = iter(requests)
    measured: list[float] = []

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for request in pending:
                started = time.perf_counter()
                writer.write(request)
                status, body, _ = await read_answer(reader)
                measured.append((time.perf_counter() - started) * 1000)
                if status != 200:
                    raise RuntimeError(f"answer {status}: {body[:200]!r}")
        finally:
            writer.close()

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return measured


def ack_latency(directory: Path, env: dict[str, str], requests: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with running_server(APP, directory, args=QUIET, env=env) as server:
        asyncio.run(latencies(server.port, 300, 4, "warm"))  # connections, caches, scripts
        for concurrency in (1, 16):
            ordered = sorted(asyncio.run(latencies(server.port, requests, concurrency, "m")))
            results[f"c{concurrency}"] = {
                "p50_ms": round(percentile(ordered, 0.50), 2),
                "p99_ms": round(percentile(ordered, 0.99), 2),
            }
    return results


def fill(directory: Path, env: dict[str, str], entries: int, run: str) -> None:
    """Put ``entries`` reports in the stream the real way: through a durable receiver."""
    with running_server(APP, directory, args=QUIET, env=env) as server:
        asyncio.run(latencies(server.port, entries, 16, run))


async def drain(url: str) -> None:
    queue = queue_from_url(url)
    if isinstance(queue, RedisQueue):
        await queue.client.delete(queue.stream)
    else:
        assert isinstance(queue, PostgresQueue)
        await queue.open()
        await run_statement(queue.pool, "DELETE FROM voicehooks.jobs", [])
        await run_statement(queue.pool, "UPDATE voicehooks.queues SET length = 0", [])
    await queue.aclose()  # the queue's client shares a pool: only the queue may close it


async def backlog(url: str) -> int:
    queue = queue_from_url(url)
    try:
        return (await queue.stats()).length
    finally:
        await queue.aclose()


def worker_throughput(
    directory: Path, env: dict[str, str], url: str, entries: int, concurrency: int
) -> float:
    fill(directory, env, entries, f"fill{concurrency}")
    if asyncio.run(backlog(url)) < entries:
        raise RuntimeError("the stream does not hold the reports just sent")
    command = [sys.executable, "-m", "voicehooks", "worker", APP, *QUIET]
    command += ["--concurrency", str(concurrency)]
    with open(directory / f"worker-{concurrency}.log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        return asyncio.run(_timed_drain(url, entries))
    finally:
        process.terminate()
        process.wait(timeout=30)


def sealing_cost(sizes_kib: tuple[int, ...] = (1, 30, 256), rounds: int = 5) -> dict[str, Any]:
    """CPU µs to seal and to open one entry of each size, best of ``rounds``, and per KiB."""
    sealer = Sealer([os.urandom(32)])
    results: dict[str, Any] = {}
    for kib in sizes_kib:
        data = os.urandom(kib * 1024)
        count = max(200, 20_000 // kib)
        sealed = sealer.seal(data)
        best = {"seal": float("inf"), "open": float("inf")}
        for _ in range(rounds):
            for name, step, argument in (
                ("seal", sealer.seal, data),
                ("open", sealer.open, sealed),
            ):
                started = time.process_time()
                for _ in range(count):
                    step(argument)
                best[name] = min(best[name], (time.process_time() - started) / count * 1e6)
        results[f"{kib}KiB"] = {
            "seal_us": round(best["seal"], 2),
            "open_us": round(best["open"], 2),
            "seal_us_per_kib": round(best["seal"] / kib, 3),
        }
    return results


def print_sealing(results: dict[str, Any]) -> None:
    print("| entry | seal µs | open µs | seal µs per KiB |")
    print("|---|---|---|---|")
    for size, by in results.items():
        print(f"| {size} | {by['seal_us']} | {by['open_us']} | {by['seal_us_per_kib']} |")


async def _timed_drain(url: str, entries: int) -> float:
    # One queue (one connection) for every look: a new one each time would cost a server
    # process per look on PostgreSQL, and slow down the worker being measured.
    queue = queue_from_url(url)
    try:
        started = first_left = None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            left = (await queue.stats()).length
            if started is None and left < entries:
                started = time.monotonic()  # the first entry is done: startup is excluded
                first_left = left
            if left == 0 and started is not None and first_left is not None:
                return first_left / max(time.monotonic() - started, 1e-9)
            await asyncio.sleep(0.05)
        raise RuntimeError("the worker did not drain the queue within 300 s")
    finally:
        await queue.aclose()


@contextlib.contextmanager
def _temporary() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="voicehooks-bench-durable-") as tmp:
        yield Path(tmp)


def main(argv: list[str] | None = None) -> int:
    """Print the table (and ``--json``); exit code 0 unless something failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="per latency measurement")
    parser.add_argument("--entries", type=int, default=5000, help="per throughput measurement")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--sealing-only", action="store_true", help="measure sealing alone (no Redis, no server)"
    )
    args = parser.parse_args(argv)
    load = os.getloadavg()
    if args.sealing_only:
        sealing = sealing_cost()
        print(f"load average at start: {[round(x, 2) for x in load]} on {os.cpu_count()} CPUs")
        print_sealing(sealing)
        if args.json:
            args.json.write_text(json.dumps({"sealing": sealing}, indent=2) + "\n")
        return 0
    base = {**os.environ, "VOICEHOOKS_SECRET": SECRET, "PYTHONUNBUFFERED": "1"}
    for name in ("VOICEHOOKS_REDIS_URL", "VOICEHOOKS_STORE_URL", "VOICEHOOKS_QUEUE_URL"):
        base.pop(name, None)
    results: dict[str, Any] = {
        "load_average_at_start": [round(x, 2) for x in load],
        "cpus": os.cpu_count(),
        "ack": {},
        "worker_entries_per_second": {},
    }
    with _temporary() as directory:
        results["ack"]["in-process"] = ack_latency(directory, base, args.requests)
        servers: dict[str, contextlib.AbstractContextManager[Any]] = {
            "redis": running_redis(directory, appendonly=True),
            "postgres": running_postgres(durable_commits=True),
        }
        for backend, running in servers.items():
            with running as server:
                durable = {**base, "VOICEHOOKS_QUEUE_URL": server.url}  # the store follows
                results["ack"][f"durable, {backend}"] = ack_latency(
                    directory, durable, args.requests
                )
                asyncio.run(drain(server.url))  # the latency run's entries: not the next's
                results["worker_entries_per_second"][backend] = {
                    f"c{c}": round(
                        worker_throughput(directory, durable, server.url, args.entries, c)
                    )
                    for c in (8, 32)
                }
        results["sealing"] = sealing_cost()
    print(f"load average at start: {results['load_average_at_start']} on {results['cpus']} CPUs")
    print("| end-of-call-report ack | concurrency 1: p50 / p99 ms | concurrency 16: p50 / p99 ms |")
    print("|---|---|---|")
    for mode, by in results["ack"].items():
        cells = [f"{by[c]['p50_ms']} / {by[c]['p99_ms']}" for c in ("c1", "c16")]
        print(f"| {mode} | {cells[0]} | {cells[1]} |")
    for backend, rates in results["worker_entries_per_second"].items():
        print(
            f"worker throughput on {backend} (entries/s): concurrency 8: {rates['c8']}, "
            f"32: {rates['c32']}"
        )
    print_sealing(results["sealing"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
