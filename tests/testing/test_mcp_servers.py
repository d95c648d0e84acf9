"""The fake platform's MCP probe on servers that misbehave: each is an answer, never a raise."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from voicehooks.testing._mcp_servers import probe

pytestmark = pytest.mark.anyio

# What the server answers to a JSON-RPC request: (status, content type, body).
Script = Callable[[dict[str, Any]], tuple[int, str, bytes]]


@contextlib.contextmanager
def serve(script: Script) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            message = json.loads(self.rfile.read(int(self.headers["content-length"])))
            status, kind, body = (202, "", b"") if "id" not in message else script(message)
            self.send_response(status)
            if kind:
                self.send_header("content-type", kind)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/mcp"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def initialized(then: Script) -> Script:
    def script(message: dict[str, Any]) -> tuple[int, str, bytes]:
        if message["method"] == "initialize":
            answer = {"jsonrpc": "2.0", "id": message["id"], "result": {"capabilities": {}}}
            return 200, "application/json", json.dumps(answer).encode()
        return then(message)

    return script


def slow(message: dict[str, Any]) -> tuple[int, str, bytes]:
    time.sleep(1.0)
    return 200, "application/json", b"{}"


def answer(result: Any, *, id_offset: int = 0) -> Script:
    def script(message: dict[str, Any]) -> tuple[int, str, bytes]:
        body = {"jsonrpc": "2.0", "id": message["id"] + id_offset, "result": result}
        return 200, "application/json", json.dumps(body).encode()

    return script


def events(text: str) -> Script:
    return lambda message: (200, "text/event-stream", text.encode())


@pytest.mark.parametrize(
    ("script", "error"),
    [
        (slow, "timed out after 0.3 s"),
        (initialized(lambda m: (200, "application/json", b"not json")), "the answer is not JSON"),
        (initialized(answer({"tools": []}, id_offset=7)), "not the JSON-RPC response"),
        (initialized(answer({"no": "tools"})), "tools/list answered without a tools list"),
        (initialized(answer(["a list"])), "tools/list answered without a result"),
        (initialized(events(': keep-alive\n\ndata: {"jsonrpc": "2.0"}\n\n')), "ended without"),
        (initialized(lambda m: (500, "", b"")), "the server answered HTTP 500 to tools/list"),
    ],
)
async def test_a_misbehaving_server_is_an_answer_with_the_reason(
    script: Script, error: str
) -> None:
    with serve(script) as url:
        result = await probe(url, {}, 0.3)
        assert result["ok"] is False
        assert error in result["error"]
        assert isinstance(result["duration_ms"], int)


async def test_an_event_stream_answer_need_not_end_with_a_blank_line() -> None:
    tools = {"tools": [{"name": "kb", "inputSchema": None}]}

    def script(message: dict[str, Any]) -> tuple[int, str, bytes]:
        body = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": tools})
        return 200, "text/event-stream", f"event: message\ndata: {body}".encode()

    with serve(initialized(script)) as url:
        result = await probe(url, {}, 5)
    assert result["tools"] == [{"name": "kb", "description": None, "input_schema": {}}]
