"""Log hygiene: with every logger at DEBUG, no code path logs a secret, a signature, a body,
a transcript line, a summary, a phone number or any other personal value of a delivery.
Every free-text field also carries a card number, an IBAN and a phone number in spoken
digits (``SAID``), each checked on its own.

Every personal field of the deliveries below carries a distinctive marker, and so do the
values tools return and the ``ToolError`` messages they raise (those go to the caller, and
are personal in real life: "No booking for +316..."). The test then walks every code path:
valid deliveries of all four types, every rejection, failing and slow handlers and tools,
unknown tools and event types, background failures and cuts, duplicates, store failures, a
client that is gone before the answer, and an internal error. Each log record is checked as
a handler would see it: the message, its arguments, and the formatted text with traceback.
The answers are checked too: no rejection echoes a personal value, and no answer shows an
exception text, a traceback or a source path to the sender.

What voicehooks cannot promise: the message of an exception raised by *user* code is logged
with its traceback, as the user wrote it. ``test_user_exception_messages_are_not_logged``
pins that down as a known gap.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import Any

import anyio
import msgspec
import pytest

from tests.helpers.servers import free_port
from voicehooks import (
    AssistantRequest,
    AssistantResponse,
    CallContext,
    Deadlines,
    Duplicates,
    EndOfCallReport,
    Limits,
    StatusUpdate,
    ToolCalls,
    ToolError,
    VoiceHooks,
)
from voicehooks.core.exceptions import StoreError
from voicehooks.core.logs import JSONFormatter, TextFormatter, UnknownNames
from voicehooks.core.signing import signature
from voicehooks.state.dedupe import StoreFailure
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

SECRET = "whsec_LOGHYGIENE_secret_c0ffee"
SECOND_SECRET = "whsec_LOGHYGIENE_rotated_b16b00"
OTHER_SECRET = "whsec_LOGHYGIENE_not_ours_dead"

CUSTOMER = "+31699900417"
# What callers read aloud, added to every free-text field of every event type (issue 21):
# a Luhn-valid card, an IBAN with a valid check, a phone number in spoken digits.
CARD = "4111 1111 1111 1111"
IBAN = "NL91ABNA0417164300"
SPOKEN_PHONE = "zero six one two three four five six seven eight"
SAID = f" card {CARD} iban {IBAN} phone {SPOKEN_PHONE}"
PLATFORM_NUMBER = "+31200077123"
MARKERS = {
    "secret": SECRET,
    "second secret": SECOND_SECRET,
    "foreign secret": OTHER_SECRET,
    "customer number": CUSTOMER,
    "customer number digits": CUSTOMER[1:],
    "platform number": PLATFORM_NUMBER,
    "platform number digits": PLATFORM_NUMBER[1:],
    "number name": "PHONENAME-MARKER-q7" + SAID,
    "transcript, caller": "TRANSCRIPT-CALLER-LINE-5f2" + SAID,
    "transcript, assistant": "TRANSCRIPT-ASSISTANT-LINE-9c1" + SAID,
    "summary": "SUMMARY-TEXT-MARKER-7e3" + SAID,
    "analysis": "ANALYSIS-VALUE-MARKER-4d8" + SAID,
    "recording": "REC-MARKER-2b6" + SAID,
    "metadata": "METADATA-VALUE-MARKER-a19" + SAID,
    "assistant config": "ASSISTANT-CONFIG-MARKER-0aa" + SAID,
    "argument": "ARGUMENT-VALUE-MARKER-31c" + SAID,
    "status error": "STATUS-ERROR-TEXT-MARKER-66d" + SAID,
    "tool error": "TOOLERROR-TEXT-MARKER-0e5" + SAID,
    "tool result": "TOOL-RESULT-MARKER-8aa" + SAID,
    "assistant answer": "ASSISTANT-ANSWER-MARKER-c3b" + SAID,
    "signature header": "SIGNATURE-HEADER-MARKER-e4e",
    "timestamp header": "TIMESTAMP-HEADER-MARKER-1f1",
    "redis password": "REDIS-PASSWORD-MARKER-77b",
    "card": CARD,
    "card digits": CARD.replace(" ", ""),
    "iban": IBAN,
    "spoken phone": SPOKEN_PHONE,
}
ARGUMENT = MARKERS["argument"]

# Pieces of any delivery body: none may reach a log record, whatever else it says.
BODY_FRAGMENTS = ('"message":', '"tool_call_list"', '"messages":[', '"customer":{')
# What a failure inside the app must never show the sender: exception texts and names,
# tracebacks, source paths, object reprs.
INTERNALS = ("crashed", "late crash", "Error", "Traceback", 'File "', ".py", " at 0x")


def personal(**fields: Any) -> dict[str, Any]:
    """The personal fields every event carries, each a marker."""
    return {
        "customer_number": CUSTOMER,
        "phone_number": {"id": None, "number": PLATFORM_NUMBER, "name": MARKERS["number name"]},
        **fields,
    }


def metadata() -> dict[str, Any]:
    return {"crm_note": MARKERS["metadata"], "config": MARKERS["assistant config"]}


def report(call_id: str) -> dict[str, Any]:
    return end_of_call_report(
        call_id=call_id,
        metadata=metadata(),
        summary=MARKERS["summary"],
        messages=[
            {"role": "assistant", "content": MARKERS["transcript, assistant"]},
            {"role": "user", "content": MARKERS["transcript, caller"]},
        ],
        analysis={"note": MARKERS["analysis"]},
        recording_url=f"https://recordings.example/{MARKERS['recording']}.wav",
        **personal(),
    )


def status(call_id: str, state: str = "ended-with-error") -> dict[str, Any]:
    return status_update(state, call_id=call_id, error=MARKERS["status error"], **personal())


def calls(call_id: str, *names: str) -> dict[str, Any]:
    return tool_calls(
        *(tool_call(name, {"order_number": ARGUMENT}) for name in names),
        call_id=call_id,
        metadata=metadata(),
        **personal(),
    )


# -- the app: a function for every way user code can succeed, fail or stall ----------------


def build_app(**options: Any) -> VoiceHooks:
    app = VoiceHooks(
        secret=[SECRET, SECOND_SECRET],
        **options,
        deadlines=Deadlines(
            tool_seconds=0.5, assistant_request_seconds=0.2, shutdown_grace_seconds=0.2
        ),
        limits=Limits(max_body_bytes=8192),
    )

    @app.tool
    async def find_order(order_number: str, context: CallContext) -> dict[str, Any]:
        """Found."""
        return {
            "order": order_number,
            "note": MARKERS["tool result"],
            "who": context.customer_number,
        }

    @app.tool
    def find_order_sync(order_number: str, event: ToolCalls) -> dict[str, Any]:
        """Found, in a thread."""
        return {"order": order_number, "note": MARKERS["tool result"], "raw": event.raw}

    @app.tool
    async def refuse(order_number: str) -> None:
        """Says no to the caller: the message is personal, for the caller's ears only."""
        raise ToolError(f"No order {order_number} for {CUSTOMER}: {MARKERS['tool error']}")

    @app.tool
    async def crash(order_number: str) -> None:
        """A bug in user code."""
        raise RuntimeError("the tool crashed")

    @app.tool(timeout_seconds=0.05)
    async def sleepy(order_number: str) -> None:
        """Too slow."""
        await anyio.sleep(5)

    @app.tool(timeout_seconds=0.05)
    def sleepy_sync(order_number: str) -> dict[str, str]:
        """Too slow, in a thread: abandoned, then finishes."""
        time.sleep(0.15)
        return {"late": order_number}

    @app.tool(timeout_seconds=0.05)
    def sleepy_sync_crash(order_number: str) -> None:
        """Too slow, in a thread: abandoned, then raises."""
        time.sleep(0.15)
        raise RuntimeError("late crash")

    @app.tool
    async def unencodable(order_number: str) -> Any:
        """Returns what JSON cannot carry."""
        return {order_number: object()}

    @app.tool(fire_and_forget=True)
    async def remember(order_number: str) -> None:
        """Fails after the answer."""
        raise RuntimeError("the background tool crashed")

    @app.tool
    async def typed(count: int) -> int:
        """Gets a string where it wants an int: unusable arguments."""
        return count

    @app.on("assistant-request")
    async def configure(event: AssistantRequest, context: CallContext) -> Any:
        behaviour = event.call.id.split("-")[1]
        if behaviour == "crash":
            raise RuntimeError("the assistant-request handler crashed")
        if behaviour == "slow":
            await anyio.sleep(5)
        if behaviour == "bad":
            return {"assistant": MARKERS["assistant answer"], "assistant_id": CUSTOMER}
        if behaviour == "unencodable":
            return {"assistant": {"first_message": object()}}
        return AssistantResponse.override(
            "asst_1", first_message=f"{MARKERS['assistant answer']} {context.customer_number}"
        )

    @app.on("status-update", run_before_answer=True)
    def before_answer(event: StatusUpdate) -> None:
        if event.call.id.endswith("crash"):
            raise RuntimeError("the status handler crashed")

    @app.on("end-of-call-report")
    async def in_background(event: EndOfCallReport) -> None:
        if event.call.id.endswith("crash"):
            raise RuntimeError("the report handler crashed")
        if event.call.id.endswith("slow"):
            await anyio.sleep(5)  # cut short at shutdown

    @app.on_error
    def error_hook(exc: BaseException, event: object) -> None:
        raise RuntimeError("the error hook crashed too")

    return app


def with_raw_handler(app: VoiceHooks) -> VoiceHooks:
    """Add a raw tool-calls handler: it gets the calls no tool claims, and misbehaves."""

    @app.on("tool-calls")
    async def unclaimed(event: ToolCalls) -> Any:
        if event.call.id.endswith("crash"):
            raise RuntimeError("the raw handler crashed")
        if event.call.id.endswith("slow"):
            await anyio.sleep(5)
        if event.call.id.endswith("unencodable"):
            return {
                "results": [
                    {"tool_call_id": c.id, "result": object()} for c in event.tool_call_list
                ]
            }
        return {
            "results": [{"tool_call_id": c.id, "result": c.arguments} for c in event.tool_call_list]
        }

    return app


# -- checking the records --------------------------------------------------------------------


def record_texts(record: logging.LogRecord) -> Iterator[str]:
    """Every text a handler could write for ``record``."""
    yield str(record.msg)
    yield record.getMessage()
    yield repr(record.args)
    yield logging.Formatter("%(name)s %(levelname)s %(message)s").format(record)
    if record.exc_info and record.exc_info[1] is not None:
        yield "".join(traceback.format_exception(record.exc_info[1]))
    if record.stack_info:
        yield record.stack_info


class Sent:
    """What went out: bodies and signature values, to look for in the logs afterwards."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.signatures: set[str] = set()
        self.answers: list[Response] = []

    async def post(
        self,
        client: WebhookClient,
        payload: Mapping[str, Any] | bytes,
        *,
        headers: Mapping[str, str] | None = None,
        secret: str = SECRET,
        timestamp: int | None = None,
        method: str = "POST",
        chunks: list[bytes] | None = None,
        signed_as: bytes | None = None,
    ) -> Response:
        """Sign (``signed_as``, or the body itself) and send; remember what went out."""
        body = payload if isinstance(payload, bytes) else msgspec.json.encode(payload)
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signed = {
            "content-type": "application/json",
            "x-webhook-timestamp": stamp,
            "x-webhook-signature": signature(signed_as or body, secret, stamp),
        }
        signed.update(headers or {})
        self.bodies.append(body)
        self.signatures.add(signed["x-webhook-signature"])
        self.signatures.add(signed["x-webhook-signature"].removeprefix("sha256="))
        with anyio.fail_after(10):
            response = await client.request(method, "/", chunks or [body], list(signed.items()))
        self.answers.append(response)
        return response

    def check(self, records: list[logging.LogRecord]) -> None:
        """No record holds anything personal or secret; no answer shows the app's insides.

        A rejection must not echo a personal value either; a 200 may (it carries the tools'
        results, which are the caller's own data).
        """
        for answer in self.answers:
            text = answer.content.decode("utf-8", "replace")
            assert not [i for i in INTERNALS if i in text], answer
            if answer.status_code >= 400:
                assert not [m for m in MARKERS.values() if m in text], answer
        forbidden = dict(MARKERS)
        forbidden.update({f"signature {i}": s for i, s in enumerate(sorted(self.signatures))})
        forbidden.update(
            {f"body {i}": b.decode("utf-8", "replace") for i, b in enumerate(self.bodies)}
        )
        forbidden.update({f"body fragment {f}": f for f in BODY_FRAGMENTS})
        leaks = [
            f"{record.levelname} {record.name} {record.getMessage()[:120]!r} contains the {what}"
            for record in records
            for text in record_texts(record)
            for what, value in forbidden.items()
            if value in text
        ]
        assert not leaks, "\n".join(sorted(set(leaks)))


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every logger at DEBUG, the root and ``voicehooks`` included."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="voicehooks")
    return caplog


def saw(records: list[logging.LogRecord], *words: str) -> bool:
    """Whether some record mentions all of ``words``: proof that a path really ran."""
    return any(all(w in r.getMessage() for w in words) for r in records)


# -- the paths -------------------------------------------------------------------------------


async def test_valid_deliveries_and_failing_user_code_log_nothing_personal(
    logs: pytest.LogCaptureFixture,
) -> None:
    sent = Sent()
    app = build_app()
    async with WebhookClient(app, secret=SECRET, raise_exceptions=False) as client:
        names = ["find_order", "find_order_sync", "refuse", "crash", "sleepy", "sleepy_sync"]
        names += ["sleepy_sync_crash", "unencodable", "remember", "typed", "never_registered"]
        for name in names:
            response = await sent.post(client, calls(f"call-{name}", name))
            assert response.status_code == 200
        both = await sent.post(client, calls("call-two", "find_order", "no_such_tool"))
        assert both.status_code == 200
        # A tool that gets the arguments as a JSON string, with a personal value in it.
        stringly = tool_calls(
            tool_call("find_order", msgspec.json.encode({"order_number": ARGUMENT}).decode()),
            call_id="call-string",
            **personal(),
        )
        assert (await sent.post(client, stringly)).status_code == 200
        for behaviour in ("ok", "crash", "slow", "bad", "unencodable"):
            answer = await sent.post(
                client, assistant_request(call_id=f"ar-{behaviour}", **personal())
            )
            assert answer.status_code == 200
        for call_id in ("st-ok", "st-crash"):
            assert (await sent.post(client, status(call_id))).status_code == 200
        for call_id in ("eoc-ok", "eoc-crash", "eoc-slow"):
            assert (await sent.post(client, report(call_id))).status_code == 200
        # Duplicates, and a delivery signed with the second (rotated) secret.
        assert (await sent.post(client, report("eoc-ok"))).status_code == 200
        assert (await sent.post(client, status("st-ok"), secret=SECOND_SECRET)).status_code == 200
        # Milliseconds.
        millis = int(time.time() * 1000)
        assert (await sent.post(client, status("st-ms"), timestamp=millis)).status_code == 200
        await anyio.sleep(0.3)  # let the abandoned threads finish and log
    # Without a lifespan: background work runs in the request's own task.
    plain = WebhookClient(build_app(), secret=SECRET, raise_exceptions=False)
    assert (await sent.post(plain, report("eoc-inline-crash"))).status_code == 200
    sent.check(logs.records)
    for words in [
        ("crash", "RuntimeError"),
        ("sleepy", "timed out"),
        ("abandoned",),
        ("unencodable",),
        ("never_registered", "not registered"),
        ("unusable arguments",),
        ("assistant-request", "RuntimeError"),
        ("assistant-request", "longer than"),
        ("unusable answer",),
        ("status-update", "RuntimeError"),
        ("end-of-call-report", "RuntimeError"),
        ("cut short", "eoc-slow"),
        ("error hook",),
        ("secret #2",),
        ("milliseconds",),
    ]:
        assert saw(logs.records, *words), f"no record mentions {words}: that path did not run"


async def test_a_raw_tool_calls_handler_that_fails_logs_nothing_personal(
    logs: pytest.LogCaptureFixture,
) -> None:
    sent = Sent()
    app = with_raw_handler(build_app())
    client = WebhookClient(app, secret=SECRET, raise_exceptions=False)
    for call_id in ("raw-ok", "raw-crash", "raw-slow", "raw-unencodable"):
        assert (await sent.post(client, calls(call_id, "unclaimed_tool"))).status_code == 200
    sent.check(logs.records)
    assert saw(logs.records, "raw-crash", "RuntimeError")
    assert saw(logs.records, "raw-slow", "timed out")
    assert saw(logs.records, "raw-unencodable", "cannot be encoded")


async def test_every_rejection_logs_nothing_personal(logs: pytest.LogCaptureFixture) -> None:
    sent = Sent()
    app = build_app()
    client = WebhookClient(app, secret=SECRET)
    body = msgspec.json.encode(report("eoc-rejected"))
    now = int(time.time())
    cases: list[tuple[int, dict[str, Any]]] = [
        (405, {"method": "GET"}),
        (415, {"headers": {"content-type": "text/plain"}}),
        (413, {"headers": {"content-length": "999999"}}),
        (413, {"chunks": [body] * 15, "payload": body * 15}),
        (401, {"headers": {"x-webhook-signature": f"sha256={MARKERS['signature header']}"}}),
        (401, {"headers": {"x-webhook-signature": MARKERS["signature header"]}}),
        (401, {"headers": {"x-webhook-timestamp": MARKERS["timestamp header"]}}),
        (401, {"secret": OTHER_SECRET}),
        (401, {"timestamp": now - 3600}),
        (401, {"timestamp": now + 3600}),
        (401, {"timestamp": int("9" * 30)}),
        (401, {"payload": body.replace(b"eoc-rejected", b"eoc-tampered"), "signed_as": body}),
        (400, {"payload": body[: len(body) // 2]}),
        (400, {"payload": body.replace(b'"type":"end-of-call-report"', b'"type":95')}),
        (400, {"payload": body.replace(MARKERS["summary"].encode(), b"\xff\xfe")}),
        (
            400,
            {
                "payload": body.replace(
                    b'"call":{', b'"call":' + b"[" * 3000 + b"]" * 3000 + b',"x":{'
                )
            },
        ),
    ]
    for expected, options in cases:
        payload = options.pop("payload", body)
        response = await sent.post(client, payload, **options)
        assert response.status_code == expected, (expected, options, response)
        assert isinstance(response.json()["error"], str)
    # Missing headers and repeated ones: sent raw.
    stamp = str(now)
    good = signature(body, SECRET, stamp)
    for headers in (
        [("content-type", "application/json"), ("x-webhook-timestamp", stamp)],
        [("content-type", "application/json"), ("x-webhook-signature", good)],
        [
            ("content-type", "application/json"),
            ("x-webhook-timestamp", stamp),
            ("x-webhook-signature", good),
            ("x-webhook-signature", signature(body, OTHER_SECRET, stamp)),
        ],
    ):
        sent.signatures.update(v for k, v in headers if k == "x-webhook-signature")
        response = await client.request("POST", "/", [body], headers)
        assert response.status_code == 401
    # An unknown event type carrying a transcript.
    unknown = report("eoc-unknown-type")
    unknown["message"]["type"] = "transcript"
    assert (await sent.post(client, unknown)).status_code == 200
    sent.check(logs.records)
    for status_code in (400, 401, 405, 413, 415):
        assert saw(logs.records, f"rejected {status_code}")
    assert saw(logs.records, "unknown event type", "eoc-unknown-type")


async def test_a_client_gone_before_the_answer_and_an_internal_error_log_nothing_personal(
    logs: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = Sent()
    app = build_app()
    body = msgspec.json.encode(calls("call-gone", "find_order"))
    stamp = str(int(time.time()))
    headers = [
        (b"content-type", b"application/json"),
        (b"x-webhook-timestamp", stamp.encode()),
        (b"x-webhook-signature", signature(body, SECRET, stamp).encode()),
    ]
    sent.bodies.append(body)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "root_path": "",
        "headers": headers,
        "query_string": b"",
    }
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:
            await anyio.sleep_forever()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def gone(message: MutableMapping[str, Any]) -> None:
        raise OSError("the client went away")

    await app(scope, receive, gone)
    assert saw(logs.records, "disconnected before the answer")

    async def broken(event: ToolCalls) -> bytes:
        raise RuntimeError("a bug inside voicehooks")

    monkeypatch.setattr(app.dispatcher, "answer", broken)
    response = await sent.post(WebhookClient(app, secret=SECRET), calls("call-bug", "find_order"))
    assert response.status_code == 500
    assert saw(logs.records, "internal error")
    sent.check(logs.records)


class FailingStore:
    """A duplicate-delivery store that is down: every operation raises ``StoreError``."""

    async def open(self) -> None:
        raise StoreError("the stub store is down")

    async def claim(self, key: str, ttl_seconds: float) -> bool:
        raise StoreError("the stub store is down")

    async def claim_many(self, keys: Sequence[str], ttl_seconds: float) -> list[bool]:
        raise StoreError("the stub store is down")

    async def put_result(self, key: str, result: bytes, ttl_seconds: float) -> None:
        raise StoreError("the stub store is down")

    async def put_results(self, results: Sequence[tuple[str, bytes]], ttl_seconds: float) -> None:
        raise StoreError("the stub store is down")

    async def wait_result(self, key: str, timeout_seconds: float) -> bytes | None:
        raise StoreError("the stub store is down")

    async def release(self, key: str) -> None:
        raise StoreError("the stub store is down")

    async def take_token(self, key: str, capacity: int, window_seconds: float) -> float:
        raise StoreError("the stub store is down")

    async def aclose(self) -> None:
        raise StoreError("the stub store is down")


@pytest.mark.parametrize("store_failure", ["process", "reject"])
async def test_store_errors_log_nothing_personal(
    logs: pytest.LogCaptureFixture, store_failure: StoreFailure
) -> None:
    sent = Sent()
    stores: list[Any] = [FailingStore()]
    try:
        from voicehooks.state.stores import RedisStore

        password = MARKERS["redis password"]
        port = free_port()  # nothing listens: every command fails at once
        stores.append(RedisStore.from_url(f"redis://:{password}@127.0.0.1:{port}/0"))
    except ImportError:  # pragma: no cover - the dev group installs redis
        pass
    for index, store in enumerate(stores):
        app = build_app(duplicates=Duplicates(store=store, store_failure=store_failure))
        async with WebhookClient(app, secret=SECRET) as client:
            for payload in (
                calls(f"call-store-{index}", "find_order"),
                status(f"st-store-{index}", "ended"),
                report(f"eoc-store-{index}"),
            ):
                response = await sent.post(client, payload)
                assert response.status_code == (503 if store_failure == "reject" else 200)
    sent.check(logs.records)
    assert saw(logs.records, "store")


async def test_user_exception_messages_are_not_logged(logs: pytest.LogCaptureFixture) -> None:
    sent = Sent()
    app = VoiceHooks(secret=SECRET)

    @app.tool
    async def lookup(order_number: str, context: CallContext) -> None:
        """A typical bug: a dict lookup keyed by a personal value."""
        customers: dict[str, str] = {}
        customers[context.customer_number or ""] += order_number

    assert (
        await sent.post(
            WebhookClient(app, secret=SECRET, raise_exceptions=False), calls("call-key", "lookup")
        )
    ).status_code == 200
    sent.check(logs.records)


# -- text the sender chose ------------------------------------------------------------------

# A newline and then what looks like a line of our own: it must never start a line.
FORGED_HEAD = "2026-01-01T00:00:00.000Z ERROR voicehooks:"
FORGED = f"\n{FORGED_HEAD} FORGED-LINE"


def formatted(records: list[logging.LogRecord]) -> tuple[list[str], list[str]]:
    """The lines ``voicehooks run`` would write for ``records``, in text and in JSON."""
    text = [line for r in records for line in TextFormatter().format(r).splitlines()]
    json = [line for r in records for line in JSONFormatter().format(r).splitlines()]
    return text, json


async def test_a_newline_the_sender_chose_never_starts_a_log_line_of_its_own(
    logs: pytest.LogCaptureFixture,
) -> None:
    app = build_app()
    client = WebhookClient(app, secret=SECRET)
    unknown_event = {"message": {"type": "transcript" + FORGED, "call": {"id": "u" + FORGED}}}
    drifted = status_update("ended", call_id="s" + FORGED, error=["not", "a", "string"])
    unknown_tool = tool_calls(tool_call("invented" + FORGED, {}), call_id="t" + FORGED)
    for payload in (unknown_event, drifted, unknown_tool, report("r" + FORGED)):
        assert (await client.post(payload)).status_code == 200
    records = [r for r in logs.records if r.name == "voicehooks"]
    assert saw(records, "unknown event type", "FORGED-LINE")
    assert saw(records, "which is not registered", "FORGED-LINE")
    assert saw(records, "could not be read", "FORGED-LINE")
    text, json = formatted(records)
    assert sum("FORGED-LINE" in line for line in text) >= 8
    assert [line for line in text if line.startswith(FORGED_HEAD)] == []
    assert len(json) == len(records)  # one line per record


async def test_a_450_000_character_event_type_gives_log_lines_of_bounded_length(
    logs: pytest.LogCaptureFixture,
) -> None:
    client = WebhookClient(VoiceHooks(secret=SECRET), secret=SECRET)
    huge = {"message": {"type": "t" * 450_000, "call": {"id": "c" * 450_000}}}
    assert (await client.post(huge)).status_code == 200
    assert saw(logs.records, "unknown event type")
    text, json = formatted([r for r in logs.records if r.name == "voicehooks"])
    # 128 characters shown of each text the sender chose (escaped, each at most 10).
    assert max(map(len, text + json)) < 2_000


async def test_warnings_about_unknown_event_types_are_once_each_and_rate_limited(
    logs: pytest.LogCaptureFixture,
) -> None:
    app = VoiceHooks(secret=SECRET)
    app.dispatcher.unknown_events = UnknownNames(clock=lambda: 0.0)  # one period throughout
    client = WebhookClient(app, secret=SECRET)
    types = ["transcript"] * 20 + [f"invented-{i}" for i in range(40)]
    for index, kind in enumerate(types):
        payload = {"message": {"type": kind, "call": {"id": f"call-{index}"}}}
        assert (await client.post(payload)).status_code == 200
    warnings = [r for r in logs.records if "unknown event type" in r.getMessage()]
    assert len(warnings) == 10  # "transcript" once, then 9 more names: 10 a minute
    assert saw(warnings, "'transcript'")
    answered = [r for r in logs.records if r.levelno == logging.INFO and " 200 " in r.getMessage()]
    assert len(answered) == len(types)  # every delivery keeps its own line


async def test_metrics_and_traces_hold_nothing_personal_for_any_event_type(
    logs: pytest.LogCaptureFixture,
) -> None:
    """The same kinds of deliveries, with Prometheus and an OpenTelemetry SDK tracer on:
    neither the exposition nor any span (name, attributes, events, status) holds a marker,
    the card, the IBAN or the spoken phone number (issue 21)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from prometheus_client import generate_latest

    from voicehooks.observe.metrics import PrometheusObserver
    from voicehooks.observe.tracing import TracingObserver

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    metrics = PrometheusObserver()
    sent = Sent()
    app = build_app(observers=[metrics, TracingObserver(provider)])
    async with WebhookClient(app, secret=SECRET, raise_exceptions=False) as client:
        for name in ("find_order", "refuse", "crash", "typed", "never_registered"):
            assert (await sent.post(client, calls(f"call-{name}", name))).status_code == 200
        for behaviour in ("ok", "crash"):
            request = assistant_request(call_id=f"ar-{behaviour}", **personal())
            assert (await sent.post(client, request)).status_code == 200
        for call_id in ("st-ok", "st-crash"):
            assert (await sent.post(client, status(call_id))).status_code == 200
        for call_id in ("eoc-ok", "eoc-crash"):
            assert (await sent.post(client, report(call_id))).status_code == 200
        assert (await sent.post(client, b'{"message": {"type": "x"')).status_code == 400
        await client.wait_for_background()
    spans = exporter.get_finished_spans()
    provider.shutdown()
    assert spans, "no span was recorded: the tracer was not in use"
    texts = {"metrics": generate_latest(metrics.registry).decode()}
    for number, span in enumerate(spans):
        texts[f"span {number} {span.name}"] = repr(
            (
                span.name,
                dict(span.attributes or {}),
                [(event.name, dict(event.attributes or {})) for event in span.events],
                span.status.description,
            )
        )
    leaks = [
        f"{where} holds the {what}"
        for where, text in texts.items()
        for what, value in MARKERS.items()
        if value in text
    ]
    assert not leaks, "\n".join(leaks)
    sent.check(logs.records)
