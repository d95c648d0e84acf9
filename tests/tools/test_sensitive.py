"""``Sensitive`` tool arguments: the tool gets the value, every copy outside it a keyed token."""

from __future__ import annotations

import json
from typing import Annotated, Any

import pytest

from voicehooks import ConfigurationError, Duplicates, MemoryStore, Privacy, Sensitive, VoiceHooks
from voicehooks.observe import Delivery, Observer
from voicehooks.testing import WebhookClient, tool_call, tool_calls
from voicehooks.tools.sensitive import Tokens, mask_body

pytestmark = pytest.mark.anyio

KEY = b"k" * 32


class Bodies(Observer):
    def __init__(self) -> None:
        self.seen: list[tuple[bytes, bytes]] = []

    def delivery_answered(self, delivery: Delivery) -> None:
        self.seen.append((delivery.body or b"", delivery.answer))


def test_a_token_is_keyed_and_stable_under_one_key() -> None:
    assert Tokens(KEY).of("1234") == Tokens(KEY).of("1234")
    assert Tokens(KEY).of("1234") != Tokens(b"j" * 32).of("1234")
    assert Tokens().of("1234") != Tokens().of("1234")  # a random key per process by default
    token = Tokens(KEY).of("1234")
    assert token.startswith("[sensitive:")
    assert len(token) == len("[sensitive:]") + 12


@pytest.mark.parametrize(
    "arguments",
    [
        {"pin": "7731", "amount": 5},
        json.dumps({"pin": "7731", "amount": 5}),  # OpenAI-style: the arguments as a string
    ],
)
def test_the_value_is_masked_wherever_it_stands_in_a_body(arguments: Any) -> None:
    tokens = Tokens(KEY)
    call = tool_call("pay", arguments, id="t-1")
    raw = json.dumps(call["function"]["arguments"]).encode()
    masks = tokens.of_arguments(raw, ("pin",))
    assert masks == {"7731": tokens.of("7731")}
    body = json.dumps(tool_calls(call, call_id="c-1")).encode()
    assert b"7731" not in mask_body(body, masks)
    assert tokens.of("7731").encode() in mask_body(body, masks)


def test_numbers_and_nested_values_get_tokens_too() -> None:
    tokens = Tokens(KEY)
    masks = tokens.of_arguments(b'{"pin": 7731, "card": {"number": "4111"}}', ("pin", "card"))
    assert set(masks) == {7731, "4111"}
    masked = json.loads(mask_body(b'{"a": 7731, "b": "x 4111 y", "c": 7732}', masks))
    assert masked == {"a": tokens.of(7731), "b": f"x {tokens.of('4111')} y", "c": 7732}


def test_arguments_that_are_not_json_give_no_masks() -> None:
    assert Tokens(KEY).of_arguments(b"{not json", ("pin",)) == {}
    assert Tokens(KEY).of_arguments(b"[1, 2]", ("pin",)) == {}


def test_a_sensitive_argument_cannot_be_fire_and_forget() -> None:
    app = VoiceHooks(secret="whsec_sensitive")
    with pytest.raises(ConfigurationError, match="cannot go with fire_and_forget"):

        @app.tool(fire_and_forget=True)
        def pay(pin: Annotated[str, Sensitive()]) -> None:
            """Pay."""


async def test_the_tool_gets_the_value_and_observers_and_duplicates_the_token() -> None:
    bodies = Bodies()
    app = VoiceHooks(
        secret="whsec_sensitive",
        observers=[bodies],
        privacy=Privacy(token_key=KEY),
        duplicates=Duplicates(store=MemoryStore()),
    )
    got: list[str] = []

    @app.tool
    def pay(pin: Annotated[str, Sensitive()], amount: float) -> str:
        """Pay."""
        got.append(pin)
        return f"paid, pin {pin}"

    assert app.tools["pay"].sensitive == ("pin",)
    # The schema the model sees is an ordinary string.
    assert app.tools["pay"].parameters["properties"]["pin"] == {"type": "string"}
    payload = tool_calls(tool_call("pay", {"pin": "7731", "amount": 5}, id="t-1"), call_id="c-1")
    async with WebhookClient(app) as client:
        first = await client.post(payload)
        duplicate = await client.post(payload)
    token = Tokens(KEY).of("7731")
    assert got == ["7731"]  # the duplicate was answered from the store
    assert first.json()["results"][0]["result"] == f"paid, pin {token}"
    assert duplicate.json() == first.json()
    for body, answer in bodies.seen:
        assert b"7731" not in body
        assert b"7731" not in answer
        assert token.encode() in body
