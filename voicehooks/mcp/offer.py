"""Which tools an MCP client is offered, and why the others are not.

The platform's MCP client sends a tool's name and arguments, and nothing documented beyond
them (PLATFORM.md 7.2): no call id, no assistant, no customer. So a tool that needs a call is
not offered over MCP: one that asks for a ``LiveCall``, a ``CallState``, the event, the
``ToolCall`` or a ``CallContext``; a ``once_per_call`` tool (its intents are kept per call);
a tool with an interim text (its late result is spoken into the call); a fire-and-forget tool
(answered before it runs, by a job that carries a platform delivery). A tool that asks for
``CallContext | None`` says it works without a call: it is offered, and gets ``None``.
"""

from __future__ import annotations

from typing import Any

from voicehooks.core.injection import Injection
from voicehooks.pipeline.routing import Registry
from voicehooks.tools.definition import Tool

__all__ = ["listing", "offered", "withheld_because"]


def offered(app: Registry) -> tuple[list[Tool], dict[str, str]]:
    """The tools ``app`` (a ``VoiceHooks``) offers over MCP, in registration order, and those
    it withholds, by name, each with the reason in a few words.

    Examples:
        >>> from voicehooks import LiveCall, VoiceHooks
        >>> app = VoiceHooks(verify_signatures=False)
        >>> @app.tool
        ... async def opening_hours() -> str:
        ...     '''When the shop is open.'''
        ...     return "9 to 5"
        >>> @app.tool
        ... async def hang_up(call: LiveCall) -> None:
        ...     '''End the call.'''
        >>> tools, withheld = offered(app)
        >>> [tool.name for tool in tools], withheld
        (['opening_hours'], {'hang_up': 'it takes a LiveCall, and MCP carries no call'})
    """
    tools: list[Tool] = []
    withheld: dict[str, str] = {}
    for tool in app.tools.values():
        reason = withheld_because(tool)
        if reason is None:
            tools.append(tool)
        else:
            withheld[tool.name] = reason
    return tools, withheld


def withheld_because(tool: Tool) -> str | None:
    """Why ``tool`` is not offered over MCP, or ``None`` when it is."""
    if tool.fire_and_forget:
        return "fire-and-forget: it runs after its answer, as a job of a platform delivery"
    if tool.interim is not None:
        return "it has an interim text: its late result is spoken into the call"
    if tool.once_per_call:
        return "once_per_call: its intents are kept per call, and MCP carries no call"
    for injection in tool.injections:
        reason = _needs_call(injection)
        if reason is not None:
            return reason
    return None


def _needs_call(injection: Injection) -> str | None:
    if injection.optional:
        return None
    if injection.source == "context":
        return "it takes a CallContext, and MCP carries no call (CallContext | None would do)"
    if injection.source == "provided" and injection.provided is not None:
        return f"it takes a {injection.provided.__name__}, and MCP carries no call"
    if injection.source == "tool_call":
        return "it takes the ToolCall of a platform delivery"
    return "it takes the event of a platform delivery"


def listing(tools: list[Tool]) -> list[dict[str, Any]]:
    """The ``tools`` of a ``tools/list`` answer: name, description and the JSON Schema of the
    arguments, the same one the webhook definitions carry (``Tool.parameters``)."""
    return [
        {"name": tool.name, "description": tool.description, "inputSchema": tool.parameters}
        for tool in tools
    ]
