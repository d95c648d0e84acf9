"""The platform's REST API: call control and calls for a receiver; assistants, MCP servers and
workflows for the development tools (``voicehooks deploy``, ``voicehooks tools``).

``PlatformClient`` speaks to ``https://api.hmsovereign.com/api/v1`` (PLATFORM.md §7.1)::

    async with PlatformClient() as api:  # key from VOICEHOOKS_API_KEY
        await api.inject_context(call_id, "The parcel left the depot.", trigger_response=True)

It is written for a live call, where a command that arrives late is worth little:

* Each attempt has a short timeout (1 s to connect, 2 s in all), and each request a deadline
  (5 s by default) that covers every attempt, every wait for a rate-limit token and every
  pause between attempts.
* At most 3 attempts, a retry only when the pause before it (``Retry-After`` when the
  platform sends one, else 0.25 s doubling) still ends before the deadline. A read (``GET``)
  or an update that can be sent twice (``PATCH``) is retried after a 5xx, a 429 or a network
  error; creating an MCP server is retried like a control command (a second one would be
  refused: the name is taken).
* A control command is retried only when it cannot have been carried out: no connection was
  made, or a 429 said when to come back (``Retry-After``). Commands carry no idempotency key,
  and a 502 or 504 comes from a gateway, perhaps after the platform acted: a ``say`` resent
  after one may be heard twice. So an answer that leaves the effect open (any 5xx but a 503
  with ``Retry-After``, a timeout, a connection lost after sending) raises ``OutcomeUnknown``
  after one attempt. A 503 with ``Retry-After`` is the platform's refusal, raised as
  ``PlatformUnavailable`` and not retried either.
* Failures are typed (below); no httpx exception escapes. Both documented error bodies are
  read: ``{"error": "...", "message": ...}`` and ``{"error": {"code", "message", ...}}``.
* The key and command contents are never logged, and never part of an error message. The
  platform's own error text is kept on the exception (``detail``), not in its message.

::

    VoiceHooksError
    └── PlatformAPIError        the API refused a request or could not be reached
        ├── Unauthorized            401 or 403: the API key is wrong or may not do this
        ├── CallEnded               a control command for a call that is not live (400/404/409)
        ├── RateLimited             429, or no command slot free before the deadline
        └── PlatformUnavailable     5xx, timeouts, network errors, once retrying cannot help
            └── OutcomeUnknown          a control command may have been carried out; not resent

The key comes from ``api_key=``, ``VOICEHOOKS_API_KEY`` or the file named by
``VOICEHOOKS_API_KEY_FILE``, and the base URL from ``VOICEHOOKS_API_URL``. Needs the ``api``
extra: ``pip install 'voicehooks[api]'``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import quote

import anyio

from voicehooks.core import environment
from voicehooks.core.exceptions import ConfigurationError, VoiceHooksError
from voicehooks.core.logs import masked

if TYPE_CHECKING:
    import httpx

__all__ = [
    "CallEnded",
    "CommandPacer",
    "DEFAULT_API_URL",
    "OutcomeUnknown",
    "PlatformAPIError",
    "PlatformClient",
    "PlatformUnavailable",
    "RateLimited",
    "Unauthorized",
    "resolve_api_key",
]

_log = logging.getLogger("voicehooks")

DEFAULT_API_URL: Final = "https://api.hmsovereign.com/api/v1"

_FIRST_PAUSE_SECONDS: Final = 0.25
_MAX_PAUSE_SECONDS: Final = 2.0
_LEAST_ATTEMPT_SECONDS: Final = 0.1  # no retry is started with less time than this left
_CODE: Final = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


class PlatformAPIError(VoiceHooksError):
    """The platform's API refused a request or could not be reached.

    The message names the request and the status; it never holds the key, the command's
    content or the platform's own error text.

    Attributes:
        status: The HTTP status, ``None`` when no answer came.
        code: The platform's error code (``rate_limit_exceeded``, ...), when it sent one.
        detail: The platform's error message, when it sent one; may quote the request.
    """

    def __init__(
        self, message: str, *, status: int | None = None, code: str | None = None, detail: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.detail = detail


class Unauthorized(PlatformAPIError):
    """401 or 403: the API key is missing on the platform's side, wrong, or lacks the right."""


class CallEnded(PlatformAPIError):
    """A control command was refused because the call is not live (ended or unknown)."""


class RateLimited(PlatformAPIError):
    """429, or no command slot for this call before the deadline.

    Attributes:
        retry_after_seconds: When trying again can succeed, if known.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after_seconds: float | None = None,
        status: int | None = None,
        code: str | None = None,
        detail: str = "",
    ) -> None:
        super().__init__(message, status=status, code=code, detail=detail)
        self.retry_after_seconds = retry_after_seconds


class PlatformUnavailable(PlatformAPIError):
    """A 5xx, a timeout or a network error, and the deadline left no room to retry."""


class OutcomeUnknown(PlatformUnavailable):
    """A control command was sent, and its answer does not say whether the platform acted.

    A 5xx (but a 503 with ``Retry-After``), a timeout or a connection lost after sending:
    the platform may have carried the command out, so it was not sent again (see the module
    docstring). Send it again yourself only where hearing it twice is better than not at all.
    A ``PlatformUnavailable``, so code that catches that catches this too. ``status`` is
    ``None`` when no answer came.
    """


class CommandPacer(Protocol):
    """Keeps control commands under the platform's per-call limit (``voicehooks.live.control``)."""

    async def acquire(self, call_id: str, deadline: float) -> None:
        """Return when one more command for ``call_id`` may go out.

        Raises:
            RateLimited: No slot frees up before ``deadline`` (``time.monotonic()`` seconds).
        """
        ...


def resolve_api_key(api_key: str | None = None) -> str:
    """``api_key``, else ``VOICEHOOKS_API_KEY``, else the file ``VOICEHOOKS_API_KEY_FILE`` names.

    Raises:
        ConfigurationError: None of them holds a key; the message names the variables.
    """
    if api_key is not None and api_key.strip():
        return api_key.strip()
    key = environment.api_key()
    if not key:
        raise ConfigurationError(
            f"No platform API key. Set {environment.API_KEY}, or point "
            f"{environment.API_KEY_FILE} at a file "
            "holding it: LiveCall and interim tools send call-control commands with it."
        )
    return key


class PlatformClient:
    """An async client for the platform's REST API with budgets that fit a live call.

    One pooled connection set, opened by ``open`` (the app's lifespan does this) and closed
    by ``aclose``; or use it as ``async with PlatformClient() as api``.

    Args:
        api_key: The API key; default ``VOICEHOOKS_API_KEY`` or ``VOICEHOOKS_API_KEY_FILE``,
            read by ``open`` (a missing key is a ``ConfigurationError`` there).
        base_url: Default ``VOICEHOOKS_API_URL``, else the documented URL.
        timeout_seconds: Budget of one attempt (connect, send, read).
        connect_timeout_seconds: Budget of establishing a connection.
        deadline_seconds: Default budget of one request, attempts and pauses included.
        max_attempts: Attempts per request, the first included.
        pacer: Paces control commands under the per-call limit (``voicehooks.live.control``); it
            is asked once per attempt, because the platform counts every attempt.
        transport: An ``httpx`` transport, for tests (``FakePlatform.transport()``).

    Example:
        >>> from voicehooks.live.api import PlatformClient
        >>> api = PlatformClient(api_key="sk_example", base_url="http://127.0.0.1:9/api/v1")
        >>> api.base_url
        'http://127.0.0.1:9/api/v1'
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout_seconds: float = 2.0,
        connect_timeout_seconds: float = 1.0,
        deadline_seconds: float = 5.0,
        max_attempts: int = 3,
        pacer: CommandPacer | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        for label, value in (
            ("timeout_seconds", timeout_seconds),
            ("connect_timeout_seconds", connect_timeout_seconds),
            ("deadline_seconds", deadline_seconds),
            ("max_attempts", max_attempts),
        ):
            if value <= 0:
                raise ConfigurationError(f"{label} must be > 0, got {value!r}")
        self.base_url = (
            base_url or environment.read(environment.API_URL) or DEFAULT_API_URL
        ).rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.connect_timeout_seconds = connect_timeout_seconds
        self.deadline_seconds = deadline_seconds
        self.max_attempts = max_attempts
        self.pacer = pacer
        self._api_key = api_key
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    @property
    def is_open(self) -> bool:
        """Whether ``open`` has run and ``aclose`` has not."""
        return self._client is not None

    async def open(self) -> None:
        """Read the key and open the connection pool (idempotent).

        Raises:
            ConfigurationError: No API key, an unusable base URL, or no httpx installed.
        """
        if self._client is not None:
            return
        key = resolve_api_key(self._api_key)
        try:
            import httpx
        except ImportError:
            raise ConfigurationError(
                "The platform API client needs httpx: pip install 'voicehooks[api]'"
            ) from None
        problem = _url_problem(httpx, self.base_url)
        if problem:
            raise ConfigurationError(
                f"{environment.API_URL} (or base_url=) is not usable: {problem}"
            )
        _mask_httpx_urls()
        self._client = httpx.AsyncClient(
            base_url=self.base_url + "/",
            headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
            timeout=httpx.Timeout(self.timeout_seconds, connect=self.connect_timeout_seconds),
            transport=self._transport,
            follow_redirects=False,
        )

    async def aclose(self) -> None:
        """Close the connection pool (idempotent)."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def __aenter__(self) -> PlatformClient:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- call control -------------------------------------------------------------------

    async def control(
        self,
        call_id: str,
        command: Mapping[str, Any] | Callable[[], Mapping[str, Any]],
        *,
        deadline_seconds: float | None = None,
    ) -> dict[str, Any]:
        """Send one command object to ``POST /calls/{call_id}/control``.

        ``command`` may be a function, called once when the first attempt may go out (after
        any wait for a rate-limit slot): a queue can then send what arrived meanwhile.

        Returns:
            The platform's answer, ``{"success": true, ...}``.

        Raises:
            PlatformAPIError: One of its subclasses, see the module docstring.
        """
        if callable(command):
            kind = "command"
            build = command

            def body() -> bytes:
                return _encode(build())
        else:
            kind = str(command.get("type", "command"))
            body = _encode(command)  # type: ignore[assignment]
        answer = await self._request(
            "POST",
            f"calls/{quote(call_id, safe='')}/control",
            body,
            label=f"{kind} for call {masked(call_id)}",
            paced_call=call_id,
            deadline_seconds=deadline_seconds,
        )
        return answer if isinstance(answer, dict) else {}

    async def inject_context(
        self,
        call_id: str,
        content: str,
        trigger_response: bool = False,
        *,
        deadline_seconds: float | None = None,
    ) -> dict[str, Any]:
        """Add ``content`` to the model's context; with ``trigger_response`` it speaks now."""
        command = {
            "type": "inject-context",
            "content": content,
            "trigger_response": trigger_response,
        }
        return await self.control(call_id, command, deadline_seconds=deadline_seconds)

    async def say(
        self,
        call_id: str,
        content: str,
        end_after: bool = False,
        *,
        deadline_seconds: float | None = None,
    ) -> dict[str, Any]:
        """Have the assistant say ``content`` verbatim, then hang up if ``end_after``."""
        command = {"type": "say", "content": content, "end_after": end_after}
        return await self.control(call_id, command, deadline_seconds=deadline_seconds)

    async def transfer(
        self,
        call_id: str,
        destination: str,
        message: str | None = None,
        *,
        deadline_seconds: float | None = None,
    ) -> dict[str, Any]:
        """Transfer the call to the number ``destination``, after ``message`` if given."""
        command: dict[str, Any] = {"type": "transfer", "destination": destination}
        if message is not None:
            command["message"] = message
        return await self.control(call_id, command, deadline_seconds=deadline_seconds)

    async def end_call(
        self, call_id: str, message: str | None = None, *, deadline_seconds: float | None = None
    ) -> dict[str, Any]:
        """End the call, after ``message`` if given."""
        command: dict[str, Any] = {"type": "end-call"}
        if message is not None:
            command["message"] = message
        return await self.control(call_id, command, deadline_seconds=deadline_seconds)

    # -- reads --------------------------------------------------------------------------

    async def get_call(
        self, call_id: str, *, deadline_seconds: float | None = None
    ) -> dict[str, Any]:
        """``GET /calls/{call_id}``: the call object, decoded leniently as a dict."""
        answer = await self._request(
            "GET",
            f"calls/{quote(call_id, safe='')}",
            None,
            label=f"get call {masked(call_id)}",
            deadline_seconds=deadline_seconds,
        )
        return answer if isinstance(answer, dict) else {}

    async def get_assistant(
        self, assistant_id: str, *, deadline_seconds: float | None = None
    ) -> dict[str, Any]:
        """``GET /assistants/{assistant_id}``: the saved configuration (the ``assistant`` key)."""
        answer = await self._request(
            "GET",
            f"assistants/{quote(assistant_id, safe='')}",
            None,
            label=f"get assistant {assistant_id}",
            deadline_seconds=deadline_seconds,
        )
        return _inner(answer, "assistant")

    async def update_assistant(
        self, assistant_id: str, fields: Mapping[str, Any], *, deadline_seconds: float | None = None
    ) -> dict[str, Any]:
        """``PATCH /assistants/{assistant_id}`` with ``fields``: the updated assistant.

        Top-level fields are replaced one by one; send ``llm_config`` whole (PLATFORM.md
        §7.2: whether nested objects merge is undocumented).
        """
        answer = await self._request(
            "PATCH",
            f"assistants/{quote(assistant_id, safe='')}",
            _encode(fields),
            label=f"update assistant {assistant_id}",
            deadline_seconds=deadline_seconds,
        )
        return _inner(answer, "assistant")

    async def get_workflow(
        self, workflow_id: str, *, deadline_seconds: float | None = None
    ) -> dict[str, Any]:
        """``GET /workflows/{workflow_id}``: ``{id, name, is_active, definition}``."""
        answer = await self._request(
            "GET",
            f"workflows/{quote(workflow_id, safe='')}",
            None,
            label=f"get workflow {workflow_id}",
            deadline_seconds=deadline_seconds,
        )
        return _inner(answer, "workflow")

    # -- MCP servers (PLATFORM.md §7.2) ---------------------------------------------------

    async def list_mcp_servers(self) -> list[dict[str, Any]]:
        """``GET /mcp-servers``: the organization's MCP servers (header values never come)."""
        answer = await self._request("GET", "mcp-servers", None, label="list MCP servers")
        servers = answer.get("mcp_servers") if isinstance(answer, dict) else None
        return [s for s in servers if isinstance(s, dict)] if isinstance(servers, list) else []

    async def get_mcp_server(self, server_id: str) -> dict[str, Any]:
        """``GET /mcp-servers/{server_id}``."""
        path = f"mcp-servers/{quote(server_id, safe='')}"
        answer = await self._request("GET", path, None, label=f"get MCP server {server_id}")
        return _inner(answer, "mcp_server")

    async def create_mcp_server(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /mcp-servers`` with ``{name, url, transport?, headers?, timeout_seconds?}``.

        Not resent after an answer that leaves the outcome open (``OutcomeUnknown``).
        """
        answer = await self._request(
            "POST", "mcp-servers", _encode(fields), label="create MCP server", replayable=False
        )
        return _inner(answer, "mcp_server")

    async def update_mcp_server(self, server_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """``PATCH /mcp-servers/{server_id}``; ``headers`` replaces every stored header."""
        path = f"mcp-servers/{quote(server_id, safe='')}"
        answer = await self._request(
            "PATCH", path, _encode(fields), label=f"update MCP server {server_id}"
        )
        return _inner(answer, "mcp_server")

    async def delete_mcp_server(self, server_id: str) -> None:
        """``DELETE /mcp-servers/{server_id}``; a 409 while an assistant uses it."""
        path = f"mcp-servers/{quote(server_id, safe='')}"
        await self._request("DELETE", path, None, label=f"delete MCP server {server_id}")

    async def test_mcp_server(
        self, server_id: str, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """``POST /mcp-servers/{server_id}/test``: the platform connects and lists the tools.

        Returns:
            ``{"ok": true, "duration_ms", "tools": [...]}`` or ``{"ok": false,
            "duration_ms", "error"}``: a server the platform cannot reach is an answer, not an
            exception. ``headers`` are used for this test only.
        """
        body = _encode({} if headers is None else {"headers": dict(headers)})
        path = f"mcp-servers/{quote(server_id, safe='')}/test"
        answer = await self._request("POST", path, body, label=f"test MCP server {server_id}")
        return answer if isinstance(answer, dict) else {}

    # -- the one request loop -----------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        body: bytes | Callable[[], bytes] | None,
        *,
        label: str,
        paced_call: str | None = None,
        deadline_seconds: float | None = None,
        replayable: bool = True,
    ) -> Any:
        import httpx

        client = self._client
        if client is None:  # no lifespan opened it (a mounted app, a test client): now, then
            await self.open()
            client = self._client
            assert client is not None
        budget = self.deadline_seconds if deadline_seconds is None else deadline_seconds
        deadline = time.monotonic() + budget
        command = paced_call is not None  # a control command
        once = command or not replayable  # not idempotent: resent only if surely not acted on
        attempt = 0
        while True:
            attempt += 1
            if paced_call is not None and self.pacer is not None:
                await self.pacer.acquire(paced_call, deadline)
            if callable(body):
                body = body()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PlatformUnavailable(f"{label}: no time left within {budget:g} s")
            timeout = httpx.Timeout(
                min(self.timeout_seconds, remaining),
                connect=min(self.connect_timeout_seconds, remaining),
            )
            error: PlatformAPIError
            try:
                # httpx's timeouts bound each network operation, not the whole exchange: a
                # slow trickle of bytes would outlast them. This bounds the attempt.
                with anyio.fail_after(min(self.timeout_seconds, remaining)):
                    response = await client.request(method, path, content=body, timeout=timeout)
            except TimeoutError:
                # The request may have reached the platform: a command is not sent again.
                message = f"{label}: timed out"
                error = _unknown(message) if once else PlatformUnavailable(message)
                retryable = not once
                pause = _pause(attempt)
            except httpx.HTTPError as exc:  # network errors, and the few others httpx has
                # Only a request that never left (no connection) cannot have been acted on.
                unsent = isinstance(
                    exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout
                )
                message = f"{label}: {type(exc).__name__}"
                error = _unknown(message) if once and not unsent else PlatformUnavailable(message)
                retryable = isinstance(exc, httpx.TransportError) and (not once or unsent)
                pause = _pause(attempt)
            else:
                if response.status_code < 300:
                    return _json_or_empty(response.content)
                error = _error_for(response, label, control=command, once=once)
                after = error.retry_after_seconds if isinstance(error, RateLimited) else None
                if once:  # only a 429 that says when is sure not to have been acted on
                    retryable = after is not None
                else:
                    retryable = isinstance(error, RateLimited | PlatformUnavailable)
                pause = after if after is not None else _pause(attempt)
            if (
                not retryable
                or attempt >= self.max_attempts
                or time.monotonic() + pause + _LEAST_ATTEMPT_SECONDS > deadline
            ):
                raise error
            _log.info(
                "%s: %s; attempt %d again in %.2f s", label, _brief(error), attempt + 1, pause
            )
            await anyio.sleep(pause)


class _MaskedURLs(logging.Filter):
    """httpx logs every request's URL at INFO, and the platform's REST call ids may embed the
    caller's number (``call-_+316…``): mask them before any handler sees the line."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 2 and str(record.msg).startswith("HTTP"):
            record.args = (args[0], masked(str(args[1])), *args[2:])
        return True


def _mask_httpx_urls() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _MaskedURLs) for f in logger.filters):
        logger.addFilter(_MaskedURLs())


def _url_problem(httpx: Any, base_url: str) -> str:
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL as exc:
        return str(exc)
    return "" if url.scheme in ("http", "https") and url.host else "it needs http(s) and a host"


def _encode(command: Mapping[str, Any]) -> bytes:
    return json.dumps(command, separators=(",", ":")).encode()


def _brief(error: PlatformAPIError) -> str:
    status = "no answer" if error.status is None else str(error.status)
    return f"{type(error).__name__} ({status}{', ' + error.code if error.code else ''})"


def _pause(attempt: int) -> float:
    return float(min(_FIRST_PAUSE_SECONDS * 2 ** (attempt - 1), _MAX_PAUSE_SECONDS))


def _inner(answer: Any, key: str) -> dict[str, Any]:
    """The object under ``key`` in an answer (``{"assistant": {...}}``), or the answer itself."""
    if isinstance(answer, dict):
        inner = answer.get(key, answer)
        return inner if isinstance(inner, dict) else {}
    return {}


def _json_or_empty(content: bytes) -> Any:
    if not content:
        return {}
    try:
        return json.loads(content)
    except ValueError:
        return {}


def _error_for(
    response: httpx.Response, label: str, *, control: bool, once: bool
) -> PlatformAPIError:
    status = response.status_code
    code, detail, body_retry = _read_error_body(response.content)
    header = response.headers.get("retry-after")
    message = f"{label}: {status}" + (f" {code}" if code else "")
    if status in (401, 403):
        return Unauthorized(message, status=status, code=code, detail=detail)
    if status == 429:
        retry_after = _seconds(header) if header is not None else body_retry
        return RateLimited(
            message, retry_after_seconds=retry_after, status=status, code=code, detail=detail
        )
    if status >= 500:
        if once and not (status == 503 and header is not None):
            return _unknown(message, status=status, code=code, detail=detail)
        return PlatformUnavailable(message, status=status, code=code, detail=detail)
    if control and status in (400, 404, 409):
        return CallEnded(message, status=status, code=code, detail=detail)
    return PlatformAPIError(message, status=status, code=code, detail=detail)


def _unknown(
    message: str, *, status: int | None = None, code: str | None = None, detail: str = ""
) -> OutcomeUnknown:
    return OutcomeUnknown(
        f"{message}; it may have been carried out, so it was not sent again",
        status=status,
        code=code,
        detail=detail,
    )


def _read_error_body(content: bytes) -> tuple[str | None, str, float | None]:
    """``(code, message, retry_after)`` from either documented error shape."""
    body = _json_or_empty(content)
    if not isinstance(body, dict):
        return None, "", None
    error = body.get("error")
    retry = body.get("retry_after")
    retry_after = float(retry) if isinstance(retry, int | float) and retry >= 0 else None
    if isinstance(error, dict):  # {"error": {"code", "message", "param", "type"}}
        code = error.get("code") or error.get("type")
        code = str(code) if code and _CODE.match(str(code)) else None
        return code, str(error.get("message") or ""), retry_after
    if isinstance(error, str):  # {"error": "<string>", "message"?: ..., "details"?: [...]}
        # The string is a code (``call_not_active``) or a sentence; only a code is kept as one.
        code = error if _CODE.match(error) else None
        detail = str(body.get("message") or error)
        details = body.get("details")
        if isinstance(details, list) and details:
            detail = f"{detail}: {'; '.join(str(d) for d in details)}"
        return code, detail, retry_after
    return None, "", retry_after


def _seconds(value: str) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: too rare on this API to be worth parsing
    return seconds if seconds >= 0 else None
