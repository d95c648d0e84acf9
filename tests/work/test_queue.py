"""The durable queues against a real redis-server and a real PostgreSQL, with hand-made entries.

The contract's tests run on both (``backend_url``); those of Redis's own machinery (scripts,
streams, consumer groups) on Redis only, and PostgreSQL's own at the end.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis.asyncio
import redis.exceptions

from tests.helpers.redis_server import RedisServer
from tests.helpers.redis_topologies import BACKEND_NAMES, backend_for, running_replicated
from voicehooks import ConfigurationError
from voicehooks.core.exceptions import QueueError, QueueFull
from voicehooks.state.postgres import run_statement
from voicehooks.work.durable import queue_from_url
from voicehooks.work.pgqueue import PostgresQueue
from voicehooks.work.queue import Entry, RedisQueue, Trimmed, WorkQueue, consumer_name

pytestmark = pytest.mark.anyio

MakeQueue = Callable[..., WorkQueue]
MakeRedisQueue = Callable[..., RedisQueue]


@pytest.fixture(params=[*BACKEND_NAMES, "postgres"])
async def make_queue(request: pytest.FixtureRequest) -> AsyncIterator[MakeQueue]:
    """Independent queues on one server (Redis: one server, TLS, a cluster; PostgreSQL), as a
    receiver and workers in separate processes."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
    else:
        url = backend_for(request, request.param).url
    queues: list[WorkQueue] = []

    def make(**options: object) -> WorkQueue:
        queues.append(queue_from_url(url, **options))
        return queues[-1]

    yield make
    for queue in queues:
        await queue.aclose()


@pytest.fixture
async def queue(make_queue: MakeQueue) -> WorkQueue:
    opened = make_queue()
    await opened.open()
    return opened


@pytest.fixture
async def make_redis_queue(redis_server: RedisServer) -> AsyncIterator[MakeRedisQueue]:
    queues: list[RedisQueue] = []

    def make(**options: object) -> RedisQueue:
        queues.append(RedisQueue.from_url(redis_server.url, **options))
        return queues[-1]

    yield make
    for queue in queues:
        await queue.aclose()


@pytest.fixture
async def redis_queue(make_redis_queue: MakeRedisQueue) -> RedisQueue:
    opened = make_redis_queue()
    await opened.open()
    return opened


async def test_entries_are_read_once_across_consumers_in_order(queue: WorkQueue) -> None:
    await queue.enqueue([b"a", b"b", b"c"])
    first = await queue.read("w1", 2, 0.01)
    second = await queue.read("w2", 10, 0.01)
    assert [e.data for e in first] == [b"a", b"b"]
    assert [e.data for e in second] == [b"c"]
    assert {e.attempt for e in first + second} == {1}
    assert await queue.read("w1", 10, 0.01) == []


async def test_an_acknowledged_entry_leaves_the_stream_so_its_length_is_the_backlog(
    queue: WorkQueue,
) -> None:
    await queue.enqueue([b"a", b"b"])
    entries = await queue.read("w1", 10, 0.01)
    await queue.ack([entries[0].id])
    stats = await queue.stats()
    assert (stats.length, stats.pending, stats.unread, stats.dead) == (1, 1, 0, 0)
    assert [(name, pending) for name, pending, _ in stats.consumers] == [("w1", 1)]
    await queue.ack([])  # nothing to do, no round trip


async def test_past_the_bound_a_whole_delivery_is_refused_and_nothing_is_trimmed(
    make_queue: MakeQueue, caplog: pytest.LogCaptureFixture
) -> None:
    queue = make_queue(max_length=10)
    await queue.open()
    with caplog.at_level(logging.WARNING, "voicehooks"):
        await queue.enqueue([b"x"] * 7)
        assert "workers are behind" not in caplog.text
        await queue.enqueue([b"y"])  # 8 of 10: warned once
        await queue.enqueue([b"z"])
        assert caplog.text.count("workers are behind") == 1
        with pytest.raises(QueueFull, match="holds 9 entries, its bound is 10"):
            await queue.enqueue([b"p", b"q"])  # all or none
    await queue.enqueue([b"last"])
    entries = await queue.read("w", 100, 0.01)
    assert [e.data for e in entries] == [b"x"] * 7 + [b"y", b"z", b"last"]
    await queue.ack([e.id for e in entries])
    caplog.clear()
    with caplog.at_level(logging.WARNING, "voicehooks"):
        await queue.enqueue([b"a"])  # below the mark again,
        await queue.enqueue([b"a"] * 7)  # then over it: warned again
    assert caplog.text.count("workers are behind") == 1


async def test_entries_of_a_silent_consumer_are_claimed_and_count_an_attempt(
    queue: WorkQueue,
) -> None:
    await queue.enqueue([b"a", b"b"])
    held = await queue.read("dead-worker", 10, 0.01)
    cursor, claimed = await queue.claim("w2", 10.0, 10)
    assert claimed == []  # not idle long enough
    await anyio.sleep(0.05)
    cursor, claimed = await queue.claim("w2", 0.03, 10)
    assert cursor == "0-0"
    assert [(e.id, e.data, e.attempt) for e in claimed] == [(e.id, e.data, 2) for e in held]
    stats = await queue.stats()
    assert {name: pending for name, pending, _ in stats.consumers}["w2"] == 2


async def test_a_touched_entry_is_not_claimed(queue: WorkQueue) -> None:
    await queue.enqueue([b"a", b"b"])
    held = await queue.read("w1", 10, 0.01)
    await anyio.sleep(0.08)
    await queue.touch("w1", [held[0].id])
    await queue.touch("w1", [])
    _, claimed = await queue.claim("w2", 0.05, 10)
    assert [e.id for e in claimed] == [held[1].id]


async def test_a_claim_skips_entries_deleted_meanwhile(
    redis_queue: RedisQueue, redis_server: RedisServer
) -> None:
    await redis_queue.enqueue([b"a"])
    (entry,) = await redis_queue.read("w1", 10, 0.01)
    client = redis.asyncio.Redis.from_url(redis_server.url)
    await client.xdel(redis_queue.stream, entry.id)
    await client.aclose()
    await anyio.sleep(0.02)
    assert await redis_queue.claim("w2", 0.01, 10) == ("0-0", [])
    assert await redis_queue.retry("w1", entry) is None


async def test_a_retry_counts_an_attempt(queue: WorkQueue) -> None:
    await queue.enqueue([b"a"])
    (entry,) = await queue.read("w1", 10, 0.01)
    again = await queue.retry("w1", entry)
    assert again is not None
    assert (again.id, again.data, again.attempt) == (entry.id, b"a", 2)
    await anyio.sleep(0.02)
    _, claimed = await queue.claim("w2", 0.01, 10)
    assert [e.attempt for e in claimed] == [3]


async def test_a_buried_entry_is_listed_with_its_reason_and_can_be_requeued(
    queue: WorkQueue,
) -> None:
    await queue.enqueue([b"a", b"b", b"c"])
    entries = await queue.read("w1", 10, 0.01)
    for entry in entries:
        await queue.bury(entry, "ValueError")
    stats = await queue.stats()
    assert (stats.length, stats.pending, stats.dead) == (0, 0, 3)
    dead = await queue.dead()
    assert [(d.data, d.reason, d.attempts) for d in dead] == [
        (b"a", "ValueError", 1),
        (b"b", "ValueError", 1),
        (b"c", "ValueError", 1),
    ]
    assert [d.original_id for d in dead] == [e.id for e in entries]
    assert dead[0].failed_at > 0
    assert await queue.requeue([dead[1].id, "1-1", dead[1].id]) == 1  # once; unknown: skipped
    assert [e.data for e in await queue.read("w1", 10, 0.01)] == [b"b"]
    assert await queue.requeue() == 2
    assert [e.data for e in await queue.read("w1", 10, 0.01)] == [b"a", b"c"]
    assert (await queue.stats()).dead == 0


async def bury_all(queue: WorkQueue, *data: bytes) -> list[Trimmed]:
    await queue.enqueue(list(data))
    return [await queue.bury(entry, "ValueError") for entry in await queue.read("w1", 100, 0.01)]


async def test_dead_letters_past_the_count_bound_are_deleted_oldest_first_on_every_bury(
    make_queue: MakeQueue,
) -> None:
    queue = make_queue(max_dead=3)
    await queue.open()
    trims = await bury_all(queue, b"a", b"b", b"c", b"d", b"e")
    assert trims == [Trimmed(0, 0)] * 3 + [Trimmed(by_age=0, by_count=1)] * 2
    assert [letter.data for letter in await queue.dead()] == [b"c", b"d", b"e"]
    stats = await queue.stats()
    assert (stats.dead, stats.max_dead, stats.length, stats.pending) == (3, 3, 0, 0)


async def test_dead_letters_older_than_the_age_bound_are_deleted_on_a_bury_or_a_trim(
    make_queue: MakeQueue,
) -> None:
    queue = make_queue(max_dead_age_seconds=0.5)
    await queue.open()
    await bury_all(queue, b"old-1", b"old-2")
    stats = await queue.stats()
    assert stats.oldest_dead_seconds is not None
    assert 0 <= stats.oldest_dead_seconds < 0.5
    assert stats.max_dead_age_seconds == 0.5
    await anyio.sleep(0.6)
    assert await bury_all(queue, b"new") == [Trimmed(by_age=2, by_count=0)]
    assert [letter.data for letter in await queue.dead()] == [b"new"]
    await anyio.sleep(0.6)
    assert await queue.trim_dead() == Trimmed(by_age=1, by_count=0)  # nothing new died
    stats = await queue.stats()
    assert (stats.dead, stats.oldest_dead_seconds) == (0, None)
    assert await queue.trim_dead() == Trimmed(0, 0)


async def test_the_age_bound_is_measured_by_the_clock_of_redis_that_made_the_ids(
    make_redis_queue: MakeRedisQueue,
) -> None:
    queue = make_redis_queue(max_dead_age_seconds=3600)
    await queue.open()
    seconds, _ = await queue.client.time()
    two_hours_ago = (seconds - 7200) * 1000
    await queue.client.xadd(queue.dead_stream, {"job": b"x"}, id=f"{two_hours_ago}-0")
    await queue.client.xadd(queue.dead_stream, {"job": b"y"}, id=f"{two_hours_ago + 1}-0")
    stats = await queue.stats()
    assert stats.oldest_dead_seconds is not None
    assert 7199 < stats.oldest_dead_seconds < 7300
    assert await bury_all(queue, b"z") == [Trimmed(by_age=2, by_count=0)]


async def test_requeue_stops_at_the_bound(make_queue: MakeQueue) -> None:
    queue = make_queue(max_length=2)
    await queue.open()
    await queue.enqueue([b"a", b"b"])
    for entry in await queue.read("w", 10, 0.01):
        await queue.bury(entry, "failed")
    await queue.enqueue([b"c"])
    with pytest.raises(QueueFull):
        await queue.requeue()
    stats = await queue.stats()
    assert (stats.length, stats.dead) == (2, 1)


async def bury(queue: WorkQueue, bodies: list[bytes]) -> list[str]:
    """Dead letters of ``bodies``, the way a worker makes them; their ids, oldest first."""
    await queue.enqueue(bodies)
    for entry in await queue.read("w", len(bodies), 0.01):
        await queue.bury(entry, "failed")
    return [letter.id for letter in await queue.dead(len(bodies))]


async def where(queue: WorkQueue) -> tuple[list[bytes], list[bytes]]:
    """The bodies in the queue and in the dead letters, oldest first."""
    if isinstance(queue, RedisQueue):
        entries: Any = await queue.client.xrange(queue.stream)
        live = [fields[b"job"] for _, fields in entries]
        return live, [letter.data for letter in await queue.dead(queue.max_dead)]
    assert isinstance(queue, PostgresQueue)
    rows = await run_statement(
        queue.pool,
        f"SELECT body FROM {queue.schema}.jobs WHERE queue = %s ORDER BY id",
        [queue.stream],
    )
    live = [bytes(body) for (body,) in rows]
    return live, [letter.data for letter in await queue.dead(queue.max_dead)]


@pytest.mark.parametrize("by_id", [False, True], ids=["all", "by-id"])
@pytest.mark.parametrize("lost", [1, 2, 3, 4, 5])
async def test_a_requeue_cut_off_after_any_command_leaves_each_letter_in_one_stream(
    redis_queue: RedisQueue, monkeypatch: pytest.MonkeyPatch, by_id: bool, lost: int
) -> None:
    ids = await bury(redis_queue, [b"a", b"b", b"c"])
    execute: Callable[..., Awaitable[Any]] = redis_queue.client.execute_command
    sent = 0

    async def answer_lost(*args: Any, **options: Any) -> Any:
        # The command reached Redis and ran; its answer never comes back.
        nonlocal sent
        reply = await execute(*args, **options)
        sent += 1
        if sent == lost:
            raise redis.exceptions.ConnectionError("connection lost")
        return reply

    monkeypatch.setattr(redis_queue.client, "execute_command", answer_lost)
    with contextlib.suppress(QueueError):
        await redis_queue.requeue(ids if by_id else None)
    monkeypatch.undo()
    live, dead = await where(redis_queue)
    assert sorted(live + dead) == [b"a", b"b", b"c"]


@pytest.mark.parametrize("by_id", [False, True], ids=["all", "by-id"])
async def test_a_large_dead_stream_is_requeued_in_bounded_batches(
    redis_queue: RedisQueue, monkeypatch: pytest.MonkeyPatch, by_id: bool
) -> None:
    bodies = [b"job-%04d" % i for i in range(1000)]
    pipe = redis_queue.client.pipeline(transaction=False)
    for body in bodies:
        fields = {"job": body, "reason": "KeyError", "attempts": 5, "failed_at": "1.0", "id": "1-1"}
        pipe.xadd(redis_queue.dead_stream, fields)  # type: ignore[arg-type]
    ids = [entry_id.decode() for entry_id in await pipe.execute()]
    execute: Callable[..., Awaitable[Any]] = redis_queue.client.execute_command
    replies: list[tuple[str, Any]] = []

    async def recorded(*args: Any, **options: Any) -> Any:
        reply = await execute(*args, **options)
        replies.append((args[0], reply))
        return reply

    monkeypatch.setattr(redis_queue.client, "execute_command", recorded)
    assert await redis_queue.requeue(ids if by_id else None) == 1000
    # No answer brought more than one batch of letters into this process ...
    assert all(len(reply) <= 100 for _, reply in replies if isinstance(reply, list))
    # ... and each batch moved in one script call, at most 100 letters at a time.
    moved = [reply[0] for name, reply in replies if name == "EVALSHA"]
    assert sum(moved) == 1000
    assert max(moved) <= 100
    monkeypatch.undo()
    assert await where(redis_queue) == (bodies, [])


async def test_concurrent_requeues_of_the_same_letters_move_each_once(
    make_queue: MakeQueue,
) -> None:
    first, second = make_queue(), make_queue()
    await first.open()
    ids = await bury(first, [b"a", b"b", b"c"])
    moved: list[int] = []

    async def requeue(queue: WorkQueue, which: list[str] | None) -> None:
        moved.append(await queue.requeue(which))

    async with anyio.create_task_group() as group:
        for queue, which in ((first, ids), (second, ids), (first, None), (second, ids[1:])):
            group.start_soon(requeue, queue, which)
    assert sum(moved) == 3
    live, dead = await where(first)
    assert (sorted(live), dead) == ([b"a", b"b", b"c"], [])


async def test_the_group_comes_back_when_redis_lost_the_stream(
    redis_queue: RedisQueue, redis_server: RedisServer
) -> None:
    client = redis.asyncio.Redis.from_url(redis_server.url)
    await client.delete(redis_queue.stream)
    await client.aclose()
    with pytest.raises(QueueError, match="NOGROUP"):
        await redis_queue.read("w1", 1, 0.01)
    await redis_queue.ensure_group()
    await redis_queue.ensure_group()  # idempotent
    await redis_queue.enqueue([b"a"])
    assert [e.data for e in await redis_queue.read("w1", 1, 0.01)] == [b"a"]


async def test_a_stopped_redis_is_a_queue_error(
    make_redis_queue: MakeRedisQueue, redis_server: RedisServer
) -> None:
    queue = make_redis_queue(operation_timeout_seconds=0.5)
    await queue.open()
    redis_server.stop()
    with pytest.raises(QueueError, match="enqueue failed"):
        await queue.enqueue([b"a"])


async def test_a_paused_redis_is_a_queue_error_within_the_timeout(
    make_redis_queue: MakeRedisQueue, redis_server: RedisServer
) -> None:
    queue = make_redis_queue(operation_timeout_seconds=0.2)
    await queue.open()
    redis_server.pause()
    try:
        with anyio.fail_after(5), pytest.raises(QueueError, match=r"longer than 0\.2 s"):
            await queue.enqueue([b"a"])
    finally:
        redis_server.resume()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_length": 0}, "max_length and max_dead"),
        ({"max_dead": 0}, "max_length and max_dead"),
        ({"operation_timeout_seconds": 0}, "operation_timeout_seconds"),
        ({"max_dead_age_seconds": 0}, "max_dead_age_seconds"),
    ],
)
def test_bad_options_are_refused(options: dict[str, float], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        RedisQueue.from_url("redis://127.0.0.1:1/0", **options)


def test_a_bad_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigurationError, match="must start with redis://") as info:
        RedisQueue.from_url("http://user:hunter2@example.com")
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "redis://user:Pa5/Ss7@host:1/0",
        "redis://:Zq7/Xw9?Kp3#Vb5@localhost:6379/0",
        "rediss://default:Zq7#Xw9@redis.example.com/1",
    ],
)
def test_a_url_that_does_not_parse_is_refused_without_any_part_of_the_password(
    url: str,
) -> None:
    # The store's one redaction: a "/" ends the host part early, and the parser's own
    # message quotes a piece of the password as the port.
    with pytest.raises(ConfigurationError, match="does not parse") as info:
        RedisQueue.from_url(url)
    for fragment in ("Pa5", "Ss7", "Zq7", "Xw9", "Kp3", "Vb5"):
        assert fragment not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


@pytest.mark.slow
async def test_with_min_replicas_acks_an_enqueue_waits_for_a_replica_or_is_a_queue_error(
    tmp_path: Path,
) -> None:
    with running_replicated(tmp_path) as (master, replica):
        url = f"redis://127.0.0.1:{master.port}/0"
        # The acks come in a few ms; a loaded machine gets a generous bound where one is met.
        queue = RedisQueue.from_url(url, min_replicas_acks=1, replica_ack_timeout_seconds=3)
        short = RedisQueue.from_url(url, min_replicas_acks=1, replica_ack_timeout_seconds=0.2)
        greedy = RedisQueue.from_url(url, min_replicas_acks=2, replica_ack_timeout_seconds=0.2)
        full = RedisQueue.from_url(
            url, min_replicas_acks=1, replica_ack_timeout_seconds=3, max_length=1, stream="full"
        )
        on_replica = redis.asyncio.Redis(port=replica.port)
        try:
            await queue.open()
            await queue.enqueue([b"a", b"b"])
            assert await on_replica.xlen(queue.stream) == 2  # there before enqueue returned
            with pytest.raises(QueueError, match="reached 1 of 2 replicas"):
                await greedy.enqueue([b"c"])  # added on the master, but not acknowledged
            await full.enqueue([b"x"])
            with pytest.raises(QueueFull):
                await full.enqueue([b"y"])
            replica.kill()
            with pytest.raises(QueueError, match="reached 0 of 1 replicas"):
                await short.enqueue([b"d"])
        finally:
            for each in (queue, short, greedy, full):
                await each.aclose()
            await on_replica.aclose()


def test_min_replicas_acks_is_checked() -> None:
    with pytest.raises(ConfigurationError, match="min_replicas_acks"):
        RedisQueue.from_url("redis://127.0.0.1:1/0", min_replicas_acks=-1)
    with pytest.raises(ConfigurationError, match="replica_ack_timeout_seconds"):
        RedisQueue.from_url("redis://127.0.0.1:1/0", replica_ack_timeout_seconds=0)


def test_consumer_names_differ_per_call() -> None:
    assert consumer_name() != consumer_name()


async def test_a_consumer_is_forgotten_only_while_it_holds_nothing(redis_queue: RedisQueue) -> None:
    await redis_queue.enqueue([b"a", b"b", b"c"])
    (held,) = await redis_queue.read("holder", 1, 0.01)
    (done,) = await redis_queue.read("finished", 1, 0.01)
    (other,) = await redis_queue.read("recent", 1, 0.01)
    await redis_queue.ack([done.id, other.id])
    assert not await redis_queue.forget("holder")
    assert await redis_queue.forget("finished")
    await anyio.sleep(0.05)
    assert await redis_queue.forget_idle(30) == 0  # "recent" is recent
    assert await redis_queue.forget_idle(0.04) == 1  # "recent"; "holder" holds an entry
    await redis_queue.ack([held.id])
    assert await redis_queue.forget_idle(0.04) == 1
    assert (await redis_queue.stats()).consumers == []


# -- PostgreSQL's own ---------------------------------------------------------------------


async def test_postgres_a_waiting_read_is_woken_by_the_enqueue_not_the_poll(
    postgres_url: str,
) -> None:
    receiver = PostgresQueue.from_url(postgres_url)
    worker = PostgresQueue.from_url(postgres_url, poll_seconds=60.0)
    try:
        await receiver.open()
        got: list[Entry] = []
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:

                async def read() -> None:
                    got.extend(await worker.read("w", 10, 30.0))

                group.start_soon(read)
                await anyio.sleep(0.2)  # the reader listens and waits
                await receiver.enqueue([b"a"])
        assert [entry.data for entry in got] == [b"a"]
    finally:
        await receiver.aclose()
        await worker.aclose()


async def test_postgres_dead_letters_are_kept_by_count_and_by_age(postgres_url: str) -> None:
    queue = PostgresQueue.from_url(postgres_url, max_dead=2)
    try:
        await bury(queue, [b"a", b"b", b"c"])
        assert [letter.data for letter in await queue.dead()] == [b"b", b"c"]
        await run_statement(
            queue.pool, "UPDATE voicehooks.dead SET failed_at = now() - interval '8 days'", []
        )
        await bury(queue, [b"d"])  # past seven days: gone, whatever the count
        assert [letter.data for letter in await queue.dead()] == [b"d"]
    finally:
        await queue.aclose()


async def test_postgres_queues_in_two_schemas_are_apart_and_made_once(postgres_url: str) -> None:
    queues = [
        PostgresQueue.from_url(postgres_url, schema=schema)
        for schema in ("one", "one", "two", "two")
    ]
    try:
        async with anyio.create_task_group() as group:  # starting together: no race
            for queue in queues:
                group.start_soon(queue.open)
        await queues[0].enqueue([b"a"])
        assert (await queues[1].stats()).length == 1
        assert (await queues[2].stats()).length == 0
    finally:
        for queue in queues:
            await queue.aclose()


async def test_postgres_an_unreachable_server_is_a_queue_error_within_the_timeout() -> None:
    from tests.helpers.servers import free_port

    queue = PostgresQueue.from_url(
        f"postgresql://postgres@127.0.0.1:{free_port()}/none", operation_timeout_seconds=0.2
    )
    try:
        with anyio.fail_after(10), pytest.raises(QueueError, match="postgres"):
            await queue.enqueue([b"a"])
        with anyio.fail_after(10), pytest.raises(QueueError, match="postgres"):
            await queue.check_room(1)
    finally:
        await queue.aclose()


@pytest.mark.parametrize("schema", ["Voicehooks", "a-b", "1st", 'x"; DROP TABLE t; --', ""])
def test_postgres_a_schema_name_must_be_plain(schema: str) -> None:
    with pytest.raises(ConfigurationError, match="not a plain PostgreSQL name"):
        PostgresQueue.from_url("postgresql://localhost/db", schema=schema)


def test_postgres_without_the_package_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "psycopg_pool", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'voicehooks\[postgres\]'"):
        queue_from_url("postgresql://localhost/db")


async def test_postgres_acknowledgements_that_arrive_together_go_in_one_statement(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = PostgresQueue.from_url(postgres_url)
    try:
        await queue.enqueue([b"%d" % i for i in range(20)])
        entries = await queue.read("w", 20, 0.01)
        statements: list[str] = []
        rows = queue._rows

        async def counted(name: str, statement: str, params: dict[str, Any]) -> Any:
            statements.append(name)
            return await rows(name, statement, params)

        monkeypatch.setattr(queue, "_rows", counted)
        async with anyio.create_task_group() as group:
            for entry in entries:
                group.start_soon(queue.ack, [entry.id])
        assert 1 <= statements.count("ack") < 20  # together, not one statement each
        monkeypatch.undo()
        stats = await queue.stats()
        assert (stats.length, stats.pending) == (0, 0)
        await queue.enqueue([b"x"] * 5)  # the bound's count came down with them
        assert (await queue.stats()).length == 5
    finally:
        await queue.aclose()


@pytest.mark.parametrize(
    "options",
    [{"max_length": 0}, {"max_dead": 0}, {"poll_seconds": 0}, {"max_dead_age_seconds": 0}],
)
def test_postgres_bad_options_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError, match="must be"):
        PostgresQueue.from_url("postgresql://localhost/db", **options)


async def test_postgres_lost_tables_are_made_again(postgres_url: str) -> None:
    queue = PostgresQueue.from_url(postgres_url)
    try:
        await queue.ensure_group()
        await queue.ping()
        await queue.enqueue([b"a"])
        await run_statement(queue.pool, "DROP SCHEMA voicehooks CASCADE", [])
        with pytest.raises(QueueError, match="UndefinedTable"):
            await queue.enqueue([b"b"])
        await queue.enqueue([b"c"])  # made again: the server lost "a", as Redis may
        assert [e.data for e in await queue.read("w", 10, 0.01)] == [b"c"]
        await run_statement(queue.pool, "DELETE FROM voicehooks.queues", [])
        with pytest.raises(QueueError, match="row is missing"):
            await queue.enqueue([b"d"])
        await queue.enqueue([b"e"])
    finally:
        await queue.aclose()


async def test_postgres_a_failed_acknowledgement_is_a_queue_error_for_each_waiting(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = PostgresQueue.from_url(postgres_url)
    try:
        await queue.enqueue([b"a", b"b"])
        entries = await queue.read("w", 10, 0.01)

        async def failing(name: str, statement: str, params: dict[str, Any]) -> Any:
            raise QueueError("postgres ack failed: OperationalError")

        monkeypatch.setattr(queue, "_rows", failing)
        errors: list[str] = []

        async def ack(entry: Entry) -> None:
            try:
                await queue.ack([entry.id])
            except QueueError as exc:
                errors.append(str(exc))

        async with anyio.create_task_group() as group:
            for entry in entries:
                group.start_soon(ack, entry)
        assert errors == ["postgres ack failed: OperationalError"] * 2
    finally:
        monkeypatch.undo()
        await queue.aclose()
