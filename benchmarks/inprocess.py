"""The in-process level: one contender, its ASGI app awaited directly, no HTTP.

Run as ``python -m benchmarks.inprocess '<json settings>'`` by the harness, one fresh process
per contender, on uvloop when it is installed (as under uvicorn). Prints one JSON object:
for each workload the microseconds per request of every repeat and their median.

Each workload's requests are signed before its first repeat and every request is distinct;
each repeat runs ``number`` of them back to back after a warm-up, with the garbage
collector on (as in production) and a ``gc.collect()`` before the clock starts. The app's
lifespan runs, as under a server: background handlers are tasks, and a repeat's clock stops
once the tasks its requests started have finished.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, TypedDict

from starlette.types import ASGIApp

from benchmarks import contenders, demo, drive
from benchmarks.workloads import SECRET, make_pool

__all__ = ["Settings", "measure", "run"]


class Settings(TypedDict):
    """What one in-process run measures."""

    contender: str
    numbers: dict[str, int]  # workload -> requests per repeat
    repeats: int
    warmup: int
    seed: int


def event_loop_factory() -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    """uvloop's loop when installed, else asyncio's; and its name."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return "asyncio", asyncio.new_event_loop
    return "uvloop", uvloop.new_event_loop


async def measure(settings: Settings) -> dict[str, Any]:
    """Time every workload of ``settings`` on a fresh app of its contender."""
    app = contenders.make_app(settings["contender"], SECRET)
    async with drive.lifespan(app):
        results = await _measure_workloads(app, settings)
    return {
        "contender": settings["contender"],
        "label": contenders.label(settings["contender"]),
        "workloads": results,
        "handled": {
            "reports": demo.Stats.reports,
            "assistant_requests": demo.Stats.assistant_requests,
        },
    }


async def _measure_workloads(app: ASGIApp, settings: Settings) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for workload, number in settings["numbers"].items():
        repeats, warmup = settings["repeats"], settings["warmup"]
        pool = make_pool(
            workload, warmup + number * repeats, stream="timing", seed=settings["seed"]
        )
        await drive.time_batch(app, drive.prepare(pool, 0, warmup))
        seconds: list[float] = []
        for r in range(repeats):
            start = warmup + r * number
            batch = drive.prepare(pool, start, start + number)
            seconds.append(await drive.time_batch(app, batch))
            del batch
        per_request = [1e6 * s / number for s in seconds]
        results[workload] = {
            "us": statistics.median(per_request),
            "repeats_us": per_request,
            "number": number,
            "body_bytes": len(pool.body(0)),
        }
    return results


def run(settings: Settings) -> dict[str, Any]:
    """``measure`` on a new event loop; adds the loop's name to the result."""
    loop_name, factory = event_loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        result = runner.run(_coroutine(measure, settings))
    result["loop"] = loop_name
    return result


def _coroutine(
    function: Callable[[Settings], Coroutine[Any, Any, dict[str, Any]]], settings: Settings
) -> Coroutine[Any, Any, dict[str, Any]]:
    return function(settings)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: one JSON argument in, one JSON line out."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m benchmarks.inprocess '<json settings>'", file=sys.stderr)
        return 2
    settings: Settings = json.loads(args[0])
    print(json.dumps(run(settings)))
    return 0


def settings_for(
    contender: str, numbers: Mapping[str, int], *, repeats: int, warmup: int, seed: int
) -> Settings:
    """Build the settings of one run."""
    return Settings(
        contender=contender, numbers=dict(numbers), repeats=repeats, warmup=warmup, seed=seed
    )


if __name__ == "__main__":
    raise SystemExit(main())
