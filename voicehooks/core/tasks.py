"""One owner for the tasks that outlive the code that started them, and one drain.

Background jobs (``voicehooks.work.runner``), slow tools that go on after their interim answer
(``voicehooks.live.interim``), the reconciliation sweep and a durable worker's entries all run
as tasks of the app's ``TaskOwner``. There are two kinds:

* **work** (``spawn``): a piece of work that ends by itself. Shutdown waits for it.
* **services** (``spawn_service``): a loop that never ends by itself (a sweep, a refresher).
  Shutdown cancels it once the work is done, so a service keeps running while work drains.

``drain`` waits for the work until one deadline, ``grace_seconds`` after the first call, then
cancels what is left and the services. Every kind of work shares that one deadline, so a
shutdown waits at most ``grace_seconds`` in all, and a second ``drain`` (the worker's, then
the lifespan's) waits no longer. Each piece of work names itself in the log when it is cut
short (it knows what it was); the owner logs how many it waited for and cut.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar

import anyio

__all__ = ["EAGER", "TaskOwner"]

_log = logging.getLogger("voicehooks")

T = TypeVar("T")

EAGER: Final = sys.version_info >= (3, 12)
"""Whether tasks can start eagerly (Python 3.12+): ``spawn(..., eager=True)`` then does."""


class TaskOwner:
    """Owns tasks while it is open; see the module docstring.

    Args:
        grace_seconds: How long shutdown waits for work, in all.
    """

    def __init__(self, grace_seconds: float) -> None:
        self.grace_seconds = grace_seconds
        self.is_open = False
        self._work: set[asyncio.Task[Any]] = set()
        self._services: set[asyncio.Task[Any]] = set()
        self._idle: anyio.Event | None = None
        self._deadline: float | None = None

    def __len__(self) -> int:
        return len(self._work)

    def spawn(self, coroutine: Coroutine[Any, Any, T], *, eager: bool = False) -> asyncio.Task[T]:
        """Start ``coroutine`` as owned work.

        ``eager`` starts it inside this call on Python 3.12+, so that work that finishes
        without suspending never waits for a turn of the loop (and is never owned at all).
        """
        task = _start(coroutine, eager)
        if not task.done():
            self._work.add(task)
            task.add_done_callback(self._forget)
        return task

    def spawn_service(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Start a loop that runs until the drain cancels it, after the work."""
        task = _start(coroutine, False)
        self._services.add(task)
        task.add_done_callback(self._services.discard)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._work.discard(task)
        if not self._work and self._idle is not None:
            self._idle.set()

    @asynccontextmanager
    async def owning(self) -> AsyncIterator[None]:
        """Be open for the block (the app's lifespan); drain on the way out."""
        self.is_open = True
        self._deadline = None
        try:
            yield
        finally:
            self.is_open = False
            await self.drain()

    async def drain(self) -> None:
        """Wait for the work until the shared deadline, then cancel it and the services."""
        loop = asyncio.get_running_loop()
        if self._deadline is None:
            self._deadline = loop.time() + self.grace_seconds
            if self._work:
                _log.info(
                    "shutdown: waiting up to %.1f s for %d background task(s)",
                    self.grace_seconds,
                    len(self._work),
                )
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(max(self._deadline - loop.time(), 0.0)):
                while self._work:
                    self._idle = anyio.Event()
                    await self._idle.wait()
            left = list(self._work)
            if left:
                _log.warning(
                    "shutdown: %d background task(s) still running after the %.1f s grace "
                    "period; cancelling them",
                    len(left),
                    self.grace_seconds,
                )
            tasks = [*left, *self._services]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks)


def _start(coroutine: Coroutine[Any, Any, T], eager: bool) -> asyncio.Task[T]:
    loop = asyncio.get_running_loop()
    if eager and EAGER:  # pragma: no cover - this machine's CI runs 3.11 in full
        return asyncio.Task(coroutine, loop=loop, eager_start=True)  # type: ignore[call-arg,unused-ignore]
    return loop.create_task(coroutine)
