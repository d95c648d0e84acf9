"""Durable mode: the receiver's half (queue a delivery's jobs) and the worker's (run them).

With a queue (``VOICEHOOKS_QUEUE_URL`` or ``VoiceHooks(queue=...)``) the receiver runs no
after-the-answer work. Once a delivery is verified and decoded and its tools have answered,
``enqueue_jobs`` adds one entry per job to the stream (one round trip for all of them), and
only then is the answer sent. A ``voicehooks worker`` of the same app rebuilds each job from
its entry (the original body, decoded again; the target; the trace carrier) and runs it with
``Dispatcher.run_job``, so injection, deadlines, error hooks and observers are the same as in
the receiver.

**What "once" means.** An entry is acknowledged only after its job finished, so every
accepted job runs *at least* once. When a job finishes, the worker marks it done in the app's
duplicate store (key ``job:<delivery id>:<target>``) before acknowledging it, and a
redelivered entry whose mark exists is acknowledged without running. What remains is a job
whose worker died (or lost Redis) after the handler's side effect and before the mark: it runs
again, with the same ``CallContext.delivery_id`` and a higher ``attempt``. A handler whose
side effect must happen once keys it on ``delivery_id`` (an upsert, an idempotency key).
Marks live as long as ``dedupe_ttl_seconds``; workers on several hosts share them only through
a ``RedisStore`` (``VOICEHOOKS_REDIS_URL``, which defaults to the queue's Redis).

**When Redis cannot take the entries**, ``queue_failure`` decides: ``"process"`` (the
default) runs them in this process as if there were no queue, with an error in the log;
``"reject"`` answers 503 so that a sender that retries delivers again later. A full queue
(``QueueFull``) is a 503 with ``Retry-After`` whatever the policy: at its bound the backlog
is the problem, and this process is the wrong place to take it on. The exception is a
``tool-calls`` delivery: its tools have answered a live call, so its fire-and-forget jobs
run in this process rather than lose those answers to a 503.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Final, Literal, TypeAlias

import anyio
import msgspec

from voicehooks.core.events import Event, ToolCalls, decode_delivery
from voicehooks.core.exceptions import QueueError, QueueFull, Unavailable
from voicehooks.core.identity import event_key
from voicehooks.core.records import JobOutcome
from voicehooks.state.dedupe import Deduplicator
from voicehooks.state.stores import DeliveryStore

from .background import Job
from .queue import QUEUE_URL_ENV, Entry, RedisQueue
from .worker import Result

if TYPE_CHECKING:
    from voicehooks.app import VoiceHooks

__all__ = [
    "JobEntry",
    "QueueFailure",
    "QueuedJobs",
    "close_queue",
    "decode_entry",
    "default_queue",
    "encode_entry",
    "enqueue_jobs",
    "job_key",
    "open_queue",
]

_log = logging.getLogger("voicehooks")

QueueFailure: TypeAlias = Literal["process", "reject"]
"""What to do with a delivery's jobs when Redis cannot take them."""

FULL_RETRY_AFTER_SECONDS: Final = 10
_DONE: Final = b"done"


class JobEntry(msgspec.Struct, array_like=True, frozen=True):
    """What a worker needs to rebuild one job: the stream entry's only field, as msgpack.

    Attributes:
        body: The delivery's original body, the exact bytes whose signature was verified;
            the worker decodes it again with ``events.decode_delivery``.
        target: ``"handler:<module:qualname>"`` or ``"tool:<tool call id>"``.
        trace: The delivery's trace carrier (W3C ``traceparent``), possibly empty.
        enqueued_at: Unix time the receiver added it.
        is_replay: The delivery was replayed from the development inspector.
    """

    body: bytes
    target: str
    trace: dict[str, str] = {}
    enqueued_at: float = 0.0
    is_replay: bool = False


_encode_entry = msgspec.msgpack.Encoder().encode
_decode_entry = msgspec.msgpack.Decoder(JobEntry).decode


def encode_entry(entry: JobEntry) -> bytes:
    """The bytes stored in the stream for ``entry``."""
    return _encode_entry(entry)


def decode_entry(data: bytes) -> JobEntry:
    """Inverse of ``encode_entry``.

    Raises:
        msgspec.DecodeError: ``data`` is not an entry (written by something else).
    """
    return _decode_entry(data)


def default_queue() -> RedisQueue | None:
    """``RedisQueue.from_url($VOICEHOOKS_QUEUE_URL)`` if that is set, else ``None``."""
    url = os.environ.get(QUEUE_URL_ENV, "").strip()
    return RedisQueue.from_url(url) if url else None


async def open_queue(queue: RedisQueue) -> None:
    """Connect at startup; a queue that is down is logged, and deliveries then meet it as
    ``queue_failure`` says (the app starts all the same, as with the store)."""
    try:
        await queue.open()
    except QueueError as exc:
        _log.error("the durable job queue is not ready at startup: %s", exc)
    else:
        _log.info("durable mode: after-the-answer work goes to the Redis stream %s", queue.stream)


async def close_queue(queue: RedisQueue) -> None:
    """Close the client at shutdown, shielded and bounded."""
    with anyio.move_on_after(2.0, shield=True):
        try:
            await queue.aclose()
        except Exception as exc:
            _log.warning("closing the durable job queue failed: %s", exc)


def job_key(job: Job) -> str:
    """The duplicate-store key that marks ``job`` done."""
    return f"job:{job.delivery_id}:{job.target}"


async def enqueue_jobs(
    queue: RedisQueue, jobs: Sequence[Job], failure: QueueFailure, once: Deduplicator | None
) -> list[Job]:
    """Add ``jobs`` (one delivery's) to ``queue``; return those to run in this process instead.

    That is none when they are in Redis, and all of them when Redis failed and either
    ``failure`` is ``"process"`` or the delivery is a ``tool-calls`` (its tools have answered
    a live call already: a 503 now would lose the answers, so its fire-and-forget jobs run
    here). An informational delivery that is refused is released from the duplicate store, so
    that its redelivery is not taken for a duplicate.

    Raises:
        Unavailable: The queue is full, or Redis failed and ``failure`` is ``"reject"``.
    """
    now = time.time()
    entries = [
        encode_entry(JobEntry(_body(job.event), job.target, dict(job.trace), now, job.is_replay))
        for job in jobs
    ]
    event = jobs[0].event
    live = type(event) is ToolCalls
    try:
        await queue.enqueue(entries)
    except QueueFull as exc:
        if live:
            _log.error("%s; running the fire-and-forget tools of this call here", exc)
            return list(jobs)
        _log.warning("refused 503: %s", exc)
        await _release(once, event)
        raise Unavailable(
            "the job queue is full; deliver again later",
            retry_after_seconds=FULL_RETRY_AFTER_SECONDS,
        ) from None
    except QueueError as exc:
        if failure == "reject" and not live:
            _log.error("the job queue is unavailable (%s); refused 503", exc)
            await _release(once, event)
            raise Unavailable("the job queue is unavailable; deliver again later") from None
        _log.error(
            "the job queue is unavailable (%s); running %d job(s) of this delivery in this "
            "process: a crash before they finish loses them",
            exc,
            len(jobs),
        )
        return list(jobs)
    return []


def _body(event: Event) -> bytes:
    """The bytes the delivery arrived as; an event built in code is encoded as a delivery."""
    body: bytes | None = event.__dict__.get("_body")
    return body if body is not None else msgspec.json.encode({"message": event})


async def _release(once: Deduplicator | None, event: Event) -> None:
    if once is not None:
        try:
            await once.store.release(event_key(event))
        except Exception as exc:  # the store's own trouble; its claim expires in time
            _log.warning("releasing a refused delivery's claim failed: %s", exc)


class QueuedJobs:
    """The worker's ``run`` callback: rebuild a job from its entry and run it in ``app``.

    A job marked done in the duplicate store is acknowledged without running (see the module
    docstring for what that guarantees). An entry that cannot be decoded raises, and so ends
    in the dead letters after its attempts. Given the worker's ``max_attempts``, observers
    see a failed run as ``JobOutcome.RETRYING`` or, the last time, ``JobOutcome.DEAD``.
    """

    def __init__(self, app: VoiceHooks, *, max_attempts: int | None = None) -> None:
        self.app = app
        self.max_attempts = max_attempts  # the worker's, so observers see RETRYING or DEAD
        if all(hook.function is not _note_failure for hook in app.error_hooks):
            app.add_error_hook(_note_failure)  # the exception's type, for the dead letters

    async def __call__(self, entry: Entry) -> Result:
        """Run ``entry``'s job once; return its outcome and, for a failure, the reason."""
        data = decode_entry(entry.data)
        job = Job(decode_delivery(data.body), data.target, data.trace, data.is_replay)
        dispatcher = self.app.dispatcher
        once = dispatcher.deduplicator
        key = job_key(job)
        if once is not None and await _is_done(once.store, key):
            _log.info("entry %s: %s done before; acknowledged", entry.id, data.target)
            return Result(JobOutcome.DONE, "")
        failures: list[str] = []
        token = _failures.set(failures)
        try:
            left = None if self.max_attempts is None else self.max_attempts - entry.attempt
            outcome = await dispatcher.run_job(job, entry.attempt, left)
        finally:
            _failures.reset(token)
        if outcome == JobOutcome.DONE and once is not None:
            try:
                await once.store.put_result(key, _DONE, once.ttl_seconds)
            except Exception as exc:  # the next redelivery, if any, runs it again
                _log.warning("entry %s: could not mark it done (%s)", entry.id, exc)
        return Result(outcome, failures[-1] if failures else outcome)


# Where the error hook below leaves the type of the exception a job raised: a list owned by
# the run that set it (a context variable is copied into tasks and threads; the list is not).
_failures: ContextVar[list[str] | None] = ContextVar("voicehooks_job_failures", default=None)


async def _note_failure(exc: BaseException, event: Event) -> None:
    failures = _failures.get()
    if failures is not None:
        failures.append(type(exc).__qualname__)


async def _is_done(store: DeliveryStore, key: str) -> bool:
    try:
        return await store.wait_result(key, 0.05) is not None
    except Exception as exc:  # unknown: run it (at least once beats at most once)
        _log.warning("the duplicate store cannot say whether %s ran (%s); running it", key, exc)
        return False
