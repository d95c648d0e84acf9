"""One seam for logs, metrics, traces and the inspector: observers of what the app does.

The app calls its observers at a few points of every delivery: when it starts, when each tool
call starts and ends, when the answer has been sent, and when each background job starts and
ends; and ``voicehooks worker`` when it deleted dead letters at their bound. Metrics
(``voicehooks.observe.metrics``), traces (``voicehooks.observe.tracing``) and the development
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
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Final

from voicehooks.core.records import Delivery, JobRun, ToolRun

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from voicehooks.tools.definition import Tool

__all__ = ["Observer", "ObserverSet"]

_log = logging.getLogger("voicehooks")


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

    def dead_letters_trimmed(self, count: int, bound: str) -> None:
        """Durable mode: a worker deleted ``count`` of the oldest dead letters at their
        ``bound``, ``"age"`` or ``"count"`` (``voicehooks.work.queue``)."""

    def routes(self, tools: Mapping[str, Tool]) -> Sequence[BaseRoute]:
        """What this observer serves beside the webhook (``GET /metrics``, say): none here.

        The app adds them to its router when the observer is installed; ``tools`` is the
        app's registry of tools (live: tools registered later appear in it).
        """
        return ()


_METHODS: Final = (
    "delivery_started",
    "delivery_answered",
    "tool_started",
    "tool_ended",
    "job_started",
    "job_ended",
    "dead_letters_trimmed",
)


class ObserverSet:
    """The app's observers, called in order; a failing observer is logged and skipped.

    ``active`` is false while no observer overrides a method, so the pipeline guards each call
    with one attribute read (a ``__bool__`` written in Python would cost a function call at
    every point). Each
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
        return self.active

    def add(self, observer: Observer) -> None:
        """Install one more observer.

        One that overrides none of the methods (it only serves routes, as ``Health`` does)
        leaves the set inactive: the hot path never calls it.
        """
        self.observers.append(observer)
        for name in _METHODS:
            if getattr(type(observer), name, None) is not getattr(Observer, name):
                self._calls[name].append(getattr(observer, name))
                self.active = True

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

    def dead_letters_trimmed(self, count: int, bound: str) -> None:
        """Tell every observer; see ``Observer.dead_letters_trimmed``."""
        for call in self._calls["dead_letters_trimmed"]:
            try:
                call(count, bound)
            except Exception as exc:
                self._failed_once(call, "dead_letters_trimmed", exc)

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
