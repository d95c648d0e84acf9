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

from voicehooks.metrics import BUCKETS_SECONDS, MULTIPROC_DIR_ENV, PrometheusObserver, exposition
from voicehooks.observers import Delivery, JobRun, ToolRun

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
    assert values[(total, (("event", "tool-calls"), ("outcome", "answered")))] == 3
    assert values[(total, (("event", "tool-calls"), ("outcome", "duplicate")))] == 1
    assert values[(total, (("event", "_unknown"), ("outcome", "rejected_401")))] == 1
    count = "voicehooks_delivery_duration_seconds_count"
    assert values[(count, (("event", "tool-calls"),))] == 4
    bucket = "voicehooks_delivery_duration_seconds_bucket"
    assert values[(bucket, (("event", "tool-calls"), ("le", "0.005")))] == 1
    assert values[(bucket, (("event", "tool-calls"), ("le", "0.025")))] == 4


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
    assert values[(total, (("outcome", "ok"), ("tool", "book")))] == 1
    assert values[(total, (("outcome", "timeout"), ("tool", "book")))] == 1
    assert values[(total, (("outcome", "unknown"), ("tool", "_unknown")))] == 2
    bucket = "voicehooks_tool_duration_seconds_bucket"
    assert values[(bucket, (("le", "5.0"), ("tool", "book")))] == 1
    assert values[(bucket, (("le", "8.0"), ("tool", "book")))] == 2


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


def test_the_queue_depth_hook_sets_its_gauge() -> None:
    observer = PrometheusObserver()
    observer.set_queue_depth(17)
    assert samples(observer.registry)[("voicehooks_background_queue_depth", ())] == 17


def test_the_buckets_end_at_the_platforms_ten_second_budget() -> None:
    assert BUCKETS_SECONDS[-1] == 10.0
    assert {4.0, 5.0, 8.0} <= set(BUCKETS_SECONDS)
    assert list(BUCKETS_SECONDS) == sorted(BUCKETS_SECONDS)


def test_two_observers_in_one_process_do_not_collide() -> None:
    first, second = PrometheusObserver(), PrometheusObserver()
    first.delivery_answered(delivery("tool-calls", "answered"))
    key = ("voicehooks_deliveries_total", (("event", "tool-calls"), ("outcome", "answered")))
    assert samples(first.registry)[key] == 1
    assert key not in samples(second.registry)


def test_the_exposition_serves_the_default_registry_too() -> None:
    body = exposition(PrometheusObserver().registry)[0].decode()
    assert "process_" in body or "python_info" in body


def test_without_prometheus_client_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from voicehooks.exceptions import ConfigurationError

    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ConfigurationError, match=r"voicehooks\[metrics\]"):
        PrometheusObserver()


_WORKER = """
import sys
from voicehooks.metrics import PrometheusObserver
from voicehooks.observers import Delivery, JobRun
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
    monkeypatch.setenv(MULTIPROC_DIR_ENV, str(tmp_path))
    env = {**os.environ, MULTIPROC_DIR_ENV: str(tmp_path)}
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
            (("event", "status-update"), ("outcome", "answered")),
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
    assert b'voicehooks_deliveries_total{event="tool-calls",outcome="answered"} 1.0' in text
