"""Fuzzing the pipeline in-process: whatever arrives, the answer is a 2xx, or a 4xx whose body
is a JSON object with an ``"error"`` string. Never a 5xx, never an exception out of the app,
never a hang.

Most examples are signed correctly, so the fuzzing gets past the 401 into the decoder, the
dispatcher, the tools' argument binding and the handlers. Examples are derandomized: a failure
reproduces on every run. ``VOICEHOOKS_FUZZ_EXAMPLES`` raises the budget for a longer hunt::

    VOICEHOOKS_FUZZ_EXAMPLES=5000 .venv/bin/python -m pytest tests/test_fuzz.py

``app`` is also served by a real uvicorn in ``test_fuzz_server.py``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from typing import Any

import anyio
import msgspec
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from voicehooks import (
    AssistantRequest,
    AssistantResponse,
    CallContext,
    Deadlines,
    EndOfCallReport,
    Limits,
    StatusUpdate,
    ToolCall,
    ToolCalls,
    VoiceHooks,
)
from voicehooks.core.signing import signature
from voicehooks.testing import (
    Response,
    WebhookClient,
    assistant_request,
    end_of_call_report,
    status_update,
    tool_call,
    tool_calls,
)

pytestmark = pytest.mark.anyio

SECRET = "whsec_fuzz_secret_5b1e"
MAX_BODY_BYTES = 64 * 1024
EXAMPLES = int(os.environ.get("VOICEHOOKS_FUZZ_EXAMPLES", "300"))
# Bounds every request: a hang is a failure, not a stuck test run.
REQUEST_DEADLINE_SECONDS = 10.0

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


# -- the app under fuzz: every kind of function the dispatcher can call ------------------


class Slot(msgspec.Struct):
    """A nested argument type."""

    day: str
    hour: int


def build_app(max_body_bytes: int = MAX_BODY_BYTES) -> VoiceHooks:
    """An app with sync and async tools, injected parameters, and a handler for every event."""
    app = VoiceHooks(
        secret=SECRET,
        deadlines=Deadlines(tool_seconds=2.0, assistant_request_seconds=2.0),
        limits=Limits(max_body_bytes=max_body_bytes),
    )

    @app.tool
    async def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @app.tool
    def lookup(order_number: str, context: CallContext) -> dict[str, Any]:
        """Look up a repair order (sync: runs in a worker thread)."""
        return {"order": order_number, "has_metadata": bool(context.assistant_metadata)}

    @app.tool
    async def book(slot: Slot, notes: list[str] | None = None, urgent: bool = False) -> str:
        """Book a slot."""
        return f"{slot.day} {slot.hour} {len(notes or [])} {urgent}"

    @app.tool
    async def inspect_call(call: ToolCall, event: ToolCalls) -> int:
        """Read everything lazily decoded: the arguments, the raw message, the metadata."""
        return len(call.arguments) + len(event.raw) + len(event.metadata)

    @app.tool(fire_and_forget=True)
    async def notify(text: str = "") -> None:
        """Fire and forget."""

    @app.tool
    async def scale(factor: float, exact: bool = False) -> float:
        """Scale by a factor."""
        return factor

    @app.on("assistant-request")
    async def configure(event: AssistantRequest) -> AssistantResponse:
        return AssistantResponse.override(
            "asst_fuzz", first_message=str(len(event.raw) + len(event.metadata))
        )

    @app.on("status-update", run_before_answer=True)
    def status(event: StatusUpdate, context: CallContext) -> None:
        assert isinstance(event.raw, dict)

    @app.on("end-of-call-report")
    async def report(event: EndOfCallReport) -> None:
        assert isinstance(event.raw, dict)
        _ = event.metadata, len(event.messages)

    return app


app = build_app()

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


def signed(body: bytes, *, timestamp: str | None = None) -> list[tuple[str, str]]:
    stamp = timestamp or str(int(time.time()))
    return [
        ("content-type", "application/json"),
        ("x-webhook-timestamp", stamp),
        ("x-webhook-signature", signature(body, SECRET, stamp)),
    ]


def latin(raw: bytes) -> str:
    """Header bytes as the test client takes them (it encodes str values as latin-1)."""
    return raw.decode("latin-1")


# -- strategies --------------------------------------------------------------------------

ids = st.one_of(
    st.uuids().map(str),
    st.text(min_size=1, max_size=40),
    st.just("call-_+31612345678_XqaQ"),
)

# JSON values, exotic ones included: huge integers, tiny and huge floats, any unicode.
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**200),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def deliveries(draw: st.DrawFn) -> dict[str, Any]:
    """A valid delivery of any of the four events, tool calls to known and unknown tools."""
    kind = draw(st.sampled_from(["tool-calls", "assistant-request", "status", "report"]))
    call_id = draw(ids)
    metadata = draw(st.none() | st.dictionaries(st.text(max_size=8), json_values, max_size=3))
    if kind == "assistant-request":
        return assistant_request(call_id=call_id)
    if kind == "status":
        state = draw(st.sampled_from(["in-progress", "ended", "ended-with-error", "odd-new"]))
        return status_update(state, call_id=call_id, metadata=metadata)
    if kind == "report":
        return end_of_call_report(call_id=call_id, metadata=metadata)
    arguments = {
        "add": st.fixed_dictionaries({"a": st.integers(), "b": st.integers()}),
        "lookup": st.fixed_dictionaries({"order_number": st.text(max_size=12)}),
        "book": st.fixed_dictionaries(
            {"slot": st.fixed_dictionaries({"day": st.text(max_size=8), "hour": st.integers()})}
        ),
        "inspect_call": st.dictionaries(st.text(max_size=8), json_values, max_size=3),
        "notify": st.fixed_dictionaries({"text": st.text(max_size=12)}),
        "not_registered": st.dictionaries(st.text(max_size=8), json_values, max_size=3),
    }
    names = draw(st.lists(st.sampled_from(sorted(arguments)), min_size=1, max_size=3))
    calls = []
    for index, name in enumerate(names):
        args: Any = draw(arguments[name])
        if draw(st.booleans()):
            args = json.dumps(args)  # OpenAI-style engines send a JSON string
        calls.append(tool_call(name, args, id=f"tc{index}_{draw(ids)}"))
    return tool_calls(*calls, call_id=call_id, metadata=metadata)


def _paths(delivery: dict[str, Any]) -> list[tuple[str | int, ...]]:
    """Every field path in the delivery's envelope, the containers included."""
    found: list[tuple[str | int, ...]] = [("message",)]

    def walk(value: Any, path: tuple[str | int, ...]) -> None:
        items: Any = (
            value.items()
            if isinstance(value, dict)
            else enumerate(value)
            if isinstance(value, list)
            else ()
        )
        for key, child in items:
            found.append((*path, key))
            walk(child, (*path, key))

    walk(delivery["message"], ("message",))
    return found


def _set(delivery: dict[str, Any], path: tuple[str | int, ...], value: Any) -> None:
    target: Any = delivery
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


def _delete(delivery: dict[str, Any], path: tuple[str | int, ...]) -> None:
    target: Any = delivery
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]


HOLE = "__FUZZ_HOLE__"

# Raw JSON text put where a field's value goes: what a JSON library would never produce.
raw_tokens = st.one_of(
    st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 3000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.integers(1, 6000).map(lambda n: b"9" * n),
    st.integers(1, 6000).map(lambda n: b"-0." + b"0" * n + b"1"),
    st.sampled_from(
        [
            b"1e999",
            b"-1e999",
            b"NaN",
            b"Infinity",
            b"1e-999",
            b"-0",
            b"18446744073709551616",
            b"-9223372036854775809",
            b'"\xff\xfe"',  # invalid UTF-8
            b'"\xed\xa0\x80"',  # an encoded surrogate
            b'"\xc0\xaf"',  # overlong encoding
            b'"\\ud800"',  # a lone surrogate, escaped
            b'"\\u0000\x01"',
            b'"unterminated',
            b"[1,]",
            b"{,}",
            b'{"a" 1}',
            b"tru",
            b"",
            b'"' + b"\\u00e9" * 200 + b'"',
        ]
    ),
    st.binary(max_size=40),
    # A JSON string holding deeply nested JSON: tools decode string arguments a second time.
    st.integers(1, 3000).map(lambda n: json.dumps("[" * n + "]" * n).encode()),
    st.integers(1, 3000).map(lambda n: json.dumps('{"a":' + "[" * n + "]" * n + "}").encode()),
)


def _encode(delivery: dict[str, Any]) -> bytes:
    # stdlib json: encodes integers of any size and lone surrogates (as invalid UTF-8 below).
    text = json.dumps(delivery, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8", "surrogatepass")


@st.composite
def mutated_bodies(draw: st.DrawFn) -> tuple[bytes, dict[str, Any] | None]:
    """A delivery with one field replaced, removed or broken; the dict if it is still JSON."""
    delivery = draw(deliveries())
    path = draw(st.sampled_from(_paths(delivery)))
    action = draw(st.sampled_from(["value", "delete", "raw", "surrogate"]))
    if action == "value":
        _set(delivery, path, draw(json_values))
        return _encode(delivery), delivery
    if action == "delete":
        _delete(delivery, path)
        return _encode(delivery), delivery
    if action == "surrogate":
        _set(delivery, path, "x\ud800y")  # encoded with surrogatepass: invalid UTF-8
        return _encode(delivery), None
    _set(delivery, path, HOLE)
    return _encode(delivery).replace(f'"{HOLE}"'.encode(), draw(raw_tokens), 1), None


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
    body = _encode(delivery)
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
    whole = _encode(delivery)
    body = whole[: int(len(whole) * cut)]
    response = await send(app, [body], signed(body))
    assert response.status_code == 400


@FUZZ
@given(delivery=deliveries(), data=st.data())
async def test_bodies_in_any_chunking_get_the_same_answer_or_a_413(
    delivery: dict[str, Any], data: st.DataObject
) -> None:
    body = _encode(delivery)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=8)))
    chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    response = await send(app_small, chunks, signed(body))
    assert response.status_code == (200 if len(body) <= app_small.limits.max_body_bytes else 413)


# -- headers -----------------------------------------------------------------------------

hex_digits = st.text(alphabet="0123456789abcdefABCDEF", max_size=130)
odd_text = st.binary(max_size=70).map(latin)


@st.composite
def signature_values(draw: st.DrawFn, good: str) -> str:
    """The right signature, or one of every wrong length, prefix, alphabet and encoding."""
    choice = draw(st.integers(0, 7))
    if choice == 0:
        return good
    if choice == 1:
        return good[len("sha256=") :]  # the prefix is optional
    if choice == 2:
        return "sha256=" + draw(hex_digits)
    if choice == 3:
        return draw(hex_digits)
    if choice == 4:
        prefix = draw(st.sampled_from(["SHA256=", "sha1=", "sha256:", " sha256=", "sha256= "]))
        return prefix + good[len("sha256=") :]
    if choice == 5:
        return good.upper() if draw(st.booleans()) else good + draw(st.sampled_from([" ", "0"]))
    if choice == 6:
        return latin(good.encode() + "é".encode())
    return draw(odd_text)


@st.composite
def timestamp_values(draw: st.DrawFn, now: int) -> str:
    """A usable timestamp, or a negative, fractional, huge, non-ASCII-digit or empty one."""
    value: str = draw(
        st.one_of(
            st.just(str(now)),
            st.just(str(now * 1000)),  # milliseconds are read as such
            st.integers(-(10**30), 10**30).map(str),
            st.floats(allow_nan=True, allow_infinity=True).map(str),
            st.integers(1, 6000).map(lambda n: "9" * n),
            st.integers(1, 40).map(lambda n: "0" * n + str(now)),
            st.sampled_from(["", " ", f" {now}", f"{now} ", "+1", "1_000", "0x10", "١٧٦٧١٨٢٤٠٠"])
            .map(str.encode)
            .map(latin),
            st.text(alphabet=st.characters(categories=["Nd", "No"]), min_size=1, max_size=12)
            .map(str.encode)
            .map(latin),
            odd_text,
        )
    )
    return value


CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "Application/JSON; Charset=UTF-8",
    'application/json; charset="utf-8"',
    "application/json; charset=latin-1",
    "application/json;",
    "application/json ; foo=bar",
    "application/jsonx",
    "text/plain",
    "",
    "application/x-www-form-urlencoded",
    latin("application/json; charset=é".encode()),
]


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, list[bytes], list[tuple[str, str]]]:
    """A (mostly signed) delivery with odd, missing, repeated and non-ASCII headers."""
    body = _encode(draw(deliveries()))
    now = int(time.time())
    stamp = draw(timestamp_values(now))
    try:
        good = signature(body, SECRET, stamp.encode("latin-1").decode())
    except UnicodeDecodeError:
        good = signature(body, SECRET, now)
    headers: list[tuple[str, str]] = []
    for _ in range(draw(st.sampled_from([1, 1, 1, 0, 2]))):
        headers.append(("x-webhook-timestamp", stamp))
    for _ in range(draw(st.sampled_from([1, 1, 1, 0, 2]))):
        headers.append(("x-webhook-signature", draw(signature_values(good))))
    for _ in range(draw(st.sampled_from([1, 1, 1, 0, 2]))):
        headers.append(("content-type", draw(st.sampled_from(CONTENT_TYPES))))
    length = draw(
        st.sampled_from(
            [None, str(len(body)), "0", "-1", "abc", "9" * 5000, str(MAX_BODY_BYTES + 1), " 12"]
        )
    )
    if length is not None:
        headers.append(("content-length", length))
    headers += draw(
        st.lists(st.tuples(st.sampled_from(["x-webhook-event", "user-agent", "x-odd"]), odd_text))
    )
    method = draw(st.sampled_from(["POST"] * 6 + ["GET", "PUT", "DELETE", "post", "OPTIONS"]))
    return method, [body], draw(st.permutations(headers))


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
    body = _encode(tool_calls(tool_call(name, {}, id="tc_1")))
    return body.replace(b'"arguments":{}', b'"arguments":' + raw_arguments, 1)


def _field_body(raw: bytes) -> bytes:
    body = _encode(end_of_call_report(summary=HOLE))
    return body.replace(f'"{HOLE}"'.encode(), raw, 1)


def _assistant_body(raw: bytes, name: str) -> bytes:
    body = _encode(tool_calls(tool_call(name, {}, id="tc_1"), metadata={}))
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
    "epoch time past float's range": _encode(status_update(call_id="c1", timestamp=HOLE)).replace(
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
    body = _encode(status_update(call_id="call_1"))
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
    return _encode(delivery).replace(f'"{HOLE}"'.encode(), raw, 1)


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
    body = _encode(delivery).replace(b'"arguments":{}', b'"arguments":' + arguments, 1)
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
