"""What ``min_replicas_acks`` costs: durable acknowledgement latency with and without ``WAIT``.

``python -m benchmarks.replicas`` starts a private master (``appendonly yes``) and one replica
of it on loopback, then measures, as ``benchmarks/durable.py`` does (the same requests, the
same ``voicehooks run`` of ``benchmarks/loadtest_app.py``, one at a time and 16 at a time),
the end-of-call-report acknowledgement latency of a durable receiver on the master, without
and then with ``VOICEHOOKS_QUEUE_MIN_REPLICAS_ACKS=1``: each enqueue then waits for the
replica to hold the entries (``WAIT 1``) before the 200.

The replica is on the same machine, so the figure is the round trip and the replica's
work, not a network's: across hosts add one network round trip per delivery. Client,
server and both Redis processes share the machine: floors, comparable only within one run.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from benchmarks.durable import SECRET, _temporary, ack_latency
from tests.helpers.redis_topologies import running_replicated


def main(argv: list[str] | None = None) -> int:
    """Print the table; exit code 0 unless something failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="per latency measurement")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    results: dict[str, Any] = {}
    with _temporary() as directory, running_replicated(directory, appendonly=True) as nodes:
        url = f"redis://127.0.0.1:{nodes[0].port}/0"
        base = {**os.environ, "VOICEHOOKS_SECRET": SECRET, "PYTHONUNBUFFERED": "1"}
        base.pop("VOICEHOOKS_REDIS_URL", None)
        base["VOICEHOOKS_QUEUE_URL"] = url
        results["durable"] = ack_latency(directory, base, args.requests)
        waiting = {**base, "VOICEHOOKS_QUEUE_MIN_REPLICAS_ACKS": "1"}
        results["durable, min_replicas_acks=1"] = ack_latency(directory, waiting, args.requests)
    print(f"load average at start: {[round(x, 2) for x in load]} on {os.cpu_count()} CPUs")
    print("| end-of-call-report ack | concurrency 1: p50 / p99 ms | concurrency 16: p50 / p99 ms |")
    print("|---|---|---|")
    for mode, by in results.items():
        cells = [f"{by[c]['p50_ms']} / {by[c]['p99_ms']}" for c in ("c1", "c16")]
        print(f"| {mode} | {cells[0]} | {cells[1]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
