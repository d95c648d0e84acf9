"""voicehooks.core.running: calling user functions under deadlines, eagerly, without breaking
scopes, and threads that stay bounded when sync functions hang."""

from __future__ import annotations

import asyncio
import collections.abc
import threading
import time
from typing import Any

import anyio
import pytest

from voicehooks.core import running
from voicehooks.core.running import HungThreads, Threads, UserFunction, run_hooks, within

pytestmark = pytest.mark.anyio

THREADS = Threads(max_threads=4, max_abandoned=2)


async def run(function: Any, timeout: float = 1.0, **kwargs: Any) -> tuple[bool, Any]:
    return await within(timeout, UserFunction(function).call(THREADS, **kwargs))


async def test_a_function_that_never_waits_answers_without_a_timer() -> None:
    async def instant(x: int) -> int:
        return x * 2

    assert await run(instant, x=21) == (True, 42)


async def test_a_function_that_waits_answers_within_its_deadline() -> None:
    async def waits() -> str:
        await anyio.sleep(0.01)
        await asyncio.sleep(0)
        return "done"

    assert await run(waits) == (True, "done")


async def test_a_function_past_its_deadline_is_cancelled_and_cleans_up() -> None:
    cleaned: list[str] = []

    async def slow() -> str:
        try:
            await anyio.sleep(30)
        finally:
            cleaned.append("finally")
        return "never"

    started = time.perf_counter()
    assert await run(slow, timeout=0.1) == (False, None)
    assert time.perf_counter() - started < 2
    assert cleaned == ["finally"]


async def test_scopes_and_task_groups_opened_in_the_first_step_still_nest() -> None:
    async def structured() -> str:
        with anyio.fail_after(5):
            async with anyio.create_task_group() as group:
                group.start_soon(anyio.sleep, 0.01)
                await anyio.sleep(0.02)
        async with asyncio.timeout(5):
            await asyncio.sleep(0.01)
        return "nested fine"

    assert await run(structured) == (True, "nested fine")


async def test_a_deadline_cuts_through_the_functions_own_scopes() -> None:
    async def stuck() -> str:
        with anyio.move_on_after(30):
            async with anyio.create_task_group() as group:
                group.start_soon(anyio.sleep, 30)
                await anyio.sleep(30)
        return "the inner scope swallowed it"

    assert await run(stuck, timeout=0.1) == (False, None)


async def test_exceptions_propagate_from_the_first_step_and_later_steps() -> None:
    async def early() -> None:
        raise KeyError("early")

    async def late() -> None:
        await anyio.sleep(0)
        raise KeyError("late")

    with pytest.raises(KeyError, match="early"):
        await run(early)
    with pytest.raises(KeyError, match="late"):
        await run(late)


async def test_the_functions_own_timeout_error_is_not_mistaken_for_the_deadline() -> None:
    async def own_timeout() -> None:
        await anyio.sleep(0)
        raise TimeoutError("upstream API timed out")

    with pytest.raises(TimeoutError, match="upstream"):
        await run(own_timeout, timeout=5)


async def test_a_caught_exception_thrown_in_is_relayed_to_the_function() -> None:
    async def retries() -> str:
        try:
            await anyio.sleep(30)
        except BaseException:
            return "caught"  # swallowing a cancellation is the function's own business
        return "never"

    assert await run(retries, timeout=0.05) in ((True, "caught"), (False, None))


async def test_an_outer_cancellation_reaches_the_function() -> None:
    cancelled: list[bool] = []

    async def waits() -> None:
        try:
            await anyio.sleep(30)
        except anyio.get_cancelled_exc_class():
            cancelled.append(True)
            raise

    with anyio.move_on_after(0.05):
        await run(waits, timeout=10)
    assert cancelled == [True]


async def test_sync_functions_run_under_the_deadline_in_a_thread() -> None:
    def blocking() -> str:
        time.sleep(0.01)
        return "thread"

    assert await run(blocking) == (True, "thread")


async def test_positional_arguments_reach_the_function() -> None:
    def hook(exc: BaseException, event: object) -> str:
        return f"{type(exc).__name__}/{event}"

    work = UserFunction(hook).call(THREADS, KeyError("x"), "ev")
    assert await within(1, work) == (True, "KeyError/ev")


async def test_a_future_is_awaited_under_the_deadline_too() -> None:
    never: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    assert await within(0.05, never) == (False, None)
    done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    done.set_result("ready")
    assert await within(1, done) == (True, "ready")


async def give_up_once_running(function: UserFunction, threads: Threads) -> None:
    """Call ``function`` and stop waiting as soon as its thread runs: abandoned for sure,
    however loaded the machine (a fixed deadline could pass before the thread starts)."""
    started = threading.Event()
    with anyio.CancelScope() as scope:

        async def cancel_once_started() -> None:
            while not started.is_set():
                await anyio.sleep(0.005)
            scope.cancel()

        async with anyio.create_task_group() as group:
            group.start_soon(cancel_once_started)
            await function.call(threads, started=started)


class _ForeignCoroutine(collections.abc.Coroutine[Any, Any, Any]):
    """A coroutine object that is not a native one (as Cython's are): the ABC still sees it."""

    def __init__(self, inner: collections.abc.Coroutine[Any, Any, Any]) -> None:
        self.inner = inner

    def send(self, value: Any) -> Any:
        return self.inner.send(value)

    def throw(self, *args: Any) -> Any:
        return self.inner.throw(*args)

    def close(self) -> None:
        self.inner.close()

    def __await__(self) -> collections.abc.Generator[Any, Any, Any]:
        return self.inner.__await__()


async def test_a_coroutine_of_another_type_starts_eagerly_under_the_deadline_too() -> None:
    async def at_once() -> str:
        return "now"

    async def waits() -> str:
        await asyncio.sleep(10)
        return "late"

    assert await within(1, _ForeignCoroutine(at_once())) == (True, "now")
    assert await within(0.05, _ForeignCoroutine(waits())) == (False, None)


async def test_a_sync_function_past_its_deadline_is_abandoned_and_counted() -> None:
    release = threading.Event()

    def hangs(started: threading.Event | None = None) -> str:
        if started is not None:
            started.set()
        release.wait(10)
        return "late"

    function = UserFunction(hangs)
    threads = Threads(max_threads=4, max_abandoned=2)
    await give_up_once_running(function, threads)
    await give_up_once_running(function, threads)
    assert function.abandoned == 2
    # At the bound a new call is refused at once, before any thread is taken.
    with pytest.raises(HungThreads):
        _ = function.call(threads)
    release.set()
    with anyio.fail_after(5):
        while function.abandoned:
            await anyio.sleep(0.01)
    assert await within(1, function.call(threads)) == (True, "late")


async def test_abandoned_threads_free_their_slot_for_other_functions() -> None:
    release = threading.Event()
    threads = Threads(max_threads=1, max_abandoned=1)

    def hangs() -> None:
        release.wait(10)

    def quick() -> str:
        return "quick"

    try:
        assert await within(0.05, UserFunction(hangs).call(threads)) == (False, None)
        assert await within(2, UserFunction(quick).call(threads)) == (True, "quick")
    finally:
        release.set()


async def test_a_call_given_up_before_its_thread_started_never_runs() -> None:
    ran: list[str] = []
    threads = Threads(max_threads=1, max_abandoned=1)
    function = UserFunction(lambda: ran.append("ran"))
    await threads.slots.acquire()  # every slot taken: the call waits
    try:
        assert await within(0.05, function.call(threads)) == (False, None)
    finally:
        threads.slots.release()
    await anyio.sleep(0.1)
    assert ran == []
    assert function.abandoned == 0


async def test_a_thread_that_ends_as_its_caller_gives_up_is_not_counted_twice() -> None:
    # Many short sync calls with deadlines around their own length: whichever side wins
    # each race, the count of abandoned threads returns to zero.
    def brief() -> None:
        time.sleep(0.002)

    function = UserFunction(brief)
    threads = Threads(max_threads=8, max_abandoned=1000)
    for _ in range(50):
        await within(0.002, function.call(threads))
    with anyio.fail_after(5):
        while function.abandoned:
            await anyio.sleep(0.01)
    assert function.abandoned == 0


async def test_work_that_never_waits_runs_in_order_in_this_task() -> None:
    from voicehooks.core.running import run_concurrently

    here = asyncio.current_task()
    seen: list[tuple[int, bool]] = []

    def piece(i: int) -> Any:
        async def run() -> None:
            seen.append((i, asyncio.current_task() is here))

        return run

    await run_concurrently([piece(i) for i in range(4)])
    assert seen == [(0, True), (1, True), (2, True), (3, True)]


async def test_from_the_first_suspension_the_rest_run_concurrently() -> None:
    from voicehooks.core.running import run_concurrently

    here = asyncio.current_task()
    seen: dict[str, bool] = {}

    async def instant() -> None:
        seen["a"] = asyncio.current_task() is here

    def sleeper(name: str, seconds: float) -> Any:
        async def run() -> None:
            task = asyncio.current_task()
            with anyio.fail_after(5):  # a scope opened before the first suspension
                async with anyio.create_task_group() as group:
                    group.start_soon(anyio.sleep, seconds)
            seen[name] = task is here

        return run

    started = time.perf_counter()
    await run_concurrently([instant, sleeper("b", 0.5), sleeper("c", 0.5), sleeper("d", 0.5)])
    assert time.perf_counter() - started < 1.2  # 1.5 s one after the other
    assert seen == {"a": True, "b": True, "c": False, "d": False}


async def test_a_failure_cancels_the_rest_and_propagates() -> None:
    from voicehooks.core.running import run_concurrently

    cancelled: list[str] = []

    async def slow() -> None:
        try:
            await anyio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append("slow")
            raise

    async def failing() -> None:
        await anyio.sleep(0.01)
        raise LookupError("store down")

    with pytest.raises(ExceptionGroup) as info:
        await run_concurrently([slow, failing])
    assert info.group_contains(LookupError)
    assert cancelled == ["slow"]


# -- hooks -------------------------------------------------------------------------------


async def test_hooks_run_in_turn_each_within_the_budget_whatever_the_others_do(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(running, "_HOOK_BUDGET_SECONDS", 0.5)  # the test need not wait 2 s
    secret = "PAYLOAD-+31612345678"
    loop_thread = threading.get_ident()
    ran: list[str] = []

    def in_a_thread(value: str) -> None:
        ran.append("thread" if threading.get_ident() != loop_thread else "loop")

    async def raises(value: str) -> None:
        raise RuntimeError(f"the hook's own bug, quoting {value}")

    async def slow(value: str) -> None:
        try:
            await anyio.Event().wait()  # nothing sets it: only the budget ends this hook
        finally:
            ran.append("slow cut")

    async def last(value: str) -> None:
        ran.append(f"last got {value}")

    hooks = [UserFunction(hook) for hook in (in_a_thread, raises, slow, last)]
    await run_hooks(hooks, THREADS, "test hook", secret)
    assert ran == ["thread", "slow cut", f"last got {secret}"]
    lines = [record.getMessage() for record in caplog.records]
    assert any(f"test hook {hooks[1].name} raised RuntimeError" in line for line in lines)
    assert any(f"test hook {hooks[2].name} took longer than 0.5 s" in line for line in lines)
    assert not any("31612345678" in line for line in lines)  # not the message, not args


async def test_slots_are_taken_in_arrival_order_and_a_cancelled_wait_passes_its_slot_on() -> None:
    from voicehooks.core.running import Slots

    slots = Slots(1)
    await slots.acquire()
    order: list[str] = []

    async def take(name: str) -> None:
        await slots.acquire()
        order.append(name)
        slots.release()

    first = asyncio.create_task(take("first"))
    cancelled = asyncio.create_task(take("cancelled"))
    last = asyncio.create_task(take("last"))
    await asyncio.sleep(0)
    cancelled.cancel()
    slots.release()
    await asyncio.gather(first, last)
    assert order == ["first", "last"]
    assert slots.free == 1


async def test_a_sync_function_sees_its_callers_context_variables() -> None:
    import contextvars

    request: contextvars.ContextVar[str] = contextvars.ContextVar("request")
    request.set("call-1")
    assert await within(2, UserFunction(request.get).call(THREADS)) == (True, "call-1")


async def test_after_close_a_new_call_gets_a_new_executor() -> None:
    threads = Threads(max_threads=2, max_abandoned=1)
    assert await within(2, UserFunction(lambda: "one").call(threads)) == (True, "one")
    first = threads.executor()
    threads.close()
    assert await within(2, UserFunction(lambda: "two").call(threads)) == (True, "two")
    assert threads.executor() is not first
    threads.close()
