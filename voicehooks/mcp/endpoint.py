"""The MCP endpoint: the app's tools over Streamable HTTP, stateless, in raw ASGI.

The platform is an MCP client (PLATFORM.md 7.2): an assistant may use the tools of a remote
MCP server during a call, and this endpoint makes the app that server. It speaks the
Streamable HTTP transport of the protocol versions in ``VERSIONS``, in its stateless form: no
session id, each POST carries one JSON-RPC message (or, before 2025-06-18, a batch) and is
answered in its own response.

* ``POST`` with a request: ``application/json``, or one ``text/event-stream`` event when the
  client's ``Accept`` takes only that. A notification or a client's response: 202, no body.
  ``GET`` (a server-sent stream) and ``DELETE`` (a session): 405; there is neither.
* Methods: ``initialize`` (the client's version if we speak it, else our latest), ``ping``,
  ``tools/list`` (encoded once per set of tools), ``tools/call``; any other is -32601. An
  unknown or withheld tool is -32602. A body that is not JSON is -32700, one that is not a
  JSON-RPC message -32600, both with 400 and a null id.
* ``MCP-Protocol-Version``: a version we do not speak is a 400; none means 2025-03-26, as the
  specification says for a server that keeps no session.
* Refused before anything is read: a request with an ``Origin`` header (403; the platform
  calls from its servers and sends none, a browser page always does: this is the protection
  against DNS rebinding the specification asks for), then one without an accepted bearer
  token (401 with ``WWW-Authenticate: Bearer``, a body that names no tool). Tokens are
  compared in constant time, each of them. The ``Host`` header is not checked: a page that
  rebinds a name to this server cannot know the token.

A ``tools/call`` runs through the same ``ToolCallsAnswerer`` as a webhook tool call: the
same argument decoder and coercions, the same texts for the model, a withheld message for a
bug, the same observers and log line (``Delivery.transport == "mcp"``). Its deadline is
``Mcp.deadline_seconds``, or the tool's own ``timeout_seconds`` when smaller. A result comes
back as one text content (a string as it is, any other value as JSON); an error result (the
tool raised ``ToolError``, its arguments did not fit, it failed or timed out, or it returned
the error format) with ``isError: true`` and the text the webhook would give the model.

Requests that carry no tool call (``initialize``, ``ping``, ``tools/list``, notifications)
are not deliveries: observers see only ``tools/call`` and refusals.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Final

import msgspec
from starlette.types import Receive, Scope, Send

from voicehooks.core.events import ToolCall, ToolCalls, ToolFunction
from voicehooks.core.exceptions import RequestError
from voicehooks.core.http import JSON, is_json
from voicehooks.core.logs import describe, loggable
from voicehooks.core.records import Delivery, DeliveryOutcome, ToolOutcome, ToolRun, Transport
from voicehooks.core.running import run_concurrently
from voicehooks.observe.observers import ObserverSet
from voicehooks.pipeline.routing import Registry
from voicehooks.pipeline.toolcalls import ToolCallsAnswerer
from voicehooks.tools.definition import Tool

from .offer import listing, offered

__all__ = ["LATEST_VERSION", "MAX_BATCH", "VERSIONS", "McpEndpoint"]

_log = logging.getLogger("voicehooks")

VERSIONS: Final = ("2025-03-26", "2025-06-18", "2025-11-25")
"""The protocol versions spoken, oldest first."""
LATEST_VERSION: Final = VERSIONS[-1]
_NO_BATCHES: Final = frozenset(VERSIONS[1:])  # 2025-06-18 took JSON-RPC batches out
MAX_BATCH: Final = 32
"""The most messages one batch (2025-03-26) may hold; a longer one is refused with -32600."""

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603

_SSE: Final = b"text/event-stream"
_UNSET: Final = msgspec.UNSET
Id = int | str


class _Message(msgspec.Struct, frozen=True):
    """One JSON-RPC message as received; what it is depends on which fields it has."""

    jsonrpc: str = ""
    id: Id | msgspec.UnsetType | None = _UNSET
    method: str | msgspec.UnsetType = _UNSET
    params: msgspec.Raw = msgspec.Raw(b"{}")


class _Initialize(msgspec.Struct, frozen=True, rename="camel"):
    protocol_version: str


class _CallParams(msgspec.Struct, frozen=True):
    name: str
    arguments: msgspec.Raw = msgspec.Raw(b"{}")


class _Error(msgspec.Struct, frozen=True):
    code: int
    message: str


class _ErrorResponse(msgspec.Struct, frozen=True, kw_only=True):
    jsonrpc: str = "2.0"
    id: Id | None
    error: _Error


class _Response(msgspec.Struct, frozen=True, kw_only=True):
    jsonrpc: str = "2.0"
    id: Id
    result: msgspec.Raw


class _Text(msgspec.Struct, frozen=True, kw_only=True):
    type: str = "text"
    text: str


class _CallResult(msgspec.Struct, frozen=True, rename="camel"):
    content: tuple[_Text]
    is_error: bool


class _Refused(Exception):
    """A request refused at the HTTP level: its status, the text, and headers to add."""

    def __init__(
        self, status: int, text: str, headers: Sequence[tuple[bytes, bytes]] = (), code: int = 0
    ) -> None:
        super().__init__(text)
        self.status, self.headers, self.code = status, list(headers), code


_decode_message = msgspec.json.Decoder(_Message).decode
_decode_batch = msgspec.json.Decoder(list[_Message]).decode
_decode_initialize = msgspec.json.Decoder(_Initialize).decode
_decode_call = msgspec.json.Decoder(_CallParams).decode
_decode_any = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_EMPTY_RESULT: Final = msgspec.Raw(b"{}")
_UNAUTHORIZED: Final = _Refused(
    401, "a bearer token is required", [(b"www-authenticate", b'Bearer realm="mcp"')]
)
_ERROR_PREFIX: Final = b'{"error":'


class McpEndpoint:
    """The MCP endpoint of one app, as an ASGI app (``voicehooks.app`` routes its path here).

    Args:
        app: The registry whose tools are offered (``offered``).
        tokens: The accepted bearer tokens.
        deadline_seconds: A tool call's deadline (a tool's own, when smaller, wins).
        answerer: Runs the tools, as for webhook deliveries.
        observers: The app's observers.
        read_body: Reads a body under the app's size limit and body deadline.
        answered: Ends a delivery: its duration, the log line and the observers.
        server_version: ``serverInfo.version`` in the ``initialize`` answer.
    """

    def __init__(
        self,
        app: Registry,
        tokens: Sequence[str],
        *,
        deadline_seconds: float,
        answerer: ToolCallsAnswerer,
        observers: ObserverSet,
        read_body: Callable[[Receive], Awaitable[bytes | None]],
        answered: Callable[[Delivery], None],
        server_version: str,
    ) -> None:
        self.app = app
        self._tokens = [_digest(token.encode()) for token in tokens]
        self.deadline_seconds = deadline_seconds
        self.answerer = answerer
        self.observers = observers
        self.read_body = read_body
        self.answered = answered
        self._server_info = {"name": "voicehooks", "version": server_version}
        self._listed: tuple[int, dict[str, Tool], msgspec.Raw] | None = None

    def offer(self) -> tuple[dict[str, Tool], msgspec.Raw]:
        """The offered tools by name and the ``tools/list`` result, encoded once per set of
        registered tools (tools registered after the app was made count too)."""
        listed = self._listed
        count = len(self.app.tools)
        if listed is None or listed[0] != count:
            tools, _ = offered(self.app)
            result = msgspec.Raw(_encode({"tools": listing(tools)}))
            listed = self._listed = (count, {tool.name: tool for tool in tools}, result)
        return listed[1], listed[2]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one HTTP request to the endpoint."""
        delivery = Delivery(scope["headers"], Transport.MCP)
        try:
            accept = self._check(scope)
            body = await self.read_body(receive)
            if body is None:  # the client went away
                return
            delivery.body = body
            answer = await self._answer(body, delivery, _version(scope))
        except _Refused as refused:
            _log.log(
                logging.DEBUG if refused.status == 405 else logging.WARNING,
                "mcp: rejected %d: %s",
                refused.status,
                refused,
            )
            await self._refuse(send, delivery, refused)
            return
        except RequestError as exc:  # 413, 408 while the body streams in
            _log.warning("mcp: rejected %d: %s", exc.status, exc)
            # The body was not read to its end: the connection cannot carry another request.
            closing = [(b"connection", b"close")]
            await self._refuse(send, delivery, _Refused(exc.status, str(exc), closing))
            return
        except Exception as exc:
            # A bug in voicehooks itself: user code is caught inside the answerer.
            _log.error("mcp: internal error while answering: %s", describe(exc))
            internal = _Refused(500, "internal error", code=INTERNAL_ERROR)
            await self._refuse(send, delivery, internal, DeliveryOutcome.INTERNAL_ERROR)
            return
        if answer is None:
            await _send(send, 202, b"", None)
        else:
            await _send(send, 200, answer, accept)
        if delivery.event_type is not None:  # it carried a tool call: a delivery
            delivery.status, delivery.answer = 200 if answer is not None else 202, answer or b""
            delivery.outcome = DeliveryOutcome.ANSWERED
            self.answered(delivery)

    def _check(self, scope: Scope) -> bytes:
        """Refuse what must be refused before the body is read; return the media type to
        answer in."""
        authorization = origin = content_type = None
        accept = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"origin":
                origin = value
            elif name == b"content-type":
                content_type = value
            elif name == b"accept":
                accept = value.lower()
        if origin is not None:
            raise _Refused(403, "a request from a web page (it has an Origin header) is refused")
        if authorization is None or not self._accepts(authorization):
            raise _UNAUTHORIZED
        if scope["method"] != "POST":
            raise _Refused(405, f"method {scope['method']} is not allowed", [(b"allow", b"POST")])
        if not is_json(content_type):
            raise _Refused(415, "Content-Type must be application/json")
        return _media_type(accept)

    def _accepts(self, authorization: bytes) -> bool:
        # Digests of equal length, each compared in constant time, whichever matches: the
        # time taken tells neither a token's length nor which one it is.
        scheme, _, token = authorization.partition(b" ")
        if scheme.lower() != b"bearer":
            return False
        given = _digest(token.strip())
        matched = False
        for accepted in self._tokens:
            matched |= hmac.compare_digest(given, accepted)
        return matched

    async def _answer(self, body: bytes, delivery: Delivery, version: str) -> bytes | None:
        """The response body to ``body``, or ``None`` for nothing but a 202."""
        if body[:1].isspace():
            body = body.strip()
        try:
            if body[:1] == b"[":
                if version in _NO_BATCHES:
                    raise _Refused(400, f"protocol {version} has no batches", code=INVALID_REQUEST)
                messages = _decode_batch(body)
                if not 0 < len(messages) <= MAX_BATCH:
                    raise _Refused(
                        400, f"a batch holds 1 to {MAX_BATCH} messages", code=INVALID_REQUEST
                    )
                return await self._batch(messages, delivery)
            message = _decode_message(body)
        except msgspec.ValidationError as exc:
            raise _Refused(400, f"not a JSON-RPC message: {exc}", code=INVALID_REQUEST) from None
        except msgspec.DecodeError:
            raise _Refused(400, "the body is not valid JSON", code=PARSE_ERROR) from None
        response = await self._one(message, delivery)
        return None if response is None else _encode(response)

    async def _batch(self, messages: list[_Message], delivery: Delivery) -> bytes | None:
        responses: list[Any] = [None] * len(messages)

        async def one(i: int) -> None:
            responses[i] = await self._one(messages[i], delivery)

        work: list[Callable[[], Coroutine[Any, Any, None]]] = [
            functools.partial(one, i) for i in range(len(messages))
        ]
        await run_concurrently(work)
        answered = [response for response in responses if response is not None]
        return _encode(answered) if answered else None

    async def _one(self, message: _Message, delivery: Delivery) -> Any:
        """The response to one message, or ``None`` (a notification, a client's response)."""
        method, id_ = message.method, message.id
        if message.jsonrpc != "2.0" or (method is _UNSET and id_ is _UNSET):
            return _error(None if id_ is _UNSET else id_, INVALID_REQUEST, "not JSON-RPC 2.0")
        if method is _UNSET or id_ is _UNSET:
            return None  # a response to a request we never send, or a notification: ignored
        if id_ is None:
            return _error(None, INVALID_REQUEST, "a request's id must not be null")
        if method == "tools/call":
            return await self._call(id_, message.params, delivery)
        if method == "tools/list":
            return _Response(id=id_, result=self.offer()[1])
        if method == "initialize":
            return self._initialize(id_, message.params)
        if method == "ping":
            return _Response(id=id_, result=_EMPTY_RESULT)
        return _error(id_, METHOD_NOT_FOUND, f"method not found: {loggable(method)}")

    def _initialize(self, id_: Id, params: msgspec.Raw) -> Any:
        try:
            asked = _decode_initialize(params).protocol_version
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            return _error(id_, INVALID_PARAMS, f"invalid initialize params: {exc}")
        result = {
            "protocolVersion": asked if asked in VERSIONS else LATEST_VERSION,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": self._server_info,
        }
        return _Response(id=id_, result=msgspec.Raw(_encode(result)))

    async def _call(self, id_: Id, params: msgspec.Raw, delivery: Delivery) -> Any:
        try:
            asked = _decode_call(params)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            return _error(id_, INVALID_PARAMS, f"invalid tools/call params: {exc}")
        if delivery.event_type is None:  # the first call of this request: it is a delivery
            delivery.event_type = ToolCalls.type
            if self.observers.active:
                self.observers.delivery_started(delivery)
        call = ToolCall(id=f"mcp-{id_}", function=ToolFunction(asked.name, asked.arguments))
        tool = self.offer()[0].get(asked.name)
        if tool is None:
            run = ToolRun(asked.name, call.id, False)
            run.end(ToolOutcome.UNKNOWN)
            delivery.tools.append(run)
            return _error(id_, INVALID_PARAMS, f"unknown tool: {loggable(asked.name)}")
        # A stand-in for the error hooks and log labels: a tool call without a platform call.
        event = ToolCalls(tool_call_list=[call])
        timeout = self.deadline_seconds
        if tool.timeout_seconds is not None and tool.timeout_seconds < timeout:
            timeout = tool.timeout_seconds
        answer = await self.answerer.answer_without_call(tool, call, event, delivery, timeout)
        text, is_error = _content(bytes(answer))
        return _Response(
            id=id_, result=msgspec.Raw(_encode(_CallResult((_Text(text=text),), is_error)))
        )

    async def _refuse(
        self, send: Send, delivery: Delivery, refused: _Refused, outcome: str = ""
    ) -> None:
        if refused.code:
            body = _encode(_error(None, refused.code, str(refused)))
        else:
            body = _encode({"error": str(refused)})
        await _send(send, refused.status, body, JSON, refused.headers)
        if self.observers.active and delivery.event_type is None:  # not started for a call
            self.observers.delivery_started(delivery)
        delivery.status, delivery.answer = refused.status, body
        delivery.outcome = outcome or f"rejected_{refused.status}"
        self.answered(delivery)


def _digest(token: bytes) -> bytes:
    return hashlib.sha256(token).digest()


def _error(id_: Id | None, code: int, message: str) -> _ErrorResponse:
    return _ErrorResponse(id=id_, error=_Error(code, message))


def _content(answer: bytes) -> tuple[str, bool]:
    """A tool's encoded result as MCP text, and whether it is an error result."""
    if answer.startswith(_ERROR_PREFIX):
        value = _decode_any(answer)
        if len(value) == 1 and isinstance(value["error"], str):
            return value["error"], True
    elif answer[:1] == b'"':
        text: str = _decode_any(answer)
        return text, False
    return answer.decode(), False


def _version(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"mcp-protocol-version":
            version: str = value.decode("latin-1")
            if version not in VERSIONS:
                raise _Refused(
                    400,
                    f"unsupported MCP-Protocol-Version {loggable(version)}; "
                    f"supported: {', '.join(VERSIONS)}",
                    code=INVALID_REQUEST,
                )
            return version
    return VERSIONS[0]  # the specification's assumption without the header


def _media_type(accept: bytes) -> bytes:
    """JSON, unless the client accepts only a stream of events.

    Raises:
        _Refused: It accepts neither (406).
    """
    if not accept or b"json" in accept or b"*/*" in accept or b"application/*" in accept:
        return JSON
    if _SSE in accept or b"text/*" in accept:
        return _SSE
    raise _Refused(406, "Accept must take application/json or text/event-stream")


async def _send(
    send: Send,
    status: int,
    body: bytes,
    media_type: bytes | None,
    extra: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    if media_type == _SSE:
        body = b"event: message\r\ndata: " + body + b"\r\n\r\n"
        headers = [(b"content-type", _SSE), (b"cache-control", b"no-cache")]
    elif media_type is not None:
        headers = [(b"content-type", media_type)]
    else:
        headers = []
    headers.append((b"content-length", str(len(body)).encode()))
    headers.extend(extra)
    try:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    except OSError:
        _log.info("mcp: the client disconnected before the answer (%d) was sent", status)
