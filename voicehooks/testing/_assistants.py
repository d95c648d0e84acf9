"""The assistant side of ``FakePlatform``: what ``PATCH /assistants/{id}`` accepts.

PLATFORM.md 3.4 lists the fields; §7.2 the tool entries (a webhook tool, flat or nested, a
built-in, or an MCP attachment with at most 25 ``allowed_tools`` of a server of the
organization); 4.5 the tool-name rule; 1.2 the four event names.
"""

from __future__ import annotations

import re
from typing import Any

from voicehooks.core.events import EVENT_NAMES

__all__ = ["attached", "problem"]

# PLATFORM.md 3.4: the fields of an assistant a PATCH may send.
_FIELDS = frozenset(
    {
        *("name", "business_name", "notification_email", "notification_emails"),
        *("recording_consent", "first_message", "is_active", "max_duration_seconds"),
        *("autonomous_silence_handling", "silence_timeout_seconds", "voicemail_detection"),
        *("voicemail_message", "gdpr_mode", "webhook_url", "webhook_secret", "webhook_events"),
        *("analysis_plan", "stt_config", "llm_config", "tts_config", "speech_config", "metadata"),
    }
)
_TOOL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")  # PLATFORM.md 4.5
_MAX_ALLOWED_TOOLS = 25
_BUILT_IN = frozenset({"end_call", "endCall", "transfer_call", "transferCall"})


def attached(assistant: dict[str, Any]) -> set[str]:
    """The ids of the MCP servers an assistant's tools attach."""
    config = assistant.get("llm_config")
    tools = config.get("tools") if isinstance(config, dict) else None
    return {
        str(t.get("mcp_server_id"))
        for t in tools or []
        if isinstance(t, dict) and t.get("type") == "mcp"
    }


def problem(body: Any, servers: dict[str, dict[str, Any]]) -> str | None:
    """Why ``body`` is not a valid ``PATCH /assistants/{id}``; ``None`` if it is."""
    if not isinstance(body, dict):
        return "The body must be an object"
    for key in body:
        if key not in _FIELDS:
            return f"Unknown field {key!r}"
    events = body.get("webhook_events")
    if events is not None and (
        not isinstance(events, list) or any(e not in EVENT_NAMES for e in events)
    ):
        return f"webhook_events must be a list of {', '.join(EVENT_NAMES)}"
    if "llm_config" not in body:
        return None
    config = body["llm_config"]
    if not isinstance(config, dict):
        return "llm_config must be an object"
    tools = config.get("tools", [])
    if not isinstance(tools, list):
        return "llm_config.tools must be a list"
    for index, tool in enumerate(tools):
        problem = _tool_problem(tool, servers)
        if problem is not None:
            return f"llm_config.tools[{index}]: {problem}"
    return None


def _tool_problem(tool: Any, servers: dict[str, dict[str, Any]]) -> str | None:
    if not isinstance(tool, dict):
        return "must be an object"
    kind = tool.get("type")
    if kind in _BUILT_IN:
        return None
    if kind == "mcp":
        allowed = tool.get("allowed_tools")
        if tool.get("mcp_server_id") not in servers:
            return "mcp_server_id names no MCP server of the organization"
        if not isinstance(allowed, list) or not all(isinstance(n, str) for n in allowed):
            return "allowed_tools must be a list of tool names"
        if len(allowed) > _MAX_ALLOWED_TOOLS:
            return f"allowed_tools: at most {_MAX_ALLOWED_TOOLS}"
        if not isinstance(tool.get("required", True), bool):
            return "required must be a boolean"
        return None
    function = tool["function"] if isinstance(tool.get("function"), dict) else tool
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str) or not _TOOL_NAME.match(name):
        return "a tool name starts with a letter or '_', then letters, digits, '_' or '-' (64)"
    return None
