"""The official MCP Python SDK as the client, against ``voicehooks run`` on a free port: what
the platform's MCP client does (initialize, list, call), over a real server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from tests.conftest import SECRET
from tests.helpers.servers import Server, running_server
from voicehooks.testing import WebhookClient

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

TOKEN = "mcp-sdk-token-71c"
ENV = {
    "VOICEHOOKS_SECRET": SECRET,
    "VOICEHOOKS_MCP_TOKEN": f"old-token,{TOKEN}",
    # The LiveCall tool makes the app need a key at startup; nothing here calls the API.
    "VOICEHOOKS_API_KEY": "unused-key",
    "VOICEHOOKS_API_URL": "http://127.0.0.1:9/api",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp_path: Path = tmp_path_factory.mktemp("mcp")
    with running_server("tests/apps/mcp_served.py", tmp_path, env=ENV) as running:
        yield running


@asynccontextmanager
async def session(server: Server, token: str = TOKEN) -> AsyncIterator[ClientSession]:
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with (
        http,
        streamable_http_client(f"{server.url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as client,
    ):
        await client.initialize()
        yield client


async def test_the_sdk_initializes_lists_and_calls(server: Server) -> None:
    async with session(server) as client:
        listed = await client.list_tools()
        assert [tool.name for tool in listed.tools] == [
            "book_table",
            "opening_hours",
            "whoami",
            "crash",
        ]
        book = listed.tools[0]
        assert book.input_schema["required"] == ["party_size"]
        assert book.input_schema["properties"]["party_size"]["description"] == "How many people."

        result = await client.call_tool("book_table", {"party_size": 4, "day": "friday"})
        assert not result.is_error
        text = result.content[0].text  # type: ignore[union-attr]
        assert msgspec.json.decode(text) == {"booked": True, "party_size": 4, "day": "friday"}

        opening = await client.call_tool("opening_hours", {})  # a sync tool: a worker thread
        assert opening.content[0].text == "Noon to 10 pm."  # type: ignore[union-attr]


async def test_errors_are_error_results_with_the_webhook_text(server: Server) -> None:
    webhook = WebhookClient(_app(), secret=SECRET)
    for arguments in ({"party_size": 12}, {"party_size": "lots"}, {}):
        expected = (await webhook.call_tool("book_table", **arguments))["error"]
        async with session(server) as client:
            result = await client.call_tool("book_table", arguments)
        assert result.is_error
        assert result.content[0].text == expected  # type: ignore[union-attr]
    async with session(server) as client:
        crashed = await client.call_tool("crash", {})
    assert crashed.is_error
    assert "SECRET-INTERNALS" not in crashed.content[0].text  # type: ignore[union-attr]
    assert "SECRET-INTERNALS" not in server.log().split("Traceback")[0]


async def test_a_withheld_tool_is_an_error_for_the_sdk(server: Server) -> None:
    async with session(server) as client:
        with pytest.raises(MCPError, match="unknown tool: hang_up"):
            await client.call_tool("hang_up", {})


async def test_both_tokens_of_a_rotation_work_and_a_wrong_one_does_not(server: Server) -> None:
    async with session(server, "old-token") as client:
        assert (await client.call_tool("opening_hours", {})).content
    with pytest.raises(BaseException) as raised:  # noqa: PT011  (the SDK's own error, maybe grouped)
        async with session(server, "wrong"):
            pass
    assert _mentions(raised.value, "error response")
    assert "rejected 401" in server.log()


async def test_the_startup_line_names_what_is_withheld(server: Server) -> None:
    log = server.log()
    assert "MCP endpoint at /mcp offers 4 tool(s)" in log
    assert "withholds 6 tool(s)" in log
    assert "hang_up (it takes a LiveCall, and MCP carries no call)" in log
    assert TOKEN not in log


def _app() -> Any:
    from tests.apps.mcp_tools import make_app

    return make_app(("t",), secret=SECRET)


def _mentions(exc: BaseException, text: str) -> bool:
    if text in str(exc).lower():
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_mentions(inner, text) for inner in exc.exceptions)
    return exc.__cause__ is not None and _mentions(exc.__cause__, text)
