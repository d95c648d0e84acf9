"""Deploy: the assistant configuration an app needs, computed from the saved one; no I/O.

``plan(assistant, ...)`` takes the assistant as ``GET /assistants/{id}`` answered it and
returns what ``PATCH /assistants/{id}`` must send to bring it in step with the app, and the
differences to show first (the drift diff of ``dev/drift.py``, plus the webhook fields). A
plan made from the assistant the PATCH left behind finds nothing: ``voicehooks deploy
--dry-run`` right after a deploy exits 0.

What the app owns, and so writes:

* ``webhook_url``, the public URL joined with the app's path (``webhook_url``);
* ``webhook_events``, exactly the events the app handles (``handled_events``);
* in ``llm_config.tools``, the webhook tools whose calls come to the app: those named as one
  of its tools, and those without a URL of their own or with the app's old or new URL (a tool
  the app no longer has; left in place, the model would call it and get "unknown tool").
  A tool of the app replaces the entry of its name where it stands, in the entry's shape
  (flat, or nested ``{"type": "function", "function": {...}, "server": {...}}``), and keeps
  the keys the app does not write (a nested ``server.secret``, ``strict``); a tool the
  assistant lacks is appended; a second entry of one name is dropped;
* ``webhook_secret``, only when asked (``secret=``); it never appears in a difference.

Everything else stays as it was, and where it was: built-ins (``end_call``,
``transfer_call``), MCP attachments (``{"type": "mcp", ...}``), tools whose URL points
elsewhere, kinds of entry added later, and every other field of the assistant. ``llm_config``
is sent whole (provider, model, messages, ...) with the new tools, because a partial object
may replace the stored one (PLATFORM.md §7.2).
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from voicehooks.app import VoiceHooks
from voicehooks.core.events import EVENT_NAMES

from .drift import Difference, diff, diff_webhook, same_url, webhook_tool

__all__ = [
    "MAX_ALLOWED_TOOLS",
    "Plan",
    "attach_mcp",
    "check_allowed",
    "handled_events",
    "mcp_server_changes",
    "mcp_server_fields",
    "merge_tools",
    "plan",
    "webhook_url",
]

MAX_ALLOWED_TOOLS: Final = 25
"""The platform's bound on an MCP attachment's ``allowed_tools`` (PLATFORM.md 7.2)."""

# The keys of a tool entry the app writes; any other key of the entry it replaces is kept.
_FLAT_KEYS = frozenset({"name", "description", "parameters", "url", "async", "async_response"})
_SPOKEN = ("message", "async_response")


@dataclass(frozen=True, slots=True)
class Plan:
    """What a deploy changes.

    Attributes:
        changes: The body of ``PATCH /assistants/{id}``: only the fields that change,
            ``llm_config`` whole; empty when nothing does. May hold the secret: never print it.
        differences: What differs, one line each (``Difference.line``), webhook fields first.
    """

    changes: dict[str, Any] = field(repr=False)
    differences: list[Difference]

    @property
    def changed(self) -> bool:
        """Whether anything is to be written."""
        return bool(self.changes)


def webhook_url(public_url: str, path: str) -> str:
    """Where the platform reaches the app: ``public_url`` joined with the app's ``path``.

    A ``public_url`` that already ends with the path is taken as it is.

    Raises:
        ValueError: ``public_url`` is not an http(s) URL without query or fragment.

    Examples:
        >>> webhook_url("https://hooks.example.com", "/voice")
        'https://hooks.example.com/voice'
        >>> webhook_url("https://example.com/api/", "/")
        'https://example.com/api/'
        >>> webhook_url("https://example.com/voice", "/voice")
        'https://example.com/voice'
    """
    parts = urllib.parse.urlsplit(public_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{public_url!r} is not an http(s) URL")
    if parts.query or parts.fragment:
        raise ValueError(f"{public_url!r}: give the URL without a query or fragment")
    base = parts.path.rstrip("/")
    own = path.rstrip("/")
    if not own:
        joined = base + "/"
    elif base.endswith(own):
        joined = parts.path
    else:
        joined = base + path
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, joined, "", ""))


def handled_events(app: VoiceHooks, *, webhook_tools: bool | None = None) -> list[str]:
    """The event names the app needs delivered, in the platform's order.

    ``tool-calls`` with a webhook tool (``webhook_tools``; by default, any tool: ``False``
    when every tool goes over MCP) or a ``tool-calls`` handler, ``assistant-request`` with its
    handler, each informational event with a handler; reconciliation needs both
    informational events, because it learns of calls from status updates and a real report
    spares it a fetch (``live/reconcile.py``).
    """
    wanted = {name for name, handlers in app.handlers.items() if handlers}
    if bool(app.tools) if webhook_tools is None else webhook_tools:
        wanted.add("tool-calls")
    if app.reconciler is not None:
        wanted |= {"status-update", "end-of-call-report"}
    return [name for name in EVENT_NAMES if name in wanted]


def merge_tools(
    entries: list[Any], definitions: list[dict[str, Any]], *, own_urls: list[str | None]
) -> tuple[list[Any], list[dict[str, Any]]]:
    """The new ``llm_config.tools``, and the flat form of the saved entries the app owns.

    Args:
        entries: The saved ``llm_config.tools`` (any shape; left alone unless owned).
        definitions: The app's flat definitions (``app.tool_definitions(url)``).
        own_urls: The URLs that are the app's (its new one, the assistant's saved
            ``webhook_url``); an entry without a URL of its own is the app's too.
    """
    mine = {d["name"]: d for d in definitions}
    merged: list[Any] = []
    owned: list[dict[str, Any]] = []
    placed: set[str] = set()
    for entry in entries:
        flat = webhook_tool(entry) if isinstance(entry, dict) else None
        name = flat.get("name") if flat is not None else None
        if flat is None or not isinstance(name, str):
            merged.append(entry)
            continue
        ours = (
            name in mine or not flat.get("url") or any(same_url(flat["url"], u) for u in own_urls)
        )
        if not ours:
            merged.append(entry)
            continue
        owned.append(flat)
        if name in mine and name not in placed:
            merged.append(_replaced(entry, mine[name]))
            placed.add(name)
    merged += [d for name, d in mine.items() if name not in placed]
    return merged, owned


def _replaced(entry: dict[str, Any], definition: dict[str, Any]) -> dict[str, Any]:
    """``definition`` written in ``entry``'s shape, with the keys the app does not write."""
    function = entry.get("function")
    if not isinstance(function, dict):  # the flat shape
        kept = {k: v for k, v in entry.items() if k not in _FLAT_KEYS and k != "message"}
        return {**definition, **kept}
    nested = {k: v for k, v in entry.items() if k not in ("async", *_SPOKEN)}
    nested["function"] = {
        **{k: v for k, v in function.items() if k not in ("name", "description", "parameters")},
        **{k: definition[k] for k in ("name", "description", "parameters") if k in definition},
    }
    url = definition.get("url")
    if url:
        server = entry.get("server")
        if "url" in entry:  # it beats server.url: it must not stay behind
            nested["url"] = url
        if "url" not in entry or isinstance(server, dict):
            nested["server"] = {**(server if isinstance(server, dict) else {}), "url": url}
    nested["async"] = definition.get("async", False)
    nested.update({k: definition[k] for k in _SPOKEN if k in definition})
    return nested


def plan(
    assistant: Mapping[str, Any],
    definitions: list[dict[str, Any]],
    *,
    webhook_url: str,
    webhook_events: list[str],
    secret: str | None = None,
    mcp: tuple[str | None, list[str]] | None = None,
) -> Plan:
    """What ``PATCH /assistants/{id}`` must send to bring ``assistant`` in step with the app.

    Args:
        assistant: The saved assistant (the object inside ``{"assistant": ...}``).
        definitions: The app's tool definitions with their URL
            (``app.tool_definitions(webhook_url)``).
        webhook_url: Where the app receives (``webhook_url(public_url, app.path)``).
        webhook_events: The events it handles (``handled_events(app)``).
        secret: The webhook secret to write, or ``None`` to leave the saved one alone.
        mcp: The app's MCP server to attach (its id, ``None`` while it is still to be made)
            and the tools to allow (``attach_mcp``); ``definitions`` then holds only the
            tools that stay webhook tools, so the others leave ``llm_config.tools``.

    Raises:
        ValueError: More MCP tools than an attachment allows (``attach_mcp``).
    """
    saved_url = assistant.get("webhook_url")
    differences = diff_webhook(
        assistant, webhook_url=webhook_url, webhook_events=webhook_events, secret=secret
    )
    config = assistant.get("llm_config")
    config = dict(config) if isinstance(config, dict) else {}
    entries = config.get("tools")
    merged, owned = merge_tools(
        entries if isinstance(entries, list) else [],
        definitions,
        own_urls=[webhook_url, saved_url],
    )
    tool_differences = diff(definitions, owned, webhook_url=saved_url)
    names = [flat["name"] for flat in owned]
    tool_differences += [
        Difference(name, "", "in the assistant twice: the second entry is removed")
        for name in dict.fromkeys(n for n in names if names.count(n) > 1)
    ]
    changes: dict[str, Any] = {}
    for difference in differences:
        if difference.path == "webhook_url":
            changes["webhook_url"] = webhook_url
        elif difference.path == "webhook_events":
            changes["webhook_events"] = list(webhook_events)
        elif difference.path == "webhook_secret":
            changes["webhook_secret"] = secret
    if mcp is not None:
        merged, attached = attach_mcp(merged, *mcp)
        tool_differences += attached
    if tool_differences:
        changes["llm_config"] = {**config, "tools": merged}
    return Plan(changes, differences + tool_differences)


def mcp_server_fields(
    *, name: str, url: str, token: str, deadline_seconds: float
) -> dict[str, Any]:
    """What ``POST /mcp-servers`` needs for the app's endpoint at ``url``.

    The bearer token goes in the ``Authorization`` header, which the platform stores encrypted
    and never returns. ``timeout_seconds``, how long the platform waits on each request, is
    the app's MCP deadline and 2 s to answer in, within the platform's 5 to 60.
    """
    return {
        "name": name,
        "url": url,
        "transport": "streamable_http",
        "headers": {"Authorization": f"Bearer {token}"},
        "timeout_seconds": min(60, max(5, math.ceil(deadline_seconds) + 2)),
    }


def mcp_server_changes(
    saved: Mapping[str, Any] | None, wanted: Mapping[str, Any], *, set_token: bool
) -> tuple[dict[str, Any], list[Difference]]:
    """What ``PATCH /mcp-servers/{id}`` must send (all of ``wanted`` for a server to make,
    when ``saved`` is ``None``), and the differences to show; the token is never in one.

    The stored headers cannot be read back, so they are sent when the server is made, when
    its URL moves to another host (the platform asks for them then), or with ``set_token``.
    """
    name = wanted["name"]
    if saved is None:
        return dict(wanted), [
            Difference("", "mcp_server", f"no server named {name!r}: to make, at {wanted['url']}")
        ]
    changes: dict[str, Any] = {}
    differences: list[Difference] = []
    for key in ("url", "transport", "timeout_seconds"):
        if saved.get(key) != wanted[key]:
            changes[key] = wanted[key]
            differences.append(
                Difference("", f"mcp_server.{key}", f"{saved.get(key)!r} -> {wanted[key]!r}")
            )
    moved = "url" in changes and _host(saved.get("url")) != _host(wanted["url"])
    if moved or set_token:
        changes["headers"] = wanted["headers"]
        differences.append(Difference("", "mcp_server.headers", "Authorization: [set]"))
    return changes, differences


def attach_mcp(
    entries: list[Any], server_id: str | None, allowed: list[str]
) -> tuple[list[Any], list[Difference]]:
    """``llm_config.tools`` with the app's MCP server attached, allowing ``allowed``, and the
    differences; every other entry stays as it was and where it was.

    An attachment of the server already there is updated in place (``required`` and any
    other key kept); else one is appended. ``server_id`` is ``None`` for a server still to be
    made (a dry run): the attachment is then shown, not written.

    Raises:
        ValueError: More than ``MAX_ALLOWED_TOOLS`` tools.
    """
    check_allowed(allowed)
    merged: list[Any] = []
    found = False
    differences: list[Difference] = []
    for entry in entries:
        if (
            not found
            and server_id is not None
            and isinstance(entry, dict)
            and entry.get("type") == "mcp"
            and entry.get("mcp_server_id") == server_id
        ):
            found = True
            saved = entry.get("allowed_tools")
            if saved != allowed:
                differences.append(Difference("", "mcp.allowed_tools", f"{saved!r} -> {allowed!r}"))
            merged.append({**entry, "allowed_tools": list(allowed)})
        else:
            merged.append(entry)
    if not found:
        merged.append({"type": "mcp", "mcp_server_id": server_id, "allowed_tools": list(allowed)})
        differences.append(
            Difference("", "mcp", f"the server is not attached: to attach, allowing {allowed!r}")
        )
    return merged, differences


def check_allowed(allowed: list[str]) -> None:
    """Raise ``ValueError`` naming the limit when more tools than an MCP attachment allows
    are to be offered."""
    if len(allowed) > MAX_ALLOWED_TOOLS:
        raise ValueError(
            f"the app offers {len(allowed)} tools over MCP, and an MCP attachment allows at "
            f"most {MAX_ALLOWED_TOOLS} (allowed_tools): split them over two apps or serve "
            "some as webhook tools"
        )


def _host(url: Any) -> str:
    return urllib.parse.urlsplit(url).netloc.lower() if isinstance(url, str) else ""
