"""Profile one contender's hot path in-process: ``python -m benchmarks.hotpath``.

Runs ``--number`` distinct, pre-signed requests of one workload through the app (after a
warm-up) under ``cProfile`` and prints the top functions, or with ``--time`` just the
microseconds per request. ``--lifespan`` runs the app's lifespan and lets the event loop turn
between requests, as under a server: background handlers then run as tasks, which is where
the in-process and the HTTP numbers of the report workload part ways.

Examples:
    python -m benchmarks.hotpath --workload tool-1
    python -m benchmarks.hotpath --workload report --lifespan --sort cumulative
    python -m benchmarks.hotpath --contender raw --workload report --time
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import pstats
import time
from collections.abc import AsyncIterator, Sequence

from starlette.types import ASGIApp

from benchmarks import contenders, drive, inprocess
from benchmarks.workloads import ALL_WORKLOADS, SECRET, make_pool

__all__ = ["main"]


@contextlib.asynccontextmanager
async def _lifespan(app: ASGIApp, enabled: bool) -> AsyncIterator[None]:
    """Run the app's lifespan protocol around the block, when ``enabled``."""
    if not enabled:
        yield
        return
    async with drive.lifespan(app):
        yield


async def _drive(app: ASGIApp, batch: drive.Prepared, *, turn: bool) -> None:
    send, statuses = drive.counting_send()
    for scope, receive in batch:
        await app(scope, receive, send)
        if turn:
            await asyncio.sleep(0)  # a server's event loop turns between requests
    if turn:  # let background work started by the last requests finish
        for _ in range(100):
            await asyncio.sleep(0)
    if statuses[200] != len(batch):
        raise RuntimeError(f"expected {len(batch)} answers 200, got {dict(statuses)}")


async def _run(args: argparse.Namespace) -> None:
    app = contenders.make_app(args.contender, SECRET)
    pool = make_pool(args.workload, args.warmup + args.number, stream="hotpath", seed=args.seed)
    async with _lifespan(app, args.lifespan):
        await _drive(app, drive.prepare(pool, 0, args.warmup), turn=args.lifespan)
        batch = drive.prepare(pool, args.warmup, args.warmup + args.number)
        gc.collect()
        profile = None if args.time else cProfile.Profile()
        started = time.perf_counter()
        if profile is not None:
            profile.enable()
        await _drive(app, batch, turn=args.lifespan)
        if profile is not None:
            profile.disable()
        elapsed = time.perf_counter() - started
    print(
        f"{args.contender} {args.workload}{' (lifespan)' if args.lifespan else ''}: "
        f"{1e6 * elapsed / args.number:.2f} µs/request"
        + (" under cProfile" if profile is not None else "")
    )
    if profile is not None:
        pstats.Stats(profile).sort_stats(args.sort).print_stats(args.top)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hotpath", description=__doc__)
    parser.add_argument("--contender", choices=contenders.CONFORMING, default="voicehooks")
    parser.add_argument("--workload", choices=tuple(ALL_WORKLOADS), default="tool-1")
    parser.add_argument("--number", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--lifespan", action="store_true", help="run the app's lifespan")
    parser.add_argument("--time", action="store_true", help="time only, no profiler")
    parser.add_argument("--sort", default="tottime", help="pstats sort key")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    _, factory = inprocess.event_loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(_run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
