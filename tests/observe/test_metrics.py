"""The Prometheus observer, driven with hand-made records and read back through the real
prometheus_client exposition and parser."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from voicehooks import ConfigurationError, ToolError, VoiceHooks
from voicehooks.core.environment import METRICS, MULTIPROC_DIR
from voicehooks.core.events import EndOfCallReport
from voicehooks.observe import Delivery, JobRun, ToolRun
from voicehooks.observe.metrics import (
    BUCKETS_SECONDS,
    PrometheusObserver,
    exposition,
)
from voicehooks.testing import WebhookClient, tool_call

pytestmark = pytest.mark.anyio


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = exposition(registry)
    assert content_type.startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def delivery(event_type: str | None, outcome: str, seconds: float = 0.02) -> Delivery:
    record = Delivery([(b"content-type", b"application/json")])
    record.event_type = event_type
    record.call_id = "call-_+31612345678_Xq" if event_type else None
    record.outcome = outcome
    record.status = 200
    record.duration_seconds = seconds
    return record


def tool(name: str, outcome: str, registered: bool = True, seconds: float = 0.3) -> ToolRun:
    run = ToolRun(name, "tool_0612345678", registered)
    run.outcome = outcome
    run.duration_seconds = seconds
    return run


def test_deliveries_are_counted_by_event_and_outcome_and_timed() -> None:
    observer = PrometheusObserver()
    for _ in range(3):
        observer.delivery_answered(delivery("tool-calls", "answered", 0.02))
    observer.delivery_answered(delivery("tool-calls", "duplicate", 0.003))
    observer.delivery_answered(delivery(None, "rejected_401", 0.0001))
    values = samples(observer.registry)
    total = "voicehooks_deliveries_total"
    assert (
        values[
            (total, (("event", "tool-calls"), ("outcome", "answered"), ("transport", "webhook")))
        ]
        == 3
    )
    assert (
        values[
            (total, (("event", "tool-calls"), ("outcome", "duplicate"), ("transport", "webhook")))
        ]
        == 1
    )
    assert (
        values[
            (total, (("event", "_unknown"), ("outcome", "rejected_401"), ("transport", "webhook")))
        ]
        == 1
    )
    count = "voicehooks_delivery_duration_seconds_count"
    assert values[(count, (("event", "tool-calls"), ("transport", "webhook")))] == 4
    bucket = "voicehooks_delivery_duration_seconds_bucket"
    assert (
        values[(bucket, (("event", "tool-calls"), ("le", "0.005"), ("transport", "webhook")))] == 1
    )
    assert (
        values[(bucket, (("event", "tool-calls"), ("le", "0.025"), ("transport", "webhook")))] == 4
    )


@pytest.mark.parametrize(
    ("event_type", "outcome", "label"),
    [
        ("status-update", "answered", "status-update"),
        ("end-of-call-report", "answered", "end-of-call-report"),
        ("assistant-request", "answered", "assistant-request"),
        ("transcript-of-+31612345678", "unknown_event", "_unknown"),
        ("some-new-event", "answered", "_unknown"),
        (None, "rejected_400", "_unknown"),
    ],
)
def test_the_event_label_is_a_known_type_or_unknown(
    event_type: str | None, outcome: str, label: str
) -> None:
    observer = PrometheusObserver()
    observer.delivery_answered(delivery(event_type, outcome))
    events = {
        dict(labels)["event"]
        for (name, labels), _ in samples(observer.registry).items()
        if name == "voicehooks_deliveries_total"
    }
    assert events == {label}


def test_tool_calls_are_counted_by_registered_name_and_unknown_names_collapse() -> None:
    observer = PrometheusObserver()
    parent = delivery("tool-calls", "answered")
    observer.tool_ended(parent, tool("book", "ok", seconds=0.3))
    observer.tool_ended(parent, tool("book", "timeout", seconds=8.0))
    observer.tool_ended(parent, tool("call_+31612345678", "unknown", registered=False))
    observer.tool_ended(parent, tool("made_up", "unknown", registered=False))
    values = samples(observer.registry)
    total = "voicehooks_tool_calls_total"
    assert values[(total, (("outcome", "ok"), ("tool", "book"), ("transport", "webhook")))] == 1
    assert (
        values[(total, (("outcome", "timeout"), ("tool", "book"), ("transport", "webhook")))] == 1
    )
    assert (
        values[(total, (("outcome", "unknown"), ("tool", "_unknown"), ("transport", "webhook")))]
        == 2
    )
    bucket = "voicehooks_tool_duration_seconds_bucket"
    webhook = ("transport", "webhook")
    assert values[(bucket, (("le", "5.0"), ("tool", "book"), webhook))] == 1
    assert values[(bucket, (("le", "8.0"), ("tool", "book"), webhook))] == 2


def test_no_label_value_carries_a_call_id_a_number_or_a_tool_call_id() -> None:
    observer = PrometheusObserver()
    parent = delivery("tool-calls", "answered")
    observer.delivery_answered(parent)
    observer.tool_ended(parent, tool("call_+31612345678", "unknown", registered=False))
    body = exposition(observer.registry)[0].decode()
    for secret in ("31612345678", "0612345678", "call-_"):
        assert secret not in body


def test_background_jobs_are_gauged_while_running_and_counted_when_they_end() -> None:
    observer = PrometheusObserver()
    jobs = [JobRun("end-of-call-report", "c1", "reports:store", "d1", 1, {}) for _ in range(3)]
    for job in jobs:
        observer.job_started(job)
    running = ("voicehooks_background_jobs", (("state", "running"),))
    assert samples(observer.registry)[running] == 3
    for job, outcome in zip(jobs, ["done", "done", "failed"], strict=True):
        job.end(outcome)
        observer.job_ended(job)
    values = samples(observer.registry)
    assert values[running] == 0
    ended = "voicehooks_background_jobs_ended_total"
    assert values[(ended, (("outcome", "done"),))] == 2
    assert values[(ended, (("outcome", "failed"),))] == 1
    assert values[("voicehooks_background_job_duration_seconds_count", ())] == 3


def test_dead_letters_deleted_at_their_bound_are_counted_by_bound() -> None:
    observer = PrometheusObserver()
    observer.dead_letters_trimmed(3, "age")
    observer.dead_letters_trimmed(1, "count")
    observer.dead_letters_trimmed(2, "age")
    values = samples(observer.registry)
    trimmed = "voicehooks_dead_letters_trimmed_total"
    assert values[(trimmed, (("bound", "age"),))] == 5
    assert values[(trimmed, (("bound", "count"),))] == 1


def test_the_buckets_end_at_the_platforms_ten_second_budget() -> None:
    assert BUCKETS_SECONDS[-1] == 10.0
    assert {4.0, 5.0, 8.0} <= set(BUCKETS_SECONDS)
    assert list(BUCKETS_SECONDS) == sorted(BUCKETS_SECONDS)


def test_two_observers_in_one_process_do_not_collide() -> None:
    first, second = PrometheusObserver(), PrometheusObserver()
    first.delivery_answered(delivery("tool-calls", "answered"))
    key = (
        "voicehooks_deliveries_total",
        (("event", "tool-calls"), ("outcome", "answered"), ("transport", "webhook")),
    )
    assert samples(first.registry)[key] == 1
    assert key not in samples(second.registry)


def test_the_exposition_serves_the_default_registry_too() -> None:
    body = exposition(PrometheusObserver().registry)[0].decode()
    assert "process_" in body or "python_info" in body


def test_without_prometheus_client_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ConfigurationError, match=r"voicehooks\[metrics\]"):
        PrometheusObserver()


_WORKER = """
import sys
from voicehooks.observe.metrics import PrometheusObserver
from voicehooks.observe import Delivery, JobRun
observer = PrometheusObserver()
record = Delivery([])
record.event_type, record.outcome, record.duration_seconds = "status-update", "answered", 0.01
for _ in range(int(sys.argv[1])):
    observer.delivery_answered(record)
observer.job_started(JobRun("status-update", "c", "h", "d", 1, {}))  # dies running it
print("ready", flush=True)
sys.stdin.read()
"""


def test_multiprocess_mode_sums_processes_and_forgets_the_running_jobs_of_dead_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MULTIPROC_DIR, str(tmp_path))
    env = {**os.environ, MULTIPROC_DIR: str(tmp_path)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for n in (2, 5)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        registry = CollectorRegistry()
        values = samples(registry)
        total = (
            "voicehooks_deliveries_total",
            (("event", "status-update"), ("outcome", "answered"), ("transport", "webhook")),
        )
        running = ("voicehooks_background_jobs", (("state", "running"),))
        assert values[total] == 7
        assert values[running] == 2
        workers[0].kill()
        workers[0].wait()
        values = samples(registry)
        assert values[total] == 7  # a dead worker's counts stay
        assert values[running] == 1  # its running jobs do not
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
            if worker.stdin is not None:
                worker.stdin.close()
            if worker.stdout is not None:
                worker.stdout.close()


async def test_the_endpoint_is_an_asgi_app_answering_the_exposition() -> None:
    observer = PrometheusObserver()
    observer.delivery_answered(delivery("tool-calls", "answered"))
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await observer.endpoint({"type": "http", "method": "GET"}, receive, send)
    start, body = sent
    assert start["status"] == 200
    headers = dict(start["headers"])
    assert headers[b"content-type"].startswith(b"text/plain; version=")
    text = body["body"]
    assert isinstance(text, bytes)
    labels = b'{event="tool-calls",outcome="answered",transport="webhook"}'
    assert b"voicehooks_deliveries_total" + labels + b" 1.0" in text


# -- through the app ------------------------------------------------------------------

SECRET = "whsec_metrics_tests"


def metered_app(**options: Any) -> VoiceHooks:
    app = VoiceHooks(secret=SECRET, **options)

    @app.tool
    async def lookup(order_number: str) -> str:
        """Look an order up."""
        return f"ready: {order_number}"

    @app.tool
    async def decline() -> None:
        """Decline."""
        raise ToolError("no")

    @app.on("end-of-call-report")
    async def store(event: EndOfCallReport) -> None:
        pass

    return app


async def test_an_app_with_metrics_counts_and_serves_them_at_get_metrics() -> None:
    app = metered_app(observers=[PrometheusObserver()])
    async with WebhookClient(app, secret=SECRET) as client:
        for _ in range(3):
            await client.call_tools(
                tool_call("lookup", {"order_number": "WO-1"}),
                tool_call("decline"),
                tool_call("made_up_+31612345678"),
            )
        await client.end_of_call_report()
        await client.wait_for_background()
        assert (await client.post(b"{}", signed=False)).status_code == 401
        response = await client.request("GET", "/metrics", [], [])
        refused = await client.request("POST", "/metrics", [], [])
    assert response.status_code == 200
    assert refused.status_code == 405
    text = response.text
    values = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    deliveries = "voicehooks_deliveries_total"
    assert (
        values[
            (
                deliveries,
                (("event", "tool-calls"), ("outcome", "answered"), ("transport", "webhook")),
            )
        ]
        == 3
    )
    assert (
        values[
            (
                deliveries,
                (
                    ("event", "end-of-call-report"),
                    ("outcome", "answered"),
                    ("transport", "webhook"),
                ),
            )
        ]
        == 1
    )
    assert (
        values[
            (
                deliveries,
                (("event", "_unknown"), ("outcome", "rejected_401"), ("transport", "webhook")),
            )
        ]
        == 1
    )
    calls = "voicehooks_tool_calls_total"
    assert values[(calls, (("outcome", "ok"), ("tool", "lookup"), ("transport", "webhook")))] == 3
    assert (
        values[(calls, (("outcome", "error"), ("tool", "decline"), ("transport", "webhook")))] == 3
    )
    assert (
        values[(calls, (("outcome", "unknown"), ("tool", "_unknown"), ("transport", "webhook")))]
        == 3
    )
    assert values[("voicehooks_background_jobs_ended_total", (("outcome", "done"),))] == 1
    assert values[("voicehooks_background_jobs", (("state", "running"),))] == 0
    assert "31612345678" not in text


@pytest.mark.parametrize(
    ("value", "on"), [("1", True), ("true", True), ("0", False), ("", False), (None, False)]
)
def test_voicehooks_metrics_in_the_environment_switches_them_on(
    monkeypatch: pytest.MonkeyPatch, value: str | None, on: bool
) -> None:
    if value is None:
        monkeypatch.delenv(METRICS, raising=False)
    else:
        monkeypatch.setenv(METRICS, value)
    app = metered_app()
    installed = [o for o in app.observers.observers if isinstance(o, PrometheusObserver)]
    assert len(installed) == int(on)
    assert bool(app.observers) is on


def test_metrics_refuse_a_webhook_path_of_slash_metrics() -> None:
    with pytest.raises(ConfigurationError, match="another path"):
        VoiceHooks(secret=SECRET, path="/metrics", observers=[PrometheusObserver()])


def test_the_fast_path_buckets_exactly_as_prometheus_client_does() -> None:
    from prometheus_client import Histogram

    amounts = [0.0, 0.001, 0.0010001, 0.005, 0.02, 4.0, 7.99, 8.0, 10.0, 10.5, 1e9]
    observer = PrometheusObserver()
    reference = CollectorRegistry()
    histogram = Histogram(
        "voicehooks_tool_duration_seconds",
        "reference",
        ["tool", "transport"],
        buckets=BUCKETS_SECONDS,
        registry=reference,
    )
    for amount in amounts:
        observer.tool_ended(delivery("tool-calls", "answered"), tool("book", "ok", seconds=amount))
        histogram.labels("book", "webhook").observe(amount)
    ours = {
        k: v
        for k, v in samples(observer.registry).items()
        if k[0] == "voicehooks_tool_duration_seconds_bucket"
    }
    theirs = {
        k: v
        for k, v in samples(reference).items()
        if k[0] == "voicehooks_tool_duration_seconds_bucket"
    }
    assert len(ours) == len(BUCKETS_SECONDS) + 1
    assert ours == theirs


class _PlainChild:
    """A metric child with only the public methods (no value objects to reach into)."""

    def __init__(self) -> None:
        self.added: list[float] = []

    def inc(self, amount: float = 1) -> None:
        self.added.append(amount)

    def observe(self, amount: float) -> None:
        self.added.append(amount)


class _PlainMetric:
    def __init__(self, histogram: bool) -> None:
        self.child = _PlainChild()
        if histogram:
            self.child._upper_bounds = [1.0]  # type: ignore[attr-defined]  # but no _sum

    def labels(self, *values: str) -> _PlainChild:
        return self.child


@pytest.mark.parametrize("histogram", [False, True])
def test_without_the_value_objects_the_public_methods_are_used(histogram: bool) -> None:
    from voicehooks.observe.metrics import _cache

    metric = _PlainMetric(histogram)
    cache: dict[tuple[str, ...], Any] = {}
    add = _cache(cache, metric, ("x",))
    add(2.5)
    assert metric.child.added == [2.5]
    assert cache == {("x",): add}


async def test_mounted_in_fastapi_the_metrics_are_under_the_mount_path() -> None:
    from fastapi import FastAPI

    hooks = metered_app(observers=[PrometheusObserver()])
    parent = FastAPI()
    parent.mount("/hooks", hooks)
    client = WebhookClient(parent, secret=SECRET, path="/hooks/")
    await client.status_update()
    response = await client.request("GET", "/hooks/metrics", [], [])
    assert response.status_code == 200
    labels = '{event="status-update",outcome="answered",transport="webhook"}'
    line = f"voicehooks_deliveries_total{labels} 1.0"
    assert line in response.text


def test_voicehooks_metrics_adds_prometheus_beside_the_apps_own_observers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from voicehooks import Observer
    from voicehooks.observe import Health

    monkeypatch.setenv(METRICS, "1")
    mine = Observer()
    app = VoiceHooks(secret=SECRET, observers=[mine])
    kinds = [type(observer) for observer in app.observers.observers]
    assert kinds == [Observer, PrometheusObserver, Health]
    given = PrometheusObserver()
    (installed,) = VoiceHooks(secret=SECRET, observers=[given]).observers.observers[:1]
    assert installed is given


async def test_worker_metrics_read_the_worker_s_counts_and_the_backlog_at_each_scrape() -> None:
    import httpx
    from starlette.applications import Starlette

    from voicehooks.observe.metrics import WorkerMetrics

    counts = {"done": 3, "failed": 2, "retried": 1, "dead": 1, "taken_over": 4}
    backlogs: list[int | Exception] = [7, RuntimeError("Redis is away")]

    async def backlog() -> int:
        answer = backlogs.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    metrics = WorkerMetrics(lambda: counts, backlog)
    transport = httpx.ASGITransport(app=Starlette(routes=list(metrics.routes())))
    async with httpx.AsyncClient(transport=transport, base_url="http://worker") as client:
        first, second = (await client.get("/metrics")).text, (await client.get("/metrics")).text

    def samples(text: str) -> dict[tuple[str, str], float]:
        return {
            (sample.name, sample.labels.get("outcome", "")): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name.startswith("voicehooks_worker")
        }

    assert samples(first) == {
        ("voicehooks_worker_jobs_total", "done"): 3,
        ("voicehooks_worker_jobs_total", "failed"): 2,
        ("voicehooks_worker_jobs_total", "retried"): 1,
        ("voicehooks_worker_jobs_total", "dead"): 1,
        ("voicehooks_worker_takeovers_total", ""): 4,
        ("voicehooks_worker_backlog", ""): 7,
    }
    assert ("voicehooks_worker_backlog", "") not in samples(second)  # unknown, not stale
    assert samples(second)[("voicehooks_worker_jobs_total", "done")] == 3


async def test_metrics_beside_the_webhook_warn_once_and_path_none_serves_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    import httpx

    with caplog.at_level(logging.WARNING, "voicehooks"):
        VoiceHooks(secret="whsec_x", observers=[PrometheusObserver()])
    (warning,) = [r for r in caplog.records if "metrics are served at" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert "/metrics beside the webhook" in warning.getMessage()
    assert "PrometheusObserver(path=None)" in warning.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, "voicehooks"):
        private = PrometheusObserver(path=None)
        app = VoiceHooks(secret="whsec_x", observers=[private])
    assert not [r for r in caplog.records if "metrics are served" in r.getMessage()]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        assert (await client.get("/metrics")).status_code == 404
