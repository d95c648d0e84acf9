"""The tracing observer, driven with hand-made records, checked with the OTel SDK's
in-memory exporter."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from voicehooks import VoiceHooks
from voicehooks.core.events import EndOfCallReport
from voicehooks.observe import Delivery, JobRun, ToolRun, tracing
from voicehooks.observe.tracing import TracingObserver
from voicehooks.testing import WebhookClient, tool_call, tool_calls

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01".encode()
CALL_ID = "call-_+31612345678_XqaQ"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture(autouse=True)
def _no_span_left_current() -> Iterator[None]:
    yield
    # Every start the observer attached, its end detached: nothing leaks into the next test.
    assert not trace.get_current_span().get_span_context().is_valid


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


def delivery(headers: list[tuple[bytes, bytes]] | None = None) -> Delivery:
    return Delivery(headers or [(b"content-type", b"application/json")])


def answer(record: Delivery, status: int = 200, outcome: str = "answered") -> None:
    record.event_type = "tool-calls"
    record.call_id = CALL_ID
    record.status = status
    record.outcome = outcome


def only(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, [span.name for span in spans]
    return found[0]


def test_a_delivery_is_a_server_span_with_http_attributes_and_a_masked_call_id(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observer = TracingObserver(provider)
    record = delivery([(b"user-agent", b"VoiceDock/1.0")])
    observer.delivery_started(record)
    answer(record)
    observer.delivery_answered(record)
    (span,) = exporter.get_finished_spans()
    assert span.kind is SpanKind.SERVER
    assert span.name == "POST"
    attributes = dict(span.attributes or {})
    assert attributes["http.request.method"] == "POST"
    assert attributes["http.response.status_code"] == 200
    assert attributes["user_agent.original"] == "VoiceDock/1.0"
    assert attributes["voicehooks.event.type"] == "tool-calls"
    assert attributes["voicehooks.delivery.outcome"] == "answered"
    assert attributes["voicehooks.call.id"] == "call-_+***********_XqaQ"
    assert span.status.status_code is StatusCode.UNSET
    assert span.parent is None


def test_an_incoming_traceparent_makes_the_delivery_part_of_the_senders_trace(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observer = TracingObserver(provider)
    record = delivery([(b"traceparent", TRACEPARENT)])
    observer.delivery_started(record)
    answer(record)
    observer.delivery_answered(record)
    (span,) = exporter.get_finished_spans()
    assert span.context is not None
    assert span.parent is not None
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert format(span.parent.span_id, "016x") == PARENT_ID
    assert span.parent.is_remote


def test_inside_an_active_server_span_the_delivery_is_an_internal_child(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observer = TracingObserver(provider)
    outer = provider.get_tracer("parent-app").start_span("POST /hooks/", kind=SpanKind.SERVER)
    with trace.use_span(outer, end_on_exit=True):
        record = delivery([(b"traceparent", TRACEPARENT)])  # the parent already used it
        observer.delivery_started(record)
        answer(record)
        observer.delivery_answered(record)
    spans = exporter.get_finished_spans()
    assert [s.kind for s in spans].count(SpanKind.SERVER) == 1
    child = only(spans, "voicehooks tool-calls")
    assert child.kind is SpanKind.INTERNAL
    assert child.parent is not None
    assert outer.get_span_context().span_id == child.parent.span_id


@pytest.mark.parametrize(
    ("status", "error_type"), [(200, None), (401, None), (413, None), (500, "500"), (503, "503")]
)
def test_only_a_5xx_marks_the_delivery_span_as_an_error(
    provider: TracerProvider, exporter: InMemorySpanExporter, status: int, error_type: str | None
) -> None:
    observer = TracingObserver(provider)
    record = delivery()
    observer.delivery_started(record)
    record.status, record.outcome = status, f"rejected_{status}"
    observer.delivery_answered(record)
    (span,) = exporter.get_finished_spans()
    assert (span.attributes or {}).get("error.type") == error_type
    expected = StatusCode.ERROR if error_type else StatusCode.UNSET
    assert span.status.status_code is expected
    assert "voicehooks.event.type" not in (span.attributes or {})


@pytest.mark.parametrize(
    ("outcome", "failed"),
    [
        ("ok", False),
        ("interim", False),
        ("duplicate", False),
        ("started", False),
        ("error", True),
        ("failed", True),
        ("timeout", True),
        ("invalid_arguments", True),
        ("unknown", True),
        ("overloaded", True),
    ],
)
def test_a_tool_call_is_an_execute_tool_child_span_per_the_genai_conventions(
    provider: TracerProvider, exporter: InMemorySpanExporter, outcome: str, failed: bool
) -> None:
    observer = TracingObserver(provider)
    record = delivery()
    observer.delivery_started(record)
    run = ToolRun("check_repair_status", "tool_0612345678_a", registered=True)
    observer.tool_started(record, run)
    run.end(outcome)
    observer.tool_ended(record, run)
    answer(record)
    observer.delivery_answered(record)
    spans = exporter.get_finished_spans()
    tool = only(spans, "execute_tool check_repair_status")
    server = only(spans, "POST")
    assert tool.kind is SpanKind.INTERNAL
    assert tool.parent is not None
    assert server.context is not None
    assert tool.parent.span_id == server.context.span_id
    attributes = dict(tool.attributes or {})
    assert attributes["gen_ai.operation.name"] == "execute_tool"
    assert attributes["gen_ai.tool.name"] == "check_repair_status"
    assert attributes["gen_ai.tool.call.id"] == "tool_**********_a"
    assert attributes["gen_ai.tool.type"] == "function"
    expected = ("ToolError" if outcome == "error" else outcome) if failed else None
    assert attributes.get("error.type") == expected
    assert (tool.status.status_code is StatusCode.ERROR) is failed
    assert not any("argument" in key or "result" in key for key in attributes)


def test_a_background_job_is_a_root_span_linked_to_its_delivery(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observer = TracingObserver(provider)
    record = delivery()
    observer.delivery_started(record)
    assert record.trace["traceparent"].startswith("00-")
    answer(record, outcome="answered")
    observer.delivery_answered(record)
    job = JobRun("end-of-call-report", CALL_ID, "reports:store", "d1", 2, record.trace)
    observer.job_started(job)
    job.end("failed")
    observer.job_ended(job)
    server = only(exporter.get_finished_spans(), "POST")
    span = only(exporter.get_finished_spans(), "background reports:store")
    assert span.parent is None
    assert server.context is not None
    assert span.context is not None
    assert span.context.trace_id != server.context.trace_id
    assert [link.context.span_id for link in span.links] == [server.context.span_id]
    attributes = dict(span.attributes or {})
    assert attributes["voicehooks.job.attempt"] == 2
    assert attributes["voicehooks.call.id"] == "call-_+***********_XqaQ"
    assert attributes["error.type"] == "failed"
    assert span.status.status_code is StatusCode.ERROR


def test_a_job_without_a_carrier_has_no_link_and_done_is_no_error(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observer = TracingObserver(provider)
    job = JobRun("status-update", "c1", "h", "d1", 1, {})
    observer.job_started(job)
    job.end("done")
    observer.job_ended(job)
    (span,) = exporter.get_finished_spans()
    assert not span.links
    assert span.status.status_code is StatusCode.UNSET


def test_the_delivery_span_is_current_until_the_answer(provider: TracerProvider) -> None:
    observer = TracingObserver(provider)
    record = delivery()
    observer.delivery_started(record)
    current = trace.get_current_span()
    assert current.get_span_context().is_valid
    answer(record)
    observer.delivery_answered(record)
    assert not trace.get_current_span().get_span_context().is_valid


def test_ends_of_unknown_records_are_ignored(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observer = TracingObserver(provider)
    record = delivery()
    observer.delivery_answered(record)
    observer.tool_ended(record, ToolRun("t", "x", True))
    observer.job_ended(JobRun("status-update", "c", "h", "d", 1, {}))
    assert exporter.get_finished_spans() == ()


def test_open_spans_are_bounded_and_the_oldest_is_ended_as_abandoned(
    provider: TracerProvider, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tracing, "MAX_OPEN_SPANS", 2)
    observer = TracingObserver(provider)
    jobs = [JobRun("status-update", "c", f"h{n}", "d", 1, {}) for n in range(3)]

    def start_all() -> None:
        for job in jobs:
            observer.job_started(job)

    # In a context of its own: each job's span is made current, and these never end.
    contextvars.copy_context().run(start_all)
    assert len(list(observer.open_spans())) == 2
    (abandoned,) = exporter.get_finished_spans()
    assert abandoned.name == "background h0"
    assert (abandoned.attributes or {})["voicehooks.span.abandoned"] is True


def test_without_opentelemetry_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from voicehooks.core.exceptions import ConfigurationError

    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ConfigurationError, match=r"voicehooks\[otel\]"):
        TracingObserver()


# -- through the app ------------------------------------------------------------------

SECRET = "whsec_tracing_tests"


def traced_app(provider: TracerProvider) -> VoiceHooks:
    app = VoiceHooks(secret=SECRET, observers=[TracingObserver(provider)])

    @app.tool
    async def lookup(order_number: str) -> str:
        """Look an order up."""
        return f"ready: {order_number}"

    @app.on("end-of-call-report")
    async def store(event: EndOfCallReport) -> None:
        pass

    return app


@pytest.mark.anyio
async def test_through_the_app_tools_nest_under_the_delivery_and_jobs_link_to_it(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    app = traced_app(provider)
    async with WebhookClient(app, secret=SECRET) as client:
        body = tool_calls(
            tool_call("lookup", {"order_number": "ARGUMENT-MARKER"}, id="tool_1"),
            tool_call("no_such_tool", id="tool_2"),
            call_id=CALL_ID,
        )
        response = await client.post(body, headers={"traceparent": TRACEPARENT.decode()})
        assert response.status_code == 200
        await client.end_of_call_report(call_id=CALL_ID)
        await client.wait_for_background()
    spans = exporter.get_finished_spans()
    servers = [span for span in spans if span.kind is SpanKind.SERVER]
    assert len(servers) == 2  # the tool-calls and the report deliveries
    delivery_span = next(
        s for s in servers if (s.attributes or {})["voicehooks.event.type"] == "tool-calls"
    )
    assert delivery_span.context is not None
    assert format(delivery_span.context.trace_id, "032x") == TRACE_ID
    lookup = only(spans, "execute_tool lookup")
    unknown = only(spans, "execute_tool no_such_tool")
    for tool in (lookup, unknown):
        assert tool.parent is not None
        assert tool.parent.span_id == delivery_span.context.span_id
    assert (unknown.attributes or {})["error.type"] == "unknown"
    assert "error.type" not in (lookup.attributes or {})
    report = next(s for s in servers if s is not delivery_span)
    assert report.context is not None
    job = only(spans, "background traced_app.<locals>.store")
    assert [link.context.span_id for link in job.links] == [report.context.span_id]
    for span in spans:
        assert "ARGUMENT-MARKER" not in str(dict(span.attributes or {}))
        assert "31612345678" not in str(dict(span.attributes or {}))


@pytest.mark.anyio
async def test_under_the_asgi_instrumentation_of_a_parent_app_there_is_one_server_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    from fastapi import FastAPI
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    hooks = traced_app(provider)
    parent = FastAPI()
    parent.mount("/hooks", hooks)
    instrumented = OpenTelemetryMiddleware(parent, tracer_provider=provider)
    client = WebhookClient(instrumented, secret=SECRET, path="/hooks/")
    body = tool_calls(tool_call("lookup", {"order_number": "WO-1"}), call_id=CALL_ID)
    response = await client.post(body, headers={"traceparent": TRACEPARENT.decode()})
    assert response.status_code == 200
    spans = exporter.get_finished_spans()
    (server,) = [span for span in spans if span.kind is SpanKind.SERVER]
    delivery_span = only(spans, "voicehooks tool-calls")
    assert server.context is not None
    assert delivery_span.context is not None
    assert delivery_span.kind is SpanKind.INTERNAL
    assert delivery_span.parent is not None
    assert delivery_span.parent.span_id == server.context.span_id
    assert format(server.context.trace_id, "032x") == TRACE_ID  # the instrumentation's doing
    tool = only(spans, "execute_tool lookup")
    assert tool.parent is not None
    assert tool.parent.span_id == delivery_span.context.span_id


def test_a_call_no_registered_tool_claims_gets_its_span_when_the_delivery_is_answered(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observer = TracingObserver(provider)
    record = delivery()
    observer.delivery_started(record)
    run = ToolRun("ghost", "tool_9", registered=False)
    record.tools.append(run)
    run.end("unknown")
    answer(record)
    observer.delivery_answered(record)
    server = only(exporter.get_finished_spans(), "POST")
    ghost = only(exporter.get_finished_spans(), "execute_tool ghost")
    assert server.context is not None
    assert ghost.parent is not None
    assert ghost.parent.span_id == server.context.span_id
    assert (ghost.attributes or {})["error.type"] == "unknown"
    assert ghost.start_time is not None
    assert server.start_time is not None
    assert ghost.end_time is not None
    assert server.end_time is not None
    # Within the delivery's span (1 ms of slack: a wall clock and a monotonic one meet here).
    slack = 1_000_000
    assert server.start_time - slack <= ghost.start_time <= ghost.end_time
    assert ghost.end_time <= server.end_time + slack


@pytest.mark.parametrize(
    ("host", "address", "port"),
    [
        (b"hooks.example.com", "hooks.example.com", None),
        (b"hooks.example.com:8443", "hooks.example.com", 8443),
        (b"[::1]:8000", "::1", 8000),
        (b"[::1]", "::1", None),
    ],
)
def test_the_host_header_gives_server_address_and_port(
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    host: bytes,
    address: str,
    port: int | None,
) -> None:
    observer = TracingObserver(provider)
    record = delivery([(b"host", host)])
    observer.delivery_started(record)
    answer(record)
    observer.delivery_answered(record)
    (span,) = exporter.get_finished_spans()
    attributes = dict(span.attributes or {})
    assert attributes["server.address"] == address
    assert attributes.get("server.port") == port


def test_a_request_that_was_not_a_post_is_named_http_with_method_other(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    observer = TracingObserver(provider)
    record = delivery()
    observer.delivery_started(record)
    record.status, record.outcome = 405, "rejected_405"
    observer.delivery_answered(record)
    (span,) = exporter.get_finished_spans()
    assert span.name == "HTTP"
    assert (span.attributes or {})["http.request.method"] == "_OTHER"


def test_the_header_getter_lists_and_reads_asgi_headers() -> None:
    headers = [(b"traceparent", b"a"), (b"x-one", b"1"), (b"x-one", b"2")]
    assert tracing._GETTER.keys(headers) == ["traceparent", "x-one", "x-one"]
    assert tracing._GETTER.get(headers, "X-One") == ["1", "2"]
    assert tracing._GETTER.get(headers, "missing") is None
