"""Prometheus metrics: an observer that counts deliveries, tool calls and background jobs.

``pip install 'voicehooks[metrics]'``, then ``voicehooks run --metrics`` (or
``VOICEHOOKS_METRICS=1``) serves ``GET /metrics`` on the app's own port. What it exports:

* ``voicehooks_deliveries_total{event, outcome, transport}`` (counter)
* ``voicehooks_delivery_duration_seconds{event, transport}`` (histogram)
* ``voicehooks_tool_calls_total{tool, outcome, transport}`` (counter)
* ``voicehooks_tool_duration_seconds{tool, transport}`` (histogram)
* ``voicehooks_background_jobs{state="running"}`` (gauge)
* ``voicehooks_background_jobs_ended_total{outcome}`` (counter)
* ``voicehooks_background_job_duration_seconds`` (histogram)
* ``voicehooks_dead_letters_trimmed_total{bound}`` (counter; ``voicehooks worker``: dead
  letters deleted at their ``age`` or ``count`` bound)

``voicehooks worker --metrics`` serves its own on its health port (``WorkerMetrics``):

* ``voicehooks_worker_jobs_total{outcome}`` (counter; ``done``, ``failed``, ``retried``,
  ``dead``)
* ``voicehooks_worker_takeovers_total`` (counter: entries taken over from dead workers)
* ``voicehooks_worker_backlog`` (gauge: entries in the stream, read at each scrape)

Outcomes are the values of ``DeliveryOutcome``, ``ToolOutcome`` and ``JobOutcome``
(``answered``, ``duplicate``, ``rejected_401``, ...; ``ok``, ``error``, ``timeout``, ...).
Labels never carry a call id, a phone number or an argument. ``event`` is one of the four
event types or ``_unknown`` (rejected before decoding, or a type this version does not know);
``tool`` is a registered tool's name or ``_unknown``, so a model that invents tool names
cannot grow the series without bound (calls no registered tool claims are not run as tools;
they are counted when their delivery is answered). ``transport`` is ``webhook`` or ``mcp``
(a ``tools/call`` of the MCP endpoint, or a request it refused). The duration buckets are
fitted to the platform's budgets: 4 and 5 s (assistant-request), 8 and 10 s (tool calls).

Several worker processes (``voicehooks run --workers N``) share one count through
prometheus_client's multiprocess mode: ``voicehooks run`` gives them a private
``PROMETHEUS_MULTIPROC_DIR``, removes it at exit, and each scrape first drops the live gauges
of workers that have died. Under gunicorn, set ``PROMETHEUS_MULTIPROC_DIR`` to an empty
directory yourself (see the observability guide).
"""

from __future__ import annotations

import bisect
import glob
import logging
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import anyio

from voicehooks.core import environment
from voicehooks.core.events import EVENT_NAMES
from voicehooks.core.exceptions import ConfigurationError
from voicehooks.core.records import Delivery, JobRun, ToolRun

from .observers import Observer

METRICS_PATH: Final = "/metrics"
_log = logging.getLogger("voicehooks")

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from starlette.routing import BaseRoute
    from starlette.types import Receive, Scope, Send

    from voicehooks.tools.definition import Tool

__all__ = [
    "BUCKETS_SECONDS",
    "MetricsEndpoint",
    "PrometheusObserver",
    "WorkerMetrics",
    "exposition",
]

BUCKETS_SECONDS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.0,
    4.0,
    5.0,
    8.0,
    10.0,
)
"""Histogram buckets: fine below 100 ms where a healthy answer lands, then the budgets."""

UNKNOWN: Final = "_unknown"


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise ConfigurationError(
            "metrics need prometheus_client: pip install 'voicehooks[metrics]'"
        ) from None
    return prometheus_client


class PrometheusObserver(Observer):
    """Count deliveries, tool calls and background jobs into a Prometheus registry.

    Args:
        registry: Where the metrics are registered; a private one by default, so several
            apps in one process (tests) do not collide. ``exposition`` serves it together
            with prometheus_client's default registry (process metrics, your own metrics).
        path: Where the app serves them, beside the webhook: on its port and, mounted, under
            its prefix (``/hooks/metrics``), so anyone who reaches the webhook reaches them,
            and the app says so in one WARNING when it installs the observer. ``None``
            serves no route: mount ``endpoint`` on another port, path or behind auth.

    Example:
        >>> from voicehooks import VoiceHooks
        >>> from voicehooks.observe.metrics import PrometheusObserver
        >>> app = VoiceHooks(secret="whsec_example", observers=[PrometheusObserver()])

    Each label combination's child is looked up once and kept: the label sets are bounded
    (event types x outcomes, registered tools x outcomes), and a cached child costs one
    dict lookup per delivery instead of prometheus_client's ``labels()`` call.
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, *, path: str | None = METRICS_PATH
    ) -> None:
        prometheus = _prometheus()
        self.path = path
        self.registry: CollectorRegistry = (
            registry if registry is not None else prometheus.CollectorRegistry(auto_describe=True)
        )
        r = self.registry
        self.deliveries = prometheus.Counter(
            "voicehooks_deliveries",
            "Deliveries received, by event type and how they ended.",
            ["event", "outcome", "transport"],
            registry=r,
        )
        self.delivery_duration = prometheus.Histogram(
            "voicehooks_delivery_duration_seconds",
            "Time from receiving a delivery to sending its answer.",
            ["event", "transport"],
            buckets=BUCKETS_SECONDS,
            registry=r,
        )
        self.tool_calls = prometheus.Counter(
            "voicehooks_tool_calls",
            "Tool calls, by tool and how they ended.",
            ["tool", "outcome", "transport"],
            registry=r,
        )
        self.tool_duration = prometheus.Histogram(
            "voicehooks_tool_duration_seconds",
            "Time a tool call took until its answer (its interim text, if it sent one).",
            ["tool", "transport"],
            buckets=BUCKETS_SECONDS,
            registry=r,
        )
        self.jobs = prometheus.Gauge(
            "voicehooks_background_jobs",
            "Background jobs (handlers after the answer, fire-and-forget tools) by state.",
            ["state"],
            multiprocess_mode="livesum",
            registry=r,
        )
        self.jobs_ended = prometheus.Counter(
            "voicehooks_background_jobs_ended",
            "Background jobs that ended, by outcome.",
            ["outcome"],
            registry=r,
        )
        self.job_duration = prometheus.Histogram(
            "voicehooks_background_job_duration_seconds",
            "Time a background job ran.",
            buckets=BUCKETS_SECONDS,
            registry=r,
        )
        self.dead_letters_trimmed_total = prometheus.Counter(
            "voicehooks_dead_letters_trimmed",
            "Dead letters a worker deleted at their bound, by bound (age or count).",
            ["bound"],
            registry=r,
        )
        self._running = self.jobs.labels(state="running")
        self._running.set(0)
        # label values -> the child's add or observe function, made on first use
        self._count_delivery: dict[tuple[str, ...], _Add] = {}
        self._time_delivery: dict[tuple[str, ...], _Add] = {}
        self._count_tool: dict[tuple[str, ...], _Add] = {}
        self._time_tool: dict[tuple[str, ...], _Add] = {}
        self._count_job: dict[tuple[str, ...], _Add] = {}

    def delivery_answered(self, delivery: Delivery) -> None:
        """Count the delivery and observe how long it took."""
        event = delivery.event_type
        if event not in EVENT_NAMES or delivery.outcome == "unknown_event":
            event = UNKNOWN
        transport = delivery.transport
        counted: tuple[str, ...] = (event, delivery.outcome, transport)
        add = self._count_delivery.get(counted)
        (add or _cache(self._count_delivery, self.deliveries, counted))(1)
        timed: tuple[str, ...] = (event, transport)
        add = self._time_delivery.get(timed)
        (add or _cache(self._time_delivery, self.delivery_duration, timed))(
            delivery.duration_seconds
        )
        for run in delivery.tools:
            if not run.registered:  # not run as a tool, so never reported by tool_ended
                self.tool_ended(delivery, run)

    def tool_ended(self, delivery: Delivery, run: ToolRun) -> None:
        """Count the tool call and observe how long it took."""
        tool = run.name if run.registered else UNKNOWN
        transport = delivery.transport
        counted: tuple[str, ...] = (tool, run.outcome, transport)
        add = self._count_tool.get(counted)
        (add or _cache(self._count_tool, self.tool_calls, counted))(1)
        timed: tuple[str, ...] = (tool, transport)
        add = self._time_tool.get(timed)
        (add or _cache(self._time_tool, self.tool_duration, timed))(run.duration_seconds)

    def job_started(self, job: JobRun) -> None:
        """One more job running."""
        self._running.inc()

    def job_ended(self, job: JobRun) -> None:
        """One job less running; count how it ended."""
        self._running.dec()
        key = (job.outcome,)
        (self._count_job.get(key) or _cache(self._count_job, self.jobs_ended, key))(1)
        self.job_duration.observe(job.duration_seconds)

    def dead_letters_trimmed(self, count: int, bound: str) -> None:
        """Count dead letters deleted at their bound."""
        self.dead_letters_trimmed_total.labels(bound=bound).inc(count)

    @property
    def endpoint(self) -> MetricsEndpoint:
        """``GET /metrics`` for this observer's registry, as an ASGI app to route or mount."""
        return MetricsEndpoint(self.registry)

    def routes(self, tools: Mapping[str, Tool]) -> Sequence[BaseRoute]:
        """``GET {path}``, served by the app beside its webhook (nothing for ``path=None``)."""
        from starlette.routing import Route

        if self.path is None:
            return []
        _log.warning(
            "metrics are served at %s beside the webhook (mounted: under its prefix), where "
            "whoever reaches the webhook reads them: block the path at your proxy, or serve "
            "them elsewhere with PrometheusObserver(path=None) and its endpoint "
            "(see 'Mount voicehooks' in the docs)",
            self.path,
        )
        return [Route(self.path, self.endpoint, methods=["GET"])]


class WorkerMetrics:
    """The metrics of ``voicehooks worker``, read from its counts when scraped.

    A collector of prometheus_client's, so the worker's loop pays nothing per job: each scrape
    reads ``counts()`` (the worker's ``done``, ``failed``, ``retried``, ``dead`` and
    ``taken_over``) and awaits ``backlog()`` (the stream's length; left out when Redis does
    not answer). ``routes()`` is ``GET /metrics``, for the worker's health port.

    Args:
        counts: The worker's running counts.
        backlog: The queue's length, awaited at each scrape.
        registry: Where the collector is registered; a private one by default.
    """

    def __init__(
        self,
        counts: Callable[[], Mapping[str, int]],
        backlog: Callable[[], Awaitable[int]],
        registry: CollectorRegistry | None = None,
    ) -> None:
        prometheus = _prometheus()
        self.counts = counts
        self.backlog = backlog
        self.registry: CollectorRegistry = (
            registry if registry is not None else prometheus.CollectorRegistry()
        )
        self._backlog: int | None = None
        self.registry.register(self)

    def collect(self) -> Iterator[Any]:
        """The metric families, as prometheus_client asks a collector for them."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        counts = self.counts()
        jobs = CounterMetricFamily(
            "voicehooks_worker_jobs",
            "Runs of jobs by a worker, by how they ended.",
            labels=["outcome"],
        )
        for outcome in ("done", "failed", "retried", "dead"):
            jobs.add_metric([outcome], counts.get(outcome, 0))
        yield jobs
        yield CounterMetricFamily(
            "voicehooks_worker_takeovers",
            "Entries a worker took over from workers that died.",
            value=counts.get("taken_over", 0),
        )
        if self._backlog is not None:
            yield GaugeMetricFamily(
                "voicehooks_worker_backlog",
                "Entries in the durable queue's stream (unread and in progress).",
                value=self._backlog,
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer a scrape: read the backlog, then every metric."""
        try:
            self._backlog = await self.backlog()
        except Exception:  # Redis away: the scrape still has the counts
            self._backlog = None
        prometheus = _prometheus()
        body = prometheus.generate_latest(self.registry) + prometheus.generate_latest(
            prometheus.REGISTRY  # the process's own: CPU, memory, file descriptors
        )
        headers = [
            (b"content-type", prometheus.CONTENT_TYPE_LATEST.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def routes(self) -> Sequence[BaseRoute]:
        """``GET /metrics``."""
        from starlette.routing import Route

        return [Route(METRICS_PATH, self, methods=["GET"])]


_Add = Callable[[float], None]


def _cache(cache: dict[tuple[str, ...], _Add], metric: Any, labels: tuple[str, ...]) -> _Add:
    """The fast path to one child of ``metric``: its ``inc`` or ``observe``, minus overhead.

    prometheus_client's public ``inc``/``observe`` re-check on every call what cannot change
    for a child, and a histogram scans its buckets linearly. This goes to the child's value
    objects (``_value``; ``_sum``, ``_buckets`` and ``_upper_bounds``, unchanged since 0.4)
    and finds the bucket by bisection; where they are missing it uses the public method.
    """
    child = metric.labels(*labels)
    add: _Add
    if hasattr(child, "_upper_bounds"):
        try:
            add = _Observe(child._sum.inc, [b.inc for b in child._buckets], child._upper_bounds)
        except AttributeError:
            add = child.observe
    else:
        value = getattr(child, "_value", None)
        add = value.inc if value is not None else child.inc
    cache[labels] = add
    return add


class _Observe:
    __slots__ = ("add_sum", "add_to_bucket", "bounds")

    def __init__(self, add_sum: _Add, add_to_bucket: list[_Add], bounds: list[float]) -> None:
        self.add_sum = add_sum
        self.add_to_bucket = add_to_bucket
        self.bounds = bounds

    def __call__(self, amount: float) -> None:
        self.add_sum(amount)
        # Buckets are stored per interval (the exposition sums them): the first bound >= it.
        self.add_to_bucket[bisect.bisect_left(self.bounds, amount)](1)


class MetricsEndpoint:
    """An ASGI app answering every request with the text exposition (see ``exposition``).

    The exposition is built in a worker thread: in multiprocess mode it reads every
    process's files, which must not stall the event loop during a live call.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer with the metrics."""
        body, content_type = await anyio.to_thread.run_sync(exposition, self.registry)
        headers = [
            (b"content-type", content_type.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    """What ``GET /metrics`` answers: the body and its content type.

    In multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` set) the values of every process are
    merged from that directory, after the live gauges of dead processes are dropped;
    otherwise ``registry`` and prometheus_client's default registry are served together.
    """
    prometheus = _prometheus()
    from prometheus_client import multiprocess

    directory = environment.read(environment.MULTIPROC_DIR)
    if directory:
        _forget_dead_processes(directory)
        merged = prometheus.CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, directory)  # type: ignore[no-untyped-call]
        return prometheus.generate_latest(merged), prometheus.CONTENT_TYPE_LATEST
    body = prometheus.generate_latest(registry) + prometheus.generate_latest(prometheus.REGISTRY)
    return body, prometheus.CONTENT_TYPE_LATEST


def _forget_dead_processes(directory: str) -> None:
    # A worker that crashed never ran its shutdown: its "running jobs" would count forever.
    from prometheus_client import multiprocess

    for path in glob.glob(os.path.join(directory, "gauge_live*_*.db")):
        pid_text = os.path.basename(path).rsplit("_", 1)[-1].removesuffix(".db")
        if pid_text.isdigit() and not _alive(int(pid_text)):
            multiprocess.mark_process_dead(int(pid_text), directory)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - another user's process of the same pid
        return True
    return True
