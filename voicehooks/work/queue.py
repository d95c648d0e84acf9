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
  ``voicehooks queue requeue`` puts it back. They are kept within two bounds, by count
  (``max_dead``, 10,000) and by age (``max_dead_age_seconds``, 7 days), enforced inside Redis
  on every bury and by ``trim_dead``, which workers call every minute: past them the oldest
  letters are deleted, and the worker logs and counts how many. A dead letter holds the whole
  entry, personal data included (sealed when the app has a queue key), so it must not outlive
  the reason it was kept: time to look at it, and to requeue it.

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
``voicehooks.work.jobs``; sealed, 38 bytes more, when the app has a queue key: see
``voicehooks.work.sealing``; this module only moves the bytes), so Redis needs about
``max_length`` times your largest event (reports: tens of KiB) of memory; run it with
``maxmemory-policy noeviction`` so that a full Redis refuses writes rather than evicting
entries, and with ``appendonly yes`` so that a restart keeps them.

**Replication.** A Redis master answers before its replicas have the write: replication is
asynchronous. When the master dies and Sentinel (or a cluster) promotes a replica, entries
the master had acknowledged, and the receiver had answered 200 for, are lost if they had
not reached that replica yet (in practice the last few milliseconds of writes). With
``min_replicas_acks=N`` the receiver sends ``WAIT N timeout`` after the entries, on the same
connection, and treats fewer acks as a queue failure (``queue_failure``): the 200 then
means N replicas held the entries. ``WAIT`` does not make Redis a consensus system: an
acknowledged entry may still be lost if every replica that held it fails too, or if a
replica without it is promoted (Sentinel prefers the most up-to-date one).

**Redis Cluster.** Every multi-key command and script here names the stream and its dead
letters, which must share a hash slot: on a cluster a stream name without a hash tag is
wrapped in one (``{voicehooks:jobs}``, ``{voicehooks:jobs}:dead``). On one server and
behind Sentinel the names are unchanged.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, Protocol, TypeVar

import anyio

from voicehooks.core.exceptions import ConfigurationError, QueueError, QueueFull
from voicehooks.state.connections import RedisClient, close_redis_client, is_cluster, redis_client

__all__ = [
    "MAX_DEAD",
    "MAX_DEAD_AGE_SECONDS",
    "DeadLetter",
    "Entry",
    "QueueStats",
    "RedisQueue",
    "Trimmed",
    "WorkQueue",
    "consumer_name",
    "queue_full",
    "warn_near_bound",
]

_log = logging.getLogger("voicehooks")

T = TypeVar("T")

MAX_DEAD: Final = 10_000
"""Most dead letters kept by default."""
MAX_DEAD_AGE_SECONDS: Final = 7 * 86400.0
"""How long a dead letter is kept by default: a week, time to look and requeue."""


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
        max_dead: The most dead letters kept.
        max_dead_age_seconds: How long a dead letter is kept.
        oldest_dead_seconds: Age of the oldest dead letter (``None`` without any).
    """

    length: int
    max_length: int
    unread: int | None
    pending: int
    consumers: list[tuple[str, int, float]]
    dead: int
    max_dead: int = MAX_DEAD
    max_dead_age_seconds: float = MAX_DEAD_AGE_SECONDS
    oldest_dead_seconds: float | None = None


class Trimmed(NamedTuple):
    """Dead letters deleted at their bounds by one bury or ``trim_dead``."""

    by_age: int
    by_count: int

    @property
    def total(self) -> int:
        """Deleted in all."""
        return self.by_age + self.by_count


class WorkQueue(Protocol):
    """What the durable sink, the worker and ``voicehooks queue`` need from a queue.

    ``RedisQueue`` (a stream and its consumer group) and ``PostgresQueue``
    (``voicehooks.work.pgqueue``: a table read with ``FOR UPDATE SKIP LOCKED``) are the two.
    Every method raises ``QueueError`` (``QueueFull`` where it says so) and nothing else.
    """

    stream: str
    """The queue's name, in log lines."""
    max_length: int
    max_dead: int
    max_dead_age_seconds: float

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

    async def bury(self, entry: Entry, reason: str) -> Trimmed:
        """Move ``entry`` to the dead letters with ``reason``, atomically, and delete the
        letters past the bounds (``max_dead``, ``max_dead_age_seconds``); what it deleted."""
        ...

    async def trim_dead(self) -> Trimmed:
        """Delete the dead letters past the bounds (a worker does once a minute)."""
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

# The dead letters' bounds, inside Redis so that its clock, the one that made the entry ids,
# measures their age: first by age (MINID: ids older than now - ARGV age), then by count.
# Exact trimming (no ~): letters are few and their bound is a promise about personal data.
_TRIM_FUNCTION = """
local function trim(key, most, age_ms)
    local now = redis.call('TIME')
    local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
    local cutoff = now_ms - tonumber(age_ms)
    local by_age = 0
    if cutoff > 0 then
        by_age = redis.call('XTRIM', key, 'MINID', string.format('%.0f', cutoff))
    end
    return {by_age, redis.call('XTRIM', key, 'MAXLEN', most)}
end
"""

_TRIM = _TRIM_FUNCTION + "return trim(KEYS[1], ARGV[1], ARGV[2])"

# An entry into the dead letters (KEYS[2]) and out of the stream (KEYS[1]) atomically, then
# the dead letters trimmed to their bounds. ARGV: group, entry id, job, reason, attempts,
# failed at, most letters, longest age in ms.
_BURY = (
    _TRIM_FUNCTION
    + """
redis.call('XADD', KEYS[2], '*', 'job', ARGV[3], 'reason', ARGV[4], 'attempts', ARGV[5],
    'failed_at', ARGV[6], 'id', ARGV[2])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
return trim(KEYS[2], ARGV[7], ARGV[8])
"""
)

# A consumer is deleted only while it holds nothing: DELCONSUMER drops its pending entries.
_FORGET = """
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) == 0 then
    return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return -1
"""

_FIELD: Final = b"job"
_WARN_FRACTION: Final = 0.8


def queue_full(length: int, max_length: int) -> QueueFull:
    """The refusal of a queue that holds ``length`` entries against its bound ``max_length``:
    both queues raise it, in the same words."""
    return QueueFull(f"the durable queue holds {length} entries, its bound is {max_length}")


def warn_near_bound(length: int, max_length: int, warned: bool) -> bool:
    """Log one warning when a queue's ``length`` crosses 80 % of ``max_length`` (``warned``:
    it was logged for this crossing already); returns whether it stands, for the next look.
    Both queues call it, so the operator reads one line whichever backend runs."""
    if length < max_length * _WARN_FRACTION:
        return False
    if not warned:
        _log.warning(
            "the durable queue holds %d entries, %d%% of its bound %d: workers are "
            "behind; past the bound deliveries are refused (503)",
            length,
            length * 100 // max_length,
            max_length,
        )
    return True


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
        client: A ``redis.asyncio.Redis`` or ``RedisCluster``; the queue owns it and closes
            it in ``aclose``.
        stream: Key of the stream; the dead letters live at ``<stream>:dead``. On a Redis
            Cluster a name without a hash tag gets one, ``{voicehooks:jobs}``, so that the
            stream, its group and its dead letters share a slot.
        group: Name of the consumer group the workers share.
        max_length: Most entries the stream holds: the receiver refuses past it (503). See
            the module docstring for why this is also the ``MAXLEN`` and what that means.
        max_dead: Most dead letters kept; past it the oldest are deleted.
        max_dead_age_seconds: How long a dead letter is kept; older ones are deleted.
        operation_timeout_seconds: Budget of one command (the blocking read adds its wait).
        min_replicas_acks: Replicas that must hold a delivery's entries before ``enqueue``
            returns (``WAIT``): 0, the default, trusts asynchronous replication. Fewer acks
            within ``replica_ack_timeout_seconds`` raise ``QueueError``, which the app meets
            with its ``queue_failure`` policy. Not on a cluster (refused).
        replica_ack_timeout_seconds: How long ``enqueue`` waits for those acks.

    Example:
        >>> from voicehooks import Background, RedisQueue, VoiceHooks
        >>> queue = RedisQueue.from_url("redis://localhost:6379/0")  # connects at startup
        >>> app = VoiceHooks(secret="whsec_example", background=Background(queue=queue))
    """

    def __init__(
        self,
        client: RedisClient,
        *,
        stream: str = "voicehooks:jobs",
        group: str = "voicehooks-workers",
        max_length: int = 100_000,
        max_dead: int = MAX_DEAD,
        max_dead_age_seconds: float = MAX_DEAD_AGE_SECONDS,
        operation_timeout_seconds: float = 1.0,
        min_replicas_acks: int = 0,
        replica_ack_timeout_seconds: float = 0.5,
    ) -> None:
        if max_length < 1 or max_dead < 1:
            raise ConfigurationError("max_length and max_dead must be >= 1")
        if (
            operation_timeout_seconds <= 0
            or max_dead_age_seconds <= 0
            or replica_ack_timeout_seconds <= 0
        ):
            raise ConfigurationError(
                "operation_timeout_seconds, max_dead_age_seconds and replica_ack_timeout_seconds "
                "must be > 0"
            )
        if min_replicas_acks < 0:
            raise ConfigurationError(f"min_replicas_acks must be >= 0, got {min_replicas_acks}")
        cluster = is_cluster(client)
        if cluster and min_replicas_acks:
            # WAIT counts the writes of the connection it is sent on; a cluster client sends a
            # keyless command to a node of its choosing, on another connection.
            raise ConfigurationError("min_replicas_acks is not supported on a Redis Cluster")
        self.client = client
        self.stream = _hash_tagged(stream) if cluster else stream
        self.dead_stream = self.stream + ":dead"
        self.min_replicas_acks = min_replicas_acks
        self.replica_ack_timeout_seconds = replica_ack_timeout_seconds
        self.group = group
        self.max_length = max_length
        self.max_dead = max_dead
        self.max_dead_age_seconds = max_dead_age_seconds
        self.operation_timeout_seconds = operation_timeout_seconds
        self._enqueue = client.register_script(_ENQUEUE)
        self._requeue = client.register_script(_REQUEUE)
        self._forget = client.register_script(_FORGET)
        self._bury = client.register_script(_BURY)
        self._trim = client.register_script(_TRIM)
        self._warned_full = False

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisQueue:
        """A queue on a client for ``url``: any form ``redis_client`` reads (``redis://``,
        ``rediss://``, ``unix://``, ``redis+sentinel://``, ``redis+cluster://``).

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
            raise queue_full(length, self.max_length)

    async def enqueue(self, entries: Sequence[bytes]) -> None:
        """Add ``entries`` (a delivery's jobs) in one round trip, all or none.

        Raises:
            QueueFull: They would take the stream past ``max_length``; nothing was added.
            QueueError: Redis failed or was slow; the entries may or may not have been added.
        """
        if not entries:
            return
        if self.min_replicas_acks:
            length = await self._enqueue_replicated(entries)
        else:
            length = await self._run(
                "enqueue", self._enqueue(keys=[self.stream], args=[self.max_length, *entries])
            )
        if length < 0:
            raise queue_full(-1 - length, self.max_length)
        self._watch_length(length)

    async def _enqueue_replicated(self, entries: Sequence[bytes]) -> int:
        # WAIT counts the replicas holding this connection's writes, so the script and the
        # WAIT go in one pipeline, on one connection. EVAL, not EVALSHA: a master promoted by
        # a failover may lack the script, and a pipeline cannot load it halfway.
        timeout_ms = max(1, int(self.replica_ack_timeout_seconds * 1000))
        pipe = self.client.pipeline(transaction=False)
        pipe.eval(_ENQUEUE, 1, self.stream, self.max_length, *entries)
        pipe.execute_command("WAIT", self.min_replicas_acks, timeout_ms)
        length, acks = await self._run(
            "enqueue", pipe.execute(), extra_seconds=self.replica_ack_timeout_seconds
        )
        if length >= 0 and acks < self.min_replicas_acks:
            raise QueueError(
                f"the entries reached {acks} of {self.min_replicas_acks} replicas within "
                f"{self.replica_ack_timeout_seconds} s (WAIT); they may be lost in a failover"
            )
        return int(length)

    def _watch_length(self, length: int) -> None:
        self._warned_full = warn_near_bound(length, self.max_length, self._warned_full)

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

    async def bury(self, entry: Entry, reason: str) -> Trimmed:
        """Move ``entry`` to the dead letters with ``reason``, atomically, and keep the dead
        letters within their bounds; returns how many old letters that deleted."""
        reply = await self._run(
            "bury",
            self._bury(
                keys=[self.stream, self.dead_stream],
                args=[
                    self.group,
                    entry.id,
                    entry.data,
                    reason,
                    entry.attempt,
                    f"{time.time():.3f}",
                    self.max_dead,
                    self._max_dead_age_ms,
                ],
            ),
        )
        return Trimmed(*map(int, reply))

    async def trim_dead(self) -> Trimmed:
        """Delete the dead letters past their bounds (age, then count); returns how many."""
        reply = await self._run(
            "trim",
            self._trim(keys=[self.dead_stream], args=[self.max_dead, self._max_dead_age_ms]),
        )
        return Trimmed(*map(int, reply))

    @property
    def _max_dead_age_ms(self) -> int:
        return max(1, int(self.max_dead_age_seconds * 1000))

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
        pipe.xrange(self.dead_stream, count=1)
        length, groups, consumers, dead, oldest = await self._run("stats", pipe.execute())
        group = next(g for g in groups if _text(g["name"]) == self.group)
        lag = group.get("lag")
        oldest_dead_seconds = None
        if oldest:  # an entry id's first part is Redis's clock in ms when it was added
            # TIME on its own: a cluster client refuses keyless commands in a pipeline.
            now = await self._run("stats", self.client.time())
            added_ms = int(_text(oldest[0][0]).partition("-")[0])
            oldest_dead_seconds = max(0.0, now[0] + now[1] / 1e6 - added_ms / 1000)
        return QueueStats(
            length=int(length),
            max_length=self.max_length,
            unread=None if lag is None else int(lag),
            pending=int(group["pending"]),
            consumers=[
                (_text(c["name"]), int(c["pending"]), int(c["idle"]) / 1000) for c in consumers
            ],
            dead=int(dead),
            max_dead=self.max_dead,
            max_dead_age_seconds=self.max_dead_age_seconds,
            oldest_dead_seconds=oldest_dead_seconds,
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
            raise queue_full(length, self.max_length)
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


def _hash_tagged(name: str) -> str:
    """``name`` if it holds a hash tag (a non-empty ``{...}``, as Redis Cluster finds one),
    else ``{name}``: then ``name`` and ``name:dead`` hash to one slot."""
    start = name.find("{")
    end = name.find("}", start + 1)
    return name if start >= 0 and end > start + 1 else "{" + name + "}"


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
