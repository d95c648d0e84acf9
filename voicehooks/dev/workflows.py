"""Workflows: whether a saved workflow's tool nodes and conversation-node tools fit the app.

A workflow (``GET /workflows/{id}``, PLATFORM.md §7.2) runs a call through nodes. Two kinds
reach the app's tools, through the ordinary ``tool-calls`` delivery:

* a **tool node** calls ``tool_name`` with static ``arguments`` and moves on whether or not
  the call worked, so a misspelt name or an argument the tool refuses fails on every call
  without anyone hearing of it. ``check`` decodes the arguments with the tool's own decoder
  and coercions (``Tool.decode``, what a live call runs), so what passes here passes there;
* a **conversation node** offers ``tools`` in the assistant's shapes, compared with the app's
  definitions by the drift diff (``dev/drift.py``): the node's copy of a tool of the app, and
  a tool whose calls come to the app (no URL of its own, or the app's) that the app lacks.
  A tool of the app the node does not offer is no problem: a node offers what its step needs.

A node whose ``url`` points elsewhere is another service's and is left alone. A tool without
a URL of its own is taken to be called at the app's ``url`` (the workflow's webhook is the
number's or the account's, which the workflow does not say).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from voicehooks.core.events import ToolCall, ToolFunction
from voicehooks.tools.definition import ArgumentError, Tool

from .drift import DriftError, diff, read_definitions, same_url

__all__ = ["WorkflowError", "WorkflowProblem", "check", "read_workflow"]

# The model-facing advice that ends an argument error; a workflow has no model to advise.
_ADVICE = re.compile(r"(?<=\S)\. (?:Call |If the caller ).*$", re.DOTALL)


class WorkflowError(ValueError):
    """The input is not a workflow (``{"workflow": {...}}``, the bare object or its definition)."""


@dataclass(frozen=True, slots=True)
class WorkflowProblem:
    """One way a node of the workflow does not fit the app.

    Attributes:
        node: The node's id.
        message: What is wrong, one line.
    """

    node: str
    message: str

    def line(self) -> str:
        """The problem as one line of ``voicehooks tools --workflow`` output."""
        return f"node {self.node}: {self.message}"


def read_workflow(data: Any) -> list[dict[str, Any]]:
    """The nodes of a workflow as ``GET /workflows/{id}`` answers it, bare, or its definition.

    Raises:
        WorkflowError: ``data`` has none of these shapes.
    """
    if isinstance(data, dict) and isinstance(data.get("workflow"), dict):
        data = data["workflow"]
    if isinstance(data, dict) and isinstance(data.get("definition"), dict):
        data = data["definition"]
    nodes = data.get("nodes") if isinstance(data, dict) else None
    if not isinstance(nodes, list) or not all(isinstance(n, dict) for n in nodes):
        raise WorkflowError(
            'expected a workflow ({"workflow": {...}}, the bare object or its definition) '
            "with a list of nodes"
        )
    return nodes


def check(
    nodes: list[dict[str, Any]],
    tools: Mapping[str, Tool],
    definitions: list[dict[str, Any]],
    *,
    url: str | None = None,
) -> list[WorkflowProblem]:
    """Every problem of the workflow's nodes with the app's tools, in node order.

    Args:
        nodes: The workflow's nodes (``read_workflow``).
        tools: The app's registered tools by name (``app.tools``).
        definitions: The app's definitions (``app.tool_definitions(url)``).
        url: Where the platform reaches the app, if known.
    """
    problems: list[WorkflowProblem] = []
    for index, node in enumerate(nodes):
        node_id = str(node.get("id") or f"#{index}")
        if node.get("type") == "tool":
            problems += _tool_node(node_id, node, tools, url)
        elif node.get("type") == "conversation" and node.get("tools"):
            problems += _conversation_node(node_id, node["tools"], definitions, url)
    return problems


def _tool_node(
    node_id: str, node: Mapping[str, Any], tools: Mapping[str, Tool], url: str | None
) -> list[WorkflowProblem]:
    name = node.get("tool_name")
    target = node.get("url")
    if target and url and not same_url(target, url):
        return []  # another service's tool
    if not isinstance(name, str) or name not in tools:
        close = difflib.get_close_matches(str(name), list(tools), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return [WorkflowProblem(node_id, f"tool_name {name!r} is not a tool of the app{hint}")]
    arguments = node.get("arguments")
    if arguments is not None and not isinstance(arguments, dict):
        return [WorkflowProblem(node_id, f"{name}: arguments must be an object")]
    raw = msgspec.json.encode(arguments or {})
    call = ToolCall(id=f"workflow-node-{node_id}", function=ToolFunction(name, msgspec.Raw(raw)))
    try:
        tools[name].decode(call)  # the live call's decoder and coercions
    except ArgumentError as exc:
        return [WorkflowProblem(node_id, f"{name}: static arguments: {_ADVICE.sub('', str(exc))}")]
    return []


def _conversation_node(
    node_id: str, entries: Any, definitions: list[dict[str, Any]], url: str | None
) -> list[WorkflowProblem]:
    try:
        theirs, _ = read_definitions({"tools": entries})
    except DriftError as exc:
        return [WorkflowProblem(node_id, f"tools: {exc}")]
    mine = {d["name"] for d in definitions}
    claimed = [
        t for t in theirs if t["name"] in mine or not t.get("url") or same_url(t["url"], url)
    ]
    offered = {t["name"] for t in claimed}
    ours = [d for d in definitions if d["name"] in offered]
    differences = diff(ours, claimed, webhook_url=url)
    return [WorkflowProblem(node_id, d.line()) for d in differences]
