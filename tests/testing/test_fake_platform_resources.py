"""FakePlatform's §7.2 endpoints: assistants PATCH, MCP servers (a real /test), workflows."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.helpers.servers import free_port
from voicehooks.live.api import PlatformAPIError
from voicehooks.testing import FakePlatform

pytestmark = pytest.mark.anyio

KEY = "vh-fake-key"
AUTH = {"authorization": f"Bearer {KEY}"}
TOKEN = "mcp-token-123"
TOOLS = [
    {
        "name": "search_kb",
        "description": "Search the knowledge base.",
        "inputSchema": {"type": "object", "properties": {"query": {"type": "string"}}},
    },
    {"name": "open_ticket", "description": "Open a ticket.", "inputSchema": {"type": "object"}},
]


@dataclass
class McpServer:
    """A tiny MCP server over Streamable HTTP (JSON-RPC), on a loopback port in a thread."""

    url: str = ""
    sse: bool = False
    fail_list: bool = False
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)


@pytest.fixture
def mcp() -> Iterator[McpServer]:
    state = McpServer()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            message = json.loads(self.rfile.read(int(self.headers["content-length"])))
            headers = {k.lower(): v for k, v in self.headers.items()}
            state.seen.append((message["method"], headers))
            if headers.get("authorization") != f"Bearer {TOKEN}":
                self.send_response(401)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            if "id" not in message:  # a notification
                self.send_response(202)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            answer: dict[str, Any] = {"jsonrpc": "2.0", "id": message["id"]}
            if message["method"] == "initialize":
                answer["result"] = {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "kb", "version": "1"},
                }
            elif state.fail_list:
                answer["error"] = {"code": -32603, "message": "index offline"}
            elif message["params"].get("cursor") is None:
                answer["result"] = {"tools": TOOLS[:1], "nextCursor": "page-2"}
            else:
                answer["result"] = {"tools": TOOLS[1:]}
            self.reply(answer, stream=state.sse and message["method"] == "tools/list")

        def reply(self, answer: dict[str, Any], *, stream: bool) -> None:
            if stream:  # a progress notification first, then the answer, as a server may
                note = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {}}
                body = f"data: {json.dumps(note)}\n\ndata: {json.dumps(answer)}\n\n".encode()
                kind = "text/event-stream"
            else:
                body, kind = json.dumps(answer).encode(), "application/json"
            self.send_response(200)
            self.send_header("content-type", kind)
            self.send_header("mcp-session-id", "session-42")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/mcp"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.mark.parametrize("sse", [False, True])
async def test_test_connects_to_the_server_and_lists_its_tools(mcp: McpServer, sse: bool) -> None:
    mcp.sse = sse
    platform = FakePlatform(api_key=KEY, local_mcp_servers=True)
    async with platform.client() as api:
        server = await api.create_mcp_server(
            {"name": "KB", "url": mcp.url, "headers": {"Authorization": f"Bearer {TOKEN}"}}
        )
        result = await api.test_mcp_server(server["id"])
    assert server["header_names"] == ["Authorization"]
    assert TOKEN not in json.dumps(server)
    assert result["ok"] is True
    assert isinstance(result["duration_ms"], int)
    assert result["tools"] == [
        {"name": t["name"], "description": t["description"], "input_schema": t["inputSchema"]}
        for t in TOOLS
    ]
    assert [method for method, _ in mcp.seen] == [
        "initialize",
        "notifications/initialized",
        "tools/list",
        "tools/list",
    ]
    for _, headers in mcp.seen[1:]:
        assert headers["mcp-session-id"] == "session-42"
        assert headers["mcp-protocol-version"] == "2025-06-18"
    assert "text/event-stream" in mcp.seen[0][1]["accept"]


async def test_test_reports_what_failed_without_raising(mcp: McpServer) -> None:
    platform = FakePlatform(api_key=KEY, local_mcp_servers=True)
    server = platform.add_mcp_server(
        name="KB", url=mcp.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout_seconds=5
    )
    gone = platform.add_mcp_server(name="Gone", url=f"http://127.0.0.1:{free_port()}/mcp")
    async with platform.client() as api:
        wrong = await api.test_mcp_server(server["id"], {"Authorization": "Bearer wrong"})
        mcp.fail_list = True
        refused = await api.test_mcp_server(server["id"])
        unreachable = await api.test_mcp_server(gone["id"])
    assert wrong == {
        "ok": False,
        "duration_ms": wrong["duration_ms"],
        "error": "the server answered HTTP 401 to initialize: check its headers (the token)",
    }
    assert platform.mcp_headers(server["id"]) == {"Authorization": f"Bearer {TOKEN}"}
    assert refused["error"] == "tools/list failed: index offline"
    assert unreachable["ok"] is False
    assert unreachable["error"] == "cannot connect (ConnectError)"


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        ({"name": "A", "url": "http://kb.example.com/mcp"}, 422, "https://"),
        ({"name": "A", "url": "https://127.0.0.1/mcp"}, 422, "public address"),
        ({"name": "A", "url": "https://localhost/mcp"}, 422, "public address"),
        ({"name": "A", "url": "https://10.1.2.3/mcp"}, 422, "public address"),
        ({"url": "https://kb.example.com/mcp"}, 422, "Missing field 'name'"),
        ({"name": "A", "url": "https://kb.example.com", "transport": "ws"}, 422, "transport"),
        ({"name": "A", "url": "https://kb.example.com", "timeout_seconds": 4}, 422, "5 to 60"),
        ({"name": "A", "url": "https://kb.example.com", "timeout_seconds": 61}, 422, "5 to 60"),
        ({"name": "A", "url": "https://kb.example.com", "token": "x"}, 422, "Unknown field"),
        (
            {
                "name": "A",
                "url": "https://kb.example.com",
                "headers": {f"X-{i}": "v" for i in range(11)},
            },
            422,
            "At most 10 headers",
        ),
        ({"name": "Taken", "url": "https://kb.example.com/mcp"}, 409, "exists"),
        ({"name": "A", "url": "https://KB.Example.com/mcp", "transport": "sse"}, 201, ""),
    ],
)
async def test_mcp_servers_are_checked_as_documented(
    fields: dict[str, Any], status: int, message: str
) -> None:
    platform = FakePlatform(api_key=KEY)
    platform.add_mcp_server(name="Taken", url="https://other.example.com/mcp")
    async with httpx.AsyncClient(transport=platform.transport()) as http:
        answer = await http.post(f"{platform.base_url}/mcp-servers", json=fields, headers=AUTH)
    assert answer.status_code == status, answer.text
    if status == 201:
        server = answer.json()["mcp_server"]
        assert server["url"] == "https://kb.example.com/mcp"
        assert (server["transport"], server["timeout_seconds"]) == ("sse", 20)
        assert server["header_names"] == []
    else:
        assert message in answer.json()["message"]


async def test_mcp_server_updates_deletes_and_the_409_while_attached() -> None:
    platform = FakePlatform(api_key=KEY)
    server = platform.add_mcp_server(
        name="KB", url="https://kb.example.com/mcp", headers={"Authorization": "Bearer a"}
    )
    attachment = {"type": "mcp", "mcp_server_id": server["id"], "allowed_tools": ["search_kb"]}
    platform.add_assistant("asst_1", {"name": "Desk", "llm_config": {"tools": [attachment]}})
    async with platform.client() as api:
        moved = api.update_mcp_server(server["id"], {"url": "https://kb2.example.com/mcp"})
        with pytest.raises(PlatformAPIError) as refused:
            await moved
        assert refused.value.status == 422
        updated = await api.update_mcp_server(
            server["id"], {"url": "https://kb2.example.com/mcp", "headers": {}}
        )
        assert updated["header_names"] == []
        assert [s["id"] for s in await api.list_mcp_servers()] == [server["id"]]
        with pytest.raises(PlatformAPIError) as in_use:
            await api.delete_mcp_server(server["id"])
        assert in_use.value.status == 409
        await api.update_assistant("asst_1", {"llm_config": {"tools": []}})
        await api.delete_mcp_server(server["id"])
        with pytest.raises(PlatformAPIError) as gone:
            await api.get_mcp_server(server["id"])
        assert gone.value.status == 404
    assert platform.mcp_headers(server["id"]) == {}


async def test_patch_replaces_top_level_fields_and_llm_config_whole() -> None:
    platform = FakePlatform(api_key=KEY)
    config = {"provider": "openai", "model": "gpt-4.1", "tools": [{"type": "end_call"}]}
    platform.add_assistant("asst_1", {"name": "Desk", "first_message": "Hi", "llm_config": config})
    async with platform.client() as api:
        updated = await api.update_assistant(
            "asst_1", {"webhook_events": ["tool-calls"], "llm_config": {"tools": []}}
        )
        saved = await api.get_assistant("asst_1")
    assert updated == saved
    assert saved["first_message"] == "Hi"
    assert saved["webhook_events"] == ["tool-calls"]
    assert saved["llm_config"] == {"tools": []}  # a partial object replaced the stored one
    assert [r.method for r in platform.requests] == ["PATCH", "GET"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"colour": "blue"}, "Unknown field 'colour'"),
        (["not", "an", "object"], "The body must be an object"),
        ({"llm_config": "gpt"}, "llm_config must be an object"),
        ({"llm_config": {"tools": {}}}, "llm_config.tools must be a list"),
        ({"llm_config": {"tools": ["end_call"]}}, "llm_config.tools[0]: must be an object"),
        (
            {
                "llm_config": {
                    "tools": [{"type": "mcp", "mcp_server_id": "SERVER", "allowed_tools": "kb"}]
                }
            },
            "allowed_tools must be a list",
        ),
        (
            {
                "llm_config": {
                    "tools": [
                        {
                            "type": "mcp",
                            "mcp_server_id": "SERVER",
                            "allowed_tools": [],
                            "required": 1,
                        }
                    ]
                }
            },
            "required must be a boolean",
        ),
        ({"webhook_events": ["tool-calls", "transcript"]}, "webhook_events"),
        ({"llm_config": {"tools": [{"name": "book table", "description": "x"}]}}, "tool name"),
        (
            {"llm_config": {"tools": [{"type": "function", "function": {"name": "9x"}}]}},
            "tool name",
        ),
        (
            {
                "llm_config": {
                    "tools": [{"type": "mcp", "mcp_server_id": "nope", "allowed_tools": []}]
                }
            },
            "names no MCP server",
        ),
        (
            {
                "llm_config": {
                    "tools": [
                        {
                            "type": "mcp",
                            "mcp_server_id": "SERVER",
                            "allowed_tools": [f"t{i}" for i in range(26)],
                        }
                    ]
                }
            },
            "at most 25",
        ),
    ],
)
async def test_patch_refuses_what_the_platform_refuses(body: Any, message: str) -> None:
    platform = FakePlatform(api_key=KEY)
    server = platform.add_mcp_server(name="KB", url="https://kb.example.com/mcp")
    platform.add_assistant("asst_1", {"name": "Desk"})
    text = json.dumps(body).replace("SERVER", server["id"])
    async with httpx.AsyncClient(transport=platform.transport()) as http:
        answer = await http.patch(
            f"{platform.base_url}/assistants/asst_1", content=text, headers=AUTH
        )
        unknown = await http.patch(f"{platform.base_url}/assistants/nobody", json={}, headers=AUTH)
        anonymous = await http.patch(f"{platform.base_url}/assistants/asst_1", json={})
    assert answer.status_code == 422
    assert message in answer.json()["message"]
    assert platform.assistants["asst_1"] == {"id": "asst_1", "name": "Desk"}
    assert unknown.status_code == 404
    assert anonymous.status_code == 401


async def test_workflows_are_served_as_seeded() -> None:
    platform = FakePlatform(api_key=KEY)
    definition = {"version": 1, "entry_node": "greet", "nodes": [], "edges": []}
    platform.add_workflow("wf_1", definition, name="Intake")
    async with platform.client() as api:
        workflow = await api.get_workflow("wf_1")
        with pytest.raises(PlatformAPIError) as missing:
            await api.get_workflow("wf_2")
    assert workflow == {"id": "wf_1", "name": "Intake", "is_active": True, "definition": definition}
    assert missing.value.status == 404
