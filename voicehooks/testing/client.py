"""``WebhookClient``: signed deliveries to an ASGI app in memory; ``ManualClock``."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

import anyio
import anyio.abc
import msgspec

from voicehooks.app import VoiceHooks, resolve_secrets
from voicehooks.core.signing import sign
from voicehooks.pipeline.dispatch import watched_failures
from voicehooks.pipeline.toolcalls import results_from_response
from voicehooks.state.callstate import CallState

from .factories import assistant_request, end_of_call_report, status_update, tool_call, tool_calls

__all__ = ["ManualClock", "Response", "WebhookClient"]

ASGIApp = Callable[..., Any]


# -- clock -------------------------------------------------------------------------------


class ManualClock:
    """A clock that stands still until ``advance`` moves it; Unix seconds, like ``time.time``.

    Share one between the app and the client to test the freshness window without sleeping.

    Args:
        now: The starting time; when omitted, the current time in whole seconds, like the
            platform's timestamps (so a signature made at the start is exactly 0 s old).

    Examples:
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
    """An answer, with the names httpx gives them.

    ``status_code``; ``headers``, a dict with lower-cased names (the app never repeats one);
    ``content``, the body bytes; ``text``, the body as a string; ``json()``, the body decoded.
    """

    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        """The body decoded as UTF-8, the only charset the app sends."""
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """The body decoded as JSON."""
        return msgspec.json.decode(self.content)


class WebhookClient:
    """Sends signed deliveries to an ASGI app in memory, the way the platform would.

    Args:
        app: The ASGI app: a ``VoiceHooks`` app or a parent (Starlette, FastAPI) that mounts
            one.
        secret: Signs every request. When omitted, the first secret the app accepts (the
            one it was given, or read from ``VOICEHOOKS_SECRET`` or the file named by
            ``VOICEHOOKS_SECRET_FILE``); for an app that verifies nothing, the first of
            ``VOICEHOOKS_SECRET``. With none, requests go out unsigned.
        path: Where the webhook endpoint is: the mount path when mounted (``"/hooks"``).
        clock: Returns the Unix time used for ``X-Webhook-Timestamp``; see ``ManualClock``.
        raise_exceptions: An unexpected exception in a tool or handler (a bug, not a
            ``ToolError``) fails the test: it is raised again, as itself, from the client call
            that sent the delivery, or for work after the answer from the next client call,
            ``wait_for_background()`` or the end of ``async with``. ``False`` leaves it to the
            app, as in production: a generic error for the model, a log line, the error
            hooks. Like Starlette's ``TestClient(raise_server_exceptions=...)``.

    Examples:
        >>> import anyio
        >>> from voicehooks import VoiceHooks
        >>> from voicehooks.testing import WebhookClient
        >>> app = VoiceHooks(secret="whsec_test")
        >>> client = WebhookClient(app, secret="wrong")
        >>> response = anyio.run(client.status_update)
        >>> response.status_code, response.json()
        (401, {'error': 'signature does not match any configured secret'})
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        secret: str | None = None,
        path: str = "/",
        clock: Callable[[], float] = time.time,
        raise_exceptions: bool = True,
    ) -> None:
        self.app = app
        self.secret = secret if secret is not None else _secret_of(app)
        self.path = path
        self.clock = clock
        self.raise_exceptions = raise_exceptions
        self._group: anyio.abc.TaskGroup | None = None
        self._lifespan_send: Any = None
        self._state: dict[str, Any] = {}
        self._hooks = _find_hooks(app)
        self._requests_running = 0
        # Failures the app reported while serving this client, not yet raised; the app adds
        # them through ``watched_failures``, set in the tasks this client starts.
        self._errors: list[BaseException] = []

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
        self._watch()  # this task's own context: what the lifespan starts reports here
        await self.app(scope, inbox.receive, outbox.send)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Wait for requests and background work, then shut the app down.

        An exception raised in the block comes out as itself, not inside an exception group:
        a failed ``assert`` reads as one.
        """
        group, self._group = self._group, None
        assert group is not None
        cancelled = isinstance(exc, anyio.get_cancelled_exc_class())
        try:
            if not cancelled:
                await self._lifespan_send.send({"type": "lifespan.shutdown"})
                await self._lifespan_recv.receive()
            # A cancellation goes in, to stop the app's tasks at once; any other exception
            # stays out, or the task group would wrap it in an ExceptionGroup.
            await group.__aexit__(*((exc_type, exc, tb) if cancelled else (None, None, None)))
        except BaseExceptionGroup as errors:
            # The app's own task failed (a raw ASGI app, a teardown): show that, unwrapped.
            raise (errors.exceptions[0] if len(errors.exceptions) == 1 else errors) from None
        finally:
            for stream in self._lifespan_streams:
                stream.close()
        if exc is None:
            self._raise_errors()  # from work after the last answer

    async def wait_for_background(self, timeout_seconds: float = 10.0) -> None:
        """Wait until every request has finished and no background handler is running.

        Informational handlers run after the answer, so a test that checks their effect
        waits for them first:

            async with WebhookClient(app) as client:
                await client.end_of_call_report(call_id="call-1")
                await client.wait_for_background()
                assert stored("call-1")

        Args:
            timeout_seconds: Give up after this long.

        Raises:
            TimeoutError: Work was still running; the message names it by event and call id.
            Exception: With ``raise_exceptions``, what a handler or tool raised.
        """
        with anyio.move_on_after(timeout_seconds):
            while self._requests_running or self._in_flight():
                # Polling, not an event: the work belongs to the app, which does not tell us
                # when it is done. A millisecond is far below any handler worth testing.
                await anyio.sleep(0.001)
            self._raise_errors()
            return
        raise TimeoutError(
            f"after {timeout_seconds} s, {self._requests_running} request(s) and the "
            f"background work {self._in_flight()} (event, call id) were still running"
        )

    def _in_flight(self) -> list[tuple[str, str]]:
        jobs = [job for hooks in self._hooks for job in hooks.runner.in_flight]
        # Slow tools still running after their interim answer, and their late results.
        return jobs + [
            ("tool-calls", label) for hooks in self._hooks for label in hooks.call_control.in_flight
        ]

    # -- raise_exceptions: the app's failures, seen without changing the app --

    def _watch(self) -> None:
        """Have failures reported in the current task's context (and the tasks and jobs it
        starts) added to this client's list; called at the start of a task of its own."""
        if self.raise_exceptions:
            watched_failures.set(self._errors)

    def _raise_errors(self) -> None:
        if not self._errors:
            return
        first, *others = self._errors
        self._errors.clear()
        if others:
            names = ", ".join(type(other).__name__ for other in others)
            first.add_note(f"(the app raised {len(others)} more: {names})")
        raise first

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
        """Send one raw request: the body in pieces, headers as given (repeats allowed).

        A ``?query`` in ``path`` becomes the scope's ``query_string``.
        """
        path, _, query = path.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode("latin-1"),
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

        async def run_watched() -> None:
            self._watch()  # in the request's own task: its context ends with it
            await run()

        self._requests_running += 1
        if self._group is None:
            token = watched_failures.set(self._errors if self.raise_exceptions else None)
            try:
                await run()
            finally:
                watched_failures.reset(token)
        else:
            # Like a server: the answer comes back when sent, the app's task goes on.
            self._group.start_soon(run_watched)
            await answered.wait()
        self._raise_errors()
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

        Examples:
            ``await client.call_tools(tool_call("a", {"x": 1}), tool_call("b"), call_id="c1")``
        """
        response = await self.post(tool_calls(*calls, **envelope))
        _expect_ok(response, "tool-calls")
        return results_from_response(response.json(), [call["id"] for call in calls])

    async def call_tool(self, name: str, /, **arguments: Any) -> Any:
        """Call tool ``name`` with the model's ``arguments`` and return its normalized result.

        Examples:
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

    def call_state(self, call_id: str) -> CallState:
        """The ``CallState`` of ``call_id`` in the app's store: set it before a delivery, read
        what the tools left in it after.

        Examples:
            >>> import anyio
            >>> from voicehooks import CallState, VoiceHooks
            >>> from voicehooks.testing import tool_call
            >>> app = VoiceHooks(secret="whsec_test")
            >>> @app.tool
            ... async def cart_size(state: CallState) -> int:
            ...     "How many items are in the cart."
            ...     return len(await state.get("cart", list[str], []))
            >>> async def main() -> list[int]:
            ...     async with WebhookClient(app, secret="whsec_test") as client:
            ...         await client.call_state("call-1").set("cart", ["tea", "milk"])
            ...         return await client.call_tools(tool_call("cart_size"), call_id="call-1")
            >>> anyio.run(main)
            [2]
        """
        if len(self._hooks) != 1:
            raise RuntimeError("call_state needs exactly one VoiceHooks app behind the client")
        return self._hooks[0].dispatcher.call_state(call_id)


def _event_name(body: bytes | Mapping[str, Any]) -> str | None:
    if isinstance(body, bytes):
        return None  # raw bytes are sent as given; they may not even be JSON
    message = body.get("message")
    event = message.get("type") if isinstance(message, Mapping) else None
    return event if isinstance(event, str) else None


def _expect_ok(response: Response, event: str) -> None:
    if response.status_code == 200:
        return
    hint = ""
    if response.status_code == 401 and b"missing X-Webhook-Signature" in response.content:
        hint = (
            " (the client sent no signature: it has no secret; pass WebhookClient(app, "
            "secret=...) or set VOICEHOOKS_SECRET)"
        )
    elif response.status_code == 401:
        hint = (
            " (the client's secret is not one the app accepts: pass WebhookClient(app, "
            "secret=...) or set VOICEHOOKS_SECRET to the app's secret)"
        )
    raise AssertionError(f"{event} answered {response.status_code}: {response.content!r}{hint}")


def _secret_of(app: Any) -> str | None:
    """The first secret the app (or the first app mounted in it) accepts, else the first of
    ``VOICEHOOKS_SECRET``: what the platform would sign with."""
    for hooks in _find_hooks(app):
        if hooks.verifier is not None:
            return hooks.verifier.secrets[0]
    return next(iter(resolve_secrets(None)), None)


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
