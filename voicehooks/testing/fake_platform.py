"""``FakePlatform``: the platform's REST endpoints that a receiver and the tools call, faked.

Built from PLATFORM.md §7.1 and §7.2, strict where the real API is strict, so that code that
passes against it keeps the real limits:

* ``Authorization: Bearer <api_key>`` on every request, else 401.
* ``POST /api/v1/calls/{id}/control`` takes exactly one command (``inject-context``,
  ``say``, ``end-call``, ``transfer``) with the documented fields, else 422. At most
  ``commands_per_window`` commands per call within any ``window_seconds`` (10 per 60 s, as
  documented; a sliding window, the strictest reading), else 429 with ``Retry-After``. A call
  marked ended answers ``ended_status`` (409 by default; the real code is undocumented).
* ``GET /api/v1/calls/{id}`` answers the call object, ``GET /api/v1/assistants/{id}`` answers
  ``{"assistant": {...}}``; unknown ids are 404.
* ``PATCH /api/v1/assistants/{id}`` replaces each top-level field it sends, a nested object
  (``llm_config``) whole: the strictest reading of an undocumented merge. It refuses (422) a
  field the assistant does not have, ``webhook_events`` beyond the four event names, a tool
  name against the platform's rule, an MCP attachment with more than 25 ``allowed_tools`` or
  an unknown ``mcp_server_id``.
* ``/api/v1/mcp-servers``: ``GET`` lists, ``POST`` creates (201; a name taken is 409),
  ``GET``/``PATCH``/``DELETE`` one (``DELETE`` is 409 while an assistant uses it); header
  values are kept but never answered (``header_names``); the fields are checked as
  documented (``_mcp_servers``). ``POST .../{id}/test`` really connects to the server's
  URL and lists its tools over MCP JSON-RPC. ``FakePlatform(local_mcp_servers=True)``
  accepts ``http://`` and loopback URLs, for a test's own server.
* ``GET /api/v1/workflows/{id}`` answers ``{"workflow": {...}}`` (``add_workflow``).
* Every answer carries ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and
  ``X-RateLimit-Reset`` (Unix seconds): the per-call budget on control answers, the per-key
  budget (``requests_per_window``, 100 per window) on the others. Going over either is a 429.
* Errors come in one of the two documented shapes (``error_shape="sdk"``:
  ``{"error": "<code>", "message": ..., "retry_after"?: n}``; ``"codes"``:
  ``{"error": {"code", "message", "param", "type"}}``).
* On demand: ``delay_seconds`` makes every answer slow (the request is acted on at once);
  ``fail_next(n, status)`` makes the next ``n`` requests fail.

Every request is recorded with its headers (``requests``), control commands also in
``commands``. A call id the fake has not seen is live: the first command adds it. Seed
``add_assistant``, ``add_workflow``; MCP servers are made through the API or ``add_mcp_server``.

Use it in-process (an httpx transport on the test's event loop)::

    platform = FakePlatform()
    app = VoiceHooks(platform=Platform(api=platform.client()))  # transport=platform.transport()

or as a real server on loopback, for apps that run in their own processes::

    with platform.serve() as base_url:
        ...  # VOICEHOOKS_API_URL=base_url

Both need the ``api`` extra (httpx); ``serve`` runs uvicorn in a thread.
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote

import anyio
from starlette.types import Receive, Scope, Send

from voicehooks.live.api import PlatformClient

from . import _assistants, _mcp_servers

if TYPE_CHECKING:
    import httpx

__all__ = ["FakePlatform", "RecordedRequest"]

ErrorShape = Literal["sdk", "codes"]

_PREFIX = "/api/v1/"
_COMMANDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "inject-context": {"content": str, "trigger_response": bool},
    "say": {"content": str, "end_after": bool},
    "end-call": {"message": str},
    "transfer": {"destination": str, "message": str},
}
_REQUIRED = {"inject-context": ("content",), "say": ("content",), "transfer": ("destination",)}


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the fake received, and what it answered."""

    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased header names; the ``authorization`` value as it came."""
    body: Any
    """The decoded JSON body (``None`` when there was none or it was not JSON)."""
    status: int
    at: float
    """When it arrived, on the fake's clock (monotonic seconds by default)."""
    call_id: str | None = None

    @property
    def command_type(self) -> str | None:
        """A control command's ``type``."""
        return self.body.get("type") if isinstance(self.body, dict) else None


@dataclass
class _Window:
    """Sliding-window counter: the times of the requests it let through, bounded."""

    limit: int
    times: deque[float] = field(default_factory=deque)


class FakePlatform:
    """A fake of the platform's call-control, calls and assistants endpoints; an ASGI app.

    Args:
        api_key: The only key accepted.
        commands_per_window: Control commands per call within ``window_seconds``.
        window_seconds: The rate-limit window (60 s on the platform; shorten it in tests,
            together with the client's ``CommandLimit.window_seconds``).
        requests_per_window: Requests per key within ``window_seconds``.
        error_shape: Which of the two documented error bodies to send.
        ended_status: The status of a command for a call that is not live.
        local_mcp_servers: Accept ``http://`` and private or loopback addresses for MCP
            servers (the platform accepts public ``https://`` ones only): a test's own server.
        clock: Monotonic seconds; injectable.

    Example:
        >>> platform = FakePlatform()
        >>> platform.end_call("call-1")
        >>> call = platform.calls["call-1"]
        >>> call["status"]
        'ended'
    """

    def __init__(
        self,
        *,
        api_key: str = "vh-test-api-key",
        commands_per_window: int = 10,
        window_seconds: float = 60.0,
        requests_per_window: int = 100,
        error_shape: ErrorShape = "sdk",
        ended_status: int = 409,
        local_mcp_servers: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api_key = api_key
        self.commands_per_window = commands_per_window
        self.window_seconds = window_seconds
        self.requests_per_window = requests_per_window
        self.error_shape: ErrorShape = error_shape
        self.ended_status = ended_status
        self.delay_seconds = 0.0
        self.calls: dict[str, dict[str, Any]] = {}
        self.assistants: dict[str, dict[str, Any]] = {}
        self._mcp_store = _mcp_servers.McpServers(local_urls=local_mcp_servers)
        self.mcp_servers = self._mcp_store.servers
        """The MCP servers as the API answers them (no header values)."""
        self.workflows: dict[str, dict[str, Any]] = {}
        self.requests: list[RecordedRequest] = []
        self._clock = clock
        self._failures: deque[tuple[int, float | None, str | None]] = deque()
        self._per_call: dict[str, _Window] = {}
        self._per_key = _Window(requests_per_window)
        self._lock = threading.Lock()  # ``serve`` answers in another thread than the test

    base_url = "http://fake-platform.test/api/v1"
    """The base URL to use with ``transport()``; ``serve`` yields the real one."""

    # -- set-up -------------------------------------------------------------------------

    def add_call(self, call_id: str, **fields: Any) -> dict[str, Any]:
        """Add (or update) a call; it is live (``in-progress``) unless ``status`` says not."""
        call = self.calls.setdefault(call_id, {"id": call_id, "status": "in-progress"})
        call.update(fields)
        return call

    def end_call(self, call_id: str, **fields: Any) -> None:
        """Mark a call ended: commands for it answer ``ended_status`` from now on."""
        self.add_call(call_id, status="ended", **fields)

    def add_assistant(self, assistant_id: str, config: dict[str, Any]) -> None:
        """Serve ``config`` at ``GET /assistants/{assistant_id}`` (and let ``PATCH`` change it)."""
        self.assistants[assistant_id] = {"id": assistant_id, **config}

    def add_workflow(
        self,
        workflow_id: str,
        definition: dict[str, Any],
        *,
        name: str = "Workflow",
        is_active: bool = True,
    ) -> None:
        """Serve a workflow at ``GET /workflows/{workflow_id}``."""
        self.workflows[workflow_id] = {
            "id": workflow_id,
            "name": name,
            "is_active": is_active,
            "definition": definition,
        }

    def add_mcp_server(self, **fields: Any) -> dict[str, Any]:
        """Add an MCP server as ``POST /mcp-servers`` would; return it as the API shows it.

        Raises:
            ValueError: The fields are not valid (the message the API would answer with).
        """
        with self._lock:
            try:
                return self._mcp_store.create(fields)
            except _mcp_servers.Refusal as refusal:
                raise ValueError(str(refusal)) from None

    def mcp_headers(self, server_id: str) -> dict[str, str]:
        """The header values stored for an MCP server (the API never answers them)."""
        return dict(self._mcp_store.headers.get(server_id, {}))

    def fail_next(
        self,
        count: int = 1,
        status: int = 503,
        retry_after: float | None = None,
        *,
        method: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests with ``status`` (and ``Retry-After`` if given).

        With ``method`` (``"PATCH"``), only requests of that method fail; others pass.
        """
        with self._lock:
            self._failures.extend([(status, retry_after, method)] * count)

    # -- what happened --------------------------------------------------------------------

    def received(self, call_id: str | None = None) -> list[RecordedRequest]:
        """The control commands received, answered or refused, in arrival order, for one call
        or all."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.path.endswith("/control") and (call_id is None or r.call_id == call_id)
            ]

    def accepted(self, call_id: str | None = None) -> list[RecordedRequest]:
        """The control commands answered 200, for one call or all."""
        return [r for r in self.received(call_id) if r.status == 200]

    @property
    def commands(self) -> list[RecordedRequest]:
        """Deprecated: ``received()``, a method like ``accepted()``."""
        warnings.warn(
            "FakePlatform.commands is deprecated: call FakePlatform.received(), a method "
            "like accepted() (it takes an optional call id too)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.received()

    def most_in_any_window(self, call_id: str, window_seconds: float | None = None) -> int:
        """The largest number of accepted commands for ``call_id`` within any window."""
        window = self.window_seconds if window_seconds is None else window_seconds
        times = [r.at for r in self.accepted(call_id)]
        best = 0
        for i, start in enumerate(times):
            best = max(best, sum(1 for t in times[i:] if t - start < window))
        return best

    # -- serving ------------------------------------------------------------------------

    def client(self, **options: Any) -> PlatformClient:
        """A ``PlatformClient`` that talks to this fake in-process, with its key.

        Example: ``VoiceHooks(platform=Platform(api=platform.client()))``.
        """
        return PlatformClient(
            api_key=self.api_key, base_url=self.base_url, transport=self.transport(), **options
        )

    def transport(self) -> httpx.AsyncBaseTransport:
        """An httpx transport that answers in-process, on the caller's event loop."""
        import httpx

        return httpx.ASGITransport(app=self)

    @contextlib.contextmanager
    def serve(self, host: str = "127.0.0.1") -> Iterator[str]:
        """Run the fake with uvicorn on a free port in a thread; yield its base URL."""
        import uvicorn

        sock = socket.socket()
        sock.bind((host, 0))
        port = sock.getsockname()[1]
        # No log_config and no access_log=False: either makes uvicorn reconfigure the test
        # process's loggers, which are the test's own.
        config = uvicorn.Config(self, lifespan="off", log_config=None, loop="asyncio")
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="fake-platform", daemon=True
        )
        thread.start()
        try:
            deadline = time.monotonic() + 20
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError("the fake platform's server did not start")
                time.sleep(0.01)
            yield f"http://{host}:{port}/api/v1"
        finally:
            server.should_exit = True
            thread.join(timeout=20)
            sock.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point."""
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        with self._lock:
            status, answer, headers = self._answer(scope, body)
        if isinstance(answer, _mcp_servers.Probe):  # connects out: never under the lock
            answer = await _mcp_servers.probe(answer.url, answer.headers, answer.timeout_seconds)
        if self.delay_seconds:  # acted on at once, answered late: as a slow platform might
            await anyio.sleep(self.delay_seconds)
        payload = json.dumps(answer).encode()
        raw_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            *((k.encode(), v.encode()) for k, v in headers.items()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": payload})

    # -- the endpoints --------------------------------------------------------------------

    def _answer(self, scope: Scope, raw: bytes) -> tuple[int, Any, dict[str, str]]:
        method: str = scope["method"]
        # The raw path, so that an escaped "/" inside a call id stays inside it.
        raw_path = scope.get("raw_path")
        path: str = raw_path.decode("latin-1") if raw_path else scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        now = self._clock()
        parts = (
            [unquote(p) for p in path[len(_PREFIX) :].split("/")]
            if path.startswith(_PREFIX)
            else []
        )
        is_control = len(parts) == 3 and parts[0] == "calls" and parts[2] == "control"
        call_id = parts[1] if len(parts) >= 2 and parts[0] == "calls" else None
        status, answer, limit_headers = self._route(method, parts, headers, body, now, is_control)
        self.requests.append(RecordedRequest(method, path, headers, body, status, now, call_id))
        return status, answer, limit_headers

    def _route(
        self,
        method: str,
        parts: list[str],
        headers: dict[str, str],
        body: Any,
        now: float,
        is_control: bool,
    ) -> tuple[int, Any, dict[str, str]]:
        key_window = self._per_key
        key_headers = self._limit_headers(key_window, now)
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, self._error("unauthorized", "Invalid or missing API key"), key_headers
        if self._failures and self._failures[0][2] in (None, method):
            failed, retry_after, _ = self._failures.popleft()
            extra = {} if retry_after is None else {"retry-after": f"{retry_after:g}"}
            return failed, self._error("server_error", "Injected failure"), key_headers | extra
        wait = self._take(key_window, now)
        if wait is not None:
            return self._too_many(wait, key_headers)
        if is_control and method == "POST":
            return self._control(parts[1], body, now)
        if method == "GET" and len(parts) == 2 and parts[0] == "calls":
            call = self.calls.get(parts[1])
            if call is None:
                return 404, self._error("not_found", "Call not found"), key_headers
            return 200, call, self._limit_headers(key_window, now)
        answered = self._resource(method, parts, body)
        if answered is None:
            return 404, self._error("not_found", "No such endpoint"), key_headers
        return answered[0], answered[1], self._limit_headers(key_window, now)

    def _resource(self, method: str, parts: list[str], body: Any) -> tuple[int, Any] | None:
        """Assistants, MCP servers and workflows (PLATFORM.md §7.2); ``None``: no endpoint."""
        kind, rest = (parts[0], parts[1:]) if parts else ("", [])
        if kind == "assistants" and len(rest) == 1:
            assistant = self.assistants.get(rest[0])
            if assistant is None:
                return 404, self._error("not_found", "Assistant not found")
            if method == "GET":
                return 200, {"assistant": assistant}
            if method == "PATCH":
                return self._update_assistant(assistant, body)
        if kind == "workflows" and len(rest) == 1 and method == "GET":
            workflow = self.workflows.get(rest[0])
            if workflow is None:
                return 404, self._error("not_found", "Workflow not found")
            return 200, {"workflow": workflow}
        if kind == "mcp-servers":
            return self._mcp(method, rest, body)
        return None

    def _update_assistant(self, assistant: dict[str, Any], body: Any) -> tuple[int, Any]:
        problem = _assistants.problem(body, self.mcp_servers)
        if problem is not None:
            return 422, self._error("validation_error", problem)
        assistant.update(body)  # each top-level field replaced whole, llm_config included
        assistant["updated_at"] = _mcp_servers.timestamp()
        return 200, {"assistant": assistant}

    def _mcp(self, method: str, rest: list[str], body: Any) -> tuple[int, Any] | None:
        servers = self._mcp_store
        try:
            if not rest and method in ("GET", "POST"):
                if method == "GET":
                    return 200, {"mcp_servers": list(servers.servers.values())}
                return 201, {"mcp_server": servers.create(body)}
            if len(rest) == 2 and rest[1] == "test" and method == "POST":
                return 200, servers.test(rest[0], body)
            if len(rest) != 1 or method not in ("GET", "PATCH", "DELETE"):
                return None
            if method == "GET":
                return 200, {"mcp_server": servers.get(rest[0])}
            if method == "PATCH":
                return 200, {"mcp_server": servers.update(rest[0], body)}
            attached = set().union(*(_assistants.attached(a) for a in self.assistants.values()))
            servers.delete(rest[0], in_use=rest[0] in attached)
            return 200, {"success": True}
        except _mcp_servers.Refusal as refusal:
            return refusal.status, self._error(refusal.code, str(refusal))

    def _control(self, call_id: str, body: Any, now: float) -> tuple[int, Any, dict[str, str]]:
        window = self._per_call.setdefault(call_id, _Window(self.commands_per_window))
        headers = self._limit_headers(window, now)
        problem = _invalid_command(body)
        if problem is not None:
            return 422, self._error("invalid_command", problem), headers
        call = self.add_call(call_id) if call_id not in self.calls else self.calls[call_id]
        if call.get("status") != "in-progress":
            return self.ended_status, self._error("call_not_active", "Call is not active"), headers
        wait = self._take(window, now)
        if wait is not None:
            return self._too_many(wait, headers)
        return 200, {"success": True}, self._limit_headers(window, now)

    def _take(self, window: _Window, now: float) -> float | None:
        """Count one request; ``None`` if allowed, else seconds until it would be."""
        times = window.times
        while times and now - times[0] >= self.window_seconds:
            times.popleft()
        if len(times) >= window.limit:
            return self.window_seconds - (now - times[0])
        times.append(now)
        return None

    def _limit_headers(self, window: _Window, now: float) -> dict[str, str]:
        times = window.times
        live = [t for t in times if now - t < self.window_seconds]
        reset_in = self.window_seconds - (now - live[0]) if live else 0.0
        return {
            "x-ratelimit-limit": str(window.limit),
            "x-ratelimit-remaining": str(max(0, window.limit - len(live))),
            "x-ratelimit-reset": str(math.ceil(time.time() + reset_in)),
        }

    def _too_many(self, wait: float, headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        retry_after = max(1, math.ceil(wait)) if self.window_seconds >= 1 else wait
        body = self._error("rate_limit_exceeded", "Rate limit exceeded", retry_after=retry_after)
        return 429, body, headers | {"retry-after": f"{retry_after:g}"}

    def _error(self, code: str, message: str, *, retry_after: float | None = None) -> Any:
        if self.error_shape == "codes":
            kind = "rate_limit_error" if code == "rate_limit_exceeded" else "invalid_request_error"
            return {"error": {"code": code, "message": message, "param": None, "type": kind}}
        body: dict[str, Any] = {"error": code, "message": message}
        if retry_after is not None:
            body["retry_after"] = retry_after
        return body


def _invalid_command(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "The body must be one command object"
    kind = body.get("type")
    fields = _COMMANDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        return f"Unknown command type; use one of {', '.join(_COMMANDS)}"
    for name in _REQUIRED.get(kind, ()):  # type: ignore[arg-type]
        if name not in body:
            return f"Missing field {name!r}"
    for name, value in body.items():
        if name == "type":
            continue
        expected = fields.get(name)
        if expected is None:
            return f"Unknown field {name!r}"
        if not isinstance(value, expected):
            return f"Field {name!r} has the wrong type"
    return None
