"""The worker loop against a real redis-server and a real PostgreSQL, with hand-made entries
and a test callback."""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import anyio
import pytest

from tests.helpers.postgres_server import running_postgres
from tests.helpers.redis_server import RedisServer, running_redis
from voicehooks.core.exceptions import QueueError
from voicehooks.core.tasks import TaskOwner
from voicehooks.observe import JobOutcome, JobRun
from voicehooks.work.durable import queue_from_url
from voicehooks.work.jobs import UnreadableJob
from voicehooks.work.queue import Entry, RedisQueue, WorkQueue
from voicehooks.work.worker import ABANDONED, Worker

pytestmark = pytest.mark.anyio

MakeQueue = Callable[[], WorkQueue]
PHONE = "+31600000000"


def ended(entry: Entry, outcome: str, failure: str = "") -> JobRun:
    """The run a callback returns for ``entry``."""
    run = JobRun("end-of-call-report", "call-1", "job", "", entry.attempt, {})
    run.end(outcome, failure)
    return run


@pytest.fixture
async def make_queue(backend_url: str) -> AsyncIterator[MakeQueue]:
    queues: list[WorkQueue] = []

    def make() -> WorkQueue:
        queues.append(queue_from_url(backend_url))
        return queues[-1]

    yield make
    for queue in queues:
        await queue.aclose()


@pytest.fixture
async def make_redis_queue(redis_server: RedisServer) -> AsyncIterator[Callable[[], RedisQueue]]:
    queues: list[RedisQueue] = []

    def make() -> RedisQueue:
        queues.append(RedisQueue.from_url(redis_server.url))
        return queues[-1]

    yield make
    for queue in queues:
        await queue.aclose()


class Recorder:
    """A run callback: records every attempt, sleeps, and answers from a script per entry."""

    def __init__(self, seconds: float = 0.0, outcomes: dict[bytes, list[str]] | None = None):
        self.seconds = seconds
        self.outcomes = outcomes or {}
        self.attempts: list[tuple[bytes, int]] = []
        self.running = 0
        self.most_running = 0
        self.done = anyio.Event()
        self.expected = 0

    async def __call__(self, entry: Entry) -> JobRun:
        self.attempts.append((entry.data, entry.attempt))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await anyio.sleep(self.seconds)
        finally:
            self.running -= 1
        script = self.outcomes.get(entry.data, [])
        outcome = script.pop(0) if script else JobOutcome.DONE
        if outcome == "raise":
            raise KeyError(PHONE)
        if outcome == "unreadable":
            raise UnreadableJob("sealed with queue key 0123456789abcdef, which is not known")
        if outcome == JobOutcome.DONE and len(self.finished) >= self.expected:
            self.done.set()
        return ended(entry, outcome)

    @property
    def finished(self) -> Counter[bytes]:
        return Counter(data for data, _ in self.attempts)


async def serve_until(worker: Worker, done: anyio.Event, timeout: float = 20.0) -> None:
    stop = anyio.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(worker.serve, stop)
        with anyio.fail_after(timeout):
            await done.wait()
        stop.set()


async def test_every_entry_runs_once_within_the_concurrency_and_leaves_the_stream(
    make_queue: MakeQueue,
) -> None:
    queue = make_queue()
    await queue.open()
    await queue.enqueue([b"%d" % i for i in range(40)])
    run = Recorder(seconds=0.01)
    run.expected = 40
    await serve_until(Worker(queue, run, concurrency=4, read_block_seconds=0.1), run.done)
    assert run.finished == Counter(b"%d" % i for i in range(40))
    assert {attempt for _, attempt in run.attempts} == {1}
    assert run.most_running <= 4
    stats = await queue.stats()
    assert (stats.length, stats.pending, stats.dead) == (0, 0, 0)


async def test_a_failure_retries_with_growing_delays_then_succeeds(
    make_queue: MakeQueue, caplog: pytest.LogCaptureFixture
) -> None:
    queue = make_queue()
    await queue.open()
    await queue.enqueue([b"flaky"])
    run = Recorder(outcomes={b"flaky": [JobOutcome.FAILED, JobOutcome.TIMEOUT]})
    run.expected = 1
    worker = Worker(queue, run, retry_delay_seconds=0.05, read_block_seconds=0.1)
    with caplog.at_level(logging.WARNING, "voicehooks"):
        await serve_until(worker, run.done)
    assert run.attempts == [(b"flaky", 1), (b"flaky", 2), (b"flaky", 3)]
    assert "attempt 1/5 failed; retrying in 0.1 s" in caplog.text
    assert "attempt 2/5 timeout; retrying in 0.1 s" in caplog.text
    assert worker.counts == {"done": 1, "failed": 2, "retried": 2, "dead": 0, "taken_over": 0}
    stats = await queue.stats()
    assert (stats.length, stats.dead) == (0, 0)


async def test_out_of_attempts_an_entry_is_dead_lettered_with_the_exception_type_only(
    make_queue: MakeQueue, caplog: pytest.LogCaptureFixture
) -> None:
    queue = make_queue()
    await queue.open()
    await queue.enqueue([b"poison", b"fine"])
    run = Recorder(outcomes={b"poison": ["raise"] * 3})
    run.expected = 2
    worker = Worker(queue, run, max_attempts=3, retry_delay_seconds=0.01, read_block_seconds=0.1)
    with caplog.at_level(logging.DEBUG, "voicehooks"):
        stop = anyio.Event()
        async with anyio.create_task_group() as group:
            group.start_soon(worker.serve, stop)
            with anyio.fail_after(20):
                while (await queue.stats()).dead == 0:
                    await anyio.sleep(0.05)
            stop.set()
    assert [attempt for data, attempt in run.attempts if data == b"poison"] == [1, 2, 3]
    (letter,) = await queue.dead()
    assert (letter.data, letter.reason, letter.attempts) == (b"poison", "KeyError", 3)
    assert PHONE not in caplog.text
    assert "KeyError (message withheld)" in caplog.text
    assert (await queue.stats()).length == 0


async def serve_until_dead(worker: Worker, letters: int) -> None:
    stop = anyio.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(worker.serve, stop)
        with anyio.fail_after(20):
            while len(await worker.queue.dead()) < letters:
                await anyio.sleep(0.05)
        stop.set()


async def test_an_entry_no_attempt_can_read_is_dead_lettered_at_once_with_the_reason(
    make_queue: MakeQueue, caplog: pytest.LogCaptureFixture
) -> None:
    queue = make_queue()
    await queue.open()
    await queue.enqueue([b"sealed-elsewhere"])
    run = Recorder(outcomes={b"sealed-elsewhere": ["unreadable"] * 5})
    worker = Worker(queue, run, retry_delay_seconds=0.01, read_block_seconds=0.1)
    with caplog.at_level(logging.ERROR, "voicehooks"):
        await serve_until_dead(worker, 1)
    assert run.attempts == [(b"sealed-elsewhere", 1)]  # no retry: none could read it
    (letter,) = await queue.dead()
    assert letter.reason == "unreadable: sealed with queue key 0123456789abcdef, which is not known"
    assert letter.attempts == 1
    assert "dead-lettered at once: unreadable: sealed with queue key" in caplog.text
    assert (await queue.stats()).length == 0


async def test_dead_letters_deleted_at_their_bound_are_logged_and_counted(
    make_redis_queue: Callable[[], RedisQueue], caplog: pytest.LogCaptureFixture
) -> None:
    queue = make_redis_queue()  # letters backdated through Redis's own ids
    await queue.open()
    queue.max_dead = 2
    seconds, _ = await queue.client.time()
    for offset in range(3):  # three letters eight days old: past the age bound
        old = f"{(seconds - 8 * 86400) * 1000 + offset}-0"
        await queue.client.xadd(queue.dead_stream, {"job": b"old"}, id=old)
    await queue.enqueue([b"p1", b"p2", b"p3"])
    counted: list[tuple[int, str]] = []
    run = Recorder(outcomes={data: ["raise"] for data in (b"p1", b"p2", b"p3")})
    worker = Worker(
        queue,
        run,
        max_attempts=1,
        read_block_seconds=0.1,
        on_trimmed=lambda count, bound: counted.append((count, bound)),
    )
    with caplog.at_level(logging.INFO, "voicehooks"):
        stop = anyio.Event()
        async with anyio.create_task_group() as group:
            group.start_soon(worker.serve, stop)
            with anyio.fail_after(20):
                while len(run.attempts) < 3 or (await queue.stats()).length:
                    await anyio.sleep(0.05)
            stop.set()
    # The start trims the old letters by age; the third bury trims the first by count.
    assert counted[0] == (3, "age")
    assert sum(count for count, bound in counted if bound == "count") == 1
    levels = {r.getMessage(): r.levelname for r in caplog.records if "deleted" in r.getMessage()}
    assert levels["deleted 3 dead letters older than 7 days"] == "INFO"
    assert levels["deleted 1 dead letter past the bound of 2"] == "WARNING"
    assert len(await queue.dead()) == 2


async def test_entries_of_a_dead_worker_are_taken_over_after_the_idle_time(
    make_queue: MakeQueue, caplog: pytest.LogCaptureFixture, backend_url: str
) -> None:
    queue = make_queue()
    await queue.open()
    await queue.enqueue([b"a", b"b"])
    await queue.read("killed-worker", 1, 0.01)  # it read "a" and died
    run = Recorder()
    run.expected = 2
    worker = Worker(queue, run, claim_idle_seconds=0.3, read_block_seconds=0.1)
    with caplog.at_level(logging.INFO, "voicehooks"):
        await serve_until(worker, run.done)
    assert sorted(run.attempts) == [(b"a", 2), (b"b", 1)]
    assert (await queue.stats()).pending == 0
    assert worker.counts["taken_over"] == 1
    assert f"worker {worker.consumer}: took over 1 entries" in caplog.text
    if backend_url.startswith("redis"):  # PostgreSQL knows a worker only by what it holds
        assert "took over 1 entries from killed-worker, silent for 0 s" in caplog.text


async def test_consumers_idle_past_the_bound_are_forgotten_while_the_worker_runs(
    make_redis_queue: Callable[[], RedisQueue], caplog: pytest.LogCaptureFixture
) -> None:
    queue = make_redis_queue()  # PostgreSQL registers no consumers: nothing to forget
    await queue.open()
    await queue.enqueue([b"x"])
    (entry,) = await queue.read("long-gone-worker", 1, 0.01)  # it read one entry and died,
    await queue.ack([entry.id])  # after finishing it
    assert "long-gone-worker" in [name for name, _, _ in (await queue.stats()).consumers]
    worker = Worker(queue, Recorder(), forget_idle_seconds=0.4, read_block_seconds=0.1)
    stop = anyio.Event()
    with caplog.at_level(logging.INFO, "voicehooks"):
        async with anyio.create_task_group() as group:
            group.start_soon(worker.serve, stop)
            with anyio.fail_after(10):
                while "long-gone-worker" in [
                    name for name, _, _ in (await queue.stats()).consumers
                ]:
                    await anyio.sleep(0.05)
            stop.set()
    assert f"worker {worker.consumer}: removed 1 consumers idle for 0 s or more" in caplog.text


async def test_a_live_workers_slow_entry_is_not_taken_from_it(make_queue: MakeQueue) -> None:
    producer = make_queue()
    await producer.open()
    await producer.enqueue([b"slow-%d" % i for i in range(4)])
    run = Recorder(seconds=1.0)
    run.expected = 4
    workers = [
        Worker(make_queue(), run, concurrency=2, claim_idle_seconds=0.3, read_block_seconds=0.1)
        for _ in range(2)
    ]
    stop = anyio.Event()
    async with anyio.create_task_group() as group:
        for worker in workers:
            group.start_soon(worker.serve, stop)
        with anyio.fail_after(20):
            await run.done.wait()
        stop.set()
    assert sorted(run.attempts) == [(b"slow-%d" % i, 1) for i in range(4)]


async def test_an_entry_taken_over_too_often_is_dead_lettered_without_running(
    make_queue: MakeQueue,
) -> None:
    queue = make_queue()
    await queue.open()
    await queue.enqueue([b"crasher"])
    (entry,) = await queue.read("w0", 1, 0.01)
    for _ in range(2):
        await queue.retry("w0", entry)  # delivered three times, as if two workers died on it
    run = Recorder()
    worker = Worker(queue, run, max_attempts=3, claim_idle_seconds=0.1, read_block_seconds=0.1)
    stop = anyio.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(worker.serve, stop)
        with anyio.fail_after(20):
            while (await queue.stats()).dead == 0:
                await anyio.sleep(0.05)
        stop.set()
    assert run.attempts == []
    (letter,) = await queue.dead()
    assert (letter.reason, letter.attempts) == (ABANDONED, 4)


async def test_stop_finishes_held_entries_and_reads_nothing_more(make_queue: MakeQueue) -> None:
    queue = make_queue()
    await queue.open()
    await queue.enqueue([b"a", b"b", b"c"])
    run = Recorder(seconds=0.3)
    worker = Worker(
        queue, run, concurrency=2, tasks=TaskOwner(grace_seconds=5), read_block_seconds=0.1
    )
    stop = anyio.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(worker.serve, stop)
        with anyio.fail_after(10):
            while len(worker.held) < 2:
                await anyio.sleep(0.01)
        stop.set()
    assert sorted(run.attempts) == [(b"a", 1), (b"b", 1)]
    stats = await queue.stats()
    assert (stats.length, stats.pending, stats.unread) == (1, 0, 1)


async def test_past_the_grace_period_held_entries_are_cut_and_stay_pending(
    make_queue: MakeQueue, caplog: pytest.LogCaptureFixture
) -> None:
    queue = make_queue()
    await queue.open()
    await queue.enqueue([b"hangs"])
    run = Recorder(seconds=60)
    worker = Worker(queue, run, tasks=TaskOwner(grace_seconds=0.2), read_block_seconds=0.1)
    stop = anyio.Event()
    with caplog.at_level(logging.INFO, "voicehooks"):
        async with anyio.create_task_group() as group:
            group.start_soon(worker.serve, stop)
            with anyio.fail_after(10):
                while not worker.held:
                    await anyio.sleep(0.01)
            stop.set()
    assert "waiting up to 0.2 s for 1 background task(s)" in caplog.text
    assert "1 background task(s) still running after the 0.2 s grace period" in caplog.text
    assert "was cut short; it stays pending for other workers" in caplog.text
    stats = await queue.stats()
    assert (stats.length, stats.pending) == (1, 1)


@contextlib.contextmanager
def restartable(
    backend: str, tmp_path: Path
) -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    """A server of ``backend`` of this test's own: its URL, how to stop it, how to start it."""
    if backend == "redis":
        with running_redis(tmp_path, appendonly=True) as redis:

            def stop() -> None:
                redis.process.terminate()
                redis.process.wait()

            yield redis.url, stop, redis.restart
    else:
        with running_postgres(durable_commits=True) as postgres:
            yield postgres.url, postgres.stop, postgres.start


@pytest.mark.parametrize("backend", ["redis", "postgres"])
async def test_a_worker_rides_out_a_server_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, backend: str
) -> None:
    with restartable(backend, tmp_path) as (url, stop_server, start_server):
        queue = queue_from_url(url, operation_timeout_seconds=0.5)
        await queue.open()
        await queue.enqueue([b"before"])
        run = Recorder()
        run.expected = 2
        worker = Worker(queue, run, read_block_seconds=0.1)
        stop = anyio.Event()
        with caplog.at_level(logging.WARNING, "voicehooks"):
            async with anyio.create_task_group() as group:
                group.start_soon(worker.serve, stop)
                with anyio.fail_after(10):
                    while not run.attempts:
                        await anyio.sleep(0.01)
                stop_server()  # down for a while: the worker waits it out
                await anyio.sleep(0.5)
                start_server()
                with anyio.fail_after(20):  # a receiver may fail while the pool reconnects
                    while True:
                        try:
                            await queue.enqueue([b"after"])
                            break
                        except QueueError:
                            await anyio.sleep(0.1)
                with anyio.fail_after(20):
                    await run.done.wait()
                stop.set()
        await queue.aclose()
    assert sorted(run.attempts) == [(b"after", 1), (b"before", 1)]
    assert "the queue is unavailable" in caplog.text
    assert "the queue answers again" in caplog.text


@pytest.mark.parametrize(
    "options",
    [
        {"concurrency": 0},
        {"max_attempts": 0},
        {"claim_idle_seconds": 0},
        {"read_block_seconds": 0},
        {"forget_idle_seconds": 0},
    ],
)
def test_bad_options_are_refused(options: dict[str, float]) -> None:
    queue = RedisQueue.from_url("redis://127.0.0.1:1/0")
    with pytest.raises(ValueError, match="must be"):
        Worker(queue, Recorder(), **options)  # type: ignore[arg-type]


async def test_a_worker_recreates_a_lost_group_and_goes_on(
    make_redis_queue: Callable[[], RedisQueue],
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue = make_redis_queue()
    await queue.open()
    run = Recorder()
    run.expected = 1
    worker = Worker(queue, run, read_block_seconds=0.1)
    stop = anyio.Event()
    with caplog.at_level(logging.WARNING, "voicehooks"):
        async with anyio.create_task_group() as group:
            group.start_soon(worker.serve, stop)
            await anyio.sleep(0.2)
            await queue.client.delete(queue.stream)  # Redis lost its data
            with anyio.fail_after(10):
                while "consumer group is gone" not in caplog.text:
                    await anyio.sleep(0.02)
            await queue.enqueue([b"after"])
            with anyio.fail_after(10):
                await run.done.wait()
            stop.set()
    assert run.attempts == [(b"after", 1)]


async def test_when_redis_goes_away_mid_job_the_entries_stay_pending_for_later(
    make_redis_queue: Callable[[], RedisQueue],
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    queue = make_redis_queue()
    await queue.open()
    await queue.enqueue([b"slow", b"flaky"])
    run = Recorder(seconds=0.4, outcomes={b"flaky": [JobOutcome.FAILED]})
    worker = Worker(
        queue, run, claim_idle_seconds=0.3, retry_delay_seconds=0.01, read_block_seconds=0.1
    )
    stop = anyio.Event()
    with caplog.at_level(logging.DEBUG, "voicehooks"):
        async with anyio.create_task_group() as group:
            group.start_soon(worker.serve, stop)
            with anyio.fail_after(10):
                while len(run.attempts) < 2:
                    await anyio.sleep(0.01)
            redis_server.stop()
            with anyio.fail_after(10):
                while worker.held:
                    await anyio.sleep(0.02)
            stop.set()
    assert "entry" in caplog.text
    assert "could not acknowledge" in caplog.text
    assert "cannot count a retry" in caplog.text
    assert "refreshing held entries failed" in caplog.text


async def test_a_result_names_the_reason_a_dead_letter_keeps(make_queue: MakeQueue) -> None:
    queue = make_queue()
    await queue.open()
    await queue.enqueue([b"x"])

    async def run(entry: Entry) -> JobRun:
        return ended(entry, JobOutcome.FAILED, "TimeoutError")

    worker = Worker(queue, run, max_attempts=1, read_block_seconds=0.1)
    stop = anyio.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(worker.serve, stop)
        with anyio.fail_after(10):
            while (await queue.stats()).dead == 0:
                await anyio.sleep(0.02)
        stop.set()
    assert [letter.reason for letter in await queue.dead()] == ["TimeoutError"]
