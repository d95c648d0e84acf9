"""The worker loop of durable mode: read entries, run them, acknowledge, retry, dead-letter.

``voicehooks worker TARGET`` runs one ``Worker`` over the app's ``RedisQueue``. Per entry:

1. It is read from the consumer group (``XREADGROUP``) or taken over from a worker that died
   (``XAUTOCLAIM`` of entries idle for ``claim_idle_seconds``). While it runs, the worker
   refreshes the idle time of everything it holds every third of that period, so a live
   worker's slow handler is never taken from it.
2. ``run(entry)`` returns the job's ``JobRun``. ``done`` acknowledges and deletes the entry;
   any other outcome (or an exception out of ``run``) waits
   ``retry_delay_seconds * 2 ** (attempt - 1)`` (at most ``max_retry_delay_seconds``),
   counts an attempt in Redis and runs it again; after ``max_attempts`` it moves to the dead
   letters with the reason: ``JobRun.failure``, the exception's type (never its message). An
   entry taken over more than ``max_attempts`` times (its workers keep dying on it, say by
   running out of memory) is dead-lettered as ``abandoned`` without running again. An entry
   ``run`` cannot read (``UnreadableJob``: not a job, sealed with a key this worker lacks,
   tampered with) is dead-lettered at once as ``unreadable: <why>``: no retry could read it.
3. On ``stop`` the worker reads nothing more and drains its ``TaskOwner`` (the app's, in
   ``voicehooks worker``): what it holds gets the owner's grace period to finish, then is
   cancelled and stays pending in Redis for other workers.

At most ``concurrency`` entries are held at once (running or waiting to retry), so a worker's
memory is bounded by that many entries. When Redis is unreachable the loop waits and tries
again (100 ms doubling to 5 s), logging once per outage; Redis and PostgreSQL queues alike
(``WorkQueue``). The dead letters are kept within the
queue's bounds on every bury and once a minute; what that deletes is logged with its count
and passed to ``on_trimmed`` (the app's observers, in ``voicehooks worker``).

What an operator sees: one INFO line per run of a job (event type, masked call id, handler,
attempt, outcome, milliseconds; never the payload), a WARNING when it takes over a dead
worker's entries (how many, from which consumers), and the counts in ``counts`` (jobs done,
failed, retried, dead; entries taken over), which ``voicehooks worker --metrics`` exports.
Every ``forget_idle_seconds / 4`` (at most 5 min) it removes consumers that hold nothing and
were idle ``forget_idle_seconds``: the names of dead workers, so ``voicehooks queue stats``
lists the living.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from functools import partial
from typing import Final, TypeVar

import anyio

from voicehooks.core.exceptions import QueueError
from voicehooks.core.logs import describe, duration, masked
from voicehooks.core.records import JobOutcome, JobRun
from voicehooks.core.tasks import TaskOwner

from .jobs import UnreadableJob
from .queue import Entry, Trimmed, WorkQueue, consumer_name

__all__ = ["ABANDONED", "UNREADABLE", "Run", "Worker"]

_log = logging.getLogger("voicehooks")

Run = Callable[[Entry], Awaitable[JobRun]]
"""Runs one entry and returns its job's run; cancellation means the run was cut short."""

FORGET_AFTER_SECONDS: Final = 3600.0
"""A consumer that holds nothing and was idle this long is removed from the group (default)."""

COUNTS: Final = ("done", "failed", "retried", "dead", "taken_over")
"""The keys of ``Worker.counts``: runs that ended done or failed, retries, dead letters, and
entries taken over from dead workers."""

ABANDONED: Final = "abandoned"
"""Dead-letter reason of an entry whose workers died on it ``max_attempts`` times."""

UNREADABLE: Final = "unreadable"
"""Start of the dead-letter reason of an entry no attempt can read; the cause follows."""

TRIM_EVERY_SECONDS: Final = 60.0
"""How often a worker deletes the dead letters past their age bound, besides at each bury."""

T = TypeVar("T")


class Worker:
    """Consumes a ``WorkQueue`` with a ``run`` callback; see the module docstring.

    Args:
        queue: The queue to consume.
        run: Runs one entry.
        consumer: This worker's name in the group (default: host, pid and a random tail).
        concurrency: Most entries held at once.
        claim_idle_seconds: How long an entry must sit idle before another worker takes it
            over: longer than a worker's pauses (GC, a blocked loop), short enough that a
            crash delays work little.
        max_attempts: Runs per entry before it moves to the dead letters.
        retry_delay_seconds: Wait before the second attempt; doubles with each further one.
        max_retry_delay_seconds: Longest wait between attempts.
        tasks: Who owns the entries' tasks and drains them at ``stop`` (the app's owner, so
            that one grace period covers the worker and the app); default: one of its own.
        read_block_seconds: Longest blocking read; also how long a stop may take to notice.
        on_trimmed: Told how many dead letters were deleted at their bounds, each time some
            were: ``(count, bound)``, the bound ``"age"`` or ``"count"``.
        forget_idle_seconds: Remove consumers that hold nothing and were idle this long.
    """

    def __init__(
        self,
        queue: WorkQueue,
        run: Run,
        *,
        consumer: str | None = None,
        concurrency: int = 8,
        claim_idle_seconds: float = 30.0,
        max_attempts: int = 5,
        retry_delay_seconds: float = 1.0,
        max_retry_delay_seconds: float = 300.0,
        tasks: TaskOwner | None = None,
        read_block_seconds: float = 1.0,
        on_trimmed: Callable[[int, str], None] | None = None,
        forget_idle_seconds: float = FORGET_AFTER_SECONDS,
    ) -> None:
        if concurrency < 1 or max_attempts < 1:
            raise ValueError("concurrency and max_attempts must be >= 1")
        if claim_idle_seconds <= 0 or read_block_seconds <= 0 or forget_idle_seconds <= 0:
            raise ValueError(
                "claim_idle_seconds, read_block_seconds and forget_idle_seconds must be > 0"
            )
        self.queue = queue
        self.run = run
        self.consumer = consumer or consumer_name()
        self.concurrency = concurrency
        self.claim_idle_seconds = claim_idle_seconds
        self.max_attempts = max_attempts
        self.retry_delay_seconds = retry_delay_seconds
        self.max_retry_delay_seconds = max_retry_delay_seconds
        self.tasks = tasks if tasks is not None else TaskOwner(grace_seconds=20.0)
        self.read_block_seconds = read_block_seconds
        self.on_trimmed = on_trimmed
        self.forget_idle_seconds = forget_idle_seconds
        self.counts = dict.fromkeys(COUNTS, 0)
        self._held: dict[str, Entry] = {}
        self._changed: anyio.Event | None = None  # made in serve: it needs a running loop
        self._outage = False
        self._delay = 0.1

    @property
    def held(self) -> list[str]:
        """Ids of the entries this worker holds right now."""
        return list(self._held)

    async def serve(self, stop: anyio.Event) -> None:
        """Work until ``stop`` is set, then drain the task owner and return."""
        self._changed = anyio.Event()
        tasks = self.tasks
        async with nullcontext() if tasks.is_open else tasks.owning():
            tasks.spawn_service(self._keep_fresh())
            tasks.spawn_service(self._keep_dead_bounded())
            tasks.spawn_service(self._forget_dead_consumers())
            await self._feed(stop)
            _log.info(
                "worker %s: draining %d held entries (at most %.0f s)",
                self.consumer,
                len(self._held),
                tasks.grace_seconds,
            )
            await tasks.drain()
        with anyio.CancelScope(shield=True), contextlib.suppress(QueueError):
            await self.queue.forget(self.consumer)  # unless it left entries pending
        _log.info(
            "worker %s: stopped; %s",
            self.consumer,
            ", ".join(f"{count} {key.replace('_', ' ')}" for key, count in self.counts.items()),
            extra=dict(self.counts),
        )

    async def _feed(self, stop: anyio.Event) -> None:
        cursor = "0-0"
        next_claim = 0.0
        claim_every = min(max(self.claim_idle_seconds / 4, 0.1), 10.0)
        while not stop.is_set():
            free = self.concurrency - len(self._held)
            if free <= 0:
                with anyio.move_on_after(self.read_block_seconds):
                    await self._wait_for_change()
                continue
            try:
                entries: list[Entry] = []
                if time.monotonic() >= next_claim:
                    cursor, entries = await self.queue.claim(
                        self.consumer, self.claim_idle_seconds, free, cursor
                    )
                    if cursor == "0-0":  # a full pass over the pending entries: rest a while
                        next_claim = time.monotonic() + claim_every
                    if entries:
                        await self._taken_over(len(entries))
                if not entries:
                    entries = await self.queue.read(self.consumer, free, self.read_block_seconds)
            except QueueError as exc:
                await self._outage_pause(exc)
                continue
            if self._outage:
                self._outage = False
                _log.warning("worker %s: the queue answers again", self.consumer)
            for entry in entries:
                self._held[entry.id] = entry
                self.tasks.spawn(self._process(entry))

    async def _outage_pause(self, exc: QueueError) -> None:
        if "NOGROUP" in str(exc):  # Redis lost its data (no persistence?): start over
            _log.error("worker %s: the consumer group is gone; creating it again", self.consumer)
            with contextlib.suppress(QueueError):
                await self.queue.ensure_group()
        if not self._outage:
            self._outage = True
            self._delay = 0.1
            _log.warning("worker %s: the queue is unavailable (%s); retrying", self.consumer, exc)
        await anyio.sleep(self._delay)
        self._delay = min(self._delay * 2, 5.0)

    async def _taken_over(self, count: int) -> None:
        # XAUTOCLAIM does not say whose entries it took: those of the consumers idle past
        # claim_idle_seconds, which a look at the group (rare: only after a takeover) names.
        self.counts["taken_over"] += count
        try:
            stats = await self.queue.stats()
            dead = [
                name
                for name, _, idle in stats.consumers
                if name != self.consumer and idle >= self.claim_idle_seconds
            ]
        except QueueError:
            dead = []
        _log.warning(
            "worker %s: took over %d entries from %s, silent for %.0f s or more",
            self.consumer,
            count,
            ", ".join(dead[:5]) + (f" and {len(dead) - 5} more" if len(dead) > 5 else "")
            if dead
            else "a worker that died",
            self.claim_idle_seconds,
        )

    async def _forget_dead_consumers(self) -> None:
        while True:
            try:
                removed = await self.queue.forget_idle(self.forget_idle_seconds)
            except QueueError as exc:
                _log.debug("worker %s: forgetting idle consumers failed: %s", self.consumer, exc)
            else:
                if removed:
                    _log.info(
                        "worker %s: removed %d consumers idle for %.0f s or more",
                        self.consumer,
                        removed,
                        self.forget_idle_seconds,
                    )
            await anyio.sleep(min(self.forget_idle_seconds / 4, 300.0))

    async def _keep_fresh(self) -> None:
        while True:
            await anyio.sleep(self.claim_idle_seconds / 3)
            try:
                await self.queue.touch(self.consumer, list(self._held))
            except QueueError as exc:
                _log.debug("worker %s: refreshing held entries failed: %s", self.consumer, exc)

    async def _keep_dead_bounded(self) -> None:
        while True:
            try:
                self._report_trimmed(await self.queue.trim_dead())
            except QueueError as exc:
                _log.debug("worker %s: trimming the dead letters failed: %s", self.consumer, exc)
            await anyio.sleep(TRIM_EVERY_SECONDS)

    def _report_trimmed(self, trimmed: Trimmed) -> None:
        # Letters expiring at the age bound are the bound at work (info); letters deleted at
        # the count bound died before their time, so many failed: someone should look.
        queue = self.queue
        for count, bound, level, limit in (
            (
                trimmed.by_age,
                "age",
                logging.INFO,
                f"older than {duration(queue.max_dead_age_seconds)}",
            ),
            (trimmed.by_count, "count", logging.WARNING, f"past the bound of {queue.max_dead}"),
        ):
            if not count:
                continue
            _log.log(level, "deleted %d dead letter%s %s", count, "" if count == 1 else "s", limit)
            if self.on_trimmed is not None:
                try:
                    self.on_trimmed(count, bound)
                except Exception as exc:  # a counter's bug must not stop the worker
                    _log.error("on_trimmed raised %s", describe(exc))

    async def _bury(self, entry: Entry, reason: str) -> None:
        trimmed = await self._settle(partial(self.queue.bury, entry, reason), entry, "dead-letter")
        if trimmed is not None:
            self._report_trimmed(trimmed)

    async def _process(self, entry: Entry) -> None:
        try:
            await self._attempts(entry)
        except anyio.get_cancelled_exc_class():
            _log.warning("entry %s was cut short; it stays pending for other workers", entry.id)
            raise
        finally:
            del self._held[entry.id]
            assert self._changed is not None
            self._changed.set()

    async def _attempts(self, entry: Entry) -> None:
        while True:
            if entry.attempt > self.max_attempts:
                self.counts["dead"] += 1
                await self._bury(entry, ABANDONED)
                _log.error(
                    "entry %s dead-lettered: its workers died on it %d times",
                    entry.id,
                    self.max_attempts,
                )
                return
            outcome, reason = await self._run_once(entry)
            if outcome == JobOutcome.DONE:
                self.counts["done"] += 1
                await self._settle(partial(self.queue.ack, [entry.id]), entry, "acknowledge")
                return
            if outcome == UNREADABLE:
                self.counts["dead"] += 1
                await self._bury(entry, reason)
                _log.error(
                    "entry %s dead-lettered at once: %s; `voicehooks queue requeue` runs it "
                    "again once this worker can read it",
                    entry.id,
                    reason,
                )
                return
            self.counts["failed"] += 1
            if entry.attempt >= self.max_attempts:
                self.counts["dead"] += 1
                await self._bury(entry, reason)
                _log.error(
                    "entry %s dead-lettered after %d attempts (%s); `voicehooks queue dead` "
                    "lists it, `voicehooks queue requeue` runs it again",
                    entry.id,
                    entry.attempt,
                    reason,
                )
                return
            delay = min(
                self.retry_delay_seconds * 2 ** (entry.attempt - 1),
                self.max_retry_delay_seconds,
            )
            _log.warning(
                "entry %s attempt %d/%d %s; retrying in %.1f s",
                entry.id,
                entry.attempt,
                self.max_attempts,
                reason,
                delay,
            )
            await anyio.sleep(delay)
            try:
                again = await self.queue.retry(self.consumer, entry)
            except QueueError as exc:
                _log.warning("entry %s: cannot count a retry (%s); left pending", entry.id, exc)
                return  # another worker takes it over once it is idle
            if again is None:
                return  # acknowledged or deleted elsewhere meanwhile
            self.counts["retried"] += 1
            entry = again

    async def _run_once(self, entry: Entry) -> tuple[str, str]:
        started = time.perf_counter()
        try:
            run = await self.run(entry)
        except UnreadableJob as exc:
            return UNREADABLE, f"{UNREADABLE}: {exc}"
        except Exception as exc:  # the callback's own bug: the entry retries like a failure
            _log.error("running entry %s raised %s", entry.id, describe(exc))
            return JobOutcome.FAILED, type(exc).__qualname__
        milliseconds = (time.perf_counter() - started) * 1000
        ended = (
            run.outcome if run.failure in ("", run.outcome) else f"{run.outcome} ({run.failure})"
        )
        _log.info(
            "job %s call=%s %s attempt %d: %s %.1fms",
            run.event_type,
            masked(run.call_id),
            run.name,
            entry.attempt,
            ended,
            milliseconds,
            extra={
                "event": run.event_type,
                "call_id": masked(run.call_id),
                "handler": run.name,
                "attempt": entry.attempt,
                "outcome": run.outcome,
                "duration_ms": round(milliseconds, 1),
            },
        )
        return run.outcome, run.failure or run.outcome

    async def _settle(
        self, operation: Callable[[], Awaitable[T]], entry: Entry, what: str
    ) -> T | None:
        # The handler's work is done: keep trying through a short Redis outage (a restart),
        # for as long as the entry would stay ours. Past that it stays pending, is taken over,
        # and the duplicate store recognises it as done (see ``voicehooks.work.durable``).
        delay = 0.1
        deadline = time.monotonic() + self.claim_idle_seconds
        while True:
            try:
                return await operation()
            except QueueError as exc:
                if time.monotonic() + delay > deadline:
                    _log.warning(
                        "entry %s: could not %s (%s); it stays pending", entry.id, what, exc
                    )
                    return None
            await anyio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _wait_for_change(self) -> None:
        assert self._changed is not None
        await self._changed.wait()
        self._changed = anyio.Event()
