"""What observers cost per delivery, in-process: ``python -m benchmarks.observers``.

Two measurements, each as the median of ``--rounds`` rounds, in CPU time of the measuring
thread (``time.thread_time``): on a shared, loaded machine, wall time mostly measures how
long the process waited for a core. (The batch span processor's export thread is not
counted: it is off the request path.)

* **End to end**: the demo app (``bench_voicehooks``) answers ``--number`` distinct,
  pre-signed deliveries of one workload with no observer, with a do-nothing ``Observer``,
  with ``PrometheusObserver`` and with ``TracingObserver`` (the OTel SDK with a batch
  processor and an exporter that drops everything). Within a round the configurations run
  interleaved, so a load spike on a shared machine hits them alike; the cost of an observer
  is its median minus the median without one.
* **The observer alone**: the calls one delivery with one tool call makes
  (``delivery_started``, ``tool_started``, ``tool_ended``, ``delivery_answered``) on
  hand-made records, timed in a tight loop; and, for "none", the truth tests the pipeline
  makes on an empty ``ObserverSet`` at the same points. This isolates the observer from the
  app's own noise, which on a loaded machine is larger than the observer.

Examples:
    python -m benchmarks.observers
    python -m benchmarks.observers --workload tool-3 --rounds 7 --number 3000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks import bench_voicehooks, drive, inprocess
from benchmarks.workloads import SECRET, WORKLOADS, make_pool
from voicehooks import VoiceHooks
from voicehooks.observe import Delivery, Observer, ToolRun
from voicehooks.observe.metrics import PrometheusObserver
from voicehooks.observe.observers import ObserverSet
from voicehooks.observe.tracing import TracingObserver

__all__ = ["CONFIGURATIONS", "main", "measure_alone", "measure_end_to_end"]

POINTS_PER_DELIVERY = 4
"""Observer points one delivery with one tool call passes: started, tool started/ended, answered."""


_PROVIDERS: list[Any] = []  # shut down at the end: each owns an export thread


def _tracing() -> TracingObserver:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class Dropping(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    _PROVIDERS.append(provider)
    # A queue large enough that no span is dropped: dropping is cheaper than exporting.
    provider.add_span_processor(BatchSpanProcessor(Dropping(), max_queue_size=1 << 17))
    return TracingObserver(provider)


CONFIGURATIONS: dict[str, Callable[[], list[Observer]]] = {
    "none": list,
    "no-op observer": lambda: [Observer()],
    "metrics": lambda: [PrometheusObserver()],
    "tracing": lambda: [_tracing()],
}


def _app(observers: list[Observer]) -> VoiceHooks:
    app = bench_voicehooks.make_app(SECRET)
    for observer in observers:
        app.add_observer(observer)
    return app


async def measure_end_to_end(workload: str, number: int, rounds: int) -> dict[str, list[float]]:
    """Microseconds per delivery of every configuration, one value per round."""
    apps = {name: _app(make()) for name, make in CONFIGURATIONS.items()}
    pool = make_pool(workload, 200 + number * rounds, stream="observers", seed=0)
    for app in apps.values():
        await drive.time_batch(app, drive.prepare(pool, 0, 200))  # warm-up
    results: dict[str, list[float]] = {name: [] for name in apps}
    for r in range(rounds):
        start = 200 + r * number
        for name, app in apps.items():
            batch = drive.prepare(pool, start, start + number)
            cpu = time.thread_time()
            await drive.time_batch(app, batch)
            results[name].append(1e6 * (time.thread_time() - cpu) / number)
    return results


def _one_delivery(observer: Observer | ObserverSet) -> Callable[[], None]:
    delivery = Delivery([(b"content-type", b"application/json")])
    delivery.event_type, delivery.call_id = "tool-calls", "call-1"
    delivery.status, delivery.outcome, delivery.duration_seconds = 200, "answered", 0.001
    run = ToolRun("check_order", "tool_1", registered=True)
    run.outcome, run.duration_seconds = "ok", 0.0005

    def once() -> None:
        observer.delivery_started(delivery)
        observer.tool_started(delivery, run)
        observer.tool_ended(delivery, run)
        observer.delivery_answered(delivery)

    return once


def _guards(observers: ObserverSet) -> Callable[[], None]:
    def once() -> None:
        for _ in range(POINTS_PER_DELIVERY):
            if observers:
                raise AssertionError("the set is empty")

    return once


def _time(function: Callable[[], None], number: int) -> float:
    gc.collect()
    started = time.thread_time()
    for _ in range(number):
        function()
    return 1e6 * (time.thread_time() - started) / number


def measure_alone(number: int, rounds: int) -> dict[str, list[float]]:
    """Microseconds of the observer calls of one delivery with one tool, one value per round."""
    subjects: dict[str, Callable[[], None]] = {
        "none": _guards(ObserverSet()),
        "no-op observer": _one_delivery(ObserverSet([Observer()])),
        "metrics": _one_delivery(PrometheusObserver()),
        "tracing": _one_delivery(_tracing()),
    }
    results: dict[str, list[float]] = {name: [] for name in subjects}
    for _ in range(rounds):
        for name, function in subjects.items():
            results[name].append(_time(function, number))
    return results


def _report(title: str, results: dict[str, list[float]], baseline: bool) -> None:
    print(title)
    base = statistics.median(results["none"])
    for name, values in results.items():
        median = statistics.median(values)
        extra = f"  (+{median - base:.2f} µs)" if baseline and name != "none" else ""
        spread = f"{min(values):.2f} to {max(values):.2f}"
        print(f"  {name:<16} {median:8.2f} µs  [rounds {spread}]{extra}")


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    end_to_end = await measure_end_to_end(args.workload, args.number, args.rounds)
    alone = measure_alone(args.number * 4, args.rounds)
    return {"end_to_end": end_to_end, "alone": alone}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.observers", description=__doc__)
    parser.add_argument("--workload", choices=tuple(WORKLOADS), default="tool-1")
    parser.add_argument("--number", type=int, default=3000, help="deliveries per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    loop, factory = inprocess.event_loop_factory()
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            results = runner.run(_run(args))
    finally:
        while _PROVIDERS:
            _PROVIDERS.pop().shutdown()
    _report(
        f"{args.workload}, in-process on {loop}: CPU µs per delivery, median of {args.rounds} "
        "rounds",
        results["end_to_end"],
        baseline=True,
    )
    _report(
        "the observer calls of one delivery with one tool call alone (none: the pipeline's "
        f"{POINTS_PER_DELIVERY} truth tests on an empty ObserverSet)",
        results["alone"],
        baseline=False,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
