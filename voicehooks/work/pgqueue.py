"""The durable job queue on PostgreSQL: the Redis stream's contract, in three tables.

``PostgresQueue`` is a ``WorkQueue`` (``voicehooks.work.queue``) for teams that run
PostgreSQL and not Redis (``VOICEHOOKS_QUEUE_URL=postgresql://...``). It keeps the contract
of ``RedisQueue`` point by point, so ``DurableSink``, ``Worker`` and ``voicehooks queue`` do
not know which one they hold:

* **Committed before the 200.** ``enqueue`` is one statement (one transaction): it raises
  the queue's length in ``queues`` only if the entries fit under ``max_length``, inserts them
  into ``jobs``, and notifies the workers. It returns once PostgreSQL committed it, so a
  delivery answered 200 is on the server's disk (as durable as its ``synchronous_commit``).
* **One worker per entry.** ``read`` and ``claim`` are ``UPDATE ... WHERE id IN (SELECT ...
  FOR UPDATE SKIP LOCKED)``: workers never wait on each other's rows, and each row goes to
  one of them. A held row names its ``consumer`` and when it was last ``touched_at``; the
  worker touches what it holds every third of its ``claim_idle_seconds``, so only a dead
  worker's rows grow idle, and ``claim`` takes those over, counting an attempt
  (``attempts`` is Redis's delivery count).
* **Dead letters**: ``bury`` moves a row to ``dead`` with the reason, in one statement, and
  keeps the newest ``max_dead`` letters younger than ``max_dead_age_seconds``.
* **The bound** is a counter row per queue, changed in the same statement as the rows, so
  it is exact; ``check_room`` reads it (one primary-key lookup). Every enqueue and
  acknowledgement updates that row, so they are serialised on it for the length of one
  commit: the price of an exact bound.
* **Waking workers**: ``enqueue`` sends ``NOTIFY`` on the queue's channel, which a waiting
  ``read`` listens to on a connection of its own, so a worker picks a job up within
  milliseconds; it polls every ``poll_seconds`` as well, in case a notice was lost (the
  listening connection broke).

Why not pgmq or procrastinate: see DESIGN.md ("Durable mode on PostgreSQL").
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

import anyio

from voicehooks.core.exceptions import ConfigurationError, QueueError
from voicehooks.state.pgpool import PostgresPool, postgres_pool
from voicehooks.state.postgres import (
    SETUP_SECONDS,
    describe_error,
    ensure_schema,
    guarded,
    quoted_schema,
    run_statement,
)

from .pgsql import QUEUE_SCHEMA, statements
from .queue import (
    MAX_DEAD,
    MAX_DEAD_AGE_SECONDS,
    DeadLetter,
    Entry,
    QueueStats,
    Trimmed,
    queue_full,
    warn_near_bound,
)

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

__all__ = ["PostgresQueue"]

_log = logging.getLogger("voicehooks")

T = TypeVar("T")

_QUEUE_VERSION: Final = 1
_REQUEUE_BATCH: Final = 100


class PostgresQueue:
    """The jobs, their holders and their dead letters in PostgreSQL; see the module docstring.

    Every method is one statement (one round trip) but ``requeue``, one per batch of 100,
    and a ``read`` that waits. Methods raise ``QueueError`` when PostgreSQL fails or does
    not answer within ``operation_timeout_seconds``, and nothing else.

    Args:
        pool: A hold on a connection pool (``postgres_pool(url)``, shared with a store on the
            same URL) or a ``psycopg_pool.AsyncConnectionPool`` of your own (autocommit).
        schema: The schema of the tables, made on first use.
        stream: The queue's name: several queues may share the tables.
        max_length: Most entries waiting or in progress: the receiver refuses past it (503).
        max_dead: Most dead letters kept; the oldest go first.
        max_dead_age_seconds: Dead letters older than this are deleted (default 7 days).
        operation_timeout_seconds: Budget of one statement (a waiting read adds its wait).
        poll_seconds: A waiting read looks again this often even without a notice.

    Example:
        >>> from voicehooks import Background, PostgresQueue, VoiceHooks
        >>> queue = PostgresQueue.from_url("postgresql://localhost/app")  # connects at startup
        >>> app = VoiceHooks(secret="whsec_example", background=Background(queue=queue))
    """

    def __init__(
        self,
        pool: PostgresPool | AsyncConnectionPool,
        *,
        schema: str = "voicehooks",
        stream: str = "voicehooks:jobs",
        max_length: int = 100_000,
        max_dead: int = MAX_DEAD,
        max_dead_age_seconds: float = MAX_DEAD_AGE_SECONDS,
        operation_timeout_seconds: float = 1.0,
        poll_seconds: float = 0.25,
    ) -> None:
        if max_length < 1 or max_dead < 1:
            raise ConfigurationError("max_length and max_dead must be >= 1")
        if operation_timeout_seconds <= 0 or poll_seconds <= 0 or max_dead_age_seconds <= 0:
            raise ConfigurationError(
                "operation_timeout_seconds, poll_seconds and max_dead_age_seconds must be > 0"
            )
        self.pool = pool if isinstance(pool, PostgresPool) else postgres_pool("", pool=pool)
        self.schema = schema
        self.stream = stream
        self.max_length = max_length
        self.max_dead = max_dead
        self.max_dead_age_seconds = max_dead_age_seconds
        self.operation_timeout_seconds = operation_timeout_seconds
        self.poll_seconds = poll_seconds
        self.channel = (
            "voicehooks_" + hashlib.sha256(f"{schema}/{stream}".encode()).hexdigest()[:16]
        )
        self.ready = False
        self._warned_full = False
        self._listener: AsyncConnection[Any] | None = None
        self._listening = anyio.Lock()
        self._acking = anyio.Lock()
        self._next_acks = _Acks()
        self._sql = statements(quoted_schema(schema))

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PostgresQueue:
        """A queue on this process's pool for ``url`` (``postgresql://`` or ``postgres://``),
        shared with a store on the same URL. ``options`` are the constructor's (``group``, a
        Redis notion, is accepted and ignored so that one command line serves both).

        Raises:
            ConfigurationError: psycopg is missing, or ``url`` is not a PostgreSQL URL.
        """
        options.pop("group", None)
        return cls(postgres_pool(url), **options)

    # -- both sides -----------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and make the tables and this queue's row unless they exist."""
        await self._run("open", lambda: anyio.sleep(0), SETUP_SECONDS)

    async def ensure_group(self) -> None:
        """Make the tables and this queue's row unless they exist."""
        self.ready = False
        await self.open()

    async def aclose(self) -> None:
        """Close the listening connection and let go of the pool."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                await listener.close()
        self.ready = False  # used again: it takes a pool again
        await self.pool.aclose()

    async def ping(self) -> None:
        """Raise ``QueueError`` unless PostgreSQL answers (the readiness probe)."""
        await self._rows("ping", "SELECT 1", {})

    # -- the receiver ---------------------------------------------------------------------

    async def check_room(self, count: int) -> None:
        """Admission: raise unless ``count`` more entries fit now (one primary-key read).

        Raises:
            QueueFull: The queue holds ``max_length`` entries or more than ``count`` fewer.
            QueueError: PostgreSQL failed or was slow.
        """
        rows = await self._rows("check", self._sql["length"], {"q": self.stream})
        length = int(rows[0][0]) if rows else 0
        if length + count > self.max_length:
            raise queue_full(length, self.max_length)

    async def enqueue(self, entries: Sequence[bytes]) -> None:
        """Add ``entries`` (a delivery's jobs) in one committed statement, all or none.

        Raises:
            QueueFull: They would take the queue past ``max_length``; nothing was added.
            QueueError: PostgreSQL failed or was slow; they may or may not have been added.
        """
        if not entries:
            return
        params = {
            "q": self.stream,
            "n": len(entries),
            "max": self.max_length,
            "bodies": list(entries),
            "channel": self.channel,
        }
        rows = await self._rows("enqueue", self._sql["enqueue"], params)
        added, length = rows[0][0], rows[0][1]
        if length is None:
            self.ready = False  # the queue's row is gone: made again on the next call
            raise QueueError("postgres enqueue failed: the queue's row is missing")
        if added is None:
            raise queue_full(length, self.max_length)
        self._watch_length(int(added))

    def _watch_length(self, length: int) -> None:
        self._warned_full = warn_near_bound(length, self.max_length, self._warned_full)

    # -- the worker -----------------------------------------------------------------------

    async def read(self, consumer: str, count: int, block_seconds: float) -> list[Entry]:
        """Up to ``count`` entries nobody has read yet, waiting up to ``block_seconds``."""
        deadline = time.monotonic() + block_seconds
        async with self._listening:
            await self._listen()  # before looking, so a notice sent meanwhile is kept
            while True:
                entries = await self._take(self._sql["read"], consumer, count, 0)
                left = deadline - time.monotonic()
                if entries or left <= 0:
                    return entries
                await self._wait_for_notice(min(left, self.poll_seconds))

    async def claim(
        self, consumer: str, min_idle_seconds: float, count: int, start: str = "0-0"
    ) -> tuple[str, list[Entry]]:
        """Take over up to ``count`` entries idle for ``min_idle_seconds``.

        Each pass looks at every held row (an index on when each was touched), so the
        cursor returned is always ``"0-0"``; each entry's attempt number has just gone up.
        """
        idle = max(0, int(min_idle_seconds * 1000))
        return "0-0", await self._take(self._sql["claim"], consumer, count, idle)

    async def _take(self, statement: str, consumer: str, count: int, idle: int) -> list[Entry]:
        params = {"q": self.stream, "c": consumer, "n": count, "idle": idle}
        rows = await self._rows("read", statement, params)
        return sorted(
            (Entry(str(job_id), bytes(body), int(attempts)) for job_id, body, attempts in rows),
            key=lambda entry: int(entry.id),
        )

    async def _listen(self) -> None:
        if self._listener is not None and not self._listener.broken:
            return
        conninfo = self.pool.pool.conninfo
        if not isinstance(conninfo, str):  # a pool given a function for it: poll only
            return
        try:
            from psycopg import AsyncConnection

            with anyio.fail_after(self.operation_timeout_seconds):
                listener = await AsyncConnection.connect(conninfo, autocommit=True)
                await listener.execute(f'LISTEN "{self.channel}"')
        except Exception as exc:  # no notices then: the poll still finds the entries
            _log.debug("queue %s: cannot listen (%s); polling", self.stream, describe_error(exc))
            return
        self._listener = listener

    async def _wait_for_notice(self, seconds: float) -> None:
        listener = self._listener
        if listener is None:
            await anyio.sleep(seconds)
            return
        try:
            async for _ in listener.notifies(timeout=seconds, stop_after=1):
                pass
        except Exception as exc:  # the connection broke: listen again on the next read
            _log.debug("queue %s: listening failed (%s)", self.stream, describe_error(exc))
            self._listener = None
            with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                await listener.close()
            await anyio.sleep(seconds)

    async def touch(self, consumer: str, ids: Sequence[str]) -> None:
        """Reset the idle time of entries this worker still works on, so none is claimed."""
        if ids:
            params = {"q": self.stream, "c": consumer, "ids": _ids(ids)}
            await self._rows("touch", self._sql["touch"], params)

    async def retry(self, consumer: str, entry: Entry) -> Entry | None:
        """Count another attempt of ``entry``; ``None`` when it is gone (acknowledged or
        deleted by someone else meanwhile)."""
        params = {"q": self.stream, "c": consumer, "id": int(entry.id)}
        if not await self._rows("retry", self._sql["retry"], params):
            return None
        return Entry(entry.id, entry.data, entry.attempt + 1)

    async def ack(self, ids: Sequence[str]) -> None:
        """Delete finished entries and count them out of the length, in one statement.

        Acknowledgements that arrive while one is being written go together in the next
        statement: each waits on the queue's counter row anyway, so a worker's entries
        finishing together cost one turn on it instead of one each.
        """
        if not ids:
            return
        mine = self._next_acks
        mine.ids.extend(ids)
        async with self._acking:
            if not mine.finished:
                self._next_acks = _Acks()  # later calls go into the next statement
                try:
                    params = {"q": self.stream, "ids": _ids(mine.ids)}
                    await self._rows("ack", self._sql["ack"], params)
                except QueueError as exc:
                    mine.error = exc
                    raise
                except BaseException:  # cut short: the others cannot know what happened
                    mine.error = QueueError("postgres ack was cut short")
                    raise
                finally:
                    mine.finished = True
            elif mine.error is not None:
                raise mine.error

    async def bury(self, entry: Entry, reason: str) -> Trimmed:
        """Move ``entry`` to the dead letters with ``reason``, in one statement, and trim
        them to ``max_dead`` letters younger than ``max_dead_age_seconds``; what that deleted."""
        params = {
            "q": self.stream,
            "id": int(entry.id),
            "reason": reason,
            "attempts": entry.attempt,
            "max": self.max_dead,
            "age": self.max_dead_age_seconds,
        }
        return _trimmed(await self._rows("bury", self._sql["bury"], params))

    async def trim_dead(self) -> Trimmed:
        """Delete the dead letters past the bounds, without burying one (a worker's minute)."""
        params = {"q": self.stream, "max": self.max_dead, "age": self.max_dead_age_seconds}
        return _trimmed(await self._rows("trim", self._sql["trim_dead"], params))

    async def forget(self, consumer: str) -> bool:
        """Whether ``consumer`` holds nothing. Consumers are not registered here: a worker is
        known by the rows it holds, so there is nothing else to forget."""
        rows = await self._rows("forget", self._sql["holds"], {"q": self.stream, "c": consumer})
        return not rows[0][0]

    async def forget_idle(self, idle_seconds: float) -> int:
        """Nothing to do: a worker that holds nothing is not listed (see ``forget``)."""
        return 0

    # -- the operator ---------------------------------------------------------------------

    async def stats(self) -> QueueStats:
        """Length, unread, held per consumer and dead letters."""
        rows = await self._rows("stats", self._sql["stats"], {"q": self.stream})
        unread, pending, dead, oldest = rows[0]
        consumers = await self._rows("stats", self._sql["consumers"], {"q": self.stream})
        return QueueStats(
            length=int(unread) + int(pending),
            max_length=self.max_length,
            unread=int(unread),
            pending=int(pending),
            consumers=[(name, int(held), float(idle)) for name, held, idle in consumers],
            dead=int(dead),
            max_dead=self.max_dead,
            max_dead_age_seconds=self.max_dead_age_seconds,
            oldest_dead_seconds=None if oldest is None else max(0.0, float(oldest)),
        )

    async def dead(self, count: int = 100) -> list[DeadLetter]:
        """The oldest ``count`` dead letters."""
        rows = await self._rows("dead", self._sql["dead"], {"q": self.stream, "n": count})
        return [
            DeadLetter(str(id_), bytes(body), reason, int(attempts), float(at), str(original))
            for id_, body, reason, attempts, at, original in rows
        ]

    async def requeue(self, ids: Sequence[str] | None = None) -> int:
        """Put dead letters back into the queue (all when ``ids`` is ``None``), attempt 1.

        Each batch of 100 is one statement: a letter leaves ``dead`` and enters ``jobs`` in
        one transaction, so it is in exactly one of them, and two requeues move it once.
        With ``ids=None`` it moves the oldest letters, as many as were dead when it began.
        Returns how many moved.

        Raises:
            QueueFull: The queue has no room for them; those moved so far stay moved.
        """
        moved = 0
        if ids is not None:
            wanted = _ids(ids)
            for start in range(0, len(wanted), _REQUEUE_BATCH):
                some = wanted[start : start + _REQUEUE_BATCH]
                moved += await self._move(some, len(some))
            return moved
        rows = await self._rows("requeue", self._sql["dead_count"], {"q": self.stream})
        left = int(rows[0][0])
        while left > 0:
            count = min(left, _REQUEUE_BATCH)
            batch = await self._move(None, count)
            moved += batch
            left -= count
            if batch < count:  # fewer were left: another requeue took some
                break
        return moved

    async def _move(self, ids: list[int] | None, count: int) -> int:
        params = {"q": self.stream, "ids": ids, "n": count, "max": self.max_length}
        rows = await self._rows("requeue", self._sql["requeue"], params)
        moved, length, free, matching = (int(value or 0) for value in rows[0])
        if free < count and moved == free and matching > moved:
            raise queue_full(length, self.max_length)
        self._watch_length(length)
        return moved

    # -- running statements ---------------------------------------------------------------

    async def _rows(
        self, name: str, statement: str, params: dict[str, Any]
    ) -> list[tuple[Any, ...]]:
        return await self._run(name, lambda: run_statement(self.pool, statement, params))

    async def _run(
        self, name: str, operation: Callable[[], Awaitable[T]], setup_seconds: float = 0.0
    ) -> T:
        return await guarded(
            self, name, operation, setup_seconds, slow=QueueError, failed=QueueError
        )

    async def make_schema(self) -> None:
        """Open the pool, make the queue's tables unless they exist, and its row."""
        await self.pool.open()
        async with self.pool.connection() as connection:
            await ensure_schema(connection, self.schema, "queue", _QUEUE_VERSION, QUEUE_SCHEMA)
            await connection.execute(self._sql["create"], {"q": self.stream})


class _Acks:
    """Ids to acknowledge in one statement, and how that statement ended."""

    __slots__ = ("error", "finished", "ids")

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.finished = False
        self.error: QueueError | None = None


def _ids(ids: Sequence[str]) -> list[int]:
    # Ids are the rows' numbers; anything else (a Redis entry id) names no row here.
    return [int(value) for value in ids if value.isdigit()]


def _trimmed(rows: Sequence[Sequence[Any]]) -> Trimmed:
    """The letters a trim deleted, from one ``RETURNING`` flag a row: past the age bound
    (counted there first), else past the count bound."""
    by_age = sum(1 for (aged,) in rows if aged)
    return Trimmed(by_age=by_age, by_count=len(rows) - by_age)
