"""The durable job queue: one Redis stream, one consumer group, one dead-letter stream.

Durable mode (``VOICEHOOKS_QUEUE_URL`` or ``Background(queue=...)``) moves after-the-answer
work out of the receiving process. The receiver adds one entry per job to a stream *before*
it answers 200; ``voicehooks worker`` processes read them through a consumer group and
acknowledge each only after its handler finished. Redis does the bookkeeping a broker would:

* **Consumer group**: each entry goes to one worker (``XREADGROUP``).
* **Pending-entries list**: an entry read and not yet acknowledged stays there, with its owner
  and delivery count. A worker that holds an entry refreshes its idle time while the handler
  runs (``XCLAIM ... JUSTID``), so only the entries of a worker that died grow idle, and
  another worker takes them over after ``claim_idle_seconds`` (``XAUTOCLAIM``). The delivery
  count is the attempt number.
* **Dead letters**: an entry out of attempts moves, with the reason (an exception *type*,
  never its message), to a second stream, where ``voicehooks queue dead`` shows it and
  ``voicehooks queue requeue`` puts it back.

**The length bound.** ``XADD ... MAXLEN ~ N`` trims the *oldest* entries once the stream
is longer than N, whether or not a worker has handled them: Redis trims by count, not by
acknowledgement. So the cap must never be reached with work in it. Workers delete what they
acknowledge (``XACK`` + ``XDEL``), which makes the stream's length its backlog (unread plus
in progress), and the receiver adds entries with one script that refuses them, atomically,
when they would take the length past ``max_length`` (``QueueFull``: the app answers 503 with
``Retry-After``). ``MAXLEN ~ max_length`` stays on every ``XADD`` as a backstop against
other writers; with the check in front, it has nothing to trim. Past 80 % of the bound the
receiver logs a warning, once per crossing.

An entry is a few bytes of msgpack around the delivery's original body (``encode_job`` of
``voicehooks.work.jobs``), so Redis needs about ``max_length`` times your largest event
(reports: tens of KiB) of memory; run it with ``maxmemory-policy noeviction`` so that a full
Redis refuses writes rather than evicting entries, and with ``appendonly yes`` so that a
restart keeps them.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

import anyio

from voicehooks.core.exceptions import ConfigurationError, QueueError, QueueFull
from voicehooks.state.connections import close_redis_client, redis_client

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = [
    "DeadLetter",
    "Entry",
    "QueueStats",
    "RedisQueue",
    "WorkQueue",
    "consumer_name",
]

_log = logging.getLogger("voicehooks")

T = TypeVar("T")


@dataclass(frozen=True)
class Entry:
    """One stream entry as a worker holds it: its id, its data and which attempt this is."""

    id: str
    data: bytes
    attempt: int


@dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered entry: its data, why it died, after how many attempts, and when."""

    id: str
    data: bytes
    reason: str
    attempts: int
    failed_at: float
    original_id: str


@dataclass(frozen=True)
class QueueStats:
    """What ``voicehooks queue stats`` prints.

    Attributes:
        length: Entries in the stream: the backlog (workers delete what they acknowledge).
        max_length: The bound past which the receiver refuses.
        unread: Entries no worker has read yet (``None`` before Redis 7).
        pending: Entries read and not yet acknowledged.
        consumers: ``(name, pending, idle seconds)`` per consumer.
        dead: Entries in the dead-letter stream.
    """

    length: int
    max_length: int
    unread: int | None
    pending: int
    consumers: list[tuple[str, int, float]]
    dead: int


class WorkQueue(Protocol):
    """What the durable sink, the worker and ``voicehooks queue`` need from a queue.

    ``RedisQueue`` (a stream and its consumer group) and ``PostgresQueue``
    (``voicehooks.work.pgqueue``: a table read with ``FOR UPDATE SKIP LOCKED``) are the two.
    Every method raises ``QueueError`` (``QueueFull`` where it says so) and nothing else.
    """

    stream: str
    """The queue's name, in log lines."""
    max_length: int

    async def open(self) -> None:
        """Connect and make what is missing (the group, the tables)."""
        ...

    async def ensure_group(self) -> None:
        """Make what the workers read from, unless it exists (after a server lost it)."""
        ...

    async def aclose(self) -> None:
        """Let go of the connections."""
        ...

    async def ping(self) -> None:
        """Raise ``QueueError`` unless the server answers (the readiness probe)."""
        ...

    async def check_room(self, count: int) -> None:
        """Raise ``QueueFull`` unless ``count`` more entries fit now."""
        ...

    async def enqueue(self, entries: Sequence[bytes]) -> None:
        """Add a delivery's entries, all or none, durably before returning."""
        ...

    async def read(self, consumer: str, count: int, block_seconds: float) -> list[Entry]:
        """Up to ``count`` entries nobody has read, waiting up to ``block_seconds``."""
        ...

    async def claim(
        self, consumer: str, min_idle_seconds: float, count: int, start: str = "0-0"
    ) -> tuple[str, list[Entry]]:
        """Take over entries idle ``min_idle_seconds``; the next cursor (``"0-0"``: a full
        pass) and the entries, each with its attempt number."""
        ...

    async def touch(self, consumer: str, ids: Sequence[str]) -> None:
        """Reset the idle time of entries ``consumer`` still works on."""
        ...

    async def retry(self, consumer: str, entry: Entry) -> Entry | None:
        """Count another attempt of ``entry``; ``None`` when it is gone."""
        ...

    async def ack(self, ids: Sequence[str]) -> None:
        """Acknowledge and delete finished entries."""
        ...

    async def bury(self, entry: Entry, reason: str) -> None:
        """Move ``entry`` to the dead letters with ``reason``, atomically."""
        ...

    async def forget(self, consumer: str) -> bool:
        """Forget ``consumer`` if it holds no entry; whether it is gone."""
        ...

    async def forget_idle(self, idle_seconds: float) -> int:
        """Forget consumers that hold nothing and were idle ``idle_seconds``; how many."""
        ...

    async def stats(self) -> QueueStats:
        """What ``voicehooks queue stats`` prints."""
        ...

    async def dead(self, count: int = 100) -> list[DeadLetter]:
        """The oldest ``count`` dead letters."""
        ...

    async def requeue(self, ids: Sequence[str] | None = None) -> int:
        """Put dead letters back (all when ``ids`` is ``None``) as first attempts; how many.

        Raises ``QueueFull`` when the queue has no room; those moved so far stay moved.
        """
        ...


# Atomic check-then-add: refuse the whole delivery if its entries would take the stream past
# the bound, so that MAXLEN never trims an entry that still has work in it. XADD with an
# auto id is allowed in scripts (Redis >= 5 replicates the effects, not the script).
_ENQUEUE = """
local limit = tonumber(ARGV[1])
local length = redis.call('XLEN', KEYS[1])
if length + #ARGV - 1 > limit then
    return -1 - length
end
for i = 2, #ARGV do
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', limit, '*', 'job', ARGV[i])
end
return length + #ARGV - 1
"""

# Dead letters (KEYS[2]) back into the stream (KEYS[1]): each is added and deleted from the
# dead letters by this one script, so no letter is ever in both streams or in neither, and
# two requeues of one letter move it once. ARGV[1] is the stream's bound: a letter that would
# take the stream past it stops the batch (``{moved, length, 1}``). Then 'ids' and the ids of
# the letters (unknown and repeated ones are skipped), or 'oldest' and how many of the oldest.
# All reads come first: a script that fails halfway keeps the writes it made.
_REQUEUE = """
local limit = tonumber(ARGV[1])
local letters = {}
if ARGV[2] == 'oldest' then
    letters = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', ARGV[3])
else
    local seen = {}
    for i = 3, #ARGV do
        local found = redis.call('XRANGE', KEYS[2], ARGV[i], ARGV[i])[1]
        if found and not seen[found[1]] then
            seen[found[1]] = true
            letters[#letters + 1] = found
        end
    end
end
local length = redis.call('XLEN', KEYS[1])
local moved = 0
for _, letter in ipairs(letters) do
    if length >= limit then
        return {moved, length, 1}
    end
    local fields, job = letter[2], ''
    for i = 1, #fields, 2 do
        if fields[i] == 'job' then job = fields[i + 1] end
    end
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', limit, '*', 'job', job)
    redis.call('XDEL', KEYS[2], letter[1])
    moved = moved + 1
    length = length + 1
end
return {moved, length, 0}
"""

# A consumer is deleted only while it holds nothing: DELCONSUMER drops its pending entries.
_FORGET = """
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) == 0 then
    return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return -1
"""

_FIELD: Final = b"job"
_WARN_FRACTION: Final = 0.8
_REQUEUE_BATCH: Final = 100  # dead letters per script call: their bodies never leave Redis


def consumer_name() -> str:
    """A name for this worker process in the consumer group: host, pid, and a random tail.

    Unique per process start, so a restarted worker never mistakes its predecessor's pending
    entries for its own: those are claimed like any dead worker's.
    """
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class RedisQueue:
    """The stream, its consumer group and its dead letters, shared by receivers and workers.

    Every method is one round trip (``enqueue`` included, however many jobs the delivery
    has), except ``claim``, which reads the claimed entries' delivery counts in a second,
    and ``requeue``, one per batch of dead letters.
    Methods raise ``QueueError`` when Redis fails or does not answer within
    ``operation_timeout_seconds``, and nothing else.

    Args:
        client: A ``redis.asyncio.Redis``; the queue owns it and closes it in ``aclose``.
        stream: Key of the stream; the dead letters live at ``<stream>:dead``.
        group: Name of the consumer group the workers share.
        max_length: Most entries the stream holds: the receiver refuses past it (503). See
            the module docstring for why this is also the ``MAXLEN`` and what that means.
        max_dead: Most dead letters kept; past it the oldest are trimmed (``MAXLEN ~``).
        operation_timeout_seconds: Budget of one command (the blocking read adds its wait).

    Example:
        >>> from voicehooks import Background, RedisQueue, VoiceHooks
        >>> queue = RedisQueue.from_url("redis://localhost:6379/0")  # connects at startup
        >>> app = VoiceHooks(secret="whsec_example", background=Background(queue=queue))
    """

    def __init__(
        self,
        client: Redis,
        *,
        stream: str = "voicehooks:jobs",
        group: str = "voicehooks-workers",
        max_length: int = 100_000,
        max_dead: int = 10_000,
        operation_timeout_seconds: float = 1.0,
    ) -> None:
        if max_length < 1 or max_dead < 1:
            raise ConfigurationError("max_length and max_dead must be >= 1")
        if operation_timeout_seconds <= 0:
            raise ConfigurationError("operation_timeout_seconds must be > 0")
        self.client = client
        self.stream = stream
        self.dead_stream = stream + ":dead"
        self.group = group
        self.max_length = max_length
        self.max_dead = max_dead
        self.operation_timeout_seconds = operation_timeout_seconds
        self._enqueue = client.register_script(_ENQUEUE)
        self._requeue = client.register_script(_REQUEUE)
        self._forget = client.register_script(_FORGET)
        self._warned_full = False

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisQueue:
        """A queue on a client for ``url`` (``redis://``, ``rediss://`` or ``unix://``).

        ``options`` are the constructor's keyword arguments. The client is
        ``stores.redis_client(url)``'s: it shares this process's pool for ``url`` with the
        duplicate store, connects on first use and fails fast (no retries): the receiver
        has a policy for failures, the worker its own loop. ``aclose`` lets go of the pool.

        Raises:
            ConfigurationError: The ``redis`` package is missing, or ``url`` is not a Redis URL.
        """
        return cls(redis_client(url), **options)

    # -- both sides -----------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, create the stream and the group if missing, load the script."""
        await self._run("open", self.client.ping())
        await self.ensure_group()
        await self._run("open", self.client.script_load(_ENQUEUE))
        await self._run("open", self.client.script_load(_REQUEUE))

    async def ensure_group(self) -> None:
        """Create the consumer group (and the stream) unless they exist.

        A new group starts at the beginning of the stream, so a group created after entries
        were added (or re-created after Redis lost its data) still hands them out.
        """
        try:
            await self._run(
                "group", self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
            )
        except QueueError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def aclose(self) -> None:
        """Close the client; its pool closes with the last client on it."""
        await close_redis_client(self.client)

    async def ping(self) -> None:
        """Raise ``QueueError`` unless Redis answers a ``PING`` (the readiness probe)."""
        await self._run("ping", self.client.ping())

    # -- the receiver ---------------------------------------------------------------------

    async def check_room(self, count: int) -> None:
        """Admission: raise unless ``count`` more entries fit now (one ``XLEN``).

        A receiver asks before it accepts anything of a delivery, so that a full or
        unreachable queue refuses the delivery before it has changed anything. ``enqueue``
        checks again, atomically: this answer may be stale by the time the entries come.

        Raises:
            QueueFull: The stream holds ``max_length`` entries or more than ``count`` fewer.
            QueueError: Redis failed or was slow.
        """
        length = await self._run("check", self.client.xlen(self.stream))
        if length + count > self.max_length:
            raise QueueFull(
                f"the durable queue holds {length} entries, its bound is {self.max_length}"
            )

    async def enqueue(self, entries: Sequence[bytes]) -> None:
        """Add ``entries`` (a delivery's jobs) in one round trip, all or none.

        Raises:
            QueueFull: They would take the stream past ``max_length``; nothing was added.
            QueueError: Redis failed or was slow; the entries may or may not have been added.
        """
        if not entries:
            return
        length = await self._run(
            "enqueue", self._enqueue(keys=[self.stream], args=[self.max_length, *entries])
        )
        if length < 0:
            raise QueueFull(
                f"the durable queue holds {-1 - length} entries, its bound is {self.max_length}"
            )
        self._watch_length(length)

    def _watch_length(self, length: int) -> None:
        if length >= self.max_length * _WARN_FRACTION:
            if not self._warned_full:
                self._warned_full = True
                _log.warning(
                    "the durable queue holds %d entries, %d%% of its bound %d: workers are "
                    "behind; past the bound deliveries are refused (503)",
                    length,
                    length * 100 // self.max_length,
                    self.max_length,
                )
        else:
            self._warned_full = False

    # -- the worker -----------------------------------------------------------------------

    async def read(self, consumer: str, count: int, block_seconds: float) -> list[Entry]:
        """Up to ``count`` entries nobody has read yet, waiting up to ``block_seconds``."""
        block = max(1, int(block_seconds * 1000))
        reply: Any = await self._run(
            "read",
            self.client.xreadgroup(
                self.group, consumer, {self.stream: ">"}, count=count, block=block
            ),
            extra_seconds=block_seconds,
        )
        entries = []
        for _, messages in reply or ():
            for entry_id, fields in messages:
                entries.append(Entry(_text(entry_id), fields.get(_FIELD, b""), 1))
        return entries

    async def claim(
        self, consumer: str, min_idle_seconds: float, count: int, start: str = "0-0"
    ) -> tuple[str, list[Entry]]:
        """Take over up to ``count`` entries idle for ``min_idle_seconds`` (``XAUTOCLAIM``).

        Returns the cursor to pass as ``start`` next time (``"0-0"`` after a full scan) and
        the entries, each with its attempt number (Redis's delivery count, which the claim
        has just incremented).
        """
        reply = await self._run(
            "claim",
            self.client.xautoclaim(
                self.stream,
                self.group,
                consumer,
                max(0, int(min_idle_seconds * 1000)),
                start_id=start,
                count=count,
            ),
        )
        cursor, messages = _text(reply[0]), [m for m in reply[1] if m and m[1] is not None]
        if not messages:
            return cursor, []
        pipe = self.client.pipeline(transaction=False)
        for entry_id, _ in messages:
            pipe.xpending_range(self.stream, self.group, entry_id, entry_id, 1)
        counts = await self._run("claim", pipe.execute())
        entries = []
        for (entry_id, fields), pending in zip(messages, counts, strict=True):
            attempt = int(pending[0]["times_delivered"]) if pending else 1
            entries.append(Entry(_text(entry_id), fields.get(_FIELD, b""), attempt))
        return cursor, entries

    async def touch(self, consumer: str, ids: Sequence[str]) -> None:
        """Reset the idle time of entries this worker still works on, so none is claimed."""
        if ids:
            await self._run(
                "touch",
                self.client.xclaim(self.stream, self.group, consumer, 0, list(ids), justid=True),
            )

    async def retry(self, consumer: str, entry: Entry) -> Entry | None:
        """Count another attempt of ``entry`` (its delivery count goes up by one).

        ``None`` when the entry is gone (acknowledged or deleted by someone else meanwhile).
        """
        reply = await self._run(
            "retry", self.client.xclaim(self.stream, self.group, consumer, 0, [entry.id])
        )
        if not reply or reply[0][1] is None:
            return None
        return Entry(entry.id, entry.data, entry.attempt + 1)

    async def ack(self, ids: Sequence[str]) -> None:
        """Acknowledge and delete finished entries, atomically."""
        if ids:
            pipe = self.client.pipeline(transaction=True)
            pipe.xack(self.stream, self.group, *ids)
            pipe.xdel(self.stream, *ids)
            await self._run("ack", pipe.execute())

    async def bury(self, entry: Entry, reason: str) -> None:
        """Move ``entry`` to the dead letters with ``reason``, atomically."""
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(
            self.dead_stream,
            {
                "job": entry.data,
                "reason": reason,
                "attempts": entry.attempt,
                "failed_at": f"{time.time():.3f}",
                "id": entry.id,
            },
            maxlen=self.max_dead,
            approximate=True,
        )
        pipe.xack(self.stream, self.group, entry.id)
        pipe.xdel(self.stream, entry.id)
        await self._run("bury", pipe.execute())

    async def forget(self, consumer: str) -> bool:
        """Remove ``consumer`` from the group if it holds no entry; whether it was removed."""
        removed = await self._run(
            "forget", self._forget(keys=[self.stream], args=[self.group, consumer])
        )
        return bool(removed >= 0)

    async def forget_idle(self, idle_seconds: float) -> int:
        """Remove every consumer that holds nothing and was idle ``idle_seconds``: the names
        of workers that died after their entries were taken over. Returns how many."""
        reply: Any = await self._run("forget", self.client.xinfo_consumers(self.stream, self.group))
        removed = 0
        for consumer in reply:
            if int(consumer["pending"]) == 0 and int(consumer["idle"]) >= idle_seconds * 1000:
                removed += await self.forget(_text(consumer["name"]))
        return removed

    # -- the operator ---------------------------------------------------------------------

    async def stats(self) -> QueueStats:
        """Length, unread, pending per consumer and dead letters, in one round trip."""
        await self.ensure_group()
        pipe = self.client.pipeline(transaction=False)
        pipe.xlen(self.stream)
        pipe.xinfo_groups(self.stream)
        pipe.xinfo_consumers(self.stream, self.group)
        pipe.xlen(self.dead_stream)
        length, groups, consumers, dead = await self._run("stats", pipe.execute())
        group = next(g for g in groups if _text(g["name"]) == self.group)
        lag = group.get("lag")
        return QueueStats(
            length=int(length),
            max_length=self.max_length,
            unread=None if lag is None else int(lag),
            pending=int(group["pending"]),
            consumers=[
                (_text(c["name"]), int(c["pending"]), int(c["idle"]) / 1000) for c in consumers
            ],
            dead=int(dead),
        )

    async def dead(self, count: int = 100) -> list[DeadLetter]:
        """The oldest ``count`` dead letters."""
        reply: Any = await self._run("dead", self.client.xrange(self.dead_stream, count=count))
        return [_dead_letter(entry_id, fields) for entry_id, fields in reply]

    async def requeue(self, ids: Sequence[str] | None = None) -> int:
        """Put dead letters back into the stream (all when ``ids`` is ``None``), attempt 1.

        Letters move in batches of 100, each batch by one script inside Redis: a letter is
        added to the stream and deleted from the dead letters in one atomic step, so an
        interrupted requeue leaves every letter in exactly one of the two streams, two
        requeues of the same letter move it once, and no body passes through this process.
        With ``ids=None`` it moves the oldest letters, as many as were dead when it began.
        Returns how many moved.

        Raises:
            QueueFull: The stream has no room for them; those moved so far stay moved.
        """
        moved = 0
        if ids is not None:
            for start in range(0, len(ids), _REQUEUE_BATCH):
                moved += await self._move("ids", *ids[start : start + _REQUEUE_BATCH])
            return moved
        # Each batch deletes what it moved, so the next one takes the oldest again. Counted,
        # so that letters buried meanwhile (by workers failing them again) cannot keep it going.
        left = int(await self._run("requeue", self.client.xlen(self.dead_stream)))
        while left > 0:
            count = min(left, _REQUEUE_BATCH)
            batch = await self._move("oldest", count)
            moved += batch
            left -= count
            if batch < count:  # fewer were left: another requeue took some
                break
        return moved

    async def _move(self, *args: str | int) -> int:
        moved, length, full = await self._run(
            "requeue",
            self._requeue(keys=[self.stream, self.dead_stream], args=[self.max_length, *args]),
        )
        if full:
            raise QueueFull(
                f"the durable queue holds {length} entries, its bound is {self.max_length}"
            )
        self._watch_length(length)
        return int(moved)

    async def _run(self, name: str, command: Awaitable[T], extra_seconds: float = 0.0) -> T:
        try:
            with anyio.fail_after(self.operation_timeout_seconds + extra_seconds):
                return await command
        except TimeoutError:
            raise QueueError(
                f"redis {name} took longer than {self.operation_timeout_seconds} s"
            ) from None
        except Exception as exc:  # redis-py's errors, OSError, and whatever a client raises
            raise QueueError(f"redis {name} failed: {type(exc).__name__}: {exc}") from None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _dead_letter(entry_id: bytes | str, fields: dict[bytes, bytes]) -> DeadLetter:
    return DeadLetter(
        id=_text(entry_id),
        data=fields.get(b"job", b""),
        reason=_text(fields.get(b"reason", b"")),
        attempts=int(fields.get(b"attempts", b"0")),
        failed_at=float(fields.get(b"failed_at", b"0")),
        original_id=_text(fields.get(b"id", b"")),
    )
