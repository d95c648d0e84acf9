"""Calling user functions: one prepared value per function, one call path, one deadline helper.

Every handler, tool and error hook is held as a ``UserFunction``: the function, whether it is
async (decided once, at registration) and its name for the log. ``call`` returns the awaitable
that runs it: the coroutine itself for an async function, a worker thread for a sync one,
never the event loop.

Threads come from a ``Threads`` pool: a limit of calls at once plus a bound on *abandoned*
threads.
A sync function cannot be interrupted; when its caller stops waiting (a deadline, shutdown)
the thread is abandoned and runs to its end on its own. Such a thread no longer holds a
slot, so without a bound a tool that hangs would take one more thread per call.
Each function therefore counts its abandoned threads, and once it has ``max_abandoned`` of
them a new call raises ``HungThreads`` at once instead of starting another. Live tools and
background handlers use separate pools, so post-call work can never take the threads a
caller is waiting on. Threads in use are at most the sum of the pools' limits plus
``max_abandoned`` per sync function.

``run_hooks`` is the one way the app's hooks (error hooks, undelivered-result hooks) are
called: in turn, each within the same short budget, a failing or slow one logged by name and
never in the way of the next.

``within(timeout, awaitable)`` is the one deadline helper. It starts the awaitable eagerly,
the way Python 3.12's eager tasks start: its first step runs at once in the caller's task. A
function that answers without ever waiting (a cache hit, a computation) then costs no timer;
arming one costs several microseconds on a busy loop's timer heap. Only work that suspends
gets a deadline, and it is an ``asyncio.timeout`` rather than an anyio cancel scope because
it is entered after the first step: anyio scopes must nest strictly, and that step may have
opened scopes or task groups of its own. voicehooks runs on asyncio only (uvicorn's loops).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from types import CoroutineType
from typing import Any, Final

from .logs import describe

__all__ = [
    "HungThreads",
    "Slots",
    "Threads",
    "UserFunction",
    "is_async_callable",
    "run_concurrently",
    "run_hooks",
    "within",
]

_log = logging.getLogger("voicehooks")

_HOOK_BUDGET_SECONDS: Final = 2.0  # error hooks run before the answer a caller waits for


def is_async_callable(function: Any) -> bool:
    """Whether calling ``function`` returns an awaitable (sees through ``functools.partial``)."""
    while isinstance(function, functools.partial):
        function = function.func
    if inspect.iscoroutinefunction(function):
        return True
    # A callable object: look at its __call__ method.
    return not inspect.isroutine(function) and inspect.iscoroutinefunction(type(function).__call__)


class HungThreads(Exception):
    """A sync function already has its limit of abandoned threads still running."""


class Threads:
    """Worker threads for sync user functions: a bound on calls at once and on abandoned threads.

    A call holds one of ``max_threads`` slots while its caller waits for it, and runs on a
    ``ThreadPoolExecutor`` through ``loop.run_in_executor``: the leanest trip asyncio has (a
    third of the Python calls of ``anyio.to_thread``, measured). The slot is given back when
    the caller stops waiting, so an abandoned thread holds a thread but no slot; the
    executor has room for ``max_threads + _ABANDONED_ROOM`` threads, and past that (more hung
    threads than that, across every sync function) new calls wait in the executor's queue
    until a hung one ends, and meet their deadline there.

    Args:
        max_threads: Sync calls running at once; more wait for a slot.
        max_abandoned: Abandoned threads one function may have before it is refused.
    """

    __slots__ = ("_executor", "max_abandoned", "max_threads", "slots")

    def __init__(self, max_threads: int, max_abandoned: int) -> None:
        self.max_threads = max_threads
        self.max_abandoned = max_abandoned
        self.slots = Slots(max_threads)
        self._executor: ThreadPoolExecutor | None = None

    def executor(self) -> ThreadPoolExecutor:
        """The executor, made on first use (and again after ``close``)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                self.max_threads + _ABANDONED_ROOM, thread_name_prefix="voicehooks"
            )
        return self._executor

    def close(self) -> None:
        """Let the idle threads end; running ones (abandoned, or a caller still waiting at
        shutdown) finish on their own. The next call makes a new executor."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)


_ABANDONED_ROOM: Final = 64


class Slots:
    """A counting limit for one event loop at a time, bound to none (an app may serve
    under several loops in turn, as tests do): ``acquire`` waits in arrival order."""

    __slots__ = ("_waiters", "free")

    def __init__(self, count: int) -> None:
        self.free = count
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        """Take a slot, waiting for one if none is free."""
        if self.free > 0 and not self._waiters:
            self.free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot just as the wait was cancelled: pass it on
            else:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        """Give a slot back: to the first waiter, else to the free count."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1


class UserFunction:
    """A handler, tool or error hook prepared once: how to call it and what to call it.

    Args:
        function: The user's function, sync or async.
        name: How the log names it; its ``__qualname__`` when omitted.
    """

    __slots__ = ("abandoned", "function", "is_async", "name")

    def __init__(self, function: Callable[..., Any], name: str | None = None) -> None:
        self.function = function
        self.is_async = is_async_callable(function)
        self.name: str = name or str(getattr(function, "__qualname__", repr(function)))
        self.abandoned = 0  # sync only: threads abandoned by their caller and still running

    def call(self, threads: Threads, /, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, Any]:
        """The coroutine that runs the function with ``args`` and ``kwargs``.

        Raises:
            HungThreads: A sync function has ``threads.max_abandoned`` abandoned threads.
        """
        if self.is_async:
            coroutine: Coroutine[Any, Any, Any] = self.function(*args, **kwargs)
            return coroutine
        if self.abandoned >= threads.max_abandoned:
            raise HungThreads(self.name)
        return self._in_thread(functools.partial(self.function, *args, **kwargs), threads)

    async def _in_thread(self, function: Callable[[], Any], threads: Threads) -> Any:
        loop = asyncio.get_running_loop()
        call = _ThreadCall(self, function, loop)
        await threads.slots.acquire()
        try:
            # In a copy of this task's context, as asyncio.to_thread and anyio do.
            return await loop.run_in_executor(
                threads.executor(), contextvars.copy_context().run, call.run
            )
        except asyncio.CancelledError:
            call.give_up()
            raise
        finally:
            threads.slots.release()

    def _thread_ended(self) -> None:
        self.abandoned -= 1


class _ThreadCall:
    """One sync call in a worker thread, and the race between its end and its caller's.

    The caller may give up (deadline, shutdown) before the thread starts, while it runs, or
    just as it ends. A lock orders the three: a call given up before it started never runs
    the function at all; one given up while running is counted as abandoned until it ends.
    """

    __slots__ = (
        "_counted",
        "_ended",
        "_gave_up",
        "_lock",
        "_loop",
        "_owner",
        "_started",
        "function",
    )

    def __init__(
        self, owner: UserFunction, function: Callable[[], Any], loop: asyncio.AbstractEventLoop
    ) -> None:
        self._owner = owner
        self.function = function
        self._loop = loop
        self._lock = threading.Lock()
        self._started = self._ended = self._gave_up = self._counted = False

    def run(self) -> Any:
        """In the worker thread: run the function unless its caller already gave up."""
        with self._lock:
            if self._gave_up:
                return None  # nobody waits for it any more: not worth starting
            self._started = True
        name = self._owner.name
        try:
            value = self.function()
        except Exception as exc:
            if self._counted:
                _log.error("%s raised after it was abandoned: %s", name, describe(exc))
            raise
        finally:
            with self._lock:
                self._ended = True
                if self._counted:
                    _call_soon(self._loop, self._owner._thread_ended)
        if self._counted:
            _log.warning("%s finished after it was abandoned; its result was discarded", name)
        return value

    def give_up(self) -> None:
        """On the loop: the caller stops waiting; a running thread is counted as abandoned."""
        with self._lock:
            self._gave_up = True
            if self._started and not self._ended:
                self._counted = True
                self._owner.abandoned += 1


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    with contextlib.suppress(RuntimeError):  # the loop has closed: nobody counts any more
        loop.call_soon_threadsafe(callback)


async def within(timeout_seconds: float, awaitable: Awaitable[Any]) -> tuple[bool, Any]:
    """Await ``awaitable`` under a deadline: ``(True, value)``, or ``(False, None)`` past it.

    A coroutine starts eagerly and gets a timer only if it suspends (see the module
    docstring). An exception it raises propagates; so does its own ``TimeoutError``.
    """
    # The exact type first: the ABC's isinstance costs 0.1 µs (measured 112 vs 26 ns), and
    # every request takes this path twice (its body, its tool or handler).
    if type(awaitable) is not CoroutineType and not isinstance(awaitable, Coroutine):
        # A future or another awaitable: no eager start.
        try:
            async with asyncio.timeout(timeout_seconds):
                return True, await awaitable
        except TimeoutError:
            return False, None
    try:
        suspended_at = awaitable.send(None)
    except StopIteration as finished:
        return True, finished.value
    deadline = asyncio.timeout(timeout_seconds)
    try:
        async with deadline:
            return True, await _Resume(awaitable, suspended_at)
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


async def run_hooks(
    hooks: Sequence[UserFunction], threads: Threads, kind: str, /, *args: Any
) -> None:
    """Call each of ``hooks`` with ``args`` in turn, each within the same 2 s budget.

    A sync hook runs on ``threads``. A hook that raises is logged with its name and the
    exception's type (never its message, nor the values of ``args``: they hold payload
    data), and the next one still runs. One still going at the budget is abandoned and
    logged: an async hook is cancelled, a sync one's thread runs on (see ``Threads``).

    Args:
        hooks: The hooks, in the order they were registered.
        threads: Where sync hooks run.
        kind: What the log calls them, e.g. ``"error hook"``.
        *args: What each hook is called with.
    """
    budget = _HOOK_BUDGET_SECONDS
    for hook in tuple(hooks):  # a hook may unregister itself (or another) while this runs
        try:
            finished, _ = await within(budget, hook.call(threads, *args))
        except Exception as failure:
            _log.error("%s %s raised %s", kind, hook.name, describe(failure))
        else:
            if not finished:
                _log.error("%s %s took longer than %g s; abandoned", kind, hook.name, budget)


async def run_concurrently(work: Sequence[Callable[[], Coroutine[Any, Any, None]]]) -> None:
    """Run every piece of ``work`` concurrently and return when all are done.

    They start one after the other in this task, eagerly; from the first one that suspends,
    that one goes on in this task and the rest start as tasks. A request whose tool calls all
    answer at once thus makes no task at all. Work must not raise except to fail the whole
    request: the first exception cancels the rest, as in a task group.
    """
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
