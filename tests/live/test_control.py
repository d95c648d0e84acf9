"""voicehooks.live.control on its own: the per-call limit kept, late results merged and sent
once."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import anyio
import pytest

from tests.helpers.stores import BrokenStore
from voicehooks import ConfigurationError, MemoryStore
from voicehooks.core.events import call_scope
from voicehooks.exceptions import StoreError
from voicehooks.live.api import CallEnded, PlatformClient, RateLimited
from voicehooks.live.control import CommandLimit, CommandLimiter, LiveCall
from voicehooks.live.interim import LateResult, LateResults, merge
from voicehooks.testing import FakePlatform

pytestmark = pytest.mark.anyio

WINDOW = 1.0  # a short "minute" on both sides, so the tests take seconds


@pytest.fixture
def platform() -> FakePlatform:
    return FakePlatform(window_seconds=WINDOW)


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


@pytest.fixture
async def api(platform: FakePlatform, store: MemoryStore) -> AsyncIterator[PlatformClient]:
    async with PlatformClient(
        api_key=platform.api_key,
        base_url=platform.base_url,
        transport=platform.transport(),
        pacer=CommandLimiter(store, CommandLimit(window_seconds=WINDOW)),
    ) as client:
        yield client


async def test_commands_wait_for_a_slot_instead_of_hitting_the_limit(
    api: PlatformClient, platform: FakePlatform
) -> None:
    call = LiveCall("c-1", api)
    started = time.monotonic()
    for i in range(15):
        await call.say(f"line {i}")
    assert time.monotonic() - started >= WINDOW  # the last five waited for tokens
    assert [r.status for r in platform.received()] == [200] * 15
    assert platform.most_in_any_window("c-1") == 10


async def test_a_slot_that_comes_too_late_is_rate_limited_without_a_request(
    platform: FakePlatform, store: MemoryStore
) -> None:
    limiter = CommandLimiter(store, CommandLimit(commands=1, window_seconds=60))
    async with PlatformClient(
        api_key=platform.api_key,
        base_url=platform.base_url,
        transport=platform.transport(),
        pacer=limiter,
        deadline_seconds=1,
    ) as api:
        await LiveCall("c-2", api).end()
        with pytest.raises(RateLimited) as caught:
            await LiveCall("c-2", api).end()
    assert caught.value.retry_after_seconds is not None
    assert caught.value.retry_after_seconds > 50
    assert len(platform.received()) == 1


async def test_a_failing_store_leaves_commands_unpaced(
    platform: FakePlatform, caplog: pytest.LogCaptureFixture
) -> None:
    limiter = CommandLimiter(BrokenStore(StoreError("down")))
    async with PlatformClient(
        api_key=platform.api_key,
        base_url=platform.base_url,
        transport=platform.transport(),
        pacer=limiter,
    ) as api:
        call = LiveCall("c-3", api)
        await call.inject_context("a")
        await call.transfer("+3120", "bye")
    assert len(platform.accepted()) == 2
    assert sum("pacing is off" in r.getMessage() for r in caplog.records) == 1


async def test_live_call_commands_and_their_typed_errors(
    api: PlatformClient, platform: FakePlatform
) -> None:
    call = LiveCall("c-4", api)
    assert repr(call) == "LiveCall('c-4')"
    await call.inject_context("the order shipped", trigger_response=True)
    await call.say("Bye now", end_after=True)
    platform.end_call("c-4")
    with pytest.raises(CallEnded):
        await call.end("bye")
    assert [r.command_type for r in platform.received()] == ["inject-context", "say", "end-call"]


def test_a_limit_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="CommandLimit"):
        CommandLimit(commands=0)


# -- late results ------------------------------------------------------------------------


def result(call_id: str, n: int) -> LateResult:
    return LateResult(call_id, f"tool-call-{n}", "check_stock", f"{n} in stock")


async def test_late_results_for_one_call_merge_into_few_commands_and_none_is_lost(
    api: PlatformClient, platform: FakePlatform, store: MemoryStore
) -> None:
    undelivered: list[LateResult] = []

    async def hook(late: LateResult) -> None:
        undelivered.append(late)

    outbox = LateResults(api, store, hook)
    sent: list[bool] = []
    async with anyio.create_task_group() as group:
        for n in range(30):

            async def deliver(n: int = n) -> None:
                sent.append(await outbox.deliver(result("c-5", n)))

            group.start_soon(deliver)
            await anyio.sleep(0.05)  # 30 results over 1.5 windows
    assert sent == [True] * 30
    assert undelivered == []
    commands = platform.accepted("c-5")
    assert platform.most_in_any_window("c-5") <= 10
    assert all(r.body["trigger_response"] is True for r in commands)
    lines = [line for r in commands for line in r.body["content"].splitlines()]
    assert sorted(lines) == sorted(
        f"Result of the tool check_stock: {n} in stock" for n in range(30)
    )
    assert len(commands) < 30  # merged


async def test_a_late_result_is_sent_once_however_often_it_is_delivered(
    api: PlatformClient, platform: FakePlatform, store: MemoryStore
) -> None:
    async def hook(late: LateResult) -> None:
        raise AssertionError("not expected")

    outbox = LateResults(api, store, hook)
    assert await outbox.deliver(result("c-6", 1))
    assert not await outbox.deliver(result("c-6", 1))
    assert len(platform.accepted("c-6")) == 1


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("ended", "call_ended"),
        ("refusing", "failed"),
        ("gateway", "outcome_unknown"),
        ("limited", "rate_limited"),
    ],
)
async def test_an_undeliverable_late_result_goes_to_the_hook_and_a_log_line(
    platform: FakePlatform,
    store: MemoryStore,
    caplog: pytest.LogCaptureFixture,
    setup: str,
    reason: str,
) -> None:
    if setup == "ended":
        platform.end_call("c-7")
    elif setup == "refusing":
        platform.fail_next(10, status=401)
    elif setup == "gateway":
        platform.fail_next(10, status=502)
    got: list[LateResult] = []

    async def hook(late: LateResult) -> None:
        got.append(late)
        raise RuntimeError("a broken hook is logged, not raised")

    commands = 0 if setup == "limited" else 10
    limiter = CommandLimiter(store, CommandLimit(commands=max(commands, 1), window_seconds=60))
    if setup == "limited":
        await store.take_token("control:" + call_scope("c-7"), 1, 63)
    async with PlatformClient(
        api_key=platform.api_key,
        base_url=platform.base_url,
        transport=platform.transport(),
        pacer=limiter,
    ) as api:
        outbox = LateResults(api, store, hook, deadline_seconds=1.0)
        assert not await outbox.deliver(result("c-7", 1))
    assert got == [LateResult("c-7", "tool-call-1", "check_stock", "1 in stock", reason)]
    assert len(platform.received()) == (0 if setup == "limited" else 1)  # never sent twice
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"not delivered: {reason}" in m for m in messages)
    assert any("on_undelivered_result hook raised" in m for m in messages)
    assert not any("1 in stock" in m for m in messages)


async def test_past_max_pending_a_late_result_is_overloaded(
    api: PlatformClient, store: MemoryStore
) -> None:
    got: list[str | None] = []

    async def hook(late: LateResult) -> None:
        got.append(late.reason)

    outbox = LateResults(api, store, hook, max_pending=0)
    assert not await outbox.deliver(result("c-8", 1))
    assert got == ["overloaded"]


def test_merge_puts_one_result_per_line() -> None:
    assert merge([result("c", 1), result("c", 2)]) == (
        "Result of the tool check_stock: 1 in stock\nResult of the tool check_stock: 2 in stock"
    )
