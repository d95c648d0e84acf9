"""Background work with an owner: handlers that run after the answer has been sent.

Informational events (``status-update``, ``end-of-call-report``) and fire-and-forget tools are
acknowledged first and processed afterwards. ``BackgroundRunner`` owns that work:

* While the app's lifespan runs (``voicehooks run``, uvicorn, or a parent app that composes
  ``app.lifespan()``), jobs run as tasks the runner owns. At shutdown the runner waits up to
  ``grace_seconds`` for them, then cancels what is left and logs each cut job by event type
  and call id. Nothing is dropped silently.
* Without a lifespan (a mounted app whose parent never runs it), nothing outlives a request to
  own the job, so it runs in the request's own task after the answer has been sent, where the
  server's own shutdown waits for it.

Either way at most ``max_concurrency`` jobs run at once; the rest wait their turn.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import anyio

from .logs import describe
from .running import on_asyncio

__all__ = ["BackgroundRunner", "Job"]

_log = logging.getLogger("voicehooks")

Job = Callable[[], Awaitable[None]]
"""A unit of background work. It handles and logs its own exceptions."""


class BackgroundRunner:
    """Runs jobs after the answer, bounded, drained at shutdown.

    Args:
        max_concurrency: How many jobs may run at once.
        grace_seconds: How long shutdown waits for jobs in flight before cancelling them.
    """

    def __init__(self, *, max_concurrency: int, grace_seconds: float) -> None:
        self.max_concurrency = max_concurrency
        self.grace_seconds = grace_seconds
        self._spawn: Callable[[Coroutine[Any, Any, None]], None] | None = None
        self._slots: anyio.Semaphore | None = None
        self._in_flight: dict[object, tuple[str, str]] = {}
        self._idle: anyio.Event | None = None

    @property
    def in_flight(self) -> list[tuple[str, str]]:
        """``(event type, call id)`` of every job submitted and not yet finished."""
        return list(self._in_flight.values())

    @property
    def owned(self) -> bool:
        """Whether a lifespan is running, so jobs run as the runner's own tasks."""
        return self._spawn is not None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Own background work for the duration of the block; drain it on exit."""
        if not on_asyncio():
            async with anyio.create_task_group() as group:

                def start(job: Coroutine[Any, Any, None]) -> None:
                    group.start_soon(_await, job)

                async with self._owning(start):
                    yield
                if self._in_flight:
                    group.cancel_scope.cancel()
            return
        # On asyncio the runner keeps plain tasks: an anyio task group's start_soon costs
        # ten times a create_task, once per background handler.
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[None]] = set()

        def spawn(job: Coroutine[Any, Any, None]) -> None:
            task = loop.create_task(job)
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        async with self._owning(spawn):
            yield
        if tasks:
            for task in tasks:
                task.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.wait(tasks)

    @asynccontextmanager
    async def _owning(
        self, spawn: Callable[[Coroutine[Any, Any, None]], None]
    ) -> AsyncIterator[None]:
        self._spawn = spawn
        try:
            yield
        finally:
            self._spawn = None  # from here on, late submissions run in their request
            await self._drain()

    async def _drain(self) -> None:
        if self._in_flight:
            _log.info(
                "shutdown: waiting up to %.1f s for %d background job(s)",
                self.grace_seconds,
                len(self._in_flight),
            )
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(self.grace_seconds):
                while self._in_flight:
                    self._idle = anyio.Event()
                    await self._idle.wait()
        if self._in_flight:
            _log.warning(
                "shutdown: %d background job(s) still running after the %.1f s grace period; "
                "cancelling them",
                len(self._in_flight),
                self.grace_seconds,
            )

    async def submit(self, event_type: str, call_id: str, job: Job) -> None:
        """Start ``job`` in the background if a lifespan owns work, else run it right here.

        Callers send their answer before calling this, so "right here" is after the answer.
        """
        run = self._run(self._track(event_type, call_id), event_type, call_id, job)
        if self._spawn is not None:
            self._spawn(run)
        else:
            await run

    def _track(self, event_type: str, call_id: str) -> object:
        token = object()
        self._in_flight[token] = (event_type, call_id)
        return token

    async def _run(self, token: object, event_type: str, call_id: str, job: Job) -> None:
        if self._slots is None:  # created lazily: anyio primitives want a running event loop
            # fast_acquire: a free slot is taken without a trip through the event loop.
            self._slots = anyio.Semaphore(self.max_concurrency, fast_acquire=True)
        try:
            async with self._slots:
                await job()
        except anyio.get_cancelled_exc_class():
            _log.error("background %s handler for call %s was cut short", event_type, call_id)
            raise
        except Exception as exc:  # a job logs its own errors; this is the last line of defence
            _log.error(
                "background %s job for call %s raised %s", event_type, call_id, describe(exc)
            )
        finally:
            del self._in_flight[token]
            if not self._in_flight and self._idle is not None:
                self._idle.set()


async def _await(job: Coroutine[Any, Any, None]) -> None:
    await job
