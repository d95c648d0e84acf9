"""The fuzzed app and the Hypothesis strategies that feed it, in-process and over a socket.

``app`` has every kind of function the dispatcher can call; ``deliveries`` draws valid
deliveries to it, ``mutated_bodies`` breaks one field of one, and ``requests`` adds odd,
missing and repeated headers. ``tests/integration/test_fuzz.py`` sends them in-process;
``tests/integration/test_fuzz_server.py`` serves ``app`` with ``voicehooks run`` and sends them
over a socket.
"""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec
from hypothesis import HealthCheck, settings
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
    assistant_request,
    end_of_call_report,
    status_update,
    tool_call,
    tool_calls,
)

SECRET = "whsec_fuzz_secret_5b1e"
MAX_BODY_BYTES = 64 * 1024


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


# -- signing and encoding ----------------------------------------------------------------


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


def encode(delivery: dict[str, Any]) -> bytes:
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
        return encode(delivery), delivery
    if action == "delete":
        _delete(delivery, path)
        return encode(delivery), delivery
    if action == "surrogate":
        _set(delivery, path, "x\ud800y")  # encoded with surrogatepass: invalid UTF-8
        return encode(delivery), None
    _set(delivery, path, HOLE)
    return encode(delivery).replace(f'"{HOLE}"'.encode(), draw(raw_tokens), 1), None


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
    body = encode(draw(deliveries()))
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


def fuzz_settings(examples: int) -> settings:
    """Hypothesis settings for ``examples`` deliveries: the same examples on every run (no
    database, derandomized), no per-example deadline, and no health check that large or slow
    bodies would trip."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )
