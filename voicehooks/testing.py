"""Test kit for voicehooks apps: a signed in-memory client, event factories and a clock.

Use it in your own test suite the way you would use Starlette's ``TestClient``. Tests are
async; run them with anyio's pytest plugin (installed with anyio) or pytest-asyncio::

    import pytest
    from voicehooks.testing import WebhookClient

    from myapp import app

    pytestmark = pytest.mark.anyio


    async def test_repair_status() -> None:
        async with WebhookClient(app) as client:
            result = await client.call_tool("check_repair_status", order_number="WO-2291")
        assert result == {"order_number": "WO-2291", "status": "ready for pickup"}

What is in here:

* ``WebhookClient`` sends deliveries to an ASGI app in memory, no socket and no server, signed
  exactly as the platform signs them. It drives a ``VoiceHooks`` app, or a Starlette/FastAPI
  app that mounts one (pass ``path=``). ``call_tool`` returns one tool's normalized result;
  ``assistant_request`` returns the decoded answer; ``status_update`` and
  ``end_of_call_report`` return the ``Response``; ``post`` sends anything at all.
* Factories build the JSON payload of each event as a plain dict, with realistic defaults
  taken from the platform's documentation: ``tool_call`` and ``tool_calls``,
  ``assistant_request``, ``status_update``, ``end_of_call_report``. Every keyword a factory
  does not know becomes a field of ``message`` and replaces the default of the same name, so
  ``status_update("ended", end_reason="max_duration")`` or ``tool_calls(..., timestamp="...")``
  build the edge case you need. A fresh call id is made up unless you pass ``call_id=``.
* ``ManualClock`` is a clock that moves only when told to, for ``VoiceHooks(clock=...)`` and
  ``WebhookClient(clock=...)``: test the 300 s freshness window without sleeping.

With or without ``async with``:

* ``async with WebhookClient(app) as client:`` runs the app's lifespan (your ``lifespan=``
  setup and teardown, and the background runner), like a server does. Each answer comes back
  as soon as it is sent while background handlers go on running, as in production; call
  ``await client.wait_for_background()`` to wait for them, and leaving the block waits for
  them too, then shuts the app down.
* ``WebhookClient(app)`` alone runs no lifespan; each request then runs to its very end,
  background handlers included, before the answer is returned.

Example:
    >>> import anyio
    >>> from voicehooks import VoiceHooks
    >>> from voicehooks.testing import WebhookClient
    >>> app = VoiceHooks(secret="whsec_test")
    >>> @app.tool
    ... async def add(a: int, b: int) -> int:
    ...     '''Add two numbers.'''
    ...     return a + b
    >>> async def main() -> None:
    ...     async with WebhookClient(app, secret="whsec_test") as client:
    ...         print(await client.call_tool("add", a=2, b=3))
    >>> anyio.run(main)
    5
"""

from __future__ import annotations

import datetime
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

import anyio
import anyio.abc
import msgspec

from .app import VoiceHooks
from .responses import results_from_response
from .signing import sign

__all__ = [
    "ManualClock",
    "Response",
    "WebhookClient",
    "assistant_request",
    "end_of_call_report",
    "status_update",
    "tool_call",
    "tool_calls",
]

ASGIApp = Callable[..., Any]

PHONE_NUMBER = {
    "id": "b7e1c9a4-2f36-4d8b-9a15-6c0e3f2d7a81",
    "number": "+31302047715",
    "name": "Rijwielhuis Kade Service Line",
}
"""The platform number the factories' calls come in on."""

CUSTOMER_NUMBER = "+31655018342"
"""The caller's number in the factories' calls."""


# -- factories ---------------------------------------------------------------------------


def _now_iso() -> str:
    now = datetime.datetime.now(datetime.UTC)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _envelope(
    event_type: str,
    status: str,
    *,
    call_id: str | None,
    call_type: str,
    customer_number: str | None,
    metadata: Mapping[str, Any] | None,
    fields: Mapping[str, Any],
) -> dict[str, Any]:
    web = call_type == "web_call"
    message: dict[str, Any] = {
        "type": event_type,
        "timestamp": _now_iso(),
        "call": {"id": call_id or str(uuid.uuid4()), "type": call_type, "status": status},
        # Web calls have no phone numbers: the platform sends nulls (PLATFORM.md 8 row 27).
        "phone_number": {"id": None, "number": None, "name": None} if web else dict(PHONE_NUMBER),
        "customer": {"number": None if web else customer_number},
    }
    if metadata is not None:
        message["assistant"] = {"metadata": dict(metadata)}
    message.update(fields)
    return {"message": message}


def tool_call(
    name: str, arguments: Mapping[str, Any] | str | None = None, *, id: str | None = None
) -> dict[str, Any]:
    """One entry of a ``tool-calls`` delivery's ``tool_call_list``.

    Args:
        name: The tool the model calls.
        arguments: The model's arguments: a dict, or a JSON string as OpenAI-style engines
            send them. ``{}`` when omitted.
        id: The tool call id the answer must echo; a fresh ``tool_…`` id when omitted. Reuse
            an id (with the same ``call_id``) to simulate a redelivery.

    Example:
        >>> tool_call("check_repair_status", {"order_number": "WO-2291"}, id="tool_1")
        ... # doctest: +NORMALIZE_WHITESPACE
        {'id': 'tool_1', 'type': 'function',
         'function': {'name': 'check_repair_status', 'arguments': {'order_number': 'WO-2291'}}}
    """
    return {
        "id": id or f"tool_{uuid.uuid4().hex[:12]}",
        "type": "function",
        "function": {"name": name, "arguments": {} if arguments is None else arguments},
    }


def tool_calls(
    *calls: Mapping[str, Any],
    call_id: str | None = None,
    call_type: str = "inbound_phone_call",
    customer_number: str | None = CUSTOMER_NUMBER,
    metadata: Mapping[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A ``tool-calls`` delivery carrying ``calls`` (build each with ``tool_call``).

    Args:
        *calls: The entries of ``tool_call_list``, in order.
        call_id: The call's id; a fresh UUID when omitted.
        call_type: ``inbound_phone_call``, ``outbound_phone_call`` or ``web_call`` (web calls
            carry no phone numbers).
        customer_number: The caller's number (E.164), or ``None``.
        metadata: Sent as ``assistant.metadata``, what an assistant-request answer attached.
        **fields: Other ``message`` fields; they replace the defaults of the same name.

    Example:
        >>> body = tool_calls(tool_call("add", {"a": 1}), call_id="call-1")
        >>> body["message"]["type"], body["message"]["call"]["status"]
        ('tool-calls', 'in-progress')
    """
    return _envelope(
        "tool-calls",
        "in-progress",
        call_id=call_id,
        call_type=call_type,
        customer_number=customer_number,
        metadata=metadata,
        fields={"tool_call_list": list(calls), **fields},
    )


def assistant_request(
    *,
    call_id: str | None = None,
    customer_number: str | None = CUSTOMER_NUMBER,
    **fields: Any,
) -> dict[str, Any]:
    """An ``assistant-request`` delivery: an inbound call is ringing and waits for its config.

    Args:
        call_id: The call's id; a fresh UUID when omitted.
        customer_number: The caller's number (E.164), or ``None`` for a withheld number.
        **fields: Other ``message`` fields; they replace the defaults of the same name.

    Example:
        >>> assistant_request(call_id="call-1")["message"]["call"]
        {'id': 'call-1', 'type': 'inbound_phone_call', 'status': 'ringing'}
    """
    return _envelope(
        "assistant-request",
        "ringing",
        call_id=call_id,
        call_type="inbound_phone_call",
        customer_number=customer_number,
        metadata=None,
        fields=fields,
    )


def status_update(
    status: str = "in-progress",
    *,
    call_id: str | None = None,
    call_type: str = "inbound_phone_call",
    customer_number: str | None = CUSTOMER_NUMBER,
    metadata: Mapping[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A ``status-update`` delivery: the call's status is now ``status``.

    Once ended, ``end_reason`` defaults to ``user_hangup``; ``ended-with-error`` also carries
    an ``error`` text, as the platform sends it.

    Args:
        status: The new ``call.status``: ``in-progress``, ``ended``, ``ended-with-error``, or
            any other string (the platform may add statuses).
        call_id: The call's id; a fresh UUID when omitted.
        call_type: ``inbound_phone_call``, ``outbound_phone_call`` or ``web_call``.
        customer_number: The caller's number (E.164), or ``None``.
        metadata: Sent as ``assistant.metadata``.
        **fields: Other ``message`` fields (``end_reason``, ``error``, ...); they replace the
            defaults of the same name.

    Example:
        >>> status_update("ended")["message"]["end_reason"]
        'user_hangup'
    """
    if status.startswith("ended"):
        fields.setdefault("end_reason", "user_hangup")
    if status == "ended-with-error":
        fields.setdefault("error", "Speech-to-text connection failed")
    return _envelope(
        "status-update",
        status,
        call_id=call_id,
        call_type=call_type,
        customer_number=customer_number,
        metadata=metadata,
        fields=fields,
    )


def end_of_call_report(
    *,
    call_id: str | None = None,
    call_type: str = "inbound_phone_call",
    customer_number: str | None = CUSTOMER_NUMBER,
    metadata: Mapping[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """An ``end-of-call-report`` delivery with a summary, a short transcript and an analysis.

    Args:
        call_id: The call's id; a fresh UUID when omitted.
        call_type: ``inbound_phone_call``, ``outbound_phone_call`` or ``web_call``.
        customer_number: The caller's number (E.164), or ``None``.
        metadata: Sent as ``assistant.metadata``, the usual way to find the CRM record.
        **fields: Other ``message`` fields (``duration_seconds``, ``summary``, ``messages``,
            ``analysis``, ``recording_url``, ``started_at``, ``ended_at``, ``end_reason``);
            they replace the defaults of the same name.

    Example:
        >>> report = end_of_call_report(duration_seconds=12)["message"]
        >>> report["duration_seconds"], report["call"]["status"], len(report["messages"])
        (12, 'ended', 3)
    """
    report: dict[str, Any] = {
        "duration_seconds": 95,
        "summary": "The caller asked whether their bike was ready; it is ready for pickup.",
        "messages": [
            {"role": "assistant", "content": "Good morning, Rijwielhuis Kade, how can I help?"},
            {"role": "user", "content": "Is my bike ready? Order WO-2291."},
            {"role": "assistant", "content": "Yes, WO-2291 is ready for pickup."},
        ],
        "analysis": {"intent": "repair-status", "resolved": True},
        "end_reason": "user_hangup",
    }
    report.update(fields)
    return _envelope(
        "end-of-call-report",
        "ended",
        call_id=call_id,
        call_type=call_type,
        customer_number=customer_number,
        metadata=metadata,
        fields=report,
    )


# -- clock -------------------------------------------------------------------------------


class ManualClock:
    """A clock that stands still until ``advance`` moves it; Unix seconds, like ``time.time``.

    Share one between the app and the client to test the freshness window without sleeping.

    Args:
        now: The starting time; when omitted, the current time in whole seconds, like the
            platform's timestamps (so a signature made at the start is exactly 0 s old).

    Example:
        >>> clock = ManualClock(1767182400)
        >>> clock.advance(301)
        >>> clock()
        1767182701.0
    """

    def __init__(self, now: float | None = None) -> None:
        self.now = float(int(time.time()) if now is None else now)

    def __call__(self) -> float:
        """The current time of this clock."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward (backward when negative)."""
        self.now += seconds


# -- client ------------------------------------------------------------------------------


class Response(msgspec.Struct, frozen=True):
    """An answer: status, lower-cased headers and the body bytes."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body decoded as JSON."""
        return msgspec.json.decode(self.body)


class WebhookClient:
    """Sends signed deliveries to an ASGI app in memory, the way the platform would.

    Args:
        app: The ASGI app: a ``VoiceHooks`` app or a parent (Starlette, FastAPI) that mounts
            one.
        secret: Signs every request; ``VOICEHOOKS_SECRET``'s first entry when omitted. With
            neither, requests go out unsigned.
        path: Where the webhook endpoint is: the mount path when mounted (``"/hooks"``).
        clock: Returns the Unix time used for ``X-Webhook-Timestamp``; see ``ManualClock``.

    Example:
        >>> import anyio
        >>> from voicehooks import VoiceHooks
        >>> from voicehooks.testing import WebhookClient
        >>> app = VoiceHooks(secret="whsec_test")
        >>> client = WebhookClient(app, secret="wrong")
        >>> response = anyio.run(client.status_update)
        >>> response.status, response.json()
        (401, {'error': 'signature does not match any configured secret'})
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        secret: str | None = None,
        path: str = "/",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        env = os.environ.get("VOICEHOOKS_SECRET", "").split(",")[0].strip()
        self.secret = secret if secret is not None else env or None
        self.path = path
        self.clock = clock
        self._group: anyio.abc.TaskGroup | None = None
        self._lifespan_send: Any = None
        self._state: dict[str, Any] = {}
        self._hooks = _find_hooks(app)
        self._requests_running = 0

    # -- lifespan --

    async def __aenter__(self) -> WebhookClient:
        """Start the app's lifespan: its ``lifespan=`` setup and its background runner."""
        group = self._group = await anyio.create_task_group().__aenter__()
        to_app, app_inbox = anyio.create_memory_object_stream[dict[str, Any]](10)
        app_outbox, from_app = anyio.create_memory_object_stream[dict[str, Any]](10)
        self._lifespan_send, self._lifespan_recv = to_app, from_app
        self._lifespan_streams = (to_app, app_inbox, app_outbox, from_app)
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self._state}
        group.start_soon(self._run_lifespan, scope, app_inbox, app_outbox)
        await to_app.send({"type": "lifespan.startup"})
        message = await from_app.receive()
        if message["type"] != "lifespan.startup.complete":
            # Leave the task group before reporting, or it would outlive this call; the
            # lifespan task's own exception comes out of it and becomes the cause.
            self._group = None
            group.cancel_scope.cancel()
            cause: BaseException | None = None
            try:
                await group.__aexit__(None, None, None)
            except BaseExceptionGroup as errors:
                cause = errors.exceptions[0] if len(errors.exceptions) == 1 else errors
            finally:
                for stream in self._lifespan_streams:
                    stream.close()
            reason = f"{type(cause).__name__}: {cause}" if cause else message.get("message", "")
            raise RuntimeError(f"the app's startup failed: {reason}") from cause
        return self

    async def _run_lifespan(self, scope: dict[str, Any], inbox: Any, outbox: Any) -> None:
        await self.app(scope, inbox.receive, outbox.send)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Wait for requests and background work, then shut the app down."""
        assert self._group is not None
        await self._lifespan_send.send({"type": "lifespan.shutdown"})
        await self._lifespan_recv.receive()
        group, self._group = self._group, None
        await group.__aexit__(exc_type, exc, tb)
        for stream in self._lifespan_streams:
            stream.close()

    async def wait_for_background(self, timeout_seconds: float = 10.0) -> None:
        """Wait until every request has finished and no background handler is running.

        Informational handlers run after the answer, so a test that checks their effect
        waits for them first::

            async with WebhookClient(app) as client:
                await client.end_of_call_report(call_id="call-1")
                await client.wait_for_background()
                assert stored("call-1")

        Args:
            timeout_seconds: Give up after this long.

        Raises:
            TimeoutError: Work was still running; the message names it by event and call id.
        """
        with anyio.move_on_after(timeout_seconds):
            while self._requests_running or self._in_flight():
                # Polling, not an event: the work belongs to the app, which does not tell us
                # when it is done. A millisecond is far below any handler worth testing.
                await anyio.sleep(0.001)
            return
        raise TimeoutError(
            f"after {timeout_seconds} s, {self._requests_running} request(s) and the "
            f"background work {self._in_flight()} (event, call id) were still running"
        )

    def _in_flight(self) -> list[tuple[str, str]]:
        return [job for hooks in self._hooks for job in hooks.runner.in_flight]

    # -- requests --

    def signed_headers(
        self, body: bytes, *, timestamp: int | None = None, event: str | None = None
    ) -> dict[str, str]:
        """The headers the platform would send with ``body``, signed with the client's secret.

        Args:
            body: The exact body bytes.
            timestamp: Sign as of this Unix time instead of the clock's.
            event: The event name for ``X-Webhook-Event``; left out when omitted.
        """
        stamp = int(self.clock()) if timestamp is None else timestamp
        if self.secret is None:
            headers = {"content-type": "application/json", "x-webhook-timestamp": str(stamp)}
            if event is not None:
                headers["x-webhook-event"] = event
            return headers
        return sign(body, self.secret, stamp, event=event)

    async def post(
        self,
        body: bytes | Mapping[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
        signed: bool = True,
        timestamp: int | None = None,
        method: str = "POST",
        path: str | None = None,
        chunks: Sequence[bytes] | None = None,
    ) -> Response:
        """Send one request and return the answer, whatever its status.

        Args:
            body: Raw bytes (sent exactly as given), or a payload to encode as JSON.
            headers: Extra headers; they replace the signed ones of the same name.
            signed: Add the platform's signature headers.
            timestamp: Sign as of this Unix time instead of the clock's.
            method: The HTTP method.
            path: Overrides the client's path.
            chunks: Deliver the body in these pieces (their concatenation, not ``body``).
        """
        raw = body if isinstance(body, bytes) else msgspec.json.encode(body)
        event = _event_name(body)
        if signed:
            all_headers = self.signed_headers(raw, timestamp=timestamp, event=event)
        else:
            all_headers = {"content-type": "application/json"}
        for key, value in (headers or {}).items():
            all_headers[key.lower()] = value
        pieces = list(chunks) if chunks is not None else [raw]
        return await self.request(method, path or self.path, pieces, list(all_headers.items()))

    async def request(
        self, method: str, path: str, body: Sequence[bytes], headers: Sequence[tuple[str, str]]
    ) -> Response:
        """Send one raw request: the body in pieces, headers as given (repeats allowed)."""
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
            "state": dict(self._state),
        }
        pending = list(body) or [b""]
        answered = anyio.Event()
        start: dict[str, Any] = {}
        parts: list[bytes] = []

        async def receive() -> dict[str, Any]:
            if pending:
                chunk = pending.pop(0)
                return {"type": "http.request", "body": chunk, "more_body": bool(pending)}
            await answered.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
                if not message.get("more_body", False):
                    answered.set()

        async def run() -> None:
            try:
                await self.app(scope, receive, send)
            finally:
                answered.set()
                self._requests_running -= 1

        self._requests_running += 1
        if self._group is None:
            await run()
        else:
            # Like a server: the answer comes back when sent, the app's task goes on.
            self._group.start_soon(run)
            await answered.wait()
        if not start:
            raise RuntimeError("the app returned without answering")
        headers_out = {
            k.decode("latin-1"): v.decode("latin-1") for k, v in start.get("headers", [])
        }
        return Response(start["status"], headers_out, b"".join(parts))

    # -- event helpers --

    async def call_tools(self, *calls: Mapping[str, Any], **envelope: Any) -> list[Any]:
        """Send one ``tool-calls`` delivery and return the per-call results, in order.

        Each result is normalized with ``voicehooks.results_from_response``: what the tool
        returned, or ``{"error": "..."}`` for a ``ToolError``, bad arguments, a timeout or an
        unknown tool.

        Args:
            *calls: The calls, built with ``tool_call``.
            **envelope: Passed to the ``tool_calls`` factory (``call_id``, ``metadata``, ...).

        Raises:
            AssertionError: The answer was not a 200.

        Example:
            ``await client.call_tools(tool_call("a", {"x": 1}), tool_call("b"), call_id="c1")``
        """
        response = await self.post(tool_calls(*calls, **envelope))
        _expect_ok(response, "tool-calls")
        return results_from_response(response.json(), [call["id"] for call in calls])

    async def call_tool(self, name: str, /, **arguments: Any) -> Any:
        """Call tool ``name`` with the model's ``arguments`` and return its normalized result.

        Example:
            ``await client.call_tool("check_repair_status", order_number="WO-2291")``

        Raises:
            AssertionError: The answer was not a 200.
        """
        (result,) = await self.call_tools(tool_call(name, arguments))
        return result

    async def assistant_request(self, **fields: Any) -> Any:
        """Send an ``assistant-request`` and return the decoded answer (``{}`` by default).

        Args:
            **fields: Passed to the ``assistant_request`` factory (``call_id``,
                ``customer_number``, other ``message`` fields).

        Raises:
            AssertionError: The answer was not a 200.
        """
        response = await self.post(assistant_request(**fields))
        _expect_ok(response, "assistant-request")
        return response.json()

    async def status_update(self, status: str = "in-progress", **fields: Any) -> Response:
        """Send a ``status-update`` and return the answer; see the ``status_update`` factory."""
        return await self.post(status_update(status, **fields))

    async def end_of_call_report(self, **fields: Any) -> Response:
        """Send an ``end-of-call-report`` and return the answer; see its factory."""
        return await self.post(end_of_call_report(**fields))


def _event_name(body: bytes | Mapping[str, Any]) -> str | None:
    if isinstance(body, bytes):
        return None  # raw bytes are sent as given; they may not even be JSON
    message = body.get("message")
    event = message.get("type") if isinstance(message, Mapping) else None
    return event if isinstance(event, str) else None


def _expect_ok(response: Response, event: str) -> None:
    if response.status == 200:
        return
    hint = ""
    if response.status == 401:
        hint = (
            " (the client's secret is not one the app accepts: pass WebhookClient(app, "
            "secret=...) or set VOICEHOOKS_SECRET to the app's secret)"
        )
    raise AssertionError(f"{event} answered {response.status}: {response.body!r}{hint}")


def _find_hooks(app: Any, depth: int = 0) -> list[VoiceHooks]:
    """The ``VoiceHooks`` apps inside ``app``: itself, or mounted in a Starlette/FastAPI app."""
    if isinstance(app, VoiceHooks):
        return [app]
    routes = getattr(app, "routes", None)
    if depth > 4 or not isinstance(routes, list):
        return []
    return [
        hooks for route in routes for hooks in _find_hooks(getattr(route, "app", None), depth + 1)
    ]
