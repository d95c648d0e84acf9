"""What each feature costs: voicehooks with the feature against voicehooks without it.

``FEATURES`` maps a feature's name to two ``Side``s, each an app builder and the workload it
is fed, plus the budget its issue states. The level runs in one fresh process
(``python -m benchmarks.features '<json settings>'``), both sides under a running lifespan;
it alternates a batch of the baseline with a batch of the variant, ``rounds`` times, on
distinct pre-signed requests, and reports each side's median µs per request and the median
of the per-round differences: the feature's cost.

Other branches add their features here, one entry each, building their app variant with
``bench_voicehooks.build`` (interim tools: a tool that finishes before its interim time vs
the same tool without one). Metrics and tracing are here with the observers that
``benchmarks.observers`` measures in more detail.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import json
import logging
import os
import statistics
import sys
import tempfile
from collections.abc import Callable, Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypedDict

from starlette.types import ASGIApp, Receive, Scope, Send

from benchmarks import bench_voicehooks, demo, drive, inprocess
from benchmarks.workloads import MCP_TOKEN, SECRET, make_pool
from voicehooks import Duplicates, Mcp, Observer, Privacy, RedisStore, Sensitive, VoiceHooks
from voicehooks.core.logs import TextFormatter
from voicehooks.core.running import Threads, UserFunction, within
from voicehooks.observe.metrics import PrometheusObserver
from voicehooks.observe.recording import Recorder

__all__ = ["FEATURES", "Feature", "Settings", "Side", "main", "run"]


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield


@dataclass(frozen=True)
class Side:
    """One side of a comparison: an app builder, the workload, and a context to time it in."""

    build: Callable[[str], ASGIApp]
    workload: str = "tool-1"
    during: Callable[[], contextlib.AbstractContextManager[None]] = _nothing


@dataclass(frozen=True)
class Feature:
    """A feature's cost: ``variant`` minus ``baseline``, against ``budget_us`` if any."""

    what: str
    baseline: Side
    variant: Side
    budget_us: float | None = None
    budget_source: str = ""
    notes: list[str] = field(default_factory=list)
    budget_ratio: float | None = None  # a goal on with / without, instead of a cost


def _tracing() -> Observer:
    from benchmarks.observers import CONFIGURATIONS

    (observer,) = CONFIGURATIONS["tracing"]()
    return observer


def _default(secret: str) -> ASGIApp:
    return bench_voicehooks.build(secret)


def _mcp(secret: str) -> ASGIApp:
    # The driver posts to "/": the MCP endpoint is there, the webhook elsewhere.
    return bench_voicehooks.build(secret, path="/hooks", mcp=Mcp(tokens=[MCP_TOKEN], path="/"))


@contextlib.contextmanager
def _info_line() -> Iterator[None]:
    """The ``voicehooks`` logger at INFO, written to /dev/null, as ``voicehooks run`` logs.

    With the formatter ``voicehooks run`` configures by default (``--log-format text``).
    """
    logger = logging.getLogger("voicehooks")
    level, propagate = logger.level, logger.propagate
    with open(os.devnull, "w") as sink:
        handler = logging.StreamHandler(sink)
        handler.setFormatter(TextFormatter())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        try:
            yield
        finally:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.propagate = propagate


def _deadline_app(*, deadline: bool, suspends: bool) -> Callable[[str], ASGIApp]:
    """A bare ASGI app that awaits the demo tool, with or without voicehooks' deadline."""

    async def tool() -> dict[str, Any]:
        if suspends:
            await asyncio.sleep(0)  # a tool that waits on anything, once
        return await demo.check_order("WO-1234")

    def build(secret: str) -> ASGIApp:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await _lifespan_only(receive, send)
                return
            await receive()
            if deadline:
                await within(8.0, tool())
            else:
                await tool()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})

        return app

    return build


def _thread_trip_app(*, voicehooks_threads: bool) -> Callable[[str], ASGIApp]:
    """A bare ASGI app that runs the demo's sync tool in a worker thread: through
    voicehooks' ``UserFunction.call`` under its deadline (``within``), or the floor's way,
    ``loop.run_in_executor`` on a plain ``ThreadPoolExecutor``."""

    def build(secret: str) -> ASGIApp:
        pool = ThreadPoolExecutor(40)
        threads = Threads(40, 4)
        function = UserFunction(demo.check_order_sync)

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await _lifespan_only(receive, send)
                return
            await receive()
            if voicehooks_threads:
                await within(8.0, function.call(threads, "WO-1234"))
            else:
                await asyncio.get_running_loop().run_in_executor(
                    pool, demo.check_order_sync, "WO-1234"
                )
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})

        return app

    return build


def _once_per_call(secret: str, *, on_redis: bool = False) -> ASGIApp:
    """The demo app with its async tool registered ``once_per_call=True``."""
    app = VoiceHooks(secret=secret, duplicates=_duplicates(on_redis))
    app.add_tool(demo.check_order, once_per_call=True)
    app.tool(demo.check_order_sync)
    return app


def _plain_tool(secret: str, *, on_redis: bool = False) -> ASGIApp:
    """The same app and tools as ``_once_per_call``, without it."""
    app = VoiceHooks(secret=secret, duplicates=_duplicates(on_redis))
    app.tool(demo.check_order)
    app.tool(demo.check_order_sync)
    return app


def _duplicates(on_redis: bool) -> Duplicates:
    return Duplicates(store=RedisStore.from_url(_redis_url())) if on_redis else Duplicates()


_redis = contextlib.ExitStack()
_redis_urls: list[str] = []


_files = contextlib.ExitStack()  # the recordings' directories, removed at exit
atexit.register(_files.close)


def _recording(secret: str, *, raw: bool) -> ASGIApp:
    """The demo app recording to a temporary file, redacted or raw (``--record-raw``)."""
    directory = _files.enter_context(tempfile.TemporaryDirectory())
    recorder = Recorder(Path(directory) / "recording.jsonl", raw=raw)
    _files.callback(recorder.close)
    return bench_voicehooks.build(secret, observers=[recorder])


def _sensitive_tool(secret: str, *, sensitive: bool) -> ASGIApp:
    """``check_order`` with its argument ``Sensitive()`` or plain, one no-op observer on
    both sides (the masked body is made for observers)."""
    app = VoiceHooks(secret=secret, observers=[Observer()])
    if sensitive:

        @app.tool("check_order")
        async def masked(order_number: Annotated[str, Sensitive()]) -> dict[str, Any]:
            """Return the repair status of a work order."""
            return await demo.check_order(order_number)

    else:
        app.tool(demo.check_order)
    return app


def _redis_url() -> str:
    """A redis-server of this process's own on loopback, started once, stopped at exit."""
    if not _redis_urls:
        from tests.helpers.redis_server import running_redis

        directory = _redis.enter_context(tempfile.TemporaryDirectory())
        _redis_urls.append(_redis.enter_context(running_redis(Path(directory))).url)
        atexit.register(_redis.close)
    return _redis_urls[0]


async def _lifespan_only(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        await send({"type": message["type"] + ".complete"})
        if message["type"] == "lifespan.shutdown":
            return


FEATURES: dict[str, Feature] = {
    "tolerant decoding": Feature(
        "a body with a drifted field (customer: null) takes the tolerant path; the strict "
        "path is the baseline every fitting body pays",
        Side(_default, "tool-1"),
        Side(_default, "tool-1-drifted"),
    ),
    "bounded queue, background runner": Feature(
        "the report handler as a background job (admission, queue, task) vs run before the answer",
        Side(lambda s: bench_voicehooks.build(s, report_before_answer=True), "report"),
        Side(_default, "report"),
    ),
    "observers: one no-op observer": Feature(
        "VoiceHooks(observers=[Observer()]) vs none",
        Side(_default),
        Side(lambda s: bench_voicehooks.build(s, observers=[Observer()])),
    ),
    "duplicate suppression": Feature(
        "Duplicates() (MemoryStore) vs duplicates=None",
        Side(lambda s: bench_voicehooks.build(s, duplicates=None)),
        Side(_default),
    ),
    "deadline, tool answers at once": Feature(
        "within(8 s, tool) vs await tool, a tool that never suspends (eager start, no timer)",
        Side(_deadline_app(deadline=False, suspends=False)),
        Side(_deadline_app(deadline=True, suspends=False)),
    ),
    "deadline, tool suspends": Feature(
        "within(8 s, tool) vs await tool, a tool that suspends once (a timer is armed)",
        Side(_deadline_app(deadline=False, suspends=True)),
        Side(_deadline_app(deadline=True, suspends=True)),
    ),
    "metrics (PrometheusObserver)": Feature(
        "VoiceHooks(observers=[PrometheusObserver()]) vs none",
        Side(_default),
        Side(lambda s: bench_voicehooks.build(s, observers=[PrometheusObserver()])),
        budget_us=3.0,
        budget_source="issue 13",
    ),
    "tracing (TracingObserver)": Feature(
        "the OpenTelemetry SDK, a batch processor and an exporter that drops everything, vs none",
        Side(_default),
        Side(lambda s: bench_voicehooks.build(s, observers=[_tracing()])),
    ),
    "once_per_call (MemoryStore)": Feature(
        "@app.tool(once_per_call=True) vs a plain tool, the first run of each intent: "
        "decode once, a canonical encoding and hash, one more claim and result in the store",
        Side(_plain_tool),
        Side(_once_per_call),
        notes=["each request is a new call: the repeat path (a store read) is not timed"],
    ),
    "once_per_call (RedisStore)": Feature(
        "the same on a RedisStore (a redis-server on loopback): the call's intent list, the "
        "intent's claim and its result are three more round trips",
        Side(functools.partial(_plain_tool, on_redis=True)),
        Side(functools.partial(_once_per_call, on_redis=True)),
        notes=["each request is a new call: the repeat path (a store read) is not timed"],
    ),
    "recording, redacted": Feature(
        "Recorder() (redacts in its writer thread) vs Recorder(raw=True), the ~30 KB report: "
        "what the request pays is the writer's CPU taken from the loop (2 cores, one GIL)",
        Side(functools.partial(_recording, raw=True), "report"),
        Side(functools.partial(_recording, raw=False), "report"),
        notes=["the writer thread's own cost: about 0.6 ms per KB of body (redact_body)"],
    ),
    "handler switch (redact_handlers)": Feature(
        "Privacy(redact_handlers=True) vs the default, the ~30 KB report: the event redacted "
        "and decoded again, in a thread, before the job is queued",
        Side(_default, "report"),
        Side(lambda s: bench_voicehooks.build(s, privacy=Privacy(redact_handlers=True)), "report"),
    ),
    "Sensitive argument": Feature(
        "a tool whose argument is Annotated[str, Sensitive()] vs a plain one: the HMAC token, "
        "the answer masked, the body masked for the observers",
        Side(functools.partial(_sensitive_tool, sensitive=False)),
        Side(functools.partial(_sensitive_tool, sensitive=True)),
    ),
    "sync tool's thread trip": Feature(
        "a sync function's trip to a worker thread and back: voicehooks' UserFunction.call "
        "(slot, executor, abandonment bookkeeping, context copy) under within(), vs the "
        "floor's loop.run_in_executor on a plain ThreadPoolExecutor; the goal is a ratio",
        Side(_thread_trip_app(voicehooks_threads=False), "tool-1"),
        Side(_thread_trip_app(voicehooks_threads=True), "tool-1"),
        budget_ratio=1.3,
        budget_source="issue 26",
    ),
    "MCP tools/call": Feature(
        "the same async tool as an MCP tools/call (JSON-RPC, a bearer token) vs as a webhook "
        "tool-calls delivery (1.7 KB, HMAC, duplicate suppression); the goal is a ratio",
        Side(_default, "tool-1"),
        Side(_mcp, "mcp-tool-1"),
        budget_ratio=1.5,
        budget_source="issue 22",
        notes=["an MCP call has no duplicate suppression (nothing identifies a redelivery)"],
    ),
    "per-delivery INFO line": Feature(
        "the voicehooks logger at INFO with a StreamHandler to /dev/null vs at WARNING",
        Side(_default),
        Side(_default, during=_info_line),
        budget_us=5.0,
        budget_source="issue 17",
    ),
}
"""Every measured feature by name; add one entry per new feature."""


class Settings(TypedDict):
    """What one run of the level measures."""

    features: list[str]
    numbers: dict[str, int]  # workload -> requests per batch
    rounds: int
    warmup: int
    seed: int


async def measure(settings: Settings) -> dict[str, Any]:
    """Measure every feature named in ``settings``."""
    results: dict[str, Any] = {}
    for name in settings["features"]:
        results[name] = await _measure_one(name, FEATURES[name], settings)
    return results


async def _measure_one(name: str, feature: Feature, settings: Settings) -> dict[str, Any]:
    sides = {"baseline": feature.baseline, "variant": feature.variant}
    rounds, warmup = settings["rounds"], settings["warmup"]
    apps = {key: side.build(SECRET) for key, side in sides.items()}
    us: dict[str, list[float]] = {key: [] for key in sides}
    async with contextlib.AsyncExitStack() as stack:
        for app in apps.values():
            await stack.enter_async_context(drive.lifespan(app))
        pools = {}
        for key, side in sides.items():
            number = settings["numbers"][side.workload]
            pools[key] = make_pool(
                side.workload,
                warmup + rounds * number,
                stream=f"feature-{name}-{key}",
                seed=settings["seed"],
            )
            with side.during():
                await drive.time_batch(apps[key], drive.prepare(pools[key], 0, warmup))
        for r in range(rounds):
            order = list(sides) if r % 2 == 0 else list(reversed(sides))
            for key in order:
                side = sides[key]
                number = settings["numbers"][side.workload]
                start = warmup + r * number
                batch = drive.prepare(pools[key], start, start + number)
                with side.during():
                    seconds = await drive.time_batch(apps[key], batch)
                us[key].append(1e6 * seconds / number)
    differences = [v - b for v, b in zip(us["variant"], us["baseline"], strict=True)]
    cost = statistics.median(differences)
    ratio = statistics.median(v / b for v, b in zip(us["variant"], us["baseline"], strict=True))
    budget = feature.budget_us
    within = None if budget is None else cost <= budget
    if feature.budget_ratio is not None:
        within = ratio <= feature.budget_ratio
    return {
        "what": feature.what,
        "baseline_us": statistics.median(us["baseline"]),
        "variant_us": statistics.median(us["variant"]),
        "cost_us": cost,
        "rounds_us": us,
        "workloads": {key: side.workload for key, side in sides.items()},
        "ratio": ratio,
        "budget_us": budget,
        "budget_ratio": feature.budget_ratio,
        "budget_source": feature.budget_source,
        "within_budget": within,
    }


def run(settings: Settings) -> dict[str, Any]:
    """``measure`` on a new event loop (uvloop when installed)."""
    _, factory = inprocess.event_loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_coroutine(settings))


def _coroutine(settings: Settings) -> Coroutine[Any, Any, dict[str, Any]]:
    return measure(settings)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: one JSON argument in, one JSON line out."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m benchmarks.features '<json settings>'", file=sys.stderr)
        return 2
    print(json.dumps(run(json.loads(args[0]))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
