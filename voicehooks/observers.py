"""One seam for logs, metrics, traces and the inspector: observers of what the app does.

The app calls its observers at a few points of every delivery: when it starts, when each tool
call starts and ends, when the answer has been sent, and when each background job starts and
ends. Metrics (``voicehooks.metrics``), traces (``voicehooks.tracing``) and the development
inspector are observers; an error tracker or a vendor agent can be one too:

    from voicehooks import Observer, VoiceHooks

    class SlowTools(Observer):
        def tool_ended(self, delivery, run):
            if run.duration_seconds > 2:
                print("slow tool", run.name)

    app = VoiceHooks(observers=[SlowTools()])

Rules an observer keeps:

* Its methods are plain functions called on the event loop: they must return quickly and never
  block (hand slow work to a queue). An exception they raise is logged once per observer and
  method and otherwise ignored: an observer never changes an answer.
* The records carry payload data (``Delivery.body``, ``Delivery.event``). What an observer
  exports is its own responsibility: never a body, transcript, phone number, argument or
  result in a log line or a metric label.

With no observer installed the app skips every call: the hot path pays one truth test per
point. The records themselves (``Delivery``, ``ToolRun``, ``JobRun``) are made either way,
because the per-delivery log line reads them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from .events import Event

__all__ = [
    "Delivery",
    "DeliveryOutcome",
    "JobOutcome",
    "JobRun",
    "Observer",
    "ObserverSet",
    "ToolOutcome",
    "ToolRun",
]

_log = logging.getLogger("voicehooks")


class DeliveryOutcome:
    """Values of ``Delivery.outcome``: how the app disposed of a delivery."""

    ANSWERED: Final = "answered"
    DUPLICATE: Final = "duplicate"
    UNKNOWN_EVENT: Final = "unknown_event"
    OVERLOADED: Final = "overloaded"  # refused 503: the background queue is full
    INTERNAL_ERROR: Final = "internal_error"
    DISCONNECTED: Final = "disconnected"
    # A rejection is "rejected_<status>": rejected_400, rejected_401, rejected_413, ...


class ToolOutcome:
    """Values of ``ToolRun.outcome``: how one tool call ended."""

    OK: Final = "ok"
    ERROR: Final = "error"  # the tool raised ToolError: an answer, not a failure
    FAILED: Final = "failed"  # an unexpected exception: a bug, logged and reported
    INVALID_ARGUMENTS: Final = "invalid_arguments"
    TIMEOUT: Final = "timeout"
    UNKNOWN: Final = "unknown"  # no tool of that name is registered
    INTERIM: Final = "interim"  # answered with the interim text; the result comes later
    DUPLICATE: Final = "duplicate"  # answered with the first delivery's result
    STARTED: Final = "started"  # fire-and-forget: answered at once, runs in the background
    OVERLOADED: Final = "overloaded"  # refused without running: too many hung threads


class JobOutcome:
    """Values of ``JobRun.outcome``: how one piece of after-the-answer work ended."""

    DONE: Final = "done"
    FAILED: Final = "failed"
    TIMEOUT: Final = "timeout"
    CUT: Final = "cut"  # cancelled (shutdown, or the request that ran it went away)
    RETRYING: Final = "retrying"  # durable mode: failed, will run again
    DEAD: Final = "dead"  # durable mode: out of attempts, moved to the dead letters


class ToolRun:
    """One tool call of a delivery, as it runs and once it ended."""

    __slots__ = ("duration_seconds", "name", "outcome", "registered", "started", "tool_call_id")

    def __init__(self, name: str, tool_call_id: str, registered: bool) -> None:
        self.name = name
        """The tool's name as the model called it (``registered`` says whether it exists)."""
        self.tool_call_id = tool_call_id
        self.registered = registered
        self.started = time.perf_counter()
        self.outcome: str = ""
        self.duration_seconds = 0.0

    def end(self, outcome: str) -> None:
        """Record how the call ended, and when."""
        self.outcome = outcome
        self.duration_seconds = time.perf_counter() - self.started


class Delivery:
    """One HTTP request to the webhook endpoint: what came in, what went out, how long it took.

    ``event`` is ``None`` when the request was rejected before it could be decoded;
    ``event_type`` and ``call_id`` then stay ``None`` too (an unknown event type keeps its
    name). ``trace`` is a carrier for context propagation (W3C ``traceparent``): an observer
    may fill it when the delivery starts, and the background jobs the delivery causes carry it
    along, in this process or through the durable queue. ``is_replay`` and ``bypass_dedupe``
    are only ever true in development mode (see ``VoiceHooks.development``).
    """

    __slots__ = (
        "answer",
        "body",
        "bypass_dedupe",
        "call_id",
        "duration_seconds",
        "event",
        "event_type",
        "headers",
        "is_replay",
        "outcome",
        "received_at",
        "started",
        "status",
        "tools",
        "trace",
    )

    def __init__(self, headers: Sequence[tuple[bytes, bytes]]) -> None:
        self.received_at = time.time()
        self.started = time.perf_counter()
        self.headers = headers
        self.body: bytes | None = None
        self.event: Event | None = None
        self.event_type: str | None = None
        self.call_id: str | None = None
        self.is_replay = False
        self.bypass_dedupe = False
        self.status = 0
        self.outcome = ""
        self.answer = b""
        self.duration_seconds = 0.0
        self.tools: list[ToolRun] = []
        self.trace: dict[str, str] = {}


class JobRun:
    """One background job (a handler after the answer, or a fire-and-forget tool) as it runs.

    ``name`` is the handler's or tool's qualified name; ``attempt`` counts from 1 (durable
    mode retries); ``trace`` is the carrier its delivery filled.
    """

    __slots__ = (
        "attempt",
        "call_id",
        "delivery_id",
        "duration_seconds",
        "event_type",
        "name",
        "outcome",
        "started",
        "trace",
    )

    def __init__(
        self,
        event_type: str,
        call_id: str,
        name: str,
        delivery_id: str,
        attempt: int,
        trace: Mapping[str, str],
    ) -> None:
        self.event_type = event_type
        self.call_id = call_id
        self.name = name
        self.delivery_id = delivery_id
        self.attempt = attempt
        self.trace = trace
        self.started = time.perf_counter()
        self.outcome = ""
        self.duration_seconds = 0.0

    def end(self, outcome: str) -> None:
        """Record how the job ended, and when."""
        self.outcome = outcome
        self.duration_seconds = time.perf_counter() - self.started


class Observer:
    """Base class of observers: override the methods you need; the others do nothing."""

    def delivery_started(self, delivery: Delivery) -> None:
        """A request reached the endpoint; only ``headers`` and the times are known yet."""

    def delivery_answered(self, delivery: Delivery) -> None:
        """The answer was sent (or the request ended without one): every field is final."""

    def tool_started(self, delivery: Delivery, run: ToolRun) -> None:
        """A tool call of ``delivery`` starts."""

    def tool_ended(self, delivery: Delivery, run: ToolRun) -> None:
        """A tool call ended: ``run.outcome`` and ``run.duration_seconds`` are set."""

    def job_started(self, job: JobRun) -> None:
        """A background job starts (it may have waited for a slot)."""

    def job_ended(self, job: JobRun) -> None:
        """A background job ended: ``job.outcome`` and ``job.duration_seconds`` are set."""


_METHODS: Final = (
    "delivery_started",
    "delivery_answered",
    "tool_started",
    "tool_ended",
    "job_started",
    "job_ended",
)


class ObserverSet:
    """The app's observers, called in order; a failing observer is logged and skipped.

    ``active`` is false when it is empty, so the pipeline guards each call with one attribute
    read (a ``__bool__`` written in Python would cost a function call at every point). Each
    point calls only the observers that override its method: a metrics observer that ignores
    ``delivery_started`` costs nothing there.
    """

    __slots__ = ("_calls", "_failed", "active", "observers")

    def __init__(self, observers: Sequence[Observer] = ()) -> None:
        self.observers: list[Observer] = []
        self.active = False
        self._failed: set[tuple[int, str]] = set()
        # method name -> the bound methods of the observers that override it, in order
        self._calls: dict[str, list[Callable[..., None]]] = {name: [] for name in _METHODS}
        for observer in observers:
            self.add(observer)

    def __bool__(self) -> bool:
        return bool(self.observers)

    def add(self, observer: Observer) -> None:
        """Install one more observer."""
        self.observers.append(observer)
        self.active = True
        for name in _METHODS:
            if getattr(type(observer), name, None) is not getattr(Observer, name):
                self._calls[name].append(getattr(observer, name))

    def delivery_started(self, delivery: Delivery) -> None:
        """Tell every observer; see ``Observer.delivery_started``."""
        for call in self._calls["delivery_started"]:
            try:
                call(delivery)
            except Exception as exc:
                self._failed_once(call, "delivery_started", exc)

    def delivery_answered(self, delivery: Delivery) -> None:
        """Tell every observer; see ``Observer.delivery_answered``."""
        for call in self._calls["delivery_answered"]:
            try:
                call(delivery)
            except Exception as exc:
                self._failed_once(call, "delivery_answered", exc)

    def tool_started(self, delivery: Delivery, run: ToolRun) -> None:
        """Tell every observer; see ``Observer.tool_started``."""
        for call in self._calls["tool_started"]:
            try:
                call(delivery, run)
            except Exception as exc:
                self._failed_once(call, "tool_started", exc)

    def tool_ended(self, delivery: Delivery, run: ToolRun) -> None:
        """Tell every observer; see ``Observer.tool_ended``."""
        for call in self._calls["tool_ended"]:
            try:
                call(delivery, run)
            except Exception as exc:
                self._failed_once(call, "tool_ended", exc)

    def job_started(self, job: JobRun) -> None:
        """Tell every observer; see ``Observer.job_started``."""
        for call in self._calls["job_started"]:
            try:
                call(job)
            except Exception as exc:
                self._failed_once(call, "job_started", exc)

    def job_ended(self, job: JobRun) -> None:
        """Tell every observer; see ``Observer.job_ended``."""
        for call in self._calls["job_ended"]:
            try:
                call(job)
            except Exception as exc:
                self._failed_once(call, "job_ended", exc)

    def _failed_once(self, call: Callable[..., None], method: str, exc: Exception) -> None:
        observer = getattr(call, "__self__", call)
        key = (id(observer), method)
        if key not in self._failed:  # once: an observer called per request must not flood
            self._failed.add(key)
            _log.error(
                "observer %s.%s raised %s; further failures of it are not logged",
                type(observer).__qualname__,
                method,
                type(exc).__qualname__,
            )
