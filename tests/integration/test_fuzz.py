"""Fuzzing the pipeline in-process: whatever arrives, the answer is a 2xx, or a 4xx whose body
is a JSON object with an ``"error"`` string. Never a 5xx, never an exception out of the app,
never a hang.

Most examples are signed correctly, so the fuzzing gets past the 401 into the decoder, the
dispatcher, the tools' argument binding and the handlers. Examples are derandomized: a failure
reproduces on every run. ``VOICEHOOKS_FUZZ_EXAMPLES`` raises the budget for a longer hunt::

    VOICEHOOKS_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/integration/test_fuzz.py

The app and the strategies live in ``tests/helpers/fuzzing.py``; ``test_fuzz_server.py`` sends
the same strategies to the same app served by a real uvicorn.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import anyio
import msgspec
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from tests.helpers.fuzzing import (
    HOLE,
    SECRET,
    app,
    build_app,
    deliveries,
    encode,
    fuzz_settings,
    mutated_bodies,
    requests,
    signed,
)
from voicehooks import ToolCalls, VoiceHooks
from voicehooks.testing import (
    Response,
    WebhookClient,
    end_of_call_report,
    status_update,
    tool_call,
    tool_calls,
)

pytestmark = pytest.mark.anyio

EXAMPLES = int(os.environ.get("VOICEHOOKS_FUZZ_EXAMPLES", "300"))
# Bounds every request: a hang is a failure, not a stuck test run.
REQUEST_DEADLINE_SECONDS = 10.0

FUZZ = fuzz_settings(EXAMPLES)


# -- the apps under fuzz: the helpers' app and two variants of it ------------------------

# Same tools, plus a raw tool-calls handler that receives the calls no tool claims.
app_with_fallback = build_app()


@app_with_fallback.on("tool-calls")
async def fallback(event: ToolCalls) -> dict[str, Any]:
    return {
        "results": [{"tool_call_id": c.id, "result": c.arguments} for c in event.tool_call_list]
    }


# Small cap, to reach the 413 while a body streams in.
app_small = build_app(max_body_bytes=512)

APPS = [app, app_with_fallback, app_small]


# -- the property ------------------------------------------------------------------------


async def send(
    target: VoiceHooks,
    chunks: Sequence[bytes],
    headers: Sequence[tuple[str, str]],
    method: str = "POST",
) -> Response:
    """Send one raw request and check the property on whatever comes back."""
    client = WebhookClient(target, secret=SECRET)
    with anyio.fail_after(REQUEST_DEADLINE_SECONDS):
        response = await client.request(method, "/", list(chunks), list(headers))
    assert 200 <= response.status_code < 300 or 400 <= response.status_code < 500, response
    assert response.headers["content-type"] == "application/json", response
    payload = msgspec.json.decode(response.content)
    assert isinstance(payload, dict), response
    if response.status_code >= 400:
        assert isinstance(payload.get("error"), str), response
        assert payload["error"], response
    return response


def _check_tool_answer(sent: dict[str, Any] | None, response: Response) -> None:
    """A 200 to a tool-calls delivery that decoded answers every call, by id, in order."""
    if sent is None or response.status_code != 200:
        return
    message = sent.get("message")
    if not isinstance(message, dict) or message.get("type") != "tool-calls":
        return
    calls = message.get("tool_call_list", [])
    expected = [call["id"] for call in calls]
    answered = [entry["tool_call_id"] for entry in response.json()["results"]]
    assert answered == expected


# -- bodies ------------------------------------------------------------------------------


@FUZZ
@given(delivery=deliveries(), target=st.sampled_from(APPS))
async def test_valid_deliveries_are_answered_200_with_one_result_per_call(
    delivery: dict[str, Any], target: VoiceHooks
) -> None:
    body = encode(delivery)
    response = await send(target, [body], signed(body))
    if len(body) <= target.limits.max_body_bytes:
        assert response.status_code == 200
        _check_tool_answer(delivery, response)


@FUZZ
@given(
    body=st.binary(max_size=2048), prefix=st.sampled_from([b"", b'{"message":', b"\xef\xbb\xbf"])
)
@example(body=b"", prefix=b"")
@example(body=b"\xff" * 10, prefix=b"")
async def test_arbitrary_signed_bytes_never_give_a_5xx(body: bytes, prefix: bytes) -> None:
    raw = prefix + body
    await send(app, [raw], signed(raw))


@FUZZ
@given(mutated=mutated_bodies(), target=st.sampled_from(APPS))
async def test_wrong_types_and_broken_values_at_every_field_never_give_a_5xx(
    mutated: tuple[bytes, dict[str, Any] | None], target: VoiceHooks
) -> None:
    body, sent = mutated
    response = await send(target, [body], signed(body))
    _check_tool_answer(sent, response)


@FUZZ
@given(delivery=deliveries(), cut=st.floats(0, 1, exclude_max=True))
async def test_truncated_bodies_are_a_400(delivery: dict[str, Any], cut: float) -> None:
    whole = encode(delivery)
    body = whole[: int(len(whole) * cut)]
    response = await send(app, [body], signed(body))
    assert response.status_code == 400


@FUZZ
@given(delivery=deliveries(), data=st.data())
async def test_bodies_in_any_chunking_get_the_same_answer_or_a_413(
    delivery: dict[str, Any], data: st.DataObject
) -> None:
    body = encode(delivery)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=8)))
    chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    response = await send(app_small, chunks, signed(body))
    assert response.status_code == (200 if len(body) <= app_small.limits.max_body_bytes else 413)


@FUZZ
@given(request=requests())
@example(request=("POST", [b"{}"], [("x-webhook-timestamp", "9" * 400)]))
@example(request=("POST", [b"{}"], [("x-webhook-timestamp", "9" * 5000)]))
async def test_odd_repeated_and_non_ascii_headers_never_give_a_5xx(
    request: tuple[str, list[bytes], list[tuple[str, str]]],
) -> None:
    method, chunks, headers = request
    await send(app, chunks, headers, method)


# -- known hostile inputs, each a regression test ----------------------------------------
# Each body has a call id of its own: with one shared id, every tool body after the first
# would be answered as a duplicate of it, and never reach the arguments.


def _tool_body(name: str, raw_arguments: bytes) -> bytes:
    body = encode(tool_calls(tool_call(name, {}, id="tc_1")))
    return body.replace(b'"arguments":{}', b'"arguments":' + raw_arguments, 1)


def _field_body(raw: bytes) -> bytes:
    body = encode(end_of_call_report(summary=HOLE))
    return body.replace(f'"{HOLE}"'.encode(), raw, 1)


def _assistant_body(raw: bytes, name: str) -> bytes:
    body = encode(tool_calls(tool_call(name, {}, id="tc_1"), metadata={}))
    return body.replace(b'"assistant":{"metadata":{}}', b'"assistant":' + raw, 1)


DEEP = 5000
HOSTILE_BODIES = {
    "deeply nested analysis": _field_body(b"[" * DEEP + b"]" * DEEP),
    "deeply nested arguments": _tool_body("add", b"[" * DEEP + b"]" * DEEP),
    "deeply nested arguments, unknown tool": _tool_body("nope", b"[" * DEEP + b"]" * DEEP),
    "deeply nested JSON-string arguments": _tool_body(
        "add", json.dumps('{"a":' + "[" * DEEP + "]" * DEEP + "}").encode()
    ),
    "deeply nested JSON-string arguments, unknown tool": _tool_body(
        "never_seen_before", json.dumps('{"a":' + "[" * DEEP + "]" * DEEP + "}").encode()
    ),
    "deeply nested unknown event": (
        b'{"message":{"type":"transcript","call":{"id":' + b"[" * DEEP + b"]" * DEEP + b"}}}"
    ),
    "invalid UTF-8 in the arguments": _tool_body("add", b'{"a":"\xff","b":1}'),
    "invalid UTF-8 in JSON-string arguments": _tool_body(
        "lookup", b'"{\\"order_number\\": 1}\xff"'
    ),
    "invalid UTF-8 in the arguments, unknown tool": _tool_body("nope2", b'{"a":"\xff"}'),
    "invalid UTF-8 in the assistant, tool with CallContext": _assistant_body(
        b'{"metadata":{"a":"\xff"}}', "lookup"
    ),
    "invalid UTF-8 in the assistant, tool reading it": _assistant_body(
        b'{"metadata":{"a":"\xff"}}', "inspect_call"
    ),
    "invalid UTF-8 in the summary": _field_body(b'"\xff"'),
    "huge integer argument": _tool_body("add", b'{"a":' + b"9" * 5000 + b',"b":1}'),
    "integer argument as a string past float's range": _tool_body(
        "add", b'{"a":"' + b"9" * 309 + b'","b":1}'
    ),
    "epoch time past float's range": encode(status_update(call_id="c1", timestamp=HOLE)).replace(
        f'"{HOLE}"'.encode(), b"9" * 312, 1
    ),
    "huge float argument": _tool_body("add", b'{"a":1e999,"b":1}'),
}


@pytest.mark.parametrize("target", APPS[:2], ids=["stub-warning", "fallback-handler"])
@pytest.mark.parametrize("body", HOSTILE_BODIES.values(), ids=list(HOSTILE_BODIES))
async def test_known_hostile_bodies_never_give_a_5xx(body: bytes, target: VoiceHooks) -> None:
    await send(target, [body], signed(body))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("x-webhook-timestamp", "9" * 400),  # int → float overflow
        ("x-webhook-timestamp", "9" * 5000),  # past Python's int-string digit limit
        ("x-webhook-timestamp", "1" + "0" * 25),
        ("content-length", "9" * 5000),
    ],
    ids=["timestamp-float-overflow", "timestamp-digit-limit", "timestamp-26-digits", "length"],
)
async def test_huge_numeric_headers_are_a_4xx(name: str, value: str) -> None:
    body = encode(status_update(call_id="call_1"))
    headers = [(k, v) for k, v in signed(body) if k != name] + [(name, value)]
    response = await send(app, [body], headers)
    assert response.status_code in (401, 413)


# -- hostile values where the tolerant decoder and the argument coercion look twice --------

# As raw JSON text: numbers past float's range and past Python's int-string limit, in number
# and in string form; NaN and Infinity as tokens (not JSON) and as strings; nesting around
# the tolerant decoder's depth bound; strings of odd unicode, lone surrogates escaped.
ODD_CHARACTERS = ["x", "\\ud800", "\\udfff", "\\u0000", "\\n", "\\u202e", "\\u200f", "\\u2028"]
hostile_values = st.one_of(
    st.integers(300, 4400).map(lambda n: b"9" * n),
    st.integers(300, 4400).map(lambda n: b"-1" + b"0" * n),
    st.integers(300, 4400).map(lambda n: b'"' + b"9" * n + b'"'),
    st.integers(300, 4400).map(lambda n: b'"-' + b"9" * n + b'.0"'),
    st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"1e308", b"-0"]),
    st.sampled_from([b'"NaN"', b'"nan"', b'"Infinity"', b'"-inf"', b'"1e999"', b'"1e308"']),
    st.integers(1, 400).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 400).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.lists(st.sampled_from(ODD_CHARACTERS), max_size=8).map(lambda p: f'"{"".join(p)}"'.encode()),
    st.text(st.characters(codec="utf-8"), max_size=12).map(lambda t: json.dumps(t).encode()),
)

# The fields the tolerant decoder converts (times, numbers, strings) and a few it keeps whole.
ENVELOPE_FIELDS = [
    ("timestamp",),
    ("started_at",),
    ("ended_at",),
    ("duration_seconds",),
    ("summary",),
    ("status",),
    ("end_reason",),
    ("error",),
    ("customer",),
    ("messages",),
    ("call", "status"),
    ("call", "id"),
    ("call", "type"),
]


def _with_raw(delivery: dict[str, Any], path: tuple[str, ...], raw: bytes) -> bytes:
    target = delivery["message"]
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = HOLE
    return encode(delivery).replace(f'"{HOLE}"'.encode(), raw, 1)


@FUZZ
@given(
    delivery=deliveries(),
    path=st.sampled_from(ENVELOPE_FIELDS),
    raw=hostile_values,
    target=st.sampled_from(APPS[:2]),
)
@example(delivery=status_update(call_id="call_1"), path=("timestamp",), raw=b"9" * 312, target=app)
async def test_hostile_values_at_the_converted_fields_never_give_a_5xx(
    delivery: dict[str, Any], path: tuple[str, ...], raw: bytes, target: VoiceHooks
) -> None:
    body = _with_raw(delivery, path, raw)
    response = await send(target, [body], signed(body))
    _check_tool_answer(delivery, response)


# (tool, its arguments with a hole): the coercions of int, float, bool and nested Structs.
# Adding 0 keeps a result of 4300 digits encodable (one more digit would not be).
ARGUMENT_HOLES = [
    ("add", '{"a":__,"b":0}'),
    ("add", '{"a":0,"b":__}'),
    ("scale", '{"factor":__}'),
    ("scale", '{"factor":2,"exact":__}'),
    ("book", '{"slot":{"day":"mon","hour":__}}'),
    ("book", '{"slot":{"day":__,"hour":9},"urgent":__}'),
    ("book", '{"slot":{"day":"mon","hour":9},"notes":[__]}'),
    ("lookup", '{"order_number":__}'),
    ("add", "__"),
]


@FUZZ
@given(
    hole=st.sampled_from(ARGUMENT_HOLES),
    raw=hostile_values,
    as_string=st.booleans(),
    target=st.sampled_from(APPS[:2]),
)
@example(hole=ARGUMENT_HOLES[0], raw=b'"' + b"9" * 309 + b'"', as_string=False, target=app)
async def test_hostile_tool_arguments_never_give_a_5xx_nor_cost_the_other_calls(
    hole: tuple[str, str], raw: bytes, as_string: bool, target: VoiceHooks
) -> None:
    name, template = hole
    arguments = template.encode().replace(b"__", raw)
    if as_string:  # OpenAI-style engines send a JSON string: decoded a second time
        arguments = json.dumps(arguments.decode("utf-8", "surrogatepass")).encode()
    delivery = tool_calls(
        tool_call(name, {}, id="hostile"), tool_call("add", {"a": 2, "b": 3}, id="plain")
    )
    body = encode(delivery).replace(b'"arguments":{}', b'"arguments":' + arguments, 1)
    response = await send(target, [body], signed(body))
    try:
        msgspec.json.decode(body, type=msgspec.Raw)  # JSON at all? (reads no number)
    except msgspec.DecodeError:  # NaN, Infinity, a lone surrogate: the body is not JSON
        assert response.status_code == 400
        return
    if target is app:  # the fallback handler answers what it is given, not the tools
        assert response.status_code == 200
        results = response.json()["results"]
        assert [r["tool_call_id"] for r in results] == ["hostile", "plain"]
        assert results[1]["result"] == 5
