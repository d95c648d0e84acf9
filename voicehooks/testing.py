"""Test kit: a signed in-process client and factories for the four events.

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

``WebhookClient`` drives any ASGI app in memory, no socket: a ``VoiceHooks`` app, or a
Starlette/FastAPI app that mounts one (pass ``path=``). Used as ``async with``, it runs the
app's lifespan and, like a server, returns each answer as soon as it is sent while the app
goes on with background work; leaving the block waits for that work and shuts down.
Without ``async with``, each request runs to its very end before the answer is returned.
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

from .responses import results_from_response
from .signing import sign

__all__ = [
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
CUSTOMER_NUMBER = "+31655018342"


# -- factories ---------------------------------------------------------------------------


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
        "timestamp": datetime.datetime.now(datetime.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "call": {"id": call_id or str(uuid.uuid4()), "type": call_type, "status": status},
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
    """One entry of ``tool_call_list``; ``arguments`` may be a dict or a JSON string."""
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
    """A ``tool-calls`` delivery carrying ``calls`` (build each with ``tool_call``)."""
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
    """An ``assistant-request`` delivery for a ringing inbound call."""
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
    """A ``status-update`` delivery; ``end_reason`` defaults to ``user_hangup`` once ended."""
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
    """An ``end-of-call-report`` delivery with a short transcript and an analysis."""
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
    """Sends signed deliveries to an ASGI app in memory.

    Args:
        app: The ASGI app: a ``VoiceHooks`` app or a parent that mounts one.
        secret: Signs every request; ``VOICEHOOKS_SECRET``'s first entry if omitted.
        path: Where the webhook endpoint is (the mount path when mounted).
        clock: Returns the Unix time used for ``X-Webhook-Timestamp``.
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

    # -- lifespan --

    async def __aenter__(self) -> WebhookClient:
        self._group = await anyio.create_task_group().__aenter__()
        to_app, app_inbox = anyio.create_memory_object_stream[dict[str, Any]](10)
        app_outbox, from_app = anyio.create_memory_object_stream[dict[str, Any]](10)
        self._lifespan_send, self._lifespan_recv = to_app, from_app
        self._lifespan_streams = (to_app, app_inbox, app_outbox, from_app)
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self._state}
        self._group.start_soon(self._run_lifespan, scope, app_inbox, app_outbox)
        await to_app.send({"type": "lifespan.startup"})
        message = await from_app.receive()
        if message["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"the app's startup failed: {message.get('message', '')}")
        return self

    async def _run_lifespan(self, scope: dict[str, Any], inbox: Any, outbox: Any) -> None:
        await self.app(scope, inbox.receive, outbox.send)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._group is not None
        await self._lifespan_send.send({"type": "lifespan.shutdown"})
        await self._lifespan_recv.receive()
        group, self._group = self._group, None
        await group.__aexit__(exc_type, exc, tb)
        for stream in self._lifespan_streams:
            stream.close()

    # -- requests --

    def signed_headers(self, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
        """The headers the platform would send with ``body``, signed with the client's secret."""
        stamp = int(self.clock()) if timestamp is None else timestamp
        if self.secret is None:
            return {"content-type": "application/json", "x-webhook-timestamp": str(stamp)}
        return sign(body, self.secret, stamp)

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
        """Send one request and return the answer.

        Args:
            body: Raw bytes, or a payload to encode as JSON.
            headers: Extra headers; they replace the signed ones of the same name.
            signed: Add the platform's signature headers.
            timestamp: Sign as of this Unix time instead of the clock's.
            method: The HTTP method.
            path: Overrides the client's path.
            chunks: Deliver the body in these pieces (their concatenation, not ``body``).
        """
        raw = body if isinstance(body, bytes) else msgspec.json.encode(body)
        all_headers = (
            self.signed_headers(raw, timestamp=timestamp)
            if signed
            else {"content-type": "application/json"}
        )
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

        if self._group is None:
            await run()
        else:
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
        """Send one ``tool-calls`` delivery and return the per-call results, in order."""
        response = await self.post(tool_calls(*calls, **envelope))
        if response.status != 200:
            raise AssertionError(f"tool-calls answered {response.status}: {response.body!r}")
        return results_from_response(response.json(), [call["id"] for call in calls])

    async def call_tool(self, name: str, /, **arguments: Any) -> Any:
        """Call tool ``name`` with ``arguments`` and return its normalized result."""
        (result,) = await self.call_tools(tool_call(name, arguments))
        return result

    async def assistant_request(self, **fields: Any) -> Any:
        """Send an ``assistant-request`` and return the decoded answer."""
        response = await self.post(assistant_request(**fields))
        if response.status != 200:
            raise AssertionError(f"assistant-request answered {response.status}: {response.body!r}")
        return response.json()

    async def status_update(self, status: str = "in-progress", **fields: Any) -> Response:
        """Send a ``status-update``."""
        return await self.post(status_update(status, **fields))

    async def end_of_call_report(self, **fields: Any) -> Response:
        """Send an ``end-of-call-report``."""
        return await self.post(end_of_call_report(**fields))
