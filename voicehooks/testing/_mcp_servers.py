"""The MCP-server side of ``FakePlatform``: checking the fields, and connecting as the platform.

PLATFORM.md §7.2: a server has a ``name`` unique in the organization, an ``https://`` ``url``
on a public address, a ``transport`` (``streamable_http``, the default, or ``sse``), at most
10 write-only ``headers`` and a ``timeout_seconds`` of 5 to 60 (default 20).

``probe`` is what ``POST /mcp-servers/{id}/test`` does on the platform: connect to the
server's URL with its headers and speak MCP's Streamable HTTP transport, as a client does
(``initialize``, then ``notifications/initialized``, then ``tools/list`` until no
``nextCursor``), each answer a JSON body or an SSE stream whose ``data:`` lines carry it.
It returns ``{"ok": true, "duration_ms", "tools"}`` or ``{"ok": false, "duration_ms",
"error"}``: a server that cannot be reached is an answer, not an error. Bounded: each request
waits at most ``timeout_seconds``, an answer is read up to 4 MiB, at most 20 pages of tools.

Not faked: the legacy ``sse`` transport (a test of such a server answers ``ok: false``) and
DNS: a host name is taken as public, an IP address or ``localhost`` is checked.
"""

from __future__ import annotations

import datetime
import ipaddress
import itertools
import json
import re
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "PROTOCOL_VERSION",
    "McpServers",
    "Probe",
    "Refusal",
    "normalized_url",
    "probe",
    "server_problem",
    "timestamp",
]

PROTOCOL_VERSION: Final = "2025-06-18"
_FIELDS: Final = frozenset({"name", "url", "transport", "headers", "timeout_seconds"})
_TRANSPORTS: Final = ("streamable_http", "sse")
_MAX_HEADERS: Final = 10
_HEADER_NAME: Final = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}$")
_MAX_ANSWER_BYTES: Final = 4 * 1024 * 1024
_MAX_PAGES: Final = 20
_ERROR_CHARS: Final = 200


class Refusal(Exception):
    """What the API answers instead: ``status``, the error ``code``, and the message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True, slots=True)
class Probe:
    """An MCP server test to run once the fake's lock is released (it connects out)."""

    url: str
    headers: dict[str, str]
    timeout_seconds: float


class McpServers:
    """The organization's MCP servers: the objects the API answers, and their header values.

    Args:
        local_urls: Accept ``http://`` and private addresses (a test's own server).
    """

    def __init__(self, *, local_urls: bool) -> None:
        self.servers: dict[str, dict[str, Any]] = {}
        self.headers: dict[str, dict[str, str]] = {}  # write-only: never answered
        self.local_urls = local_urls
        self._ids = itertools.count(1)

    def get(self, server_id: str) -> dict[str, Any]:
        """The server, or a 404 ``Refusal``."""
        server = self.servers.get(server_id)
        if server is None:
            raise Refusal(404, "not_found", "MCP server not found")
        return server

    def create(self, body: Any) -> dict[str, Any]:
        """``POST /mcp-servers``; raises ``Refusal`` (422, or 409 for a name taken)."""
        self._check(body, None)
        now = timestamp()
        server_id = f"mcp_{next(self._ids)}"
        server: dict[str, Any] = {
            "id": server_id,
            "name": "",
            "url": "",
            "transport": "streamable_http",
            "header_names": [],
            "timeout_seconds": 20,
            "created_at": now,
        }
        self.servers[server_id] = server
        self.headers[server_id] = {}
        return self._write(server, body)

    def update(self, server_id: str, body: Any) -> dict[str, Any]:
        """``PATCH /mcp-servers/{id}``; ``headers`` replaces every stored one."""
        server = self.get(server_id)
        self._check(body, server)
        return self._write(server, body)

    def delete(self, server_id: str, *, in_use: bool) -> None:
        """``DELETE /mcp-servers/{id}``; a 409 while an assistant uses it."""
        self.get(server_id)
        if in_use:
            raise Refusal(409, "conflict", "MCP server is in use by an assistant; detach it first")
        del self.servers[server_id]
        self.headers.pop(server_id, None)

    def test(self, server_id: str, body: Any) -> Probe | dict[str, Any]:
        """``POST /mcp-servers/{id}/test``: the probe to run, with ``headers`` merged over the
        stored ones for this test only."""
        server = self.get(server_id)
        extra = body.get("headers", {}) if isinstance(body, dict) else {}
        if not isinstance(extra, dict) or not all(isinstance(v, str) for v in extra.values()):
            raise Refusal(422, "validation_error", "headers must map names to strings")
        if server["transport"] != "streamable_http":
            error = "the fake platform tests streamable_http servers only"
            return {"ok": False, "duration_ms": 0, "error": error}
        headers = {**self.headers[server_id], **extra}
        return Probe(server["url"], headers, server["timeout_seconds"])

    def _check(self, body: Any, current: dict[str, Any] | None) -> None:
        problem = server_problem(body, current=current, local_urls=self.local_urls)
        if problem is not None:
            raise Refusal(422, "validation_error", problem)
        name = body.get("name")
        if name is not None and any(
            s["name"] == name and s is not current for s in self.servers.values()
        ):
            raise Refusal(409, "conflict", "An MCP server with this name exists")

    def _write(self, server: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        for key in ("name", "transport", "timeout_seconds"):
            if key in body:
                server[key] = body[key]
        if "url" in body:
            server["url"] = normalized_url(body["url"])
        if "headers" in body:  # replaces every stored header; {} removes them
            self.headers[server["id"]] = dict(body["headers"])
            server["header_names"] = list(body["headers"])
        server["updated_at"] = timestamp()
        return server


def timestamp() -> str:
    """Now, as the API writes ``created_at`` and ``updated_at``."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


class _Failed(Exception):
    """The exchange failed; ``str(exc)`` is the ``error`` of the test's answer."""


def server_problem(body: Any, *, current: Mapping[str, Any] | None, local_urls: bool) -> str | None:
    """Why ``body`` is not a valid create (``current is None``) or update; ``None`` if it is."""
    if not isinstance(body, dict):
        return "The body must be an object"
    for key in body:
        if key not in _FIELDS:
            return f"Unknown field {key!r}"
    if current is None:
        for key in ("name", "url"):
            if key not in body:
                return f"Missing field {key!r}"
    name = body.get("name", "x")
    if not isinstance(name, str) or not name.strip() or len(name) > 128:
        return "name must be a non-empty string of at most 128 characters"
    if "url" in body:
        problem = _url_problem(body["url"], local_urls)
        if problem:
            return problem
        if (
            current is not None
            and "headers" not in body
            and _host(body["url"]) != _host(current["url"])
        ):
            return "A url on another host must come with headers (they are not sent elsewhere)"
    if body.get("transport", "streamable_http") not in _TRANSPORTS:
        return f"transport must be one of {', '.join(_TRANSPORTS)}"
    headers = body.get("headers", {})
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and _HEADER_NAME.match(k) and isinstance(v, str)
        for k, v in headers.items()
    ):
        return "headers must map header names to string values"
    if len(headers) > _MAX_HEADERS:
        return f"At most {_MAX_HEADERS} headers"
    timeout = body.get("timeout_seconds", 20)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 5 <= timeout <= 60:
        return "timeout_seconds must be a number from 5 to 60"
    return None


def normalized_url(url: str) -> str:
    """The URL as stored: scheme and host in lower case."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, "")
    )


def _host(url: str) -> str:
    return (urllib.parse.urlsplit(url).hostname or "").lower()


def _url_problem(url: Any, local_urls: bool) -> str | None:
    if not isinstance(url, str):
        return "url must be a string"
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in (("https", "http") if local_urls else ("https",)) or not host:
        return "url must be an https:// URL"
    if local_urls:
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
            return "url must resolve to a public address"
        return None
    return None if address.is_global else "url must resolve to a public address"


async def probe(url: str, headers: Mapping[str, str], timeout_seconds: float) -> dict[str, Any]:
    """Connect to the MCP server at ``url`` as the platform's test does; see the module."""
    import httpx

    started = time.monotonic()
    try:
        async with httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_seconds), follow_redirects=False
        ) as http:
            tools = await _Session(http, url, dict(headers), timeout_seconds).tools()
    except _Failed as exc:
        return _answer(started, error=str(exc))
    except httpx.TimeoutException:
        return _answer(started, error=f"timed out after {timeout_seconds:g} s")
    except httpx.HTTPError as exc:
        return _answer(started, error=f"cannot connect ({type(exc).__name__})")
    return _answer(started, tools=tools)


def _answer(
    started: float, *, tools: list[dict[str, Any]] | None = None, error: str = ""
) -> dict[str, Any]:
    duration_ms = round((time.monotonic() - started) * 1000)
    if tools is None:
        return {"ok": False, "duration_ms": duration_ms, "error": error[:_ERROR_CHARS]}
    return {"ok": True, "duration_ms": duration_ms, "tools": tools}


class _Session:
    """One MCP session over Streamable HTTP: its id and version go with every later request."""

    def __init__(self, http: Any, url: str, headers: dict[str, str], timeout: float) -> None:
        self.http = http
        self.url = url
        self.headers = {
            **headers,
            "accept": "application/json, text/event-stream",
            "content-type": "application/json",
        }
        self.timeout = timeout
        self.next_id = 0

    async def tools(self) -> list[dict[str, Any]]:
        info = {"name": "voicehooks-fake-platform", "version": "1"}
        result = await self.request(
            "initialize",
            {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": info},
        )
        version = result.get("protocolVersion")
        if isinstance(version, str):
            self.headers["mcp-protocol-version"] = version
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        found: list[dict[str, Any]] = []
        cursor: Any = None
        for _ in range(_MAX_PAGES):
            page = await self.request("tools/list", {"cursor": cursor} if cursor else {})
            listed = page.get("tools")
            if not isinstance(listed, list):
                raise _Failed("tools/list answered without a tools list")
            found += [_tool(t) for t in listed if isinstance(t, dict)]
            cursor = page.get("nextCursor")
            if not cursor:
                break
        return found

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        message = {"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params}
        answer = await self.send(message, expect=self.next_id)
        error = answer.get("error")
        if error is not None:
            text = error.get("message") if isinstance(error, dict) else error
            raise _Failed(f"{method} failed: {text}")
        result = answer.get("result")
        if not isinstance(result, dict):
            raise _Failed(f"{method} answered without a result")
        return result

    async def send(self, message: dict[str, Any], expect: int | None = None) -> dict[str, Any]:
        body = json.dumps(message).encode()
        async with self.http.stream("POST", self.url, content=body, headers=self.headers) as r:
            if r.status_code >= 400:
                hint = ": check its headers (the token)" if r.status_code in (401, 403) else ""
                raise _Failed(
                    f"the server answered HTTP {r.status_code} to {message['method']}{hint}"
                )
            session = r.headers.get("mcp-session-id")
            if session:
                self.headers["mcp-session-id"] = session
            if expect is None:
                return {}
            kind = r.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind == "text/event-stream":
                return await _from_events(r, expect)
            raw = b""
            async for chunk in r.aiter_bytes():
                raw += chunk
                if len(raw) > _MAX_ANSWER_BYTES:
                    raise _Failed("the answer is too large")
            return _matching(_decode(raw), expect)


async def _from_events(response: Any, expect: int) -> dict[str, Any]:
    """The JSON-RPC answer with id ``expect`` among the stream's events (others skipped)."""
    data: list[str] = []
    read = 0
    async for line in response.aiter_lines():
        read += len(line)
        if read > _MAX_ANSWER_BYTES:
            raise _Failed("the answer is too large")
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif not line.strip() and data:  # an event ends at a blank line
            found = _matching(_decode("\n".join(data).encode()), expect, strict=False)
            data = []
            if found:
                return found
    if data:
        found = _matching(_decode("\n".join(data).encode()), expect, strict=False)
        if found:
            return found
    raise _Failed("the event stream ended without an answer")


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise _Failed("the answer is not JSON") from None


def _matching(message: Any, expect: int, *, strict: bool = True) -> dict[str, Any]:
    if isinstance(message, dict) and message.get("id") == expect:
        return message
    if strict:
        raise _Failed("the answer is not the JSON-RPC response to the request")
    return {}


def _tool(entry: dict[str, Any]) -> dict[str, Any]:
    schema = entry.get("inputSchema")
    return {
        "name": entry.get("name"),
        "description": entry.get("description"),
        "input_schema": schema if isinstance(schema, dict) else {},
    }
