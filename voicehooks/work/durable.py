"""Durable mode: the receiver's half (``DurableSink``) and the worker's (``QueuedJobs``).

With a queue (``VOICEHOOKS_QUEUE_URL`` or ``Background(queue=...)``) the receiver runs no
after-the-answer work. ``DurableSink`` is its ``JobSink``: it admits an informational delivery
only while the stream has room (one ``XLEN``, before the duplicate claim and before any
``run_before_answer`` handler), and adds the delivery's jobs to the stream in one round trip
before the answer is sent. A ``voicehooks worker`` of the same app rebuilds each job from its
entry (``decode_job``: the original body, decoded again; the target; the trace carrier) and
runs it with ``Dispatcher.run_job``, so injection, deadlines, error hooks and observers are the
same as in the receiver.

**What "once" means.** An entry is acknowledged only after its job finished, so every
accepted job runs *at least* once. When a job finishes, the worker marks it done in the app's
duplicate store (key ``job:<delivery id>:<target>``) before acknowledging it, and an entry
whose mark exists is acknowledged without running. What remains is a job whose worker died
(or lost Redis) after the handler's side effect and before the mark: it runs again, with the
same ``CallContext.delivery_id`` and a higher ``attempt``. A handler whose side effect must
happen once keys it on ``delivery_id`` (an upsert, an idempotency key). Marks live as long as
the duplicate store keeps deliveries; workers on several hosts share them only through a
``RedisStore`` (``VOICEHOOKS_REDIS_URL``, which defaults to the queue's Redis).

**When Redis cannot take the entries**, ``queue_failure`` decides: ``"process"`` (the
default) runs them in this process, with an error in the log; ``"reject"`` answers 503 so that
a sender that retries delivers again later. A full queue is a 503 with ``Retry-After``
whatever the policy: at its bound the backlog is the problem, and this process is the wrong
place to take it on. The exception is a ``tool-calls`` delivery: its tools have answered a
live call, so its fire-and-forget jobs run in this process rather than lose those answers.

A failed ``XADD`` is ambiguous: Redis may have added the entries before the error (a timeout
on the reply). Jobs that run here after such an error are first marked in the duplicate store
as taken, so a worker that later finds their entries acknowledges them without running them:
such a job runs once, here, and a crash of this process before it finishes loses it (the log
line says so). Where the mark cannot be written either, the store being down too, a worker
may run the job a second time; the log names that case.

**At rest**, an entry is sealed with the app's queue key when it has one
(``voicehooks.work.sealing``): ``DurableSink`` seals, ``QueuedJobs`` opens, the queue holds
sealed bytes only. Without a key the app says at startup, once, that the entries are in
clear text. An entry no attempt can read (not a job, or sealed with a key this worker lacks,
or tampered with) is dead-lettered at once with the reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Final, Literal, TypeAlias

import anyio
import msgspec

from voicehooks.core import environment
from voicehooks.core.events import Event, ToolCalls
from voicehooks.core.exceptions import ConfigurationError, QueueError, QueueFull, Unavailable
from voicehooks.core.logs import duration
from voicehooks.core.records import JobOutcome, JobRun
from voicehooks.state.dedupe import Deduplicator
from voicehooks.state.pgpool import is_postgres_url
from voicehooks.state.stores import DeliveryStore

from .jobs import Job, RunJob, UnreadableJob, decode_job, encode_job, job_key
from .queue import MAX_DEAD, MAX_DEAD_AGE_SECONDS, Entry, RedisQueue, WorkQueue
from .runner import BackgroundRunner
from .sealing import Sealer, sealed_with

__all__ = [
    "DurableSink",
    "QueueFailure",
    "QueuedJobs",
    "dead_letter_bounds",
    "default_queue",
    "open_job",
    "queue_from_url",
]

_log = logging.getLogger("voicehooks")

QueueFailure: TypeAlias = Literal["process", "reject"]
"""What to do with a delivery's jobs when Redis cannot take them."""

FULL_RETRY_AFTER_SECONDS: Final = 10
_DONE: Final = b"done"
_TAKEN_HERE: Final = b"taken by a receiver"


def default_queue(**options: Any) -> WorkQueue | None:
    """``queue_from_url($VOICEHOOKS_QUEUE_URL)`` if that is set, else ``None``; its dead
    letters bounded by ``VOICEHOOKS_QUEUE_MAX_DEAD`` and ``VOICEHOOKS_QUEUE_MAX_DEAD_AGE_SECONDS``,
    and on Redis with ``min_replicas_acks`` and ``replica_ack_timeout_seconds`` from
    ``$VOICEHOOKS_QUEUE_MIN_REPLICAS_ACKS`` and ``$VOICEHOOKS_QUEUE_REPLICA_ACK_TIMEOUT_SECONDS``;
    ``options`` are more of the queue's constructor's (``voicehooks queue``'s stream and group).

    Raises:
        ConfigurationError: A bound is not a positive number, or a replica option not a number.
    """
    url = environment.read(environment.QUEUE_URL)
    if not url:
        return None
    max_dead, max_dead_age_seconds = dead_letter_bounds()
    chosen: dict[str, Any] = {"max_dead": max_dead, "max_dead_age_seconds": max_dead_age_seconds}
    if not is_postgres_url(url):
        chosen.update(_replica_options())
    return queue_from_url(url, **chosen, **options)


def queue_from_url(url: str, **options: Any) -> WorkQueue:
    """The one place a URL becomes a queue: a ``PostgresQueue`` for ``postgresql://`` or
    ``postgres://``, else a ``RedisQueue``; ``options`` are its constructor's.

    Raises:
        ConfigurationError: The URL is neither, or the extra its server needs is missing.
    """
    if is_postgres_url(url):
        from .pgqueue import PostgresQueue

        return PostgresQueue.from_url(url, **options)
    return RedisQueue.from_url(url, **options)


def _replica_options() -> dict[str, Any]:
    acks = environment.read(environment.QUEUE_MIN_REPLICAS_ACKS) or "0"
    timeout = environment.read(environment.QUEUE_REPLICA_ACK_TIMEOUT_SECONDS) or "0.5"
    try:
        return {"min_replicas_acks": int(acks), "replica_ack_timeout_seconds": float(timeout)}
    except ValueError:
        raise ConfigurationError(
            f"{environment.QUEUE_MIN_REPLICAS_ACKS} must be a whole number and "
            f"{environment.QUEUE_REPLICA_ACK_TIMEOUT_SECONDS} a number of seconds"
        ) from None


def dead_letter_bounds() -> tuple[int, float]:
    """The dead-letter bounds of the environment (count, age in seconds); the queue's
    defaults where unset.

    Raises:
        ConfigurationError: A bound is not a positive number.
    """
    count = environment.positive_number(environment.QUEUE_MAX_DEAD, MAX_DEAD)
    age = environment.positive_number(environment.QUEUE_MAX_DEAD_AGE_SECONDS, MAX_DEAD_AGE_SECONDS)
    return max(1, int(count)), age


def open_job(sealer: Sealer, data: bytes) -> tuple[Job, float]:
    """The job of a queue entry's bytes and when it was enqueued: opened, then decoded.

    Raises:
        UnreadableJob: The bytes are not a job, or cannot be opened (``Sealer.open``).
    """
    try:
        return decode_job(sealer.open(data))
    except msgspec.DecodeError:
        raise UnreadableJob("not a voicehooks job") from None


class DurableSink:
    """The durable ``JobSink``: a delivery's jobs are in Redis before its answer.

    Args:
        queue: The stream.
        local: This process's runner, for the jobs that must run here after all.
        failure: ``"process"`` or ``"reject"`` when Redis fails (see the module docstring).
        once: The app's duplicate suppression, whose store keeps the done marks.
        sealer: Seals each entry (``voicehooks.work.sealing``); one without a key seals none.
    """

    def __init__(
        self,
        queue: WorkQueue,
        local: BackgroundRunner,
        *,
        failure: QueueFailure,
        once: Deduplicator | None,
        sealer: Sealer | None = None,
    ) -> None:
        self.queue = queue
        self.local = local
        self.failure = failure
        self.once = once
        self.sealer = sealer if sealer is not None else Sealer()

    async def open(self) -> None:
        """Connect at startup; a queue that is down is logged, and deliveries then meet it as
        ``queue_failure`` says (the app starts all the same, as with the store). Without a
        queue key, say once that the entries are in clear text."""
        if not self.sealer.sealing:
            _log.warning(
                "the durable queue holds reports, transcripts and tool arguments in clear text "
                "until a worker handles them, and as dead letters for up to %s: set %s to "
                "seal them (`voicehooks queue new-key` prints a key)",
                duration(self.queue.max_dead_age_seconds),
                environment.QUEUE_KEY,
            )
        try:
            await self.queue.open()
        except QueueError as exc:
            _log.error("the durable job queue is not ready at startup: %s", exc)
        else:
            _log.info("durable mode: after-the-answer work goes to the queue %s", self.queue.stream)

    async def aclose(self) -> None:
        """Close the client at shutdown, shielded and bounded."""
        with anyio.move_on_after(2.0, shield=True):
            try:
                await self.queue.aclose()
            except Exception as exc:
                _log.warning("closing the durable job queue failed: %s", exc)

    async def admit(self, event: Event) -> None:
        """Refuse an informational delivery unless the stream has room or, with
        ``queue_failure="process"``, this process does (``JobSink.admit``).

        A ``tool-calls`` delivery is never asked to wait on Redis: its answers are for a live
        call, and its jobs run here if Redis cannot take them.

        Raises:
            Unavailable: The queue is full, or Redis failed and the policy is ``"reject"``.
        """
        if type(event) is ToolCalls:
            return
        try:
            await self.queue.check_room(1)
        except QueueFull as exc:
            raise _full(exc) from None
        except QueueError as exc:
            if self.failure == "reject":
                raise _unavailable(exc) from None
            await self.local.admit(event)  # its jobs will run here: this process's bound

    async def accept(self, jobs: Sequence[Job]) -> Sequence[Job]:
        """Add ``jobs`` (one delivery's) to the stream; return those to run here instead.

        That is none when they are in Redis, and all of them when Redis failed and either
        the policy is ``"process"`` or the delivery is a ``tool-calls``.

        Raises:
            Unavailable: The queue is full, or Redis failed and the policy is ``"reject"``;
                nothing was added.
        """
        now = time.time()
        live = type(jobs[0].event) is ToolCalls
        seal = self.sealer.seal
        try:
            await self.queue.enqueue([seal(encode_job(job, now)) for job in jobs])
        except QueueFull as exc:
            if not live:
                raise _full(exc) from None
            _log.error("%s; running the fire-and-forget tools of this call here", exc)
            return jobs  # the script added none of them: nothing to mark
        except QueueError as exc:
            if self.failure == "reject" and not live:
                raise _unavailable(exc) from None
            _log.error(
                "the job queue is unavailable (%s); running %d job(s) of this delivery in this "
                "process: a crash before they finish loses them",
                exc,
                len(jobs),
            )
            await self._mark_taken(jobs)
            return jobs
        return ()

    async def _mark_taken(self, jobs: Sequence[Job]) -> None:
        # The XADD may have gone through: a worker that finds these entries must not run them.
        if self.once is None:
            return
        store, ttl = self.once.store, self.once.ttl_seconds
        try:
            for job in jobs:
                await store.put_result(job_key(job), _TAKEN_HERE, ttl)
        except Exception as exc:  # the store's own trouble, most likely the same outage
            _log.error(
                "could not mark %d job(s) as taken by this process (%s): if Redis did add "
                "their entries, a worker may run them a second time",
                len(jobs),
                exc,
            )


def _full(exc: QueueFull) -> Unavailable:
    _log.warning("refused 503: %s", exc)
    return Unavailable(
        "the job queue is full; deliver again later", retry_after_seconds=FULL_RETRY_AFTER_SECONDS
    )


def _unavailable(exc: QueueError) -> Unavailable:
    _log.error("the job queue is unavailable (%s); refused 503", exc)
    return Unavailable("the job queue is unavailable; deliver again later")


class QueuedJobs:
    """The worker's ``run`` callback: rebuild a job from its entry and run it.

    A job marked done (or taken by a receiver) in the duplicate store is acknowledged without
    running (see the module docstring for what that guarantees). An entry that cannot be
    opened or decoded raises ``UnreadableJob``, which the worker dead-letters at once. Given
    the worker's ``max_attempts``, observers see a failed run as ``JobOutcome.RETRYING`` or,
    the last time, ``JobOutcome.DEAD``.

    Args:
        run_job: How to run a job (the app's ``dispatcher.run_job``).
        once: The app's duplicate suppression, whose store keeps the done marks.
        max_attempts: The worker's, so observers see ``RETRYING`` or ``DEAD``.
        sealer: Opens sealed entries (the app's: ``app.durable.sealer``); one without a key
            reads plain entries only.
    """

    def __init__(
        self,
        run_job: RunJob,
        once: Deduplicator | None,
        *,
        max_attempts: int | None = None,
        sealer: Sealer | None = None,
    ) -> None:
        self.run_job = run_job
        self.once = once
        self.max_attempts = max_attempts
        self.sealer = sealer if sealer is not None else Sealer()
        self._plain_seen = False

    async def __call__(self, entry: Entry) -> JobRun:
        """Run ``entry``'s job once; return how it ended.

        Raises:
            UnreadableJob: No attempt can read the entry (see ``open_job``).
        """
        job, _ = open_job(self.sealer, entry.data)
        if self.sealer.sealing and not self._plain_seen and sealed_with(entry.data) is None:
            self._plain_seen = True
            _log.warning(
                "entry %s is not sealed: written before the queue key was set, or by a "
                "receiver without it; it runs all the same (further ones are not logged)",
                entry.id,
            )
        once = self.once
        key = job_key(job)
        if once is not None and await _is_done(once.store, key):
            _log.info("entry %s: %s done before; acknowledged", entry.id, job.target)
            run = JobRun(
                job.event.type, job.event.call.id, job.target, "", entry.attempt, job.trace
            )
            run.end(JobOutcome.DONE)
            return run
        left = None if self.max_attempts is None else self.max_attempts - entry.attempt
        run = await self.run_job(job, entry.attempt, left)
        if run.outcome == JobOutcome.DONE and once is not None:
            try:
                await once.store.put_result(key, _DONE, once.ttl_seconds)
            except Exception as exc:  # the next redelivery, if any, runs it again
                _log.warning("entry %s: could not mark it done (%s)", entry.id, exc)
        return run


async def _is_done(store: DeliveryStore, key: str) -> bool:
    try:
        return await store.wait_result(key, 0.05) is not None
    except Exception as exc:  # unknown: run it (at least once beats at most once)
        _log.warning("the duplicate store cannot say whether %s ran (%s); running it", key, exc)
        return False
