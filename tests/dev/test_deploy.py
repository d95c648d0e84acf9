"""Deploy's computation: what the PATCH sends, what it keeps, and that a second plan is empty."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from voicehooks import Platform, VoiceHooks
from voicehooks.dev.deploy import handled_events, merge_tools, plan, webhook_url
from voicehooks.live.reconcile import Reconciliation

URL = "https://hooks.example.com/voice"
OLD = "https://old-tunnel.example.net/voice"
ELSEWHERE = "https://crm.example.org/hooks"


def make_app() -> VoiceHooks:
    app = VoiceHooks(verify_signatures=False)

    @app.tool
    def book_table(party_size: int, day: str) -> str:
        """Book a table for the caller.

        Args:
            party_size: How many people.
            day: The day, as YYYY-MM-DD.
        """
        return "booked"

    @app.tool
    def opening_hours(day: str) -> str:
        """Say when the restaurant is open on a day.

        Args:
            day: The day, as YYYY-MM-DD.
        """
        return "12-22"

    @app.on("end-of-call-report")
    def report() -> None: ...

    return app


APP = make_app()
OURS = APP.tool_definitions(URL)
END_CALL = {"type": "end_call"}
TRANSFER = {"type": "transfer_call", "destinations": [{"type": "number", "number": "+3120"}]}
MCP = {"type": "mcp", "mcp_server_id": "mcp_1", "allowed_tools": ["search_kb"]}
FOREIGN = {"name": "crm_lookup", "description": "Look a customer up.", "url": ELSEWHERE}


def saved(tools: list[Any], **fields: Any) -> dict[str, Any]:
    return {
        "id": "asst_1",
        "name": "Front desk",
        "first_message": "Hello!",
        "stt_config": {"provider": "deepgram", "model": "nova-3", "language": "nl"},
        "webhook_url": OLD,
        "webhook_events": ["tool-calls"],
        "llm_config": {
            "provider": "openai",
            "model": "gpt-4.1",
            "temperature": 0.3,
            "messages": [{"role": "system", "content": "You are the front desk."}],
            "tools": tools,
        },
        **fields,
    }


def nested(definition: dict[str, Any], **extra: Any) -> dict[str, Any]:
    function = {k: definition[k] for k in ("name", "description", "parameters")}
    return {"type": "function", "function": function, "server": {"url": OLD}, **extra}


def apply(assistant: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """What the platform keeps after a PATCH: each top-level field replaced."""
    return {**copy.deepcopy(assistant), **copy.deepcopy(changes)}


def deploy_plan(assistant: dict[str, Any], secret: str | None = None) -> Any:
    return plan(
        assistant,
        OURS,
        webhook_url=URL,
        webhook_events=handled_events(APP),
        secret=secret,
    )


def test_entries_the_app_does_not_own_stay_as_they_were_and_where_they_were() -> None:
    stale = {"name": "old_tool", "description": "Gone from the app."}  # no URL: calls came here
    assistant = saved([END_CALL, OURS[1] | {"url": OLD}, MCP, stale, FOREIGN, TRANSFER])
    result = deploy_plan(assistant)
    tools = result.changes["llm_config"]["tools"]
    assert tools == [END_CALL, OURS[1], MCP, FOREIGN, TRANSFER, OURS[0]]
    assert {k: v for k, v in result.changes["llm_config"].items() if k != "tools"} == {
        k: v for k, v in assistant["llm_config"].items() if k != "tools"
    }
    assert set(result.changes) == {"webhook_url", "webhook_events", "llm_config"}
    assert result.changes["webhook_events"] == ["tool-calls", "end-of-call-report"]
    lines = [d.line() for d in result.differences]
    assert lines[:2] == [
        f"webhook_url: the assistant sends events to {OLD}, the app is at {URL}",
        "webhook_events: the app also handles end-of-call-report",
    ]
    assert "book_table: missing in the assistant: add the app's definition" in lines
    assert "old_tool: only in the assistant: no tool of the app has this name" in lines
    assert not any("crm_lookup" in line for line in lines)


def test_a_second_plan_on_what_the_patch_left_finds_nothing() -> None:
    assistant = saved([nested(OURS[0], strict=True), END_CALL, MCP])
    first = deploy_plan(assistant, secret="whsec_new")
    assert first.changed
    after = apply(assistant, first.changes)
    assert after["first_message"] == "Hello!"
    assert after["stt_config"] == assistant["stt_config"]
    again = deploy_plan(after, secret="whsec_new")
    assert again.differences == []
    assert again.changes == {}
    assert not deploy_plan(after).changed


def test_a_nested_entry_is_replaced_in_its_shape_keeping_the_keys_the_app_does_not_write() -> None:
    outdated = nested(OURS[0], strict=True)
    outdated["function"]["description"] = "Reserve."
    outdated["function"]["strict"] = True
    outdated["server"]["secret"] = "per-tool-secret"
    result = deploy_plan(saved([outdated]))
    entry = result.changes["llm_config"]["tools"][0]
    assert entry["type"] == "function"
    assert entry["function"] == {
        "strict": True,
        **{k: OURS[0][k] for k in ("name", "description", "parameters")},
    }
    assert entry["server"] == {"url": URL, "secret": "per-tool-secret"}
    assert entry["strict"] is True
    assert entry["async"] is False
    assert "book_table: description: differs: paste the app's description" in [
        d.line() for d in result.differences
    ]


def test_a_flat_entry_keeps_its_other_keys_and_a_stale_url_key_is_rewritten() -> None:
    flat = {**OURS[0], "url": OLD, "id": "tool_123", "async_response": "Working on it."}
    nested_with_url = {**nested(OURS[1]), "url": OLD}
    merged, owned = merge_tools([flat, nested_with_url], OURS, own_urls=[URL, OLD])
    assert merged[0] == {**OURS[0], "id": "tool_123"}
    assert merged[1]["url"] == URL
    assert merged[1]["server"]["url"] == URL
    assert [o["name"] for o in owned] == ["book_table", "opening_hours"]


def test_a_same_named_tool_elsewhere_is_taken_over_and_the_url_change_shown() -> None:
    result = deploy_plan(saved([{**OURS[0], "url": ELSEWHERE}, OURS[1]], webhook_url=URL))
    assert result.changes["llm_config"]["tools"] == [OURS[0], OURS[1]]
    assert f"book_table: url: the assistant calls {ELSEWHERE}, the app expects {URL}" in [
        d.line() for d in result.differences
    ]


def test_a_name_twice_keeps_the_first_place() -> None:
    result = deploy_plan(saved([OURS[0], OURS[1], OURS[0]], webhook_url=URL))
    assert result.changes["llm_config"]["tools"] == [OURS[0], OURS[1]]
    assert [d.line() for d in result.differences] == [
        "webhook_events: the app also handles end-of-call-report",
        "book_table: in the assistant twice: the second entry is removed",
    ]


def test_nothing_to_change_and_an_assistant_without_tools() -> None:
    same = saved(
        [END_CALL, *OURS],
        webhook_url=URL + "/",
        webhook_events=["end-of-call-report", "tool-calls"],
    )
    assert deploy_plan(same).changes == {}
    bare = {"id": "asst_2", "name": "New"}
    result = deploy_plan(bare)
    assert result.changes["llm_config"] == {"tools": OURS}
    assert result.changes["webhook_events"] == ["tool-calls", "end-of-call-report"]


def test_the_secret_is_written_only_when_asked_and_never_shown() -> None:
    assistant = saved(
        list(OURS), webhook_url=URL, webhook_events=["tool-calls", "end-of-call-report"]
    )
    assert deploy_plan(assistant).changes == {}
    result = deploy_plan(assistant, secret="whsec_do_not_print")
    assert result.changes == {"webhook_secret": "whsec_do_not_print"}
    assert [d.line() for d in result.differences] == [
        "webhook_secret: [set]: the app's secret is written"
    ]
    assert "whsec_do_not_print" not in repr(result)
    stored = {**assistant, "webhook_secret": "whsec_do_not_print"}
    assert deploy_plan(stored, secret="whsec_do_not_print").changes == {}


@pytest.mark.parametrize(
    ("public", "path", "expected"),
    [
        ("https://hooks.example.com", "/", "https://hooks.example.com/"),
        ("https://hooks.example.com/", "/voice", "https://hooks.example.com/voice"),
        ("https://example.com/base", "/voice/", "https://example.com/base/voice/"),
        ("https://example.com/voice/", "/voice", "https://example.com/voice/"),
    ],
)
def test_the_webhook_url_is_the_public_url_and_the_apps_path(
    public: str, path: str, expected: str
) -> None:
    assert webhook_url(public, path) == expected


@pytest.mark.parametrize("public", ["hooks.example.com", "ftp://x/", "https://x/?a=1"])
def test_a_public_url_that_is_not_one_is_refused(public: str) -> None:
    with pytest.raises(ValueError, match="URL"):
        webhook_url(public, "/")


def test_the_events_are_those_the_app_handles() -> None:
    bare = VoiceHooks(verify_signatures=False)
    assert handled_events(bare) == []

    @bare.on("assistant-request")
    def configure() -> dict[str, Any]:
        return {}

    assert handled_events(bare) == ["assistant-request"]
    reconciling = VoiceHooks(verify_signatures=False, platform=Platform(reconcile=Reconciliation()))

    @reconciling.on("tool-calls")
    def unclaimed() -> None: ...

    assert handled_events(reconciling) == ["tool-calls", "status-update", "end-of-call-report"]


def test_an_mcp_server_gets_its_token_only_when_made_moved_or_asked() -> None:
    from voicehooks.dev.deploy import mcp_server_changes, mcp_server_fields

    wanted = mcp_server_fields(
        name="voicehooks hooks",
        url="https://hooks.example.com/mcp",
        token="t0k",
        deadline_seconds=18,
    )
    assert wanted["timeout_seconds"] == 20
    made, shown = mcp_server_changes(None, wanted, set_token=False)
    assert made == wanted
    assert "t0k" not in " ".join(d.line() for d in shown)
    saved = {**{k: v for k, v in wanted.items() if k != "headers"}, "id": "mcp_1"}
    assert mcp_server_changes(saved, wanted, set_token=False) == ({}, [])
    changes, shown = mcp_server_changes(saved, wanted, set_token=True)
    assert changes == {"headers": {"Authorization": "Bearer t0k"}}
    assert [d.line() for d in shown] == ["mcp_server.headers: Authorization: [set]"]
    same_host = {**saved, "url": "https://hooks.example.com/old-mcp"}
    assert set(mcp_server_changes(same_host, wanted, set_token=False)[0]) == {"url"}
    other_host = {**saved, "url": "https://tunnel.example.net/mcp", "timeout_seconds": 30}
    assert set(mcp_server_changes(other_host, wanted, set_token=False)[0]) == {
        "url",
        "timeout_seconds",
        "headers",  # the platform asks for them when the URL moves to another host
    }


def test_the_attachment_is_updated_in_place_and_bounded() -> None:
    from voicehooks.dev.deploy import attach_mcp

    entries = [
        {"type": "end_call"},
        {"type": "mcp", "mcp_server_id": "mcp_1", "allowed_tools": ["a"], "required": False},
        {"type": "mcp", "mcp_server_id": "mcp_9", "allowed_tools": ["kb"]},
    ]
    merged, shown = attach_mcp(entries, "mcp_1", ["a", "b"])
    assert merged == [
        {"type": "end_call"},
        {"type": "mcp", "mcp_server_id": "mcp_1", "allowed_tools": ["a", "b"], "required": False},
        {"type": "mcp", "mcp_server_id": "mcp_9", "allowed_tools": ["kb"]},
    ]
    assert [d.path for d in shown] == ["mcp.allowed_tools"]
    assert attach_mcp(merged, "mcp_1", ["a", "b"]) == (merged, [])
    with pytest.raises(ValueError, match="at most 25"):
        attach_mcp([], None, [f"tool_{n}" for n in range(26)])
