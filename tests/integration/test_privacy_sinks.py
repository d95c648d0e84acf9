"""Where personal data may go (issue 21 §2): every sink, grepped for what must not be there.

One app with every observer on (a recording to a file, Prometheus, an OpenTelemetry SDK
tracer, tool statistics, the inspector's store with its log capture and saved history, JSON
logs at DEBUG) takes a call whose id holds a phone number: a tool with a ``Sensitive``
argument, a duplicate of it, a fire-and-forget tool in the same delivery, and an
end-of-call report full of what callers say. In memory and in durable mode (a real
redis-server for the queue and the store, the worker's side run too), the outputs and
every key and value in Redis are searched: the ``Sensitive`` value appears nowhere outside
the tool, the call id's number appears in no store key, and with ``redact_handlers`` the
handler sees no card number while the queue never held one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import anyio
import msgspec
import pytest
import redis.asyncio as aioredis
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import generate_latest

from tests.helpers.redis_server import RedisServer
from voicehooks import (
    Background,
    Duplicates,
    EndOfCallReport,
    MemoryStore,
    Privacy,
    RedisQueue,
    RedisStore,
    Sensitive,
    VoiceHooks,
)
from voicehooks.core.logs import JSONFormatter
from voicehooks.dev.inspector.pages import delivery_page
from voicehooks.dev.inspector.store import RecentDeliveries
from voicehooks.observe.metrics import PrometheusObserver
from voicehooks.observe.recording import Recorder
from voicehooks.observe.toolstats import ToolStats
from voicehooks.observe.tracing import TracingObserver
from voicehooks.testing import WebhookClient, end_of_call_report, tool_call, tool_calls
from voicehooks.work.durable import QueuedJobs
from voicehooks.work.worker import Worker

pytestmark = pytest.mark.anyio

SECRET = "whsec_privacy_sinks"
PIN = "PIN-SENSITIVE-7731-zq"  # distinctive: found only if it leaked
NUMBER = "31655018342"
CALL_ID = f"call-+{NUMBER}"
CARD = "4111 1111 1111 1111"
IBAN = "NL91ABNA0417164300"


class Sinks:
    """Every observer, and what each wrote."""

    def __init__(self, tmp_path: Path) -> None:
        self.recording = tmp_path / "recording.jsonl"
        self.history = tmp_path / "inspector.jsonl"
        self.recorder = Recorder(self.recording)
        self.metrics = PrometheusObserver()
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracing = TracingObserver(self.provider)
        self.stats = ToolStats()
        self.inspector = RecentDeliveries()
        self.inspector.capture_logs()
        self.lines: list[str] = []
        formatter = JSONFormatter()
        sinks = self

        class _Json(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                sinks.lines.append(formatter.format(record))

        self.handler = _Json(logging.DEBUG)

    def observers(self) -> list[Any]:
        return [self.recorder, self.metrics, self.tracing, self.stats, self.inspector]

    def texts(self, app: VoiceHooks) -> dict[str, str]:
        self.recorder.close()
        self.inspector.save(self.history)
        spans = [
            json.dumps(
                {
                    "name": span.name,
                    "attributes": dict(span.attributes or {}),
                    "events": [(e.name, dict(e.attributes or {})) for e in span.events],
                }
            )
            for span in self.exporter.get_finished_spans()
        ]
        entries = self.inspector.newest_first()
        shown = [delivery_page(e, reveal=False, replays=[]) for e in entries]
        revealed = [delivery_page(e, reveal=True, replays=[]) for e in entries]
        kept = [json.dumps({"body": (e.delivery.body or b"").decode()}) for e in entries]
        return {
            "recording": self.recording.read_text(),
            "metrics": generate_latest(self.metrics.registry).decode(),
            "spans": "\n".join(spans),
            "tool stats": json.dumps(self.stats.summary(app.tools)),
            "inspector page": "\n".join(shown),
            # What "reveal" shows on loopback in dev mode, and the history that dies with the
            # dev process, hold the caller's words (not a Sensitive value).
            "revealed inspector page": "\n".join(revealed),
            "inspector memory": "\n".join(kept),
            "inspector history": self.history.read_text(),
            "logs": "\n".join(self.lines),
        }


@pytest.fixture
def sinks(tmp_path: Path) -> Iterator[Sinks]:
    made = Sinks(tmp_path)
    for name in ("voicehooks", ""):
        logging.getLogger(name).addHandler(made.handler)
    previous = logging.getLogger("voicehooks").level
    logging.getLogger("voicehooks").setLevel(logging.DEBUG)
    yield made
    for name in ("voicehooks", ""):
        logging.getLogger(name).removeHandler(made.handler)
    logging.getLogger("voicehooks").setLevel(previous)
    made.inspector.stop_capturing_logs()
    made.provider.shutdown()


def build(sinks: Sinks, privacy: Privacy, **settings: Any) -> tuple[VoiceHooks, list[Any]]:
    app = VoiceHooks(secret=SECRET, observers=sinks.observers(), privacy=privacy, **settings)
    seen: list[Any] = []

    @app.tool
    def pay(pin: Annotated[str, Sensitive()], amount: float) -> str:
        """Pay the open invoice."""
        seen.append(pin)
        return f"paid with {pin}"  # echoed: the answer the store keeps must not hold it

    @app.tool(fire_and_forget=True)
    def notify(note: str) -> None:
        """Tell the back office."""
        seen.append(note)

    @app.on("end-of-call-report")
    def archive(report: EndOfCallReport) -> None:
        seen.append(report)

    return app, seen


def deliveries() -> tuple[dict[str, Any], dict[str, Any]]:
    calls = tool_calls(
        tool_call("pay", {"pin": PIN, "amount": 12.5}, id="t-pay"),
        tool_call("notify", {"note": "callback wanted"}, id="t-notify"),
        call_id=CALL_ID,
    )
    report = end_of_call_report(
        call_id=CALL_ID,
        summary=f"Paid by card {CARD}; refund to {IBAN}.",
        messages=[
            {"role": "user", "content": "my card number is four one one one one one one one"},
            {"role": "assistant", "content": "go on"},
            {"role": "user", "content": "one one one one one one one one"},
        ],
        analysis={"note": f"iban {IBAN}"},
    )
    return calls, report


async def redis_contents(url: str) -> tuple[list[str], str]:
    """Every key, and every value of every key, as text."""
    client = aioredis.from_url(url)
    keys: list[str] = []
    values: list[str] = []
    try:
        async for raw in client.scan_iter(count=1000):
            key = raw.decode("latin-1")
            keys.append(key)
            found = await client.type(raw)
            kind = found.decode() if isinstance(found, bytes) else found
            if kind == "string":
                values.append(repr(await client.get(raw)))
            elif kind == "stream":
                values.append(repr(await client.xrange(raw)))
            elif kind == "hash":
                values.append(repr(await client.hgetall(raw)))
            elif kind == "zset":
                values.append(repr(await client.zrange(raw, 0, -1, withscores=True)))
            elif kind == "list":
                values.append(repr(await client.lrange(raw, 0, -1)))
            elif kind == "set":
                values.append(repr(await client.smembers(raw)))
    finally:
        await client.aclose()
    return keys, "\n".join(values)


def without_reveal(outputs: dict[str, str]) -> dict[str, str]:
    hidden = ("revealed inspector page", "inspector memory", "inspector history")
    return {sink: text for sink, text in outputs.items() if sink not in hidden}


def assert_absent(outputs: dict[str, str], *values: str) -> None:
    leaks = [
        f"{value!r} in {sink}"
        for sink, text in outputs.items()
        for value in values
        if value in text
    ]
    assert not leaks, leaks


async def test_a_sensitive_argument_reaches_only_its_tool_in_memory(
    sinks: Sinks,
) -> None:
    app, seen = build(sinks, Privacy(), duplicates=None)
    calls, report = deliveries()
    async with WebhookClient(app) as client:
        first = await client.post(calls)
        again = await client.post(calls)  # no dedupe: runs again; same masking
        await client.post(report)
        await client.wait_for_background()
    assert PIN in seen  # the tool got the value itself
    for answer in (first, again):
        assert PIN not in answer.text
        assert "[sensitive:" in answer.text
    outputs = sinks.texts(app)
    assert "[sensitive:" in outputs["recording"]
    assert_absent(outputs, PIN)
    assert_absent(without_reveal(outputs), CARD.replace(" ", ""), CARD, IBAN)


async def test_a_sensitive_argument_reaches_only_its_tool_in_durable_mode(
    sinks: Sinks, redis_server: RedisServer
) -> None:
    queue = RedisQueue.from_url(redis_server.url)
    store = RedisStore.from_url(redis_server.url)
    app, seen = build(
        sinks,
        Privacy(redact_handlers=True),
        background=Background(queue=queue),
        duplicates=Duplicates(store=store),
    )
    calls, report = deliveries()
    async with WebhookClient(app) as client:
        await client.post(calls)
        await client.post(calls)  # a duplicate: answered from the store
        await client.post(report)
        # Before any worker ran: what the queue holds at rest.
        keys, values = await redis_contents(redis_server.url)
        # The call id itself travels in the jobs (handlers need it), never in a key.
        for secret in (PIN, CARD.replace(" ", ""), IBAN):
            assert secret not in values, f"{secret!r} in Redis before the worker"
        assert not [key for key in keys if NUMBER in key]
        assert app.queue is not None
        worker = Worker(
            app.queue,
            QueuedJobs(app.dispatcher.run_job, app.dispatcher.deduplicator),
            tasks=app.tasks,
            read_block_seconds=0.1,
        )
        stop = anyio.Event()
        async with anyio.create_task_group() as group:
            group.start_soon(worker.serve, stop)
            with anyio.fail_after(10):
                while not any(isinstance(item, EndOfCallReport) for item in seen):
                    await anyio.sleep(0.02)
                while "callback wanted" not in seen:
                    await anyio.sleep(0.02)
            stop.set()
    assert PIN in seen
    (handled,) = [item for item in seen if isinstance(item, EndOfCallReport)]
    assert handled.call.id == CALL_ID  # kept: call state and the live call are keyed by it
    assert CARD not in msgspec.json.encode(handled).decode()
    assert handled.summary == "Paid by card [card]; refund to [iban]."
    outputs = sinks.texts(app)
    keys, values = await redis_contents(redis_server.url)
    outputs["redis"] = values
    outputs["redis keys"] = "\n".join(keys)
    assert_absent(outputs, PIN)
    assert_absent(without_reveal(outputs), CARD.replace(" ", ""), CARD, IBAN)
    assert not [key for key in keys if NUMBER in key], keys
    await queue.aclose()
    await store.aclose()


async def test_the_handler_switch_hands_a_redacted_report_in_memory(sinks: Sinks) -> None:
    app, seen = build(sinks, Privacy(redact_handlers=True))
    _, report = deliveries()
    async with WebhookClient(app) as client:
        await client.post(report)
        await client.wait_for_background()
    (handled,) = seen
    assert handled.summary == "Paid by card [card]; refund to [iban]."
    assert [m.content for m in handled.messages] == ["my card number is [card]", "go on", "[card]"]


async def test_handlers_get_the_real_report_by_default(sinks: Sinks) -> None:
    app, seen = build(sinks, Privacy(), duplicates=Duplicates(store=MemoryStore()))
    _, report = deliveries()
    async with WebhookClient(app) as client:
        await client.post(report)
        await client.wait_for_background()
    (handled,) = seen
    assert CARD in handled.summary
