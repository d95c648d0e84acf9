"""The memory level: the RSS of one uvicorn worker over 100,000 distinct deliveries.

Each contender's server gets the four main workloads interleaved, in chunks of distinct,
freshly signed requests, and its ``VmRSS`` is read from ``/proc`` after startup and after
every chunk. With duplicate suppression on, every delivery adds an entry to the in-memory
store, so an unbounded store shows up here as a line that keeps climbing.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.over_http import cpu_plan, running_servers, write_pool_file, wrk_run
from benchmarks.workloads import MAIN_WORKLOADS, make_pool

__all__ = ["FLAT_KIB", "run"]

FLAT_KIB = 5 * 1024
"""RSS growth over the second half of the requests up to which a run counts as flat.

The first half may grow: a bounded duplicate store fills up to its size (50,000 deliveries by
default) before it starts to evict; after that nothing should grow any more.
"""


def run(
    names: Sequence[str],
    *,
    total: int = 100_000,
    chunks: int = 10,
    connections: int = 16,
    time_bound_seconds: int = 180,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Serve ``total`` deliveries to each contender; return its RSS after every chunk."""
    plan = cpu_plan()
    per_chunk = total // chunks
    per_workload = -(-per_chunk // len(MAIN_WORKLOADS))
    spare = 2 * connections + 8
    results: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="voicehooks-bench-mem-") as tmp,
        running_servers(names, Path(tmp), plan) as servers,
    ):
        for name, server in servers.items():
            started = time.monotonic()
            series = [{"requests": 0, "rss_kib": server.rss_kib()["VmRSS"]}]
            served = 0
            for chunk in range(chunks):
                remaining = int(time_bound_seconds - (time.monotonic() - started))
                if remaining < 1:
                    break
                stamp = int(time.time())
                pools = [
                    make_pool(
                        w,
                        per_workload + spare,
                        stream=f"memory-{chunk}",
                        seed=seed,
                        timestamp=stamp,
                    )
                    for w in MAIN_WORKLOADS
                ]
                pool_file = Path(tmp) / f"memory-{name}.pool"
                write_pool_file(pool_file, pools)
                # +1: wrk calls request() once before the run to inspect it; +connections:
                # the requests in flight when the thread stops are never answered.
                result = wrk_run(
                    server.port,
                    pool_file,
                    limit=per_chunk + connections + 1,
                    duration_seconds=min(remaining, 60),
                    connections=connections,
                    core=plan.client,
                )
                if result["errors"]["status"]:
                    raise RuntimeError(f"{name}: {result['errors']['status']} answers were not 2xx")
                served += result["requests"]
                series.append({"requests": served, "rss_kib": server.rss_kib()["VmRSS"]})
            rss = server.rss_kib()
            after_first = series[1]["rss_kib"] if len(series) > 1 else series[0]["rss_kib"]
            halfway = series[len(series) // 2]["rss_kib"]
            growth = series[-1]["rss_kib"] - after_first
            late_growth = series[-1]["rss_kib"] - halfway
            results[name] = {
                "requests": served,
                "seconds": round(time.monotonic() - started, 1),
                "start_kib": series[0]["rss_kib"],
                "after_first_chunk_kib": after_first,
                "end_kib": series[-1]["rss_kib"],
                "peak_kib": rss["VmHWM"],
                "growth_after_first_chunk_kib": growth,
                "growth_second_half_kib": late_growth,
                "flat": late_growth <= FLAT_KIB,
                "series": series,
            }
            if log is not None:
                log(
                    f"  memory {name:<11} {served} requests: RSS start "
                    f"{series[0]['rss_kib'] / 1024:.1f} MiB, end {series[-1]['rss_kib'] / 1024:.1f}"
                    f" MiB, peak {rss['VmHWM'] / 1024:.1f} MiB"
                )
    return results
