"""The MCP endpoint in process, driven through ``voicehooks.testing``: JSON-RPC, HTTP refusals,
the tokens, what is offered, and the observers' view of an MCP call."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
import pytest

from tests.apps.mcp_tools import make_app
from tests.conftest import SECRET
from voicehooks import Mcp, Observer, VoiceHooks
from voicehooks.core.records import Delivery, ToolRun
from voicehooks.mcp.endpoint import LATEST_VERSION
from voicehooks.testing import Response, WebhookClient

pytestmark = pytest.mark.anyio

TOKEN = "mcp-token-3f9"
HEADERS = {
    "content-type": "application/json",
    "accept": "application/json, text/event-stream",
    "authorization": f"Bearer {TOKEN}",
}
OFFERED = ["book_table", "opening_hours", "whoami", "crash"]


def client(app: VoiceHooks | None = None) -> WebhookClient:
    return WebhookClient(app or make_app((TOKEN,), secret=SECRET))


async def post(
    client: WebhookClient,
    message: Any,
    headers: dict[str, str] | None = None,
    *,
    method: str = "POST",
    path: str = "/mcp",
) -> Response:
    body = message if isinstance(message, bytes) else msgspec.json.encode(message)
    return await client.request(method, path, [body], list({**HEADERS, **(headers or {})}.items()))


def request(method: str, params: Any = None, id_: int | str = 1) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        message["params"] = params
    return message


async def call(client: WebhookClient, name: str, arguments: Any = None) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name}
    if arguments is not None:
        params["arguments"] = arguments
    response = await post(client, request("tools/call", params))
    assert response.status_code == 200
    result: dict[str, Any] = response.json()["result"]
    return result


async def test_initialize_answers_the_clients_version_or_our_latest() -> None:
    c = client()
    for asked, answered in [
        ("2025-06-18", "2025-06-18"),
        ("2025-03-26", "2025-03-26"),
        ("2024-11-05", LATEST_VERSION),
        ("2099-01-01", LATEST_VERSION),
    ]:
        params = {"protocolVersion": asked, "capabilities": {}, "clientInfo": {"name": "t"}}
        response = await post(c, request("initialize", params, id_="init"))
        assert response.status_code == 200
        body = response.json()
        assert body["id"] == "init"
        assert body["result"]["protocolVersion"] == answered
        assert body["result"]["capabilities"] == {"tools": {"listChanged": False}}
        assert body["result"]["serverInfo"]["name"] == "voicehooks"


async def test_tools_list_offers_the_tools_that_need_no_call_with_the_webhook_schema() -> None:
    app = make_app((TOKEN,), secret=SECRET)
    response = await post(client(app), request("tools/list"))
    tools = response.json()["result"]["tools"]
    assert [tool["name"] for tool in tools] == OFFERED
    book = tools[0]
    assert book["description"] == "Book a table."
    assert book["inputSchema"] == app.tools["book_table"].parameters
    assert book["inputSchema"] == app.tool_definitions()[0]["parameters"]
    assert book["inputSchema"]["type"] == "object"


async def test_a_tool_registered_after_the_first_list_is_listed_too() -> None:
    app = make_app((TOKEN,), secret=SECRET)
    c = client(app)
    await post(c, request("tools/list"))

    @app.tool
    async def late() -> str:
        """Registered late."""
        return "late"

    names = [
        tool["name"] for tool in (await post(c, request("tools/list"))).json()["result"]["tools"]
    ]
    assert names == [*OFFERED, "late"]


async def test_a_call_answers_its_result_as_text() -> None:
    c = client()
    result = await call(c, "book_table", {"party_size": 2})
    assert result["isError"] is False
    assert msgspec.json.decode(result["content"][0]["text"]) == {
        "booked": True,
        "party_size": 2,
        "day": "today",
    }
    assert await call(c, "opening_hours") == {
        "content": [{"type": "text", "text": "Noon to 10 pm."}],
        "isError": False,
    }


async def test_a_tool_with_an_optional_context_gets_none() -> None:
    c = client()
    assert (await call(c, "whoami"))["content"][0]["text"] == "nobody"
    # ... while a webhook delivery still fills it
    assert await c.call_tool("whoami") != "nobody"


@pytest.mark.parametrize(
    "arguments",
    [{"party_size": 12}, {}, {"party_size": "many"}, {"party_size": "3", "day": 5}],
    ids=["tool-error", "missing", "not-a-number", "wrong-type"],
)
async def test_errors_come_back_as_error_results_with_the_webhook_text(
    arguments: dict[str, Any],
) -> None:
    c = client()
    result = await call(c, "book_table", arguments)
    webhook = await c.call_tool("book_table", **arguments)
    assert result["isError"] is True
    assert result["content"] == [{"type": "text", "text": webhook["error"]}]


async def test_coercions_are_the_webhook_ones() -> None:
    c = client()
    result = await call(c, "book_table", {"party_size": "3"})
    webhook = await c.call_tool("book_table", party_size="3")
    assert result["isError"] is False
    assert msgspec.json.decode(result["content"][0]["text"]) == webhook


async def test_a_bug_is_withheld_as_on_the_webhook(caplog: pytest.LogCaptureFixture) -> None:
    c = WebhookClient(make_app((TOKEN,), secret=SECRET), raise_exceptions=False)
    with caplog.at_level(logging.ERROR, logger="voicehooks"):
        result = await call(c, "crash")
    webhook = await c.call_tool("crash")
    assert result["isError"] is True
    assert result["content"][0]["text"] == webhook["error"]
    assert "SECRET-INTERNALS" not in str(result)
    assert "tool crash (over MCP) raised RuntimeError" in caplog.text
    # the message is withheld (the traceback's source line shows the code, as on the webhook)
    assert not any("SECRET-INTERNALS" in r.getMessage().splitlines()[0] for r in caplog.records)


async def test_the_deadline_is_the_mcp_one_or_the_tools_own() -> None:
    app = VoiceHooks(secret=SECRET, mcp=Mcp(tokens=[TOKEN], deadline_seconds=0.05))

    @app.tool
    async def slow() -> str:
        """Slow."""
        import anyio

        await anyio.sleep(5)
        return "late"

    result = await call(client(app), "slow")
    assert result["isError"] is True
    assert "did not answer in time" in result["content"][0]["text"]


@pytest.mark.parametrize(
    "name", ["hang_up", "remember", "call_id", "charge", "send_brochure", "slow_search", "nope"]
)
async def test_a_withheld_or_unknown_tool_is_invalid_params(name: str) -> None:
    response = await post(client(), request("tools/call", {"name": name}, id_=7))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == 7
    assert body["error"]["code"] == -32602
    assert name in body["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, -32700),
        (b'"a string"', 400, -32600),
        (b'{"jsonrpc": "2.0", "id": 1, "method": 5}', 400, -32600),
    ],
)
async def test_unreadable_bodies_are_json_rpc_errors(body: bytes, status: int, code: int) -> None:
    response = await post(client(), body)
    assert response.status_code == status
    assert response.json()["id"] is None
    assert response.json()["error"]["code"] == code


async def test_method_not_found_and_bad_params_and_ping() -> None:
    c = client()
    missing = (await post(c, request("resources/list"))).json()
    assert missing["error"]["code"] == -32601
    bad = (await post(c, request("tools/call", {"arguments": {}}))).json()
    assert bad["error"]["code"] == -32602
    not_two = (await post(c, {"jsonrpc": "1.0", "id": 3, "method": "ping"})).json()
    assert not_two["error"]["code"] == -32600
    assert (await post(c, request("ping"))).json() == {"jsonrpc": "2.0", "id": 1, "result": {}}


async def test_notifications_and_responses_are_accepted_without_a_body() -> None:
    c = client()
    for message in [
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}},
        {"jsonrpc": "2.0", "id": 9, "result": {}},
    ]:
        response = await post(c, message)
        assert response.status_code == 202
        assert response.content == b""


async def test_batches_before_2025_06_18_and_not_after() -> None:
    c = client()
    batch = [request("ping", id_=1), {"jsonrpc": "2.0", "method": "notifications/initialized"}]
    batch.append(request("tools/call", {"name": "opening_hours"}, id_=2))
    old = await post(c, batch, {"mcp-protocol-version": "2025-03-26"})
    assert old.status_code == 200
    assert [answer["id"] for answer in old.json()] == [1, 2]
    assert old.json()[1]["result"]["content"][0]["text"] == "Noon to 10 pm."
    new = await post(c, batch, {"mcp-protocol-version": "2025-06-18"})
    assert new.status_code == 400
    assert new.json()["error"]["code"] == -32600
    too_long = await post(c, [request("ping", id_=i) for i in range(33)])
    assert too_long.status_code == 400


async def test_an_unknown_protocol_version_header_is_a_400() -> None:
    response = await post(client(), request("ping"), {"mcp-protocol-version": "1999-01-01"})
    assert response.status_code == 400
    assert "1999-01-01" in response.json()["error"]["message"]


async def test_a_client_that_takes_only_event_streams_gets_one_event() -> None:
    response = await post(client(), request("ping", id_=4), {"accept": "text/event-stream"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    lines = response.content.decode().split("\r\n")
    assert lines[0] == "event: message"
    assert msgspec.json.decode(lines[1].removeprefix("data: ")) == {
        "jsonrpc": "2.0",
        "id": 4,
        "result": {},
    }
    refused = await post(client(), request("ping"), {"accept": "text/html"})
    assert refused.status_code == 406


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"authorization": ""}, 401),
        ({"authorization": "Bearer wrong"}, 401),
        ({"authorization": f"Basic {TOKEN}"}, 401),
        ({"authorization": f"bearer {TOKEN}"}, 200),
        ({"origin": "https://evil.example"}, 403),
        ({"content-type": "text/plain"}, 415),
    ],
)
async def test_http_refusals(headers: dict[str, str], status: int) -> None:
    response = await post(client(), request("tools/list"), headers)
    assert response.status_code == status
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "book_table" not in response.text
        assert "tools" not in response.text


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_no_stream_and_no_session(method: str) -> None:
    response = await post(client(), b"", method=method)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


async def test_two_tokens_are_both_accepted() -> None:
    c = client(make_app(("old-token", "new-token"), secret=SECRET))
    for token in ("old-token", "new-token"):
        response = await post(c, request("ping"), {"authorization": f"Bearer {token}"})
        assert response.status_code == 200


async def test_tokens_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.setenv("VOICEHOOKS_MCP_TOKEN", "env-a, env-b")
    c = client(make_app(secret=SECRET))
    response = await post(c, request("ping"), {"authorization": "Bearer env-b"})
    assert response.status_code == 200
    monkeypatch.delenv("VOICEHOOKS_MCP_TOKEN")
    path = tmp_path / "tokens"
    path.write_text("file-a\nfile-b\n")
    monkeypatch.setenv("VOICEHOOKS_MCP_TOKEN_FILE", str(path))
    c = client(make_app(secret=SECRET))
    response = await post(c, request("ping"), {"authorization": "Bearer file-a"})
    assert response.status_code == 200


async def test_without_a_token_there_is_no_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOICEHOOKS_MCP_TOKEN", raising=False)
    monkeypatch.delenv("VOICEHOOKS_MCP_TOKEN_FILE", raising=False)
    app = make_app(secret=SECRET)
    assert app.mcp_endpoint is None
    response = await post(client(app), request("tools/list"))
    assert response.status_code == 404
    unknown = await post(client(app), request("tools/list"), path="/elsewhere")
    assert response.content == unknown.content


async def test_the_endpoint_moves_with_the_mount_point_and_the_other_routes_stay() -> None:
    import httpx
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from voicehooks.observe.metrics import PrometheusObserver

    app = make_app((TOKEN,), secret=SECRET, observers=[PrometheusObserver()])
    parent = Starlette(routes=[Mount("/hooks", app=app)])
    transport = httpx.ASGITransport(app=parent)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        mounted = await http.post("/hooks/mcp", json=request("ping"), headers=HEADERS)
        assert mounted.status_code == 200
        assert mounted.json()["result"] == {}
        assert (await http.post("/mcp", json=request("ping"), headers=HEADERS)).status_code == 404
        assert (await http.get("/hooks/healthz")).status_code == 200
        assert (await http.get("/hooks/metrics")).status_code == 200


class Seen(Observer):
    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.ended: list[ToolRun] = []

    def delivery_answered(self, delivery: Delivery) -> None:
        self.deliveries.append(delivery)

    def tool_ended(self, delivery: Delivery, run: ToolRun) -> None:
        self.ended.append(run)


async def test_observers_see_tool_calls_and_refusals_with_the_transport() -> None:
    seen = Seen()
    c = client(make_app((TOKEN,), secret=SECRET, observers=[seen]))
    await post(c, request("initialize", {"protocolVersion": "2025-06-18"}))
    await post(c, request("tools/list"))
    await post(c, request("ping"))
    assert seen.deliveries == []  # housekeeping is not a delivery
    await call(c, "book_table", {"party_size": 12})
    await post(c, request("tools/list"), {"authorization": "Bearer wrong"})
    await c.call_tool("opening_hours")
    mcp_call, refused, webhook = seen.deliveries
    assert (mcp_call.transport, mcp_call.event_type, mcp_call.outcome) == (
        "mcp",
        "tool-calls",
        "answered",
    )
    assert mcp_call.call_id is None
    assert mcp_call.event is None
    assert [(run.name, run.outcome) for run in mcp_call.tools] == [("book_table", "error")]
    assert (refused.transport, refused.status, refused.outcome) == ("mcp", 401, "rejected_401")
    assert webhook.transport == "webhook"
    assert [run.outcome for run in seen.ended] == ["error", "ok"]


async def test_metrics_carry_the_transport_label() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from voicehooks.observe.metrics import PrometheusObserver, exposition

    metrics = PrometheusObserver()
    c = client(make_app((TOKEN,), secret=SECRET, observers=[metrics]))
    await call(c, "opening_hours")
    await post(c, request("tools/call", {"name": "made_up"}))
    await c.call_tool("opening_hours")
    body, _ = exposition(metrics.registry)
    values = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }
    calls = "voicehooks_tool_calls_total"
    assert (
        values[(calls, (("outcome", "ok"), ("tool", "opening_hours"), ("transport", "mcp")))] == 1
    )
    assert (
        values[(calls, (("outcome", "ok"), ("tool", "opening_hours"), ("transport", "webhook")))]
        == 1
    )
    assert (
        values[(calls, (("outcome", "unknown"), ("tool", "_unknown"), ("transport", "mcp")))] == 1
    )
    deliveries = "voicehooks_deliveries_total"
    key = (("event", "tool-calls"), ("outcome", "answered"), ("transport", "mcp"))
    assert values[(deliveries, key)] == 2


async def test_the_log_line_names_the_transport(caplog: pytest.LogCaptureFixture) -> None:
    c = client()
    with caplog.at_level(logging.INFO, logger="voicehooks"):
        await call(c, "book_table", {"party_size": 2})
    (line,) = [r for r in caplog.records if r.getMessage().startswith("tool-calls")]
    assert line.getMessage().endswith(" mcp")
    assert "tools=book_table:ok" in line.getMessage()


def test_paths_must_not_collide() -> None:
    from voicehooks import ConfigurationError

    with pytest.raises(ConfigurationError, match="webhook's path"):
        VoiceHooks(secret=SECRET, path="/mcp", mcp=Mcp(tokens=["t"]))
    with pytest.raises(ConfigurationError, match="empty"):
        VoiceHooks(secret=SECRET, mcp=Mcp(tokens=[" "]))
    with pytest.raises(ConfigurationError, match="deadline_seconds"):
        Mcp(deadline_seconds=0)
    with pytest.raises(ConfigurationError, match="list of tokens"):
        Mcp(tokens="one")


async def test_a_bug_of_voicehooks_itself_is_a_500_without_details(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    seen = Seen()
    app = make_app((TOKEN,), secret=SECRET, observers=[seen])
    assert app.mcp_endpoint is not None

    def broken(*args: Any) -> Any:
        raise KeyError("internals")

    monkeypatch.setattr(app.mcp_endpoint.answerer, "answer_without_call", broken)
    response = await post(client(app), request("tools/call", {"name": "opening_hours"}))
    assert response.status_code == 500
    assert response.json()["error"] == {"code": -32603, "message": "internal error"}
    assert "internals" not in response.text
    (delivery,) = seen.deliveries
    assert delivery.outcome == "internal_error"
    assert "mcp: internal error while answering" in caplog.text
