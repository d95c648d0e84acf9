"""The records of what the app does, which observers and the log line read.

``Delivery`` is one HTTP request to the endpoint, ``ToolRun`` one tool call of it, ``JobRun``
one piece of after-the-answer work; the ``*Outcome`` classes name how each ended. They are
made on every delivery, observed or not, because the per-delivery log line reads them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from .events import Event

__all__ = [
    "Delivery",
    "DeliveryOutcome",
    "JobOutcome",
    "JobRun",
    "ToolOutcome",
    "ToolRun",
    "Transport",
]


class DeliveryOutcome:
    """Values of ``Delivery.outcome``: how the app disposed of a delivery."""

    ANSWERED: Final = "answered"
    DUPLICATE: Final = "duplicate"
    UNKNOWN_EVENT: Final = "unknown_event"
    OVERLOADED: Final = "overloaded"  # refused 503: the background queue is full
    INTERNAL_ERROR: Final = "internal_error"
    DISCONNECTED: Final = "disconnected"
    # A rejection is "rejected_<status>": rejected_400, rejected_401, rejected_413, ...


class Transport:
    """Values of ``Delivery.transport``: how a request reached the app."""

    WEBHOOK: Final = "webhook"
    MCP: Final = "mcp"


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
    REPEAT: Final = "repeat"  # once_per_call: the model asked again; the first run answers
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
    are only ever true in development mode (see ``VoiceHooks.development``). ``masks`` maps
    the values of the ``Sensitive`` tool arguments it carried to their tokens; the app
    replaces them in ``body`` and ``answer`` before observers see the delivery answered.

    ``transport`` is how the request came: ``"webhook"`` (the platform's signed delivery) or
    ``"mcp"`` (a ``tools/call`` of the MCP endpoint, ``voicehooks.mcp``: ``event`` and
    ``call_id`` stay ``None``, ``event_type`` is ``"tool-calls"``, ``body`` is the JSON-RPC
    request and ``answer`` its response).
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
        "masks",
        "outcome",
        "received_at",
        "started",
        "status",
        "tools",
        "trace",
        "transport",
    )

    def __init__(self, headers: Sequence[tuple[bytes, bytes]], transport: str = "webhook") -> None:
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
        self.masks: dict[Any, str] | None = None
        self.transport = transport


class JobRun:
    """One run of a background job (a handler after the answer, or a fire-and-forget tool).

    ``name`` is the handler's or tool's qualified name; ``attempt`` counts from 1 (durable
    mode retries); ``trace`` is the carrier its delivery filled. Once it ended, ``outcome``
    says how, as observers see it (in durable mode a failure is ``retrying`` or ``dead``), and
    ``failure`` why it did not end ``done``: the exception's type (never its message) or
    the outcome itself (``timeout``, ``cut``); ``""`` when it is done.
    """

    __slots__ = (
        "attempt",
        "call_id",
        "delivery_id",
        "duration_seconds",
        "event_type",
        "failure",
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
        self.failure = ""
        self.duration_seconds = 0.0

    def end(self, outcome: str, failure: str = "") -> None:
        """Record how the job ended, why if it failed, and when."""
        self.outcome = outcome
        self.failure = failure
        self.duration_seconds = time.perf_counter() - self.started
