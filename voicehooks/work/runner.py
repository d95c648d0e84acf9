"""Work after the answer in this process, with an owner and a bound: ``BackgroundRunner``.

The runner is the in-process ``JobSink`` (``voicehooks.work.jobs``), and it runs whatever jobs
the durable sink hands back to this process. The dispatcher knows how to run a job; the runner
decides when, and sees it to its end:

* **Bounded.** At most ``max_queued`` jobs and ``max_queued_bytes`` of their bodies wait or
  run at once. Past that, ``admit`` refuses a new informational delivery with 503 and
  ``Retry-After`` before anything is accepted, so nothing is acknowledged that could then be
  lost to memory pressure. A sender that does not retry loses that event: the trade-off is
  an honest refusal now instead of a silent loss later (see docs/concepts/background-work.md).
  The bound is checked when a delivery starts, so concurrent requests may pass it by at most
  their number.
* **Owned.** While the app's lifespan runs, jobs run as tasks of the app's ``TaskOwner``,
  at most ``max_concurrency`` at a time; at shutdown the owner waits its grace period for
  them (and every other background task), then cancels the rest. Without a lifespan (a
  mounted app whose parent never runs it) nothing outlives a request to own a job, so the
  request runs its jobs itself, one after the other, after its answer has been sent.
* **Accounted for.** Every job accepted ends as done, failed (logged by the dispatcher) or
  cut (named in the log by event, call and handler), with or without a lifespan, whatever is
  cancelled. The runner logs the cut jobs that never started; the dispatcher logs the rest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import anyio

from voicehooks.core.events import Event
from voicehooks.core.exceptions import Unavailable
from voicehooks.core.logs import masked
from voicehooks.core.tasks import TaskOwner

from .jobs import Job, RunJob, body_size

__all__ = ["BackgroundRunner"]

_log = logging.getLogger("voicehooks")


class BackgroundRunner:
    """Runs jobs after the answer: bounded, owned, drained at shutdown.

    Args:
        tasks: The app's task owner: jobs run as its tasks while it is open.
        max_concurrency: How many jobs may run at once; the rest wait their turn.
        max_queued: How many jobs may wait or run at once before ``admit`` refuses.
        max_queued_bytes: How many body bytes they may hold before ``admit`` refuses.
        retry_after_seconds: The ``Retry-After`` of a refusal.
    """

    def __init__(
        self,
        tasks: TaskOwner,
        *,
        max_concurrency: int,
        max_queued: int,
        max_queued_bytes: int,
        retry_after_seconds: int = 5,
    ) -> None:
        self.tasks = tasks
        self.max_concurrency = max_concurrency
        self.max_queued = max_queued
        self.max_queued_bytes = max_queued_bytes
        self.retry_after_seconds = retry_after_seconds
        self._slots: asyncio.Semaphore | None = None
        self._in_flight: dict[object, Job] = {}
        self._sizes: dict[object, int] = {}
        self._bytes = 0
        self._refusing = False

    @property
    def in_flight(self) -> list[tuple[str, str]]:
        """``(event type, call id)`` of every job submitted and not yet finished."""
        return [(job.event.type, job.event.call.id) for job in self._in_flight.values()]

    async def admit(self, event: Event) -> None:
        """Refuse ``event``'s delivery if its jobs would not fit (``JobSink.admit``).

        Raises:
            Unavailable: The queue is full (503 with ``Retry-After``).
        """
        size = body_size(event)
        if len(self._in_flight) < self.max_queued and self._bytes + size <= self.max_queued_bytes:
            if self._refusing:
                self._refusing = False
                _log.warning("background queue has room again; accepting deliveries")
            return
        if not self._refusing:  # one line per episode: a full queue must not flood the log
            self._refusing = True
            _log.warning(
                "background queue is full (%d jobs, %d bytes; limits %d and %d): refusing "
                "informational deliveries with 503 until it drains",
                len(self._in_flight),
                self._bytes,
                self.max_queued,
                self.max_queued_bytes,
            )
        raise Unavailable(
            "the receiver's background queue is full; deliver again later",
            retry_after_seconds=self.retry_after_seconds,
        )

    async def accept(self, jobs: Sequence[Job]) -> Sequence[Job]:
        """Every job runs here, after the answer (``JobSink.accept``)."""
        return jobs

    async def submit(self, jobs: Sequence[Job], run: RunJob) -> None:
        """Start ``run(job)`` for each of ``jobs`` in the background if a lifespan owns work,
        else run them right here.

        Callers send their answer before calling this, so "right here" is after the answer.
        Every job is tracked before any runs: if this request is cancelled part way, the jobs
        it did not finish are named in the log as cut.
        """
        tokens = [self._track(job) for job in jobs]
        if self.tasks.is_open:
            for token, job in zip(tokens, jobs, strict=True):
                self.tasks.spawn(self._run(token, job, run))
            return
        for index, (token, job) in enumerate(zip(tokens, jobs, strict=True)):
            try:
                await self._run(token, job, run)
            except BaseException:
                for later_token, later in zip(tokens[index + 1 :], jobs[index + 1 :], strict=True):
                    _cut(later)
                    self._untrack(later_token, later)
                raise

    def _track(self, job: Job) -> object:
        token = object()
        self._in_flight[token] = job
        self._sizes[token] = size = job.size
        self._bytes += size
        return token

    def _untrack(self, token: object, job: Job) -> None:
        del self._in_flight[token]
        self._bytes -= self._sizes.pop(token)

    async def _run(self, token: object, job: Job, run: RunJob) -> None:
        if self._slots is None:  # made in the loop that runs the jobs
            # asyncio's semaphore takes a free slot without anyio's cancellation checkpoint:
            # measured, the background job of a report costs ≈ 1.5 µs less (8.7 -> 7.2 µs).
            self._slots = asyncio.Semaphore(self.max_concurrency)
        started = False
        try:
            async with self._slots:
                started = True
                await run(job)
        except anyio.get_cancelled_exc_class():
            if not started:  # a started job was named by the dispatcher
                _cut(job)
            raise
        finally:
            self._untrack(token, job)


def _cut(job: Job) -> None:
    kind, _, name = job.target.partition(":")
    what = f"{job.event.type} handler {name}" if kind == "handler" else f"tool call {name}"
    _log.error(
        "background %s (call %s) was cut short before it ran", what, masked(job.event.call.id)
    )
