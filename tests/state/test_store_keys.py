"""Store keys never embed a call id: a call id may hold the caller's number (issue 21).

Every kind of key the app writes for a call is made against a real redis-server for a call id
that holds a phone number: a tool call (``tool:``), an informational event (``event:``), a
``once_per_call`` intent and its list (``intent:``), call state (``state:``), call-control
pacing (``control:``), a late result's claim (``late:``), reconciliation's claim
(``report:``); then no key holds the number, and each is the same in another process
(``call_scope`` is an unkeyed hash).
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import redis.asyncio as aioredis

from tests.helpers.redis_server import RedisServer
from voicehooks import CallState, Duplicates, RedisStore, StatusUpdate, VoiceHooks
from voicehooks.core.events import call_scope
from voicehooks.live.control import CommandLimit, CommandLimiter
from voicehooks.live.interim import LateResult, LateResults
from voicehooks.live.reconcile import Reconciler, Reconciliation
from voicehooks.testing import (
    FakePlatform,
    WebhookClient,
    status_update,
    tool_call,
    tool_calls,
)

pytestmark = pytest.mark.anyio

NUMBER = "31655018342"
CALL_ID = f"call-+{NUMBER}"


async def keys(url: str) -> list[str]:
    client = aioredis.from_url(url)
    try:
        return [key.decode() async for key in client.scan_iter(count=1000)]
    finally:
        await client.aclose()


async def test_no_store_key_holds_the_call_id(redis_server: RedisServer) -> None:
    store = RedisStore.from_url(redis_server.url)
    app = VoiceHooks(secret="whsec_keys", duplicates=Duplicates(store=store))

    @app.tool(once_per_call=True)
    async def book(slot: str, state: CallState) -> str:
        """Book a slot."""
        await state.set("slot", slot)
        return "booked"

    @app.on("status-update")
    def note(event: StatusUpdate) -> None:
        pass

    async with WebhookClient(app) as client:
        calls = tool_calls(tool_call("book", {"slot": "9:30"}, id="t-1"), call_id=CALL_ID)
        assert (await client.post(calls)).status_code == 200
        assert (await client.post(status_update("in-progress", call_id=CALL_ID))).status_code == 200
        await client.wait_for_background()
    platform = FakePlatform()
    limiter = CommandLimiter(store, CommandLimit(commands=10, window_seconds=60))
    await limiter.acquire(CALL_ID, time.monotonic() + 5)
    async with platform.client(pacer=limiter) as api:

        async def undelivered(result: LateResult) -> None:
            pass

        late = LateResults(api, store, undelivered, deadline_seconds=1.0)
        await late.deliver(LateResult(CALL_ID, "t-2", "book", "booked"))

        async def dispatch(body: bytes) -> bool:
            return True

        await Reconciler(api, store, dispatch, Reconciliation()).reported(CALL_ID)
    written = await keys(redis_server.url)
    scope = call_scope(CALL_ID)
    for kind in ("tool:", "event:", "intent:", "state:", "control:", "late:", "report:"):
        assert [key for key in written if kind in key], f"no {kind} key: that path did not run"
    assert not [key for key in written if NUMBER in key or CALL_ID in key], written
    assert [key for key in written if scope in key]
    await store.aclose()


def test_the_call_scope_is_the_same_in_another_process() -> None:
    code = f"from voicehooks.core.events import call_scope; print(call_scope({CALL_ID!r}))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == call_scope(CALL_ID)
    assert NUMBER not in call_scope(CALL_ID)
