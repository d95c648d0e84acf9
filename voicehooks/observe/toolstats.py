"""Tool latency the app has seen: a per-tool summary an observer keeps in bounded memory.

``ToolStats`` is an ``Observer``: install it (``VoiceHooks(observers=[ToolStats()])``, which
serves its summary at ``GET /_voicehooks/tools.json`` through ``StatsEndpoint``) and it records
how each tool call ended and how long it took. ``voicehooks tools TARGET --check --url URL``
reads that summary from a running server and warns about tools that are slow without a
spoken message.

Memory is fixed: per registered tool, a ring of the last ``window`` durations (older ones are
overwritten, so the percentiles describe recent calls) and a count per outcome; calls to
names that are not registered share one entry, ``UNREGISTERED``, so a model inventing names
cannot grow it. The summary carries tool names, counts and seconds: no argument, result,
caller or call id.
"""

from __future__ import annotations

import json
import math
import time
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from voicehooks.core.records import Delivery, ToolOutcome, ToolRun
from voicehooks.tools.definition import Tool

from .observers import Observer

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

__all__ = ["STATS_PATH", "StatsEndpoint", "ToolStats", "UNREGISTERED"]

STATS_PATH: Final = "/_voicehooks/tools.json"
"""Where an app with a ``ToolStats`` observer serves the summary, under the app's root."""
UNREGISTERED: Final = "(unregistered)"
"""The one entry all calls to names no tool has share."""

# The outcomes whose duration is the time the caller waited for the tool itself.
_TIMED = {
    ToolOutcome.OK,
    ToolOutcome.ERROR,
    ToolOutcome.FAILED,
    ToolOutcome.TIMEOUT,
    ToolOutcome.INTERIM,
}


class _Tool:
    __slots__ = ("durations", "next", "outcomes", "timed")

    def __init__(self, window: int) -> None:
        self.durations = array("d", bytes(8 * window))
        self.next = 0
        self.timed = 0
        self.outcomes: Counter[str] = Counter()

    def add(self, outcome: str, seconds: float) -> None:
        self.outcomes[outcome] += 1
        if outcome in _TIMED:
            self.durations[self.next] = seconds
            self.next = (self.next + 1) % len(self.durations)
            self.timed += 1

    def summary(self) -> dict[str, Any]:
        recent = sorted(self.durations[: min(self.timed, len(self.durations))])
        return {
            "count": sum(self.outcomes.values()),
            "timed": self.timed,
            "p50_seconds": _percentile(recent, 0.50),
            "p95_seconds": _percentile(recent, 0.95),
            "max_seconds": round(recent[-1], 6) if recent else None,
            "errors": self.outcomes[ToolOutcome.ERROR] + self.outcomes[ToolOutcome.FAILED],
            "timeouts": self.outcomes[ToolOutcome.TIMEOUT],
            "outcomes": dict(sorted(self.outcomes.items())),
        }


def _percentile(ordered: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of an ordered list; None when it is empty."""
    if not ordered:
        return None
    return round(ordered[max(0, math.ceil(fraction * len(ordered)) - 1)], 6)


class ToolStats(Observer):
    """Per-tool counts and recent latencies (p50, p95, max), errors and timeouts.

    Examples:
        >>> from voicehooks import VoiceHooks
        >>> from voicehooks.observe import ToolStats
        >>> stats = ToolStats(window=128)
        >>> app = VoiceHooks(verify_signatures=False, observers=[stats])
        >>> stats.summary()["tools"]
        {}

    Args:
        window: How many recent durations each tool keeps for its percentiles.
    """

    def __init__(self, window: int = 256) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.window = window
        self.started_at = time.time()
        self._tools: dict[str, _Tool] = {}

    def routes(self, tools: Mapping[str, Tool]) -> Sequence[BaseRoute]:
        """``GET /_voicehooks/tools.json`` (``STATS_PATH``): the summary, for ``voicehooks tools
        --check --url``; for development and internal networks."""
        from starlette.routing import Route

        return [Route(STATS_PATH, StatsEndpoint(self, tools), methods=["GET", "HEAD"])]

    def tool_ended(self, delivery: Delivery, run: ToolRun) -> None:
        """Record one registered tool's call: its outcome and duration."""
        if run.registered:
            self._record(run.name, run)

    def delivery_answered(self, delivery: Delivery) -> None:
        """Record the calls no tool claimed (the pipeline reports them only here)."""
        for run in delivery.tools:
            if not run.registered:
                self._record(UNREGISTERED, run)

    def _record(self, name: str, run: ToolRun) -> None:
        entry = self._tools.get(name)
        if entry is None:
            entry = self._tools[name] = _Tool(self.window)
        entry.add(run.outcome, run.duration_seconds)

    def summary(self, tools: Mapping[str, Tool] | None = None) -> dict[str, Any]:
        """The JSON-ready summary: ``{"window", "since", "tools": {name: {...}}}``.

        Args:
            tools: The registered tools; their argument coercion counts are added.
        """
        report: dict[str, Any] = {}
        for name, entry in sorted(self._tools.items()):
            report[name] = entry.summary()
            if tools is not None and name in tools:
                report[name]["coercions"] = dict(sorted(tools[name].coercions.items()))
        return {"window": self.window, "since": round(self.started_at, 3), "tools": report}


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class StatsEndpoint:
    """A small ASGI app answering ``GET`` with ``stats.summary(tools)`` as JSON.

    Mount it wherever a development page lives; an app with a ``ToolStats`` observer serves
    it at ``STATS_PATH``. It is meant for a development or internal network: tool names and
    latencies are not secret, but they are not for the public either.
    """

    def __init__(self, stats: ToolStats, tools: Mapping[str, Tool] | None = None) -> None:
        self.stats = stats
        self.tools = tools

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one HTTP request."""
        headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
        method = scope.get("method")
        if method in ("GET", "HEAD"):
            status = 200
            body = json.dumps(self.stats.summary(self.tools), separators=(",", ":")).encode()
        else:
            status, body = 405, b'{"error": "GET only"}'
            headers.append((b"allow", b"GET, HEAD"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})
