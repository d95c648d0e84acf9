"""voicehooks.context: calling user functions under deadlines, eagerly, without breaking scopes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import anyio
import pytest

from voicehooks.context import call_with_deadline

pytestmark = pytest.mark.anyio

LIMITER = anyio.CapacityLimiter(4)


async def run(function: Any, timeout: float = 1.0, **kwargs: Any) -> tuple[bool, Any]:
    return await call_with_deadline(function, True, kwargs, LIMITER, "test", timeout)


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

    assert await call_with_deadline(blocking, False, {}, LIMITER, "t", 1) == (True, "thread")


async def test_outside_asyncio_the_deadline_is_an_anyio_scope(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_asyncio_task() -> None:
        raise RuntimeError("no running event loop")  # what asyncio says under trio

    monkeypatch.setattr(asyncio, "current_task", no_asyncio_task)

    async def quick() -> str:
        await anyio.sleep(0)
        return "ok"

    async def slow() -> str:
        await anyio.sleep(30)
        return "never"

    assert await run(quick) == (True, "ok")
    assert await run(slow, timeout=0.05) == (False, None)
