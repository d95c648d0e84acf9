"""Drift: where an assistant's saved tool definitions differ from the ones the app exports.

``read_definitions`` accepts an exported assistant (``{"assistant": {...}}`` as ``GET
/assistants/{id}`` answers, or the bare object), its ``llm_config``, or its ``tools`` list,
with each tool in the documented flat shape or the nested OpenAI shape the SDK types
(``{"type": "function", "function": {...}, "server": {"url"}, "async"}``, PLATFORM.md 4.5 and
7.1); what is not a webhook tool (the built-ins ``end_call`` and ``transfer_call``, an MCP
attachment ``{"type": "mcp", ...}``, a kind the platform adds later) is left out
(``webhook_tool``). ``diff`` compares two lists of flat definitions: tools missing on either
side, parameters added, removed or renamed, types, formats, enums, ``required``, URLs,
``async`` and the spoken message. ``diff_webhook`` compares the assistant-level fields a deploy
writes (``webhook_url``, ``webhook_events``, ``webhook_secret``, which it never shows).
"""

from __future__ import annotations

import difflib
import hmac
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from voicehooks.tools.arguments import resolve_ref

__all__ = [
    "Difference",
    "DriftError",
    "diff",
    "diff_webhook",
    "read_definitions",
    "same_url",
    "tool_entries",
    "webhook_tool",
]

_BUILT_IN = {"end_call", "endCall", "transfer_call", "transferCall"}


class DriftError(ValueError):
    """The input is not an assistant, an ``llm_config`` or a list of tool definitions."""


@dataclass(frozen=True, slots=True)
class Difference:
    """One way the assistant's definition differs from the app's.

    Attributes:
        tool: The tool's name (the app's, for a renamed parameter); ``""`` for a field of
            the assistant itself (``webhook_url``, ...).
        path: Where, e.g. ``parameters.party_size`` or ``url``.
        message: What differs and what to do, one line.
    """

    tool: str
    path: str
    message: str

    def line(self) -> str:
        """The difference as one line of ``voicehooks tools --diff`` output."""
        if not self.tool:
            return f"{self.path}: {self.message}"
        where = f" {self.path}:" if self.path else ""
        return f"{self.tool}:{where} {self.message}"


def read_definitions(data: Any) -> tuple[list[dict[str, Any]], str | None]:
    """The flat tool definitions in an exported assistant, and its assistant-level webhook URL.

    Raises:
        DriftError: ``data`` has none of the accepted shapes.
    """
    entries, webhook_url = tool_entries(data)
    definitions: list[dict[str, Any]] = []
    for index, entry in enumerate(entries):
        flat = webhook_tool(entry)
        if flat is None:
            continue
        if not isinstance(flat.get("name"), str) or not flat["name"]:
            raise DriftError(f"tools[{index}] has no name")
        definitions.append(flat)
    return definitions, webhook_url


def tool_entries(data: Any) -> tuple[list[dict[str, Any]], str | None]:
    """The ``llm_config.tools`` entries of an exported assistant as saved, every kind, and its
    assistant-level webhook URL.

    Raises:
        DriftError: ``data`` has none of the accepted shapes, or an entry is not an object.
    """
    webhook_url: str | None = None
    if isinstance(data, dict) and isinstance(data.get("assistant"), dict):
        data = data["assistant"]
        data.setdefault("llm_config", None)  # an assistant without tools is still one
    if isinstance(data, dict) and "llm_config" in data:
        webhook_url = data.get("webhook_url") or None
        config = data["llm_config"] or {}
        data = config.get("tools") or [] if isinstance(config, dict) else config
    elif isinstance(data, dict) and "tools" in data:
        data = data["tools"] or []
    if not isinstance(data, list):
        raise DriftError(
            'expected an assistant ({"assistant": {...}} or the bare object), its llm_config '
            "or its tools list"
        )
    for index, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise DriftError(f"tools[{index}] is a {type(entry).__name__}, not an object")
    return data, webhook_url


def webhook_tool(entry: Mapping[str, Any]) -> dict[str, Any] | None:
    """``entry`` of ``llm_config.tools[]`` as a flat webhook tool definition, or ``None``.

    ``None`` for what the platform runs itself or elsewhere: a built-in, an MCP attachment,
    any ``type`` other than ``function`` (a kind added later is not ours to read). The
    nested OpenAI shape is flattened, its URL the one the engine uses (``url`` beats
    ``server.url``); the name is not checked.

    Examples:
        >>> webhook_tool({"type": "function", "function": {"name": "f"}, "server": {"url": "u"}})
        {'name': 'f', 'url': 'u'}
        >>> webhook_tool({"type": "mcp", "mcp_server_id": "mcp_1", "allowed_tools": []}) is None
        True
    """
    kind = entry.get("type")
    if (kind is not None and kind != "function") or entry.get("tool_type") in _BUILT_IN:
        return None
    function = entry.get("function")
    if isinstance(function, dict):  # the nested OpenAI shape
        flat = {key: value for key, value in function.items() if key != "strict"}
        server = entry.get("server")
        server_url = server.get("url") if isinstance(server, dict) else None
        url = entry.get("url") or server_url  # the engine lets url beat server.url
        if url:
            flat["url"] = url
        for key in ("async", "async_response", "message"):
            if key in entry:
                flat[key] = entry[key]
    else:
        flat = dict(entry)
    return flat


def same_url(one: str | None, other: str | None) -> bool:
    """Whether two webhook URLs are the same place (a trailing ``/`` aside)."""
    return (one or "").rstrip("/") == (other or "").rstrip("/")


def diff_webhook(
    assistant: Mapping[str, Any],
    *,
    webhook_url: str,
    webhook_events: list[str],
    secret: str | None = None,
) -> list[Difference]:
    """Where the assistant's own webhook fields differ from what the app needs.

    Args:
        assistant: The saved assistant (its ``webhook_url``, ``webhook_events``, and
            ``webhook_secret`` when the platform returns it).
        webhook_url: Where the app receives.
        webhook_events: The events the app handles; order does not matter.
        secret: The secret to write, if one is to be; never part of a message. A platform
            that does not return the stored one makes this a difference every time.
    """
    found: list[Difference] = []
    saved_url = assistant.get("webhook_url")
    if not same_url(saved_url, webhook_url):
        found.append(
            Difference(
                "",
                "webhook_url",
                f"the assistant sends events to {saved_url or 'no URL'}, the app is at "
                f"{webhook_url}",
            )
        )
    saved_events = assistant.get("webhook_events")
    saved = set(saved_events) if isinstance(saved_events, list) else None
    if saved != set(webhook_events):
        added = [e for e in webhook_events if saved is None or e not in saved]
        removed = sorted(saved - set(webhook_events)) if saved is not None else []
        parts = [f"the app also handles {', '.join(added)}"] if added else []
        parts += [f"the app does not handle {', '.join(removed)}"] if removed else []
        if saved is None:
            handled = ", ".join(webhook_events) or "no event"
            parts = [f"not set in the assistant; the app handles {handled}"]
        found.append(Difference("", "webhook_events", "; ".join(parts) or "differs"))
    if secret is not None:
        saved_secret = assistant.get("webhook_secret")
        if not (
            isinstance(saved_secret, str)
            and hmac.compare_digest(saved_secret.encode(), secret.encode())
        ):
            found.append(Difference("", "webhook_secret", "[set]: the app's secret is written"))
    return found


def diff(
    ours: list[dict[str, Any]],
    theirs: list[dict[str, Any]],
    *,
    webhook_url: str | None = None,
) -> list[Difference]:
    """Every difference between the app's definitions (``ours``) and the assistant's.

    Args:
        ours: The app's flat definitions (``app.tool_definitions(url)``).
        theirs: The assistant's (``read_definitions``).
        webhook_url: The assistant's own ``webhook_url``, where its tools without a ``url``
            are called.
    """
    mine = {d["name"]: d for d in ours}
    yours = {d["name"]: d for d in theirs}
    found: list[Difference] = []
    for name in mine.keys() - yours.keys():
        close = difflib.get_close_matches(name, list(yours.keys() - mine.keys()), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        found.append(
            Difference(name, "", f"missing in the assistant{hint}: add the app's definition")
        )
    for name in yours.keys() - mine.keys():
        found.append(
            Difference(name, "", "only in the assistant: no tool of the app has this name")
        )
    for name in mine.keys() & yours.keys():
        found += _diff_tool(name, mine[name], yours[name], webhook_url)
    order = {name: i for i, name in enumerate([*mine, *yours])}
    return sorted(found, key=lambda d: order[d.tool])


def _diff_tool(
    name: str, ours: dict[str, Any], theirs: dict[str, Any], webhook_url: str | None
) -> Iterator[Difference]:
    if (ours.get("description") or "").strip() != (theirs.get("description") or "").strip():
        yield Difference(name, "description", "differs: paste the app's description")
    url = ours.get("url")
    their_url = theirs.get("url") or webhook_url
    if url and not same_url(their_url, url):
        yield Difference(
            name, "url", f"the assistant calls {their_url or 'no URL'}, the app expects {url}"
        )
    if bool(ours.get("async")) != bool(theirs.get("async")):
        yield Difference(
            name,
            "async",
            f"{bool(theirs.get('async'))} in the assistant, {bool(ours.get('async'))} in the app",
        )
    spoken = ours.get("message") or ours.get("async_response")
    their_spoken = theirs.get("message") or theirs.get("async_response")
    if spoken != their_spoken:
        yield Difference(name, "message", "the spoken message differs: paste the app's")
    yield from _diff_schema(
        name,
        "parameters",
        ours.get("parameters") or {},
        theirs.get("parameters") or {},
        (ours.get("parameters") or {}, theirs.get("parameters") or {}),
    )


def _diff_schema(
    name: str,
    path: str,
    ours: Mapping[str, Any],
    theirs: Mapping[str, Any],
    roots: tuple[Mapping[str, Any], Mapping[str, Any]],
    followed: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset()),
) -> Iterator[Difference]:
    """Compare two object schemas' properties, recursing into nested objects."""
    mine: Mapping[str, Any] = ours.get("properties") or {}
    yours: Mapping[str, Any] = theirs.get("properties") or {}
    only_mine = [p for p in mine if p not in yours]
    only_yours = [p for p in yours if p not in mine]
    for argument in list(only_mine):
        close = difflib.get_close_matches(argument, only_yours, n=1, cutoff=0.6)
        if close:
            only_mine.remove(argument)
            only_yours.remove(close[0])
            yield Difference(
                name,
                f"{path}.{argument}",
                f"renamed: the assistant calls it {close[0]!r} (did you mean {argument!r}?); "
                "paste the app's definition",
            )
    for argument in only_mine:
        yield Difference(
            name, f"{path}.{argument}", "missing in the assistant: the model never sends it"
        )
    for argument in only_yours:
        yield Difference(
            name,
            f"{path}.{argument}",
            "only in the assistant: the app ignores it (or refuses it with "
            "unknown_arguments='forbid')",
        )
    required = set(ours.get("required") or [])
    their_required = set(theirs.get("required") or [])
    for argument in mine:
        if argument not in yours:
            continue
        if (argument in required) != (argument in their_required):
            where = "the app" if argument in required else "the assistant"
            yield Difference(name, f"{path}.{argument}", f"required only in {where}")
        yield from _diff_property(
            name, f"{path}.{argument}", mine[argument], yours[argument], roots, followed
        )


def _diff_property(
    name: str,
    path: str,
    ours: Any,
    theirs: Any,
    roots: tuple[Mapping[str, Any], Mapping[str, Any]],
    followed: tuple[frozenset[str], frozenset[str]] = (frozenset(), frozenset()),
) -> Iterator[Difference]:
    # A reference followed further up this path is not followed again: a recursive type
    # (a tree of nodes) is compared once, not until the stack runs out.
    seen, their_seen = set(followed[0]), set(followed[1])
    mine = resolve_ref(roots[0], ours, seen) or {}
    yours = resolve_ref(roots[1], theirs, their_seen) or {}
    followed = (frozenset(seen), frozenset(their_seen))
    kind, their_kind = _kind(mine), _kind(yours)
    if kind != their_kind:
        yield Difference(name, path, f"type {their_kind} in the assistant, {kind} in the app")
        return
    enum, their_enum = mine.get("enum"), yours.get("enum")
    if enum is not None or their_enum is not None:
        added = [v for v in enum or [] if v not in (their_enum or [])]
        removed = [v for v in their_enum or [] if v not in (enum or [])]
        if added or removed:
            parts = [f"values only in the app: {added}"] if added else []
            parts += [f"values only in the assistant: {removed}"] if removed else []
            yield Difference(name, path, "enum differs: " + "; ".join(parts))
    if mine.get("format") != yours.get("format"):
        yield Difference(
            name,
            path,
            f"format {yours.get('format')!r} in the assistant, {mine.get('format')!r} in the app",
        )
    if "properties" in mine or "properties" in yours:
        yield from _diff_schema(name, path, mine, yours, roots, followed)
    elif isinstance(mine.get("items"), dict) and isinstance(yours.get("items"), dict):
        items = (mine["items"], yours["items"])
        yield from _diff_property(name, f"{path}[]", *items, roots, followed)


def _kind(node: Mapping[str, Any]) -> str:
    kind = node.get("type")
    if isinstance(kind, list):
        kind = "|".join(sorted(str(k) for k in kind if k != "null"))
    if kind is None and isinstance(node.get("enum"), list):
        kinds = {type(v).__name__ for v in node["enum"]}
        kind = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(
            kinds.pop() if len(kinds) == 1 else "", "any"
        )
    if kind is None and "properties" in node:
        kind = "object"
    return str(kind or "any")
