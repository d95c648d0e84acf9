"""Durable mode in-process: the receiver queues jobs before its 200, the worker's callback runs
them in the same app; against a real redis-server. (Real processes:
tests/integration/test_chaos.py.)"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from click.testing import CliRunner

from tests.helpers.redis_server import RedisServer
from tests.helpers.redis_topologies import BACKEND_NAMES, backend_for
from voicehooks import (
    Background,
    CallContext,
    CallState,
    Duplicates,
    EndOfCallReport,
    StatusUpdate,
    VoiceHooks,
)
from voicehooks.cli import durable as cli_durable
from voicehooks.cli import main
from voicehooks.core.environment import (
    QUEUE_KEY,
    QUEUE_MAX_DEAD,
    QUEUE_MAX_DEAD_AGE_SECONDS,
    QUEUE_URL,
)
from voicehooks.core.events import decode_delivery
from voicehooks.core.exceptions import ConfigurationError, QueueError
from voicehooks.observe import JobOutcome, JobRun
from voicehooks.state.stores import DeliveryStore, MemoryStore, RedisStore, store_from_url
from voicehooks.testing import WebhookClient, end_of_call_report, tool_call, tool_calls
from voicehooks.work.durable import QueuedJobs, QueueFailure, default_queue, queue_from_url
from voicehooks.work.jobs import Job, UnreadableJob, decode_job, encode_job
from voicehooks.work.pgqueue import PostgresQueue
from voicehooks.work.queue import Entry, RedisQueue, WorkQueue
from voicehooks.work.sealing import new_key
from voicehooks.work.worker import Worker

pytestmark = pytest.mark.anyio

SECRET = "whsec_durable_unit_tests"


class Recorded:
    def __init__(self) -> None:
        self.reports: list[tuple[str, str, int]] = []
        self.statuses: list[str] = []
        self.notes: list[str] = []


MakeApp = Callable[..., tuple[VoiceHooks, Recorded]]


def app_maker(url: str, queues: list[WorkQueue]) -> MakeApp:
    """Apps of the test's own on a queue at ``url``; the queues made go into ``queues``."""

    def make(
        *,
        queue: WorkQueue | None = None,
        queue_failure: QueueFailure = "process",
        store: DeliveryStore | None = None,
    ) -> tuple[VoiceHooks, Recorded]:
        if queue is None:
            queue = queue_from_url(url, operation_timeout_seconds=0.5)
            queues.append(queue)
        app = VoiceHooks(
            secret=SECRET,
            background=Background(queue=queue, queue_failure=queue_failure),
            duplicates=Duplicates(store=store if store is not None else MemoryStore()),
        )
        seen = Recorded()

        @app.on("end-of-call-report")
        async def save(report: EndOfCallReport, context: CallContext) -> None:
            seen.reports.append((report.call.id, context.delivery_id, context.attempt))
            if "flaky" in report.call.id and context.attempt == 1:
                raise ConnectionError("the CRM is down")

        @app.on("status-update")
        def track(update: StatusUpdate) -> None:
            seen.statuses.append(update.call.id)

        @app.tool(fire_and_forget=True, async_response="Noted.")
        async def note(text: str) -> None:
            """Keep a note for later."""
            seen.notes.append(text)

        @app.tool
        async def add(a: int, b: int) -> int:
            """Add two numbers."""
            return a + b

        return app, seen

    return make


@pytest.fixture(params=[*BACKEND_NAMES, "postgres"])
async def make_app(request: pytest.FixtureRequest) -> AsyncIterator[MakeApp]:
    """On Redis (one server, TLS, a cluster), then on PostgreSQL."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
    else:
        url = backend_for(request, request.param).url
    queues: list[WorkQueue] = []
    yield app_maker(url, queues)
    for queue in queues:
        await queue.aclose()


@pytest.fixture
async def make_redis_app(redis_server: RedisServer) -> AsyncIterator[MakeApp]:
    """On Redis only: for the tests that stop the server."""
    queues: list[WorkQueue] = []
    yield app_maker(redis_server.url, queues)
    for queue in queues:
        await queue.aclose()


async def read_all(queue: WorkQueue) -> list[Entry]:
    # As a worker does: on a loaded machine the app's startup may have timed out making the
    # group (a cluster's slot map), and a worker then makes it on its first read.
    await queue.ensure_group()
    return await queue.read("test-worker", 100, 0.01)


def queued(app: VoiceHooks, max_attempts: int | None = None) -> QueuedJobs:
    """What ``voicehooks worker`` runs each entry with."""
    dispatcher = app.dispatcher
    return QueuedJobs(dispatcher.run_job, dispatcher.deduplicator, max_attempts=max_attempts)


def body_of(entry: Entry) -> bytes:
    job, _ = decode_job(entry.data)
    body: bytes = job.event.__dict__["_body"]
    return body


async def test_a_job_round_trips_the_body_bytes_target_and_trace() -> None:
    body = msgspec.json.encode(end_of_call_report(call_id="round-trip")) + b"\n"
    job = Job(decode_delivery(body), "handler:app:on_report", {"traceparent": "00-ab"}, True)
    again, enqueued_at = decode_job(encode_job(job, 1.5))
    assert (again.target, dict(again.trace), again.is_replay, enqueued_at) == (
        "handler:app:on_report",
        {"traceparent": "00-ab"},
        True,
        1.5,
    )
    assert again.event.__dict__["_body"] == body  # the very bytes, not a re-encoding
    with pytest.raises(msgspec.DecodeError):
        decode_job(b"not msgpack at all \xc1")


async def test_a_report_is_in_redis_before_the_200_and_runs_only_in_the_worker(
    make_app: MakeApp,
) -> None:
    app, seen = make_app()
    assert app.queue is not None
    payload = end_of_call_report(call_id="call-1")
    async with WebhookClient(app, secret=SECRET) as client:
        response = await client.post(payload)
        assert response.status_code == 200
        await client.wait_for_background()
    assert seen.reports == []  # the receiver ran nothing after the answer
    (entry,) = await read_all(app.queue)
    job, _ = decode_job(entry.data)
    assert body_of(entry) == msgspec.json.encode(payload)  # the very bytes that were verified
    assert job.target.startswith("handler:")
    assert job.target.endswith("save")
    run = queued(app)
    async with app.lifespan():
        assert (await run(entry)).outcome == JobOutcome.DONE
        assert (await run(entry)).outcome == JobOutcome.DONE  # finished work: skipped
    assert len(seen.reports) == 1
    call_id, delivery_id, attempt = seen.reports[0]
    assert (call_id, attempt) == ("call-1", 1)
    assert delivery_id


async def test_a_failed_job_retries_in_the_worker_with_the_same_delivery_id(
    make_app: MakeApp,
) -> None:
    app, seen = make_app()
    assert app.queue is not None
    async with WebhookClient(app, secret=SECRET) as client:
        await client.end_of_call_report(call_id="flaky-1")
    done = anyio.Event()
    run = queued(app)

    results: list[tuple[str, str]] = []

    async def watched(entry: Entry) -> JobRun:
        result = await run(entry)
        results.append((result.outcome, result.failure))
        if result.outcome == JobOutcome.DONE:
            done.set()
        return result

    worker = Worker(app.queue, watched, retry_delay_seconds=0.01, read_block_seconds=0.1)
    stop = anyio.Event()
    async with app.lifespan(), anyio.create_task_group() as group:
        group.start_soon(worker.serve, stop)
        with anyio.fail_after(10):
            await done.wait()
        stop.set()
    assert [(c, a) for c, _, a in seen.reports] == [("flaky-1", 1), ("flaky-1", 2)]
    assert seen.reports[0][1] == seen.reports[1][1]
    assert results == [("failed", "ConnectionError"), ("done", "")]
    assert (await app.queue.stats()).length == 0


async def test_tools_are_answered_in_the_receiver_and_fire_and_forget_ones_are_queued(
    make_app: MakeApp,
) -> None:
    app, seen = make_app()
    assert app.queue is not None
    payload = tool_calls(
        tool_call("add", {"a": 2, "b": 3}, id="t-add"),
        tool_call("note", {"text": "call back"}, id="t-note"),
    )
    async with WebhookClient(app, secret=SECRET) as client:
        response = await client.post(payload)
        await client.wait_for_background()
    assert response.json() == {
        "results": [
            {"tool_call_id": "t-add", "result": 5},
            {"tool_call_id": "t-note", "result": "Noted."},
        ]
    }
    assert seen.notes == []
    (entry,) = await read_all(app.queue)
    assert decode_job(entry.data)[0].target == "tool:t-note"
    async with app.lifespan():
        assert (await queued(app)(entry)).outcome == JobOutcome.DONE
    assert seen.notes == ["call back"]


async def test_when_redis_is_down_the_jobs_run_here_and_the_log_says_so(
    make_redis_app: MakeApp, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    app, seen = make_redis_app()
    redis_server.stop()
    with caplog.at_level(logging.ERROR, "voicehooks"):
        async with WebhookClient(app, secret=SECRET) as client:
            await client.end_of_call_report(call_id="call-down")
            await client.wait_for_background()
    assert [c for c, _, _ in seen.reports] == ["call-down"]
    assert "the job queue is unavailable" in caplog.text
    assert "running 1 job(s) of this delivery in this process" in caplog.text


async def test_with_reject_a_redis_outage_is_a_503(
    make_redis_app: MakeApp, redis_server: RedisServer
) -> None:
    app, seen = make_redis_app(queue_failure="reject")
    redis_server.stop()
    async with WebhookClient(app, secret=SECRET) as client:
        response = await client.post(end_of_call_report(call_id="call-down"))
        await client.wait_for_background()
    assert response.status_code == 503
    assert seen.reports == []


async def test_a_full_queue_is_a_503_with_retry_after_and_the_redelivery_is_not_a_duplicate(
    backend_url: str, make_app: MakeApp
) -> None:
    queue = queue_from_url(backend_url, max_length=2)
    app, seen = make_app(queue=queue)
    over = end_of_call_report(call_id="call-over")
    async with WebhookClient(app, secret=SECRET) as client:
        for index in range(2):
            await client.end_of_call_report(call_id=f"call-{index}")
        response = await client.post(over)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "10"
        await queue.ack([entry.id for entry in await read_all(queue)])  # workers caught up
        assert (await client.post(over)).status_code == 200
        await client.wait_for_background()
    assert seen.reports == []
    assert [body_of(e) for e in await read_all(queue)] == [msgspec.json.encode(over)]
    await queue.aclose()


async def test_a_tool_call_is_never_refused_for_the_queue_its_jobs_run_here(
    make_redis_app: MakeApp, redis_server: RedisServer
) -> None:
    app, seen = make_redis_app(queue_failure="reject")
    redis_server.stop()
    async with WebhookClient(app, secret=SECRET) as client:
        result = await client.call_tool("note", text="call back")
        await client.wait_for_background()
    assert result == "Noted."
    assert seen.notes == ["call back"]


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"not an entry", "not a voicehooks job"),
        (b"\x93\x01\x02\x03", "not a voicehooks job"),
        (b"\xc1\x01 sealed, but cut short", "a sealed entry cut short"),
    ],
)
async def test_an_unreadable_entry_raises_so_that_it_ends_in_the_dead_letters(
    make_app: MakeApp, data: bytes, why: str
) -> None:
    app, _ = make_app()
    with pytest.raises(UnreadableJob, match=why):
        await queued(app)(Entry("1-0", data, 1))


def test_the_queue_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_queue() is None
    monkeypatch.setenv(QUEUE_URL, "redis://127.0.0.1:1/2")
    assert isinstance(default_queue(), RedisQueue)
    assert VoiceHooks(secret=SECRET).queue is not None
    for scheme in ("postgresql", "postgres", "POSTGRESQL"):
        monkeypatch.setenv(QUEUE_URL, f"{scheme}://127.0.0.1:1/app")
        assert isinstance(default_queue(), PostgresQueue)


@pytest.mark.parametrize("policy", ["process", "reject"])
async def test_an_unreachable_postgres_queue_is_met_as_queue_failure_says(
    policy: QueueFailure, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.helpers.servers import free_port

    queues: list[WorkQueue] = []
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/none"
    app, seen = app_maker(url, queues)(queue_failure=policy)
    with caplog.at_level(logging.ERROR, "voicehooks"):
        async with WebhookClient(app, secret=SECRET) as client:
            response = await client.post(end_of_call_report(call_id="call-down"))
            await client.wait_for_background()
    if policy == "reject":
        assert response.status_code == 503
        assert seen.reports == []
    else:
        assert response.status_code == 200
        assert [c for c, _, _ in seen.reports] == ["call-down"]
        assert "running 1 job(s) of this delivery in this process" in caplog.text


def test_the_replica_acks_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(QUEUE_URL, "redis://127.0.0.1:1/2")
    queue = default_queue()
    assert isinstance(queue, RedisQueue)
    assert (queue.min_replicas_acks, queue.replica_ack_timeout_seconds) == (0, 0.5)
    monkeypatch.setenv("VOICEHOOKS_QUEUE_MIN_REPLICAS_ACKS", "2")
    monkeypatch.setenv("VOICEHOOKS_QUEUE_REPLICA_ACK_TIMEOUT_SECONDS", "0.25")
    queue = default_queue()
    assert isinstance(queue, RedisQueue)
    assert (queue.min_replicas_acks, queue.replica_ack_timeout_seconds) == (2, 0.25)
    monkeypatch.setenv("VOICEHOOKS_QUEUE_MIN_REPLICAS_ACKS", "one")
    with pytest.raises(ConfigurationError, match="VOICEHOOKS_QUEUE_MIN_REPLICAS_ACKS"):
        default_queue()


def test_queue_failure_must_be_a_known_policy() -> None:
    with pytest.raises(Exception, match="queue_failure"):
        VoiceHooks(secret=SECRET, background=Background(queue_failure="drop"))  # type: ignore[arg-type]


# -- voicehooks worker -------------------------------------------------------------------


def test_the_worker_command_wants_a_queue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_durable, "setup_logging", lambda *a: None)
    app_file = tmp_path / "plain_app.py"
    app_file.write_text("from voicehooks import VoiceHooks\napp = VoiceHooks(secret='whsec_x')\n")
    result = CliRunner().invoke(main, ["worker", str(app_file)])
    assert result.exit_code == 2
    assert f"set {QUEUE_URL}=redis://" in result.output


def test_the_worker_command_builds_a_worker_from_its_options(
    tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    app_file = tmp_path / "queued_app.py"
    app_file.write_text("from voicehooks import VoiceHooks\napp = VoiceHooks()\n")
    monkeypatch.setenv(QUEUE_URL, redis_server.url)
    monkeypatch.delenv("VOICEHOOKS_SECRET", raising=False)  # a worker verifies nothing
    served: list[Worker] = []

    async def fake_serve(
        app: VoiceHooks,
        worker: Worker,
        stop: anyio.Event | None = None,
        health: tuple[str, int] | None = None,
        metrics: bool = False,
    ) -> None:
        assert health is None  # no --health-port: no probe server
        served.append(worker)

    monkeypatch.setattr(cli_durable, "_serve", fake_serve)
    logging_setup: list[tuple[str, str]] = []
    monkeypatch.setattr(cli_durable, "setup_logging", lambda *a: logging_setup.append(a))
    args = ["worker", str(app_file), "--concurrency", "3", "--claim-idle-seconds", "7"]
    args += ["--max-attempts", "2", "--retry-delay-seconds", "0.5", "--log-level", "warning"]
    args += ["--log-format", "json", "--max-dead", "50", "--max-dead-age-seconds", "3600"]
    monkeypatch.setenv(QUEUE_KEY, new_key())
    monkeypatch.setenv(QUEUE_MAX_DEAD, "70")  # the option wins
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert logging_setup == [("json", "warning")]
    (worker,) = served
    assert (worker.concurrency, worker.claim_idle_seconds, worker.max_attempts) == (3, 7.0, 2)
    assert (worker.retry_delay_seconds, worker.tasks.grace_seconds) == (0.5, 20.0)
    assert (worker.queue.max_dead, worker.queue.max_dead_age_seconds) == (50, 3600.0)
    assert isinstance(worker.run, QueuedJobs)
    assert worker.run.sealer.sealing  # the app's key opens the entries
    assert worker.on_trimmed is not None


def test_the_dead_letter_bounds_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(QUEUE_URL, "redis://127.0.0.1:1/2")
    queue = default_queue()
    assert queue is not None
    assert (queue.max_dead, queue.max_dead_age_seconds) == (10_000, 7 * 86400)
    monkeypatch.setenv(QUEUE_MAX_DEAD, "20")
    monkeypatch.setenv(QUEUE_MAX_DEAD_AGE_SECONDS, "60.5")
    queue = default_queue()
    assert queue is not None
    assert (queue.max_dead, queue.max_dead_age_seconds) == (20, 60.5)
    for bad in ("0", "-3", "many", "inf", "nan"):
        monkeypatch.setenv(QUEUE_MAX_DEAD, bad)
        with pytest.raises(ConfigurationError, match=f"^{QUEUE_MAX_DEAD}="):
            default_queue()


def test_every_worker_option_comes_from_its_environment_variable(
    tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    app_file = tmp_path / "queued_env_app.py"
    app_file.write_text("from voicehooks import VoiceHooks\napp = VoiceHooks()\n")
    monkeypatch.setenv(QUEUE_URL, redis_server.url)
    served: list[tuple[Worker, tuple[str, int] | None, bool]] = []

    async def fake_serve(
        app: VoiceHooks,
        worker: Worker,
        stop: anyio.Event | None = None,
        health: tuple[str, int] | None = None,
        metrics: bool = False,
    ) -> None:
        served.append((worker, health, metrics))

    monkeypatch.setattr(cli_durable, "_serve", fake_serve)
    logging_setup: list[tuple[str, str]] = []
    monkeypatch.setattr(cli_durable, "setup_logging", lambda *a: logging_setup.append(a))
    environment = {
        "VOICEHOOKS_WORKER_CONCURRENCY": "3",
        "VOICEHOOKS_WORKER_CLAIM_IDLE_SECONDS": "7",
        "VOICEHOOKS_WORKER_MAX_ATTEMPTS": "2",
        "VOICEHOOKS_WORKER_RETRY_DELAY_SECONDS": "0.5",
        "VOICEHOOKS_WORKER_GRACE_SECONDS": "4",
        "VOICEHOOKS_WORKER_FORGET_IDLE_SECONDS": "600",
        "VOICEHOOKS_WORKER_HEALTH_PORT": "9109",
        "VOICEHOOKS_WORKER_HEALTH_HOST": "0.0.0.0",
        "VOICEHOOKS_METRICS": "1",
        "VOICEHOOKS_LOG_LEVEL": "debug",
        "VOICEHOOKS_LOG_FORMAT": "json",
    }
    result = CliRunner(env=environment).invoke(main, ["worker", str(app_file)])
    assert result.exit_code == 0, result.output
    assert logging_setup == [("json", "debug")]
    ((worker, health, metrics),) = served
    assert (worker.concurrency, worker.claim_idle_seconds, worker.max_attempts) == (3, 7.0, 2)
    assert (worker.retry_delay_seconds, worker.tasks.grace_seconds) == (0.5, 4.0)
    assert worker.forget_idle_seconds == 600.0
    assert (health, metrics) == (("0.0.0.0", 9109), True)
    help_text = CliRunner().invoke(main, ["worker", "--help"]).output.replace("\n", "")
    for name in environment:
        assert name in help_text.replace(" ", ""), name


def test_worker_metrics_without_a_health_port_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli_durable, "setup_logging", lambda *a: None)
    monkeypatch.delenv("VOICEHOOKS_WORKER_HEALTH_PORT", raising=False)
    result = CliRunner().invoke(main, ["worker", "app.py", "--metrics"])
    assert result.exit_code == 2
    assert "--health-port" in result.output


def test_worker_metrics_without_prometheus_client_name_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli_durable, "setup_logging", lambda *a: None)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as if not installed
    result = CliRunner().invoke(main, ["worker", "app.py", "--metrics", "--health-port", "9"])
    assert result.exit_code == 2
    assert "pip install 'voicehooks[metrics]'" in result.output


async def test_the_worker_process_runs_jobs_until_stopped_and_drains(
    make_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    app, seen = make_app()
    assert app.queue is not None
    async with WebhookClient(app, secret=SECRET) as client:
        await client.end_of_call_report(call_id="call-w")
    worker = Worker(app.queue, queued(app), tasks=app.tasks, read_block_seconds=0.1)
    stop = anyio.Event()
    with caplog.at_level(logging.INFO, "voicehooks"):
        async with anyio.create_task_group() as group:
            group.start_soon(cli_durable._serve, app, worker, stop)
            with anyio.fail_after(10):
                while not seen.reports:
                    await anyio.sleep(0.02)
            stop.set()
    assert [c for c, _, _ in seen.reports] == ["call-w"]
    assert f"worker {worker.consumer}: consuming {worker.queue.stream}" in caplog.text
    (job,) = [r for r in caplog.records if r.getMessage().startswith("job ")]
    assert job.levelno == logging.INFO
    assert re.fullmatch(
        r"job end-of-call-report call=call-w \S+ attempt 1: done \d+\.\dms", job.getMessage()
    ), job.getMessage()
    assert (job.event, job.outcome, job.attempt) == ("end-of-call-report", "done", 1)  # type: ignore[attr-defined]
    assert f"worker {worker.consumer}: draining 0 held entries" in caplog.text
    assert (
        f"worker {worker.consumer}: stopped; 1 done, 0 failed, 0 retried, 0 dead, 0 taken over"
        in caplog.text
    )


async def test_a_full_queue_runs_the_fire_and_forget_tools_of_a_live_call_here(
    backend_url: str, make_app: MakeApp
) -> None:
    queue = queue_from_url(backend_url, max_length=1)
    app, seen = make_app(queue=queue)
    async with WebhookClient(app, secret=SECRET) as client:
        await client.end_of_call_report(call_id="fills-it")
        assert await client.call_tool("note", text="call back") == "Noted."
        await client.wait_for_background()
    await queue.aclose()
    assert seen.notes == ["call back"]


async def test_with_redis_down_the_worker_runs_and_logs_what_it_cannot_check_or_mark(
    redis_server: RedisServer, make_redis_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    app, seen = make_redis_app(store=RedisStore.from_url(redis_server.url), queue_failure="reject")
    handler = app.handlers["end-of-call-report"][0]
    body = msgspec.json.encode(end_of_call_report(call_id="call-x"))
    entry = Entry("1-0", encode_job(Job(decode_delivery(body), handler.target), 0.0), 1)
    redis_server.stop()
    with caplog.at_level(logging.WARNING, "voicehooks"):
        async with WebhookClient(app, secret=SECRET) as client:
            response = await client.post(body)
            assert (await queued(app)(entry)).outcome == JobOutcome.DONE
    assert response.status_code == 503
    assert [c for c, _, _ in seen.reports] == ["call-x"]
    assert "cannot say whether" in caplog.text
    assert "could not mark it done" in caplog.text
    # Refused at admission, before the claim: there is no claim to give back.
    assert "releasing a refused delivery's claim" not in caplog.text


async def test_an_event_built_in_code_is_queued_as_a_delivery(make_app: MakeApp) -> None:
    app, _ = make_app(queue_failure="reject")
    assert app.queue is not None
    assert app.durable is not None
    await app.queue.open()
    decoded = decode_delivery(msgspec.json.encode(end_of_call_report(call_id="built")))
    built = msgspec.structs.replace(decoded)  # a copy: no original body with it
    assert "_body" not in built.__dict__
    handler = app.handlers["end-of-call-report"][0]
    assert await app.durable.accept([Job(built, handler.target)]) == ()
    (entry,) = await read_all(app.queue)
    assert decode_job(entry.data)[0].event.call.id == "built"


async def test_observers_see_a_failed_run_as_retrying_then_dead(make_app: MakeApp) -> None:
    from voicehooks.observe import Observer

    app, _ = make_app()
    assert app.queue is not None
    ended: list[tuple[str, int]] = []

    class Jobs(Observer):
        def job_ended(self, job: JobRun) -> None:
            ended.append((job.outcome, job.attempt))

    app.add_observer(Jobs())
    async with WebhookClient(app, secret=SECRET) as client:
        await client.end_of_call_report(call_id="flaky-2")
    (entry,) = await read_all(app.queue)
    run = queued(app, max_attempts=2)
    async with app.lifespan():
        assert (await run(entry)).failure == "ConnectionError"
        assert (await queued(app, max_attempts=1)(entry)).failure == "ConnectionError"
        assert (await run(Entry(entry.id, entry.data, 2))).outcome == "done"
    assert ended == [("retrying", 1), ("dead", 1), ("done", 2)]


def test_the_worker_command_warns_when_done_marks_stay_in_one_process(
    tmp_path: Path, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    app_file = tmp_path / "memory_app.py"
    app_file.write_text(
        "from voicehooks import Background, Duplicates, MemoryStore, RedisQueue, VoiceHooks\n"
        "app = VoiceHooks(secret='whsec_x', duplicates=Duplicates(store=MemoryStore()), "
        f"background=Background(queue=RedisQueue.from_url({redis_server.url!r})))\n"
    )

    async def fake_serve(
        app: VoiceHooks,
        worker: Worker,
        stop: anyio.Event | None = None,
        health: tuple[str, int] | None = None,
        metrics: bool = False,
    ) -> None:
        pass

    monkeypatch.setattr(cli_durable, "_serve", fake_serve)
    monkeypatch.setattr(cli_durable, "setup_logging", lambda *a: None)
    result = CliRunner().invoke(main, ["worker", str(app_file)])
    assert result.exit_code == 0, result.output
    assert "warning: the duplicate store is in memory" in result.output


# -- admission before anything with a side effect -------------------------------------------


async def test_a_full_queue_refuses_before_the_claim_and_before_any_before_answer_handler(
    backend_url: str, make_app: MakeApp
) -> None:
    queue = queue_from_url(backend_url, max_length=1)
    app, _ = make_app(queue=queue)
    before: list[str] = []

    def first(report: EndOfCallReport) -> None:
        before.append(report.call.id)

    app.add_handler("end-of-call-report", first, run_before_answer=True)
    over = end_of_call_report(call_id="call-over")
    async with WebhookClient(app, secret=SECRET) as client:
        await client.end_of_call_report(call_id="call-fills")
        response = await client.post(over)
        assert response.status_code == 503
        assert before == ["call-fills"]  # the refused delivery changed nothing
        await queue.ack([entry.id for entry in await read_all(queue)])  # workers caught up
        assert (await client.post(over)).status_code == 200
        assert before == ["call-fills", "call-over"]  # its redelivery runs everything once
    assert [decode_job(e.data)[0].event.call.id for e in await read_all(queue)] == ["call-over"]
    await queue.aclose()


async def test_an_unreachable_queue_with_reject_refuses_before_any_before_answer_handler(
    make_redis_app: MakeApp, redis_server: RedisServer
) -> None:
    app, seen = make_redis_app(queue_failure="reject")
    before: list[str] = []

    def first(report: EndOfCallReport) -> None:
        before.append(report.call.id)

    app.add_handler("end-of-call-report", first, run_before_answer=True)
    redis_server.stop()
    async with WebhookClient(app, secret=SECRET) as client:
        assert (await client.end_of_call_report(call_id="call-down")).status_code == 503
    assert before == []
    assert seen.reports == []


async def test_jobs_run_here_after_an_ambiguous_enqueue_error_never_run_again_in_a_worker(
    make_app: MakeApp,
    backend_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The done marks live where receivers and workers share them: in Redis.
    app, seen = make_app(store=store_from_url(backend_url))
    assert app.queue is not None
    queue = app.queue
    enqueue = queue.enqueue

    async def added_then_lost(entries: list[bytes]) -> None:
        await enqueue(entries)  # Redis took them; the answer never came back
        raise QueueError("redis enqueue took longer than 0.3 s")

    monkeypatch.setattr(queue, "enqueue", added_then_lost)
    with caplog.at_level(logging.ERROR, "voicehooks"):
        async with WebhookClient(app, secret=SECRET) as client:
            await client.end_of_call_report(call_id="call-ambiguous")
            await client.wait_for_background()
    assert [c for c, _, _ in seen.reports] == ["call-ambiguous"]  # ran here, once
    (entry,) = await read_all(queue)  # and Redis holds it too
    async with app.lifespan():
        assert (await queued(app)(entry)).outcome == JobOutcome.DONE
    assert [c for c, _, _ in seen.reports] == ["call-ambiguous"]  # the worker did not run it
    assert "running 1 job(s) of this delivery in this process" in caplog.text


async def test_call_state_set_by_a_tool_is_read_by_the_report_handler_in_a_worker(
    backend_url: str,
) -> None:
    queue = queue_from_url(backend_url)
    app = VoiceHooks(
        secret=SECRET,
        background=Background(queue=queue),
        duplicates=Duplicates(store=store_from_url(backend_url)),
    )
    seen: list[Any] = []

    @app.tool
    async def find_customer(phone: str, state: CallState) -> str:
        """Find the caller."""
        await state.set("customer", {"id": 42})
        return "found"

    @app.on("end-of-call-report")
    async def archive(report: EndOfCallReport, state: CallState) -> None:
        seen.append(await state.get("customer"))

    async with WebhookClient(app, secret=SECRET) as client:
        found = await client.call_tools(
            tool_call("find_customer", {"phone": "x"}), call_id="call-st"
        )
        assert found == ["found"]
        assert (await client.end_of_call_report(call_id="call-st")).status_code == 200
        await client.wait_for_background()
    assert seen == []  # the receiver ran no handler: the report is in Redis
    (entry,) = await read_all(queue)
    async with app.lifespan():  # the worker: the same app, another process in production
        assert (await queued(app)(entry)).outcome == JobOutcome.DONE
        assert seen == [{"id": 42}]
        assert await app.dispatcher.call_state("call-st").get("customer") is None  # cleared
    await queue.aclose()
