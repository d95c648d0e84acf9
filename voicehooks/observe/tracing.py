"""OpenTelemetry traces: a span per delivery, per tool call and per background job.

``pip install 'voicehooks[otel]'`` (only ``opentelemetry-api``; configure the SDK and an
exporter as for any other service), then ``VoiceHooks(observers=[TracingObserver()])``.

* A delivery is a ``SERVER`` span following the HTTP server conventions
  (``http.request.method``, ``http.response.status_code``, ``error.type`` on a 5xx, ...),
  plus ``voicehooks.event.type``, ``voicehooks.call.id`` (masked like the logs: a call id
  may carry a phone number) and ``voicehooks.delivery.outcome``. An incoming
  ``traceparent`` makes it part of the sender's trace. When a span is already active (the
  OTel ASGI instrumentation of a parent FastAPI or Starlette app made one), the delivery is
  an ``INTERNAL`` child of it instead, so a request never has two server spans.
* A tool call is an ``INTERNAL`` child span following the GenAI conventions:
  ``execute_tool {name}``, ``gen_ai.operation.name=execute_tool``, ``gen_ai.tool.name``,
  ``gen_ai.tool.call.id``, ``gen_ai.tool.type=function``, and ``error.type`` with an Error
  status when it did not answer normally (``ToolError``, or the outcome: ``timeout``,
  ``failed``, ``unknown``, ...). Arguments and results are never recorded.
* A background job runs after the answer, when its delivery's span has ended: it is a root
  span ``background {name}`` with a link to the delivery's span (through the ``traceparent``
  the delivery's ``trace`` carrier holds, in this process or through a durable queue).

While a delivery or a job runs, its span is the current one, so spans your own code makes
(an instrumented HTTP client in a tool, say) nest under it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

from voicehooks.core.exceptions import ConfigurationError
from voicehooks.core.logs import masked
from voicehooks.core.records import Delivery, JobRun, ToolOutcome, ToolRun

from .observers import Observer

if TYPE_CHECKING:
    from contextvars import Token

    from opentelemetry.context import Context
    from opentelemetry.trace import Span, TracerProvider

__all__ = ["MAX_OPEN_SPANS", "TracingObserver"]

MAX_OPEN_SPANS: Final = 10_000
"""How many deliveries, tool calls and jobs may have an open span at once; past that the
oldest is ended (marked ``voicehooks.span.abandoned``) so a lost end cannot grow memory."""

# Every ending of a tool call but these is a failure of that call.
_TOOL_SUCCESS: Final = frozenset(
    {ToolOutcome.OK, ToolOutcome.INTERIM, ToolOutcome.DUPLICATE, ToolOutcome.STARTED}
)


def _otel() -> Any:
    try:
        from opentelemetry import trace
    except ImportError:
        raise ConfigurationError(
            "tracing needs opentelemetry-api: pip install 'voicehooks[otel]'"
        ) from None
    return trace


def _tool_attributes(run: ToolRun) -> dict[str, Any]:
    # Per the GenAI conventions; arguments and results (opt-in there) never.
    return {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": run.name,
        "gen_ai.tool.call.id": masked(run.tool_call_id),
        "gen_ai.tool.type": "function",
    }


def _host(value: str) -> tuple[str, int | None]:
    """``server.address`` and ``server.port`` from a Host header (``[::1]:8000`` too)."""
    address, colon, port = value.rpartition(":")
    if colon and port.isdigit() and (not address.startswith("[") or address.endswith("]")):
        return address.strip("[]"), int(port)
    return value.strip("[]"), None


class _HeaderGetter:
    """Reads W3C trace context (or any configured propagator's headers) from ASGI headers."""

    def get(self, carrier: Sequence[tuple[bytes, bytes]], key: str) -> list[str] | None:
        name = key.lower().encode("latin-1")
        values = [value.decode("latin-1") for k, value in carrier if k == name]
        return values or None

    def keys(self, carrier: Sequence[tuple[bytes, bytes]]) -> list[str]:
        return [k.decode("latin-1") for k, _ in carrier]


_GETTER: Final[Any] = _HeaderGetter()  # duck-types opentelemetry's Getter, not imported here


class TracingObserver(Observer):
    """Make OpenTelemetry spans of deliveries, tool calls and background jobs.

    Args:
        tracer_provider: The provider to use; the global one (``trace.set_tracer_provider``)
            by default.

    Example:
        >>> from voicehooks import VoiceHooks
        >>> from voicehooks.observe.tracing import TracingObserver
        >>> app = VoiceHooks(secret="whsec_example", observers=[TracingObserver()])
    """

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        trace = _otel()
        from importlib.metadata import version

        from opentelemetry import context, propagate

        self._trace = trace
        self._context = context
        self._propagate = propagate
        self._tracer = trace.get_tracer(
            "voicehooks", version("voicehooks"), tracer_provider=tracer_provider
        )
        # id(record) -> (record, span, context token or None). Holding the record keeps its
        # id from being reused while the entry exists.
        self._open: dict[int, tuple[object, Span, Token[Context] | None]] = {}
        self._internal: set[int] = set()  # ids of the deliveries whose span is not SERVER

    # -- deliveries -----------------------------------------------------------------

    def delivery_started(self, delivery: Delivery) -> None:
        """Open the delivery's span and fill its ``trace`` carrier for the jobs it causes."""
        trace = self._trace
        kind = trace.SpanKind.SERVER
        parent = None
        if trace.get_current_span().get_span_context().is_valid:
            kind = trace.SpanKind.INTERNAL  # inside someone's server span already
        else:
            parent = self._propagate.extract(delivery.headers, getter=_GETTER)
        attributes: dict[str, Any] = {"http.request.method": "POST"}
        for name, value in delivery.headers:
            if name == b"user-agent":
                attributes["user_agent.original"] = value.decode("latin-1")
            elif name == b"host" and kind == trace.SpanKind.SERVER:
                address, port = _host(value.decode("latin-1"))
                attributes["server.address"] = address
                if port is not None:
                    attributes["server.port"] = port
        if kind == trace.SpanKind.SERVER:
            span = self._tracer.start_span("POST", parent, kind, attributes)
        else:
            span = self._tracer.start_span("voicehooks delivery", None, kind, attributes)
            self._internal.add(id(delivery))
        current = trace.set_span_in_context(span)
        self._propagate.inject(delivery.trace, context=current)
        # Started and answered in the request's own task: current in between, so spans the
        # app's code makes (in tools, in handlers before the answer) nest under it.
        self._remember(delivery, span, self._context.attach(current))

    def delivery_answered(self, delivery: Delivery) -> None:
        """Record the status, event type, call id and outcome; end the span."""
        entry = self._forget(delivery)
        if entry is None:
            return
        span, token = entry
        if token is not None:
            self._context.detach(token)
        for run in delivery.tools:
            if not run.registered:  # recorded, never run as a tool: its span after the fact
                self._unclaimed_tool_span(delivery, span, run)
        internal = id(delivery) in self._internal
        self._internal.discard(id(delivery))
        attributes: dict[str, Any] = {
            "voicehooks.delivery.outcome": delivery.outcome,
            "voicehooks.transport": delivery.transport,
        }
        if delivery.event_type is not None:
            # A server span keeps the HTTP convention's name; a child names what it did.
            if internal:
                span.update_name(f"voicehooks {delivery.event_type}")
            attributes["voicehooks.event.type"] = delivery.event_type
        if delivery.call_id is not None:
            attributes["voicehooks.call.id"] = masked(delivery.call_id)
        if delivery.status == 405:  # not the POST the span was opened as
            attributes["http.request.method"] = "_OTHER"
            if not internal:
                span.update_name("HTTP")
        if delivery.status:
            attributes["http.response.status_code"] = delivery.status
            if delivery.status >= 500:
                attributes["error.type"] = str(delivery.status)
                span.set_status(self._trace.StatusCode.ERROR)
        span.set_attributes(attributes)
        span.end()

    # -- tool calls -----------------------------------------------------------------

    def tool_started(self, delivery: Delivery, run: ToolRun) -> None:
        """Open ``execute_tool {name}`` under the delivery's span."""
        entry = self._open.get(id(delivery))
        parent = self._trace.set_span_in_context(entry[1]) if entry is not None else None
        span = self._tracer.start_span(
            f"execute_tool {run.name}",
            context=parent,
            kind=self._trace.SpanKind.INTERNAL,
            attributes=_tool_attributes(run),
        )
        self._remember(run, span, None)

    def tool_ended(self, delivery: Delivery, run: ToolRun) -> None:
        """Record how the call ended; ``error.type`` is the outcome when it failed."""
        entry = self._forget(run)
        if entry is None:
            return
        self._end_tool_span(entry[0], run)

    def _unclaimed_tool_span(self, delivery: Delivery, parent: Span, run: ToolRun) -> None:
        # perf_counter offsets from the delivery's start, on the delivery's wall clock.
        started = delivery.received_at + (run.started - delivery.started)
        started_ns = int(started * 1e9)
        span = self._tracer.start_span(
            f"execute_tool {run.name}",
            context=self._trace.set_span_in_context(parent),
            kind=self._trace.SpanKind.INTERNAL,
            attributes=_tool_attributes(run),
            start_time=started_ns,
        )
        self._end_tool_span(span, run, started_ns + int(run.duration_seconds * 1e9))

    def _end_tool_span(self, span: Span, run: ToolRun, end_time: int | None = None) -> None:
        span.set_attribute("voicehooks.tool.outcome", run.outcome)
        if run.outcome not in _TOOL_SUCCESS:
            # The conventions' error.type is the exception type where there is one.
            error = "ToolError" if run.outcome == ToolOutcome.ERROR else run.outcome
            span.set_attribute("error.type", error)
            span.set_status(self._trace.StatusCode.ERROR)
        span.end(end_time)

    # -- background jobs --------------------------------------------------------------

    def job_started(self, job: JobRun) -> None:
        """Open ``background {name}``, linked to the delivery that caused it."""
        trace = self._trace
        links = []
        if job.trace:
            caused_by = trace.get_current_span(
                self._propagate.extract(job.trace)
            ).get_span_context()
            if caused_by.is_valid:
                links.append(trace.Link(caused_by))
        span = self._tracer.start_span(
            f"background {job.name}",
            context=self._context.Context(),  # a root: the delivery's span has ended
            kind=trace.SpanKind.INTERNAL,
            links=links,
            attributes={
                "voicehooks.job.name": job.name,
                "voicehooks.job.attempt": job.attempt,
                "voicehooks.event.type": job.event_type,
                "voicehooks.call.id": masked(job.call_id),
            },
        )
        # The job starts and ends in one task: its span can be the current one meanwhile.
        self._remember(job, span, self._context.attach(trace.set_span_in_context(span)))

    def job_ended(self, job: JobRun) -> None:
        """Record how the job ended; any outcome but ``done`` is an error."""
        entry = self._forget(job)
        if entry is None:
            return
        span, token = entry
        if token is not None:
            self._context.detach(token)
        span.set_attribute("voicehooks.job.outcome", job.outcome)
        if job.outcome != "done":
            span.set_attribute("error.type", job.outcome)
            span.set_status(self._trace.StatusCode.ERROR)
        span.end()

    # -- the open spans ----------------------------------------------------------------

    def _remember(self, record: object, span: Span, token: Token[Context] | None) -> None:
        if len(self._open) >= MAX_OPEN_SPANS:
            oldest = next(iter(self._open))
            _, abandoned, _ = self._open.pop(oldest)
            self._internal.discard(oldest)
            abandoned.set_attribute("voicehooks.span.abandoned", True)
            abandoned.end()
        self._open[id(record)] = (record, span, token)

    def _forget(self, record: object) -> tuple[Span, Token[Context] | None] | None:
        entry = self._open.pop(id(record), None)
        return None if entry is None else (entry[1], entry[2])

    def open_spans(self) -> Iterable[Span]:
        """The spans not yet ended (for tests and debugging)."""
        return [span for _, span, _ in self._open.values()]
