"""voicehooks.state.callstate: a call's key-value state, across deliveries, bounded, cleared."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from tests.helpers.redis_server import RedisServer
from voicehooks import CallState, Duplicates, EndOfCallReport, RedisStore, VoiceHooks
from voicehooks.exceptions import CallStateFull
from voicehooks.state.stores import store_from_url
from voicehooks.testing import WebhookClient, tool_call

pytestmark = pytest.mark.anyio

SECRET = "whsec_call_state"


class Customer(msgspec.Struct):
    id: int
    name: str


def shop(**options: Any) -> tuple[VoiceHooks, list[Any]]:
    app = VoiceHooks(secret=SECRET, **options)
    seen: list[Any] = []

    @app.tool
    async def find_customer(name: str, state: CallState) -> str:
        """Find the customer."""
        await state.set("customer", Customer(7, name))
        return "found"

    @app.tool
    async def add_to_cart(item: str, state: CallState) -> int:
        """Add an item to the cart."""
        cart = await state.get("cart", list[str], [])
        await state.set("cart", [*cart, item])
        return len(cart) + 1

    @app.on("end-of-call-report")
    async def summary(report: EndOfCallReport, state: CallState) -> None:
        seen.append((await state.get("customer", Customer), await state.items()))

    return app, seen


async def tool(client: WebhookClient, name: str, arguments: dict[str, Any], call_id: str) -> Any:
    (result,) = await client.call_tools(tool_call(name, arguments), call_id=call_id)
    return result


@pytest.mark.parametrize("store", ["memory", "redis", "postgres"])
async def test_state_is_shared_across_deliveries_and_gone_after_the_report(
    store: str, request: pytest.FixtureRequest
) -> None:
    options: dict[str, Any] = {}
    if store == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        options["duplicates"] = Duplicates(store=RedisStore.from_url(server.url))
    elif store == "postgres":
        url = request.getfixturevalue("postgres_url")
        options["duplicates"] = Duplicates(store=store_from_url(url))
    app, seen = shop(**options)
    async with WebhookClient(app, secret=SECRET) as client:
        assert await tool(client, "find_customer", {"name": "Anneke"}, "call-1") == "found"
        assert await tool(client, "add_to_cart", {"item": "tea"}, "call-1") == 1
        assert await tool(client, "add_to_cart", {"item": "milk"}, "call-1") == 2
        assert await tool(client, "add_to_cart", {"item": "jam"}, "call-2") == 1  # its own
        state = client.call_state("call-1")
        assert await state.get("cart") == ["tea", "milk"]
        await client.end_of_call_report(call_id="call-1")
        await client.wait_for_background()
        assert seen == [
            (
                Customer(7, "Anneke"),
                {"customer": {"id": 7, "name": "Anneke"}, "cart": ["tea", "milk"]},
            )
        ]
        assert await state.items() == {}
        assert await client.call_state("call-2").get("cart") == ["jam"]


async def test_state_is_bounded_with_a_clear_error_and_nothing_changed() -> None:
    app, _ = shop(duplicates=Duplicates(call_state_max_bytes=64))
    async with WebhookClient(app, secret=SECRET) as client:
        state = client.call_state("call-1")
        await state.set("note", "x" * 40)
        with pytest.raises(CallStateFull, match="limited to 64 bytes: 'more'"):
            await state.set("more", "y" * 40)
        assert await state.items() == {"note": "x" * 40}
        await state.delete("note")
        await state.set("more", "y" * 40)  # room again
        assert await state.get("note", str, "gone") == "gone"


async def test_names_are_checked_and_values_typed() -> None:
    app, _ = shop()
    state = app.dispatcher.call_state("call-1")
    for name in ("", "\0size"):
        with pytest.raises(TypeError, match="non-empty"):
            await state.set(name, 1)
    await state.set("n", 3)
    with pytest.raises(msgspec.ValidationError):
        await state.get("n", str)


async def test_with_several_report_handlers_the_last_one_to_finish_clears_it() -> None:
    app, seen = shop()
    later: list[Any] = []

    @app.on("end-of-call-report")
    async def audit(state: CallState) -> None:
        later.append(await state.get("cart"))

    async with WebhookClient(app, secret=SECRET) as client:
        await tool(client, "add_to_cart", {"item": "tea"}, "call-1")
        await client.end_of_call_report(call_id="call-1")
        await client.wait_for_background()
        assert later == [["tea"]]
        assert seen[0][1] == {"cart": ["tea"]}
        assert await client.call_state("call-1").items() == {}


async def test_a_store_that_fails_to_clear_leaves_the_state_to_expire(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, _ = shop()
    store = app.call_control.store

    async def broken(key: str) -> None:
        raise RuntimeError("down")

    store.forget = broken  # type: ignore[method-assign]
    async with WebhookClient(app, secret=SECRET) as client:
        await client.end_of_call_report(call_id="call-1")
        await client.wait_for_background()
    assert "clearing the call state of call" in caplog.text
