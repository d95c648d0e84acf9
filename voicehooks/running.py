"""Running user functions: sync ones in worker threads, async ones eagerly, under deadlines.

Sync functions run in a worker thread through anyio with the app's capacity limiter, never on
the event loop; whether a function is async is decided once, at registration.

On asyncio, async functions start eagerly, the way Python 3.12's eager tasks start: their
first step runs at once in the caller's task. One that answers without ever waiting (a cache
hit, a computation) then costs no timer and no task; arming a timer costs several
microseconds on a busy loop's timer heap, and an anyio task group tens of microseconds. Only
work that suspends gets a deadline and, when several calls run together, tasks.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping, Sequence
from typing import Any

import anyio
import anyio.to_thread

from .logs import describe

__all__ = [
    "call_function",
    "call_with_deadline",
    "is_async_callable",
    "on_asyncio",
    "run_concurrently",
]

_log = logging.getLogger("voicehooks")


def is_async_callable(function: Any) -> bool:
    """Whether calling ``function`` returns an awaitable (sees through ``functools.partial``)."""
    while isinstance(function, functools.partial):
        function = function.func
    if inspect.iscoroutinefunction(function):
        return True
    # A callable object: look at its __call__ method.
    return not inspect.isroutine(function) and inspect.iscoroutinefunction(type(function).__call__)


async def call_function(
    function: Callable[..., Any],
    is_async: bool,
    kwargs: Mapping[str, Any],
    limiter: anyio.CapacityLimiter,
    label: str,
) -> Any:
    """Call a user function: awaited if async, in a worker thread if sync.

    A sync function cannot be interrupted. If the awaiting side is cancelled (a deadline or
    shutdown) the thread is abandoned: it runs to its end, and what it returns or raises then
    is logged and discarded.
    """
    if is_async:
        result: Awaitable[Any] = function(**kwargs)
        return await result
    abandoned = False

    def run() -> Any:
        try:
            value = function(**kwargs)
        except Exception as exc:
            if abandoned:
                _log.error("%s raised after it was abandoned: %s", label, describe(exc))
            raise
        if abandoned:
            _log.warning("%s finished after it was abandoned; its result was discarded", label)
        return value

    try:
        return await anyio.to_thread.run_sync(run, limiter=limiter, abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():
        abandoned = True
        raise


async def call_with_deadline(
    function: Callable[..., Any],
    is_async: bool,
    kwargs: Mapping[str, Any],
    limiter: anyio.CapacityLimiter,
    label: str,
    timeout_seconds: float,
) -> tuple[bool, Any]:
    """Call a user function under a deadline; return ``(True, value)`` or ``(False, None)``.

    On asyncio an async function's first step runs at once, the way Python 3.12's eager tasks
    start: one that answers without ever waiting (a cache hit, a computation) needs no timer,
    and arming one costs several microseconds on a busy loop's timer heap. Only a function
    that suspends gets a deadline, and it is an ``asyncio.timeout`` rather than an anyio
    cancel scope because it is entered after the function's first step: anyio scopes must
    nest strictly, and that step may have opened scopes or task groups of its own.
    """
    if not is_async:
        with anyio.move_on_after(timeout_seconds):
            return True, await call_function(function, False, kwargs, limiter, label)
        return False, None
    if not on_asyncio():  # another anyio backend (trio): the plain structured way
        with anyio.move_on_after(timeout_seconds):
            return True, await function(**kwargs)
        return False, None
    coroutine: Coroutine[Any, Any, Any] = function(**kwargs)
    try:
        suspended_at = coroutine.send(None)
    except StopIteration as finished:
        return True, finished.value
    deadline = asyncio.timeout(timeout_seconds)
    try:
        async with deadline:
            return True, await _Resume(coroutine, suspended_at)
    except TimeoutError:
        if deadline.expired():
            return False, None
        raise  # the function's own TimeoutError


class _Resume:
    """Awaits a coroutine that has already run up to its first suspension.

    It hands what the coroutine yielded to the event loop, then relays what the loop sends or
    throws (a cancellation included) until the coroutine returns: the same protocol ``await``
    follows, picked up one step late.
    """

    __slots__ = ("_coroutine", "_yielded")

    def __init__(self, coroutine: Coroutine[Any, Any, Any], yielded: Any) -> None:
        self._coroutine = coroutine
        self._yielded = yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        coroutine, yielded = self._coroutine, self._yielded
        while True:
            try:
                sent = yield yielded
            except BaseException as thrown:
                try:
                    yielded = coroutine.throw(thrown)
                except StopIteration as finished:
                    return finished.value
            else:
                try:
                    yielded = coroutine.send(sent)
                except StopIteration as finished:
                    return finished.value


async def run_concurrently(work: Sequence[Callable[[], Coroutine[Any, Any, None]]]) -> None:
    """Run every piece of ``work`` concurrently and return when all are done.

    On asyncio they start one after the other in this task, eagerly; from the first one that
    suspends, that one goes on in this task and the rest start as tasks. A request whose tool
    calls all answer at once thus makes no task at all. Work must not raise except to fail the
    whole request: the first exception cancels the rest, as in a task group.
    """
    if not on_asyncio():
        async with anyio.create_task_group() as group:
            for piece in work:
                group.start_soon(piece)
        return
    for index, piece in enumerate(work):
        coroutine = piece()
        try:
            suspended_at = coroutine.send(None)
        except StopIteration:
            continue
        # A coroutine never changes task once started: scopes it opened belong to this one.
        async with asyncio.TaskGroup() as group:
            for later in work[index + 1 :]:
                group.create_task(later())
            await _Resume(coroutine, suspended_at)
        return


def on_asyncio() -> bool:
    """Whether the running event loop is asyncio's (rather than another anyio backend)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # no asyncio loop: anyio runs on another backend
        return False
    return True
