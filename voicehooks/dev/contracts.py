"""Tool contracts: lint the tool definitions the model is given, before an assistant uses them.

``lint(definitions)`` reads ``llm_config.tools[]`` entries (``app.tool_definitions()`` or an
exported assistant) and returns one ``Finding`` per problem: an ``error`` the providers refuse
or a model cannot use, or a ``warning`` that makes calls worse. ``voicehooks tools TARGET
--check`` prints them, one line each, and fails on errors.

What is checked, and the source of each limit:

* The tool name: starts with a letter or ``_``, then letters, digits, ``_`` or ``-``, at most
  64 characters (PLATFORM.md 4.5, tool templates; OpenAI's ``^[a-zA-Z0-9_-]{1,64}$`` and
  Gemini's and Mistral's name rules are all looser or equal). Parameter names follow Gemini's
  stricter rule: a letter or ``_``, then letters, digits or ``_``, at most 64.
* The description: present, not blank, at most 1,024 characters (the OpenAI API refuses a
  longer ``tools[].function.description`` with ``string_above_max_length``), at least three
  words.
* Each parameter has a description, a type (or ``enum``/``$ref``/``anyOf``), an enum with at
  least two values (a one-value ``Literal`` is a constant the model must guess), an enum rather
  than prose for a closed set ("one of ...", "either ..."); ``required`` names existing
  properties and none that has a default.
* JSON Schema keywords each provider documents (``SCHEMA_KEYWORDS``): a keyword that no
  provider documents is an error, one that only some document is a warning naming those
  that do not.
* When measurements exist (``ToolStats``): a tool whose 95th percentile takes at least
  ``SLOW_SECONDS`` without a spoken message (``message``/``async_response``) or that timed out.
* MCP attachments (``{"type": "mcp", "mcp_server_id", "allowed_tools"}``, in an exported
  assistant; ``lint_attachments``): at most 25 ``allowed_tools`` (PLATFORM.md §7.2), each an
  MCP tool name (the MCP specification, 2025-11-25, "Tool names": 1 to 128 of ASCII letters,
  digits, ``_``, ``-`` and ``.``) that each checked provider accepts as a function name
  (OpenAI, and Mistral and xAI alike, ``^[a-zA-Z0-9_-]{1,64}$``; Gemini a letter or ``_``
  first, then also ``.`` and ``:``, at most 64), none the name of another tool of the
  assistant, and no more tools in all than OpenAI's 128.
* For registered tools, a ``hint`` (never a failure, not even with ``--strict``): a tool whose
  name, or the first word of whose description, says it books, pays, orders, sends or creates,
  without
  ``once_per_call``. A model that did not hear back in time, or was interrupted, calls it
  again with a new tool-call id, and delivery dedupe does not catch that.
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from voicehooks.tools.arguments import resolve_ref
from voicehooks.tools.definition import Tool, parse_docstring

__all__ = [
    "DESCRIPTION_MAX_CHARS",
    "Finding",
    "PROVIDERS",
    "SCHEMA_KEYWORDS",
    "MAX_ALLOWED_TOOLS",
    "SLOW_SECONDS",
    "lint",
    "lint_attachments",
]

DESCRIPTION_MAX_CHARS: Final = 1024
"""The OpenAI API refuses a longer function description (``string_above_max_length``)."""
SLOW_SECONDS: Final = 2.0
"""A 95th percentile at or above this is silence a caller notices."""
MIN_SAMPLES: Final = 5
"""Fewer measured calls than this say nothing about a tool's latency."""
MAX_TOOLS: Final = 128
"""OpenAI's documented maximum number of tools in one request."""

MAX_ALLOWED_TOOLS: Final = 25
"""The platform's limit of ``allowed_tools`` in one MCP attachment (PLATFORM.md §7.2)."""

PROVIDERS: Final = ("openai", "mistral", "xai", "google")
"""The platform's ``llm_config.provider`` values (PLATFORM.md 3.4), realtime variants aside."""

_ANNOTATIONS = {"description", "title", "default"}
SCHEMA_KEYWORDS: Final[dict[str, frozenset[str] | None]] = {
    # OpenAI, Structured Outputs "Supported schemas": the keywords it documents.
    "openai": frozenset(
        {
            *_ANNOTATIONS,
            *("type", "properties", "required", "additionalProperties", "items", "enum"),
            *("anyOf", "$ref", "$defs", "definitions", "pattern", "format", "multipleOf"),
            *("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"),
            *("minItems", "maxItems"),
        }
    ),
    # Gemini FunctionDeclaration.parameters: "a select subset of an OpenAPI 3.0 schema
    # object" (the Schema message); its API refuses any other field.
    "google": frozenset(
        {
            *_ANNOTATIONS,
            *("type", "format", "nullable", "enum", "items", "minItems", "maxItems"),
            *("properties", "required", "minProperties", "maxProperties", "propertyOrdering"),
            *("minLength", "maxLength", "pattern", "example", "anyOf", "minimum", "maximum"),
        }
    ),
    # xAI, Structured Outputs "JSON Schema support" (tool schemas follow it): documented
    # types and combinators; the keywords it does not list are those of the deny list below.
    "xai": None,
    # Mistral publishes no keyword subset for function parameters: nothing to check.
    "mistral": None,
}
_XAI_UNSUPPORTED = frozenset(
    {"not", "if", "then", "else", "dependentRequired", "dependentSchemas", "patternProperties"}
)
_TOOL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_PARAMETER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_MCP_TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_OPENAI_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_FUNCTION_NAMES: Final = {
    "openai": _OPENAI_NAME,
    "mistral": _OPENAI_NAME,
    "xai": _OPENAI_NAME,
    "google": re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$"),
}
_CLOSED_SET = re.compile(r"\b(one of|either)\b", re.IGNORECASE)
_TYPED_BY = ("type", "enum", "const", "$ref", "anyOf", "oneOf", "allOf")
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMAS = ("items", "additionalProperties", "not", "if", "then", "else")


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem in one tool definition.

    Attributes:
        severity: ``"error"`` (refused by a provider or unusable by a model), ``"warning"``,
            or ``"hint"`` (a suggestion; never fails a check).
        tool: The tool's name.
        path: Where in the definition, e.g. ``parameters.properties.party_size``.
        message: What is wrong and how to fix it, one line.
    """

    severity: str
    tool: str
    path: str
    message: str

    def line(self) -> str:
        """The finding as one line of ``voicehooks tools --check`` output."""
        return f"{self.severity}: {self.tool}: {self.path}: {self.message}"


def lint(
    definitions: list[dict[str, Any]],
    *,
    tools: Mapping[str, Tool] | None = None,
    stats: Mapping[str, Mapping[str, Any]] | None = None,
    providers: Collection[str] = PROVIDERS,
    slow_seconds: float = SLOW_SECONDS,
) -> list[Finding]:
    """Check tool definitions; return the findings, errors first, in definition order.

    Args:
        definitions: Flat ``llm_config.tools[]`` entries (``app.tool_definitions()``).
        tools: The registered tools by name, to compare docstrings with parameters.
        stats: Measured calls per tool name (``ToolStats.summary()["tools"]``).
        providers: Check the schema keywords against these providers only.
        slow_seconds: A measured 95th percentile from which a tool counts as slow.
    """
    unknown = set(providers) - set(PROVIDERS)
    if unknown:
        raise ValueError(f"unknown provider(s) {sorted(unknown)}; known: {', '.join(PROVIDERS)}")
    findings: list[Finding] = []
    if len(definitions) > MAX_TOOLS:
        findings.append(
            Finding(
                "error",
                "*",
                "tools",
                f"{len(definitions)} tools; OpenAI accepts at most {MAX_TOOLS} per request: "
                "split them across assistants",
            )
        )
    seen: set[str] = set()
    for definition in definitions:
        name = str(definition.get("name", ""))
        if name in seen:
            findings.append(Finding("error", name, "name", "defined twice: rename one"))
        seen.add(name)
        found = list(_lint_tool(name, definition, providers))
        if tools is not None and name in tools:
            found += _lint_docstring(tools[name], definition)
            found += _lint_side_effect(tools[name])
        if stats is not None and name in stats:
            found += _lint_latency(name, definition, stats[name], slow_seconds)
        findings += found
    return sorted(findings, key=lambda f: f.severity != "error")


def lint_attachments(
    entries: list[dict[str, Any]],
    *,
    providers: Collection[str] = PROVIDERS,
) -> list[Finding]:
    """Check the MCP attachments among an assistant's ``llm_config.tools`` entries.

    Args:
        entries: Every entry (``drift.tool_entries``); webhook tools count for name clashes
            and the total, built-ins are skipped.
        providers: Check tool names against these providers' function-name rules.
    """
    names = [str(e.get("name") or (e.get("function") or {}).get("name") or "") for e in entries]
    taken = {n for n in names if n}
    findings: list[Finding] = []
    total = len(taken)
    for index, entry in enumerate(entries):
        if entry.get("type") == "mcp":
            found, allowed = _lint_attachment(index, entry, taken, providers)
            findings += found
            total += allowed
    if total > MAX_TOOLS:
        findings.append(
            Finding(
                "error",
                "*",
                "tools",
                f"{total} tools with the MCP servers' allowed tools; OpenAI accepts at most "
                f"{MAX_TOOLS} per request: split them across assistants",
            )
        )
    return sorted(findings, key=lambda f: f.severity != "error")


def _lint_attachment(
    index: int, entry: Mapping[str, Any], taken: set[str], providers: Collection[str]
) -> tuple[list[Finding], int]:
    """The findings of one attachment, and how many tools it allows; adds them to ``taken``."""
    server = entry.get("mcp_server_id")
    label = f"mcp {server}" if isinstance(server, str) and server else f"tools[{index}]"
    found: list[Finding] = []
    if label.startswith("tools["):
        found.append(Finding("error", label, "mcp_server_id", "missing: give the MCP server's id"))
    if not isinstance(entry.get("required", True), bool):
        found.append(Finding("error", label, "required", "must be true or false"))
    allowed = entry.get("allowed_tools")
    if not isinstance(allowed, list) or not all(isinstance(n, str) for n in allowed):
        found.append(
            Finding("error", label, "allowed_tools", "must list the server's tools by name")
        )
        return found, 0
    if len(allowed) > MAX_ALLOWED_TOOLS:
        found.append(
            Finding(
                "error",
                label,
                "allowed_tools",
                f"{len(allowed)} tools; the platform accepts at most {MAX_ALLOWED_TOOLS} per "
                "MCP attachment: name only those the assistant needs",
            )
        )
    elif not allowed:
        found.append(
            Finding("warning", label, "allowed_tools", "empty: the assistant gets no tool")
        )
    for position, name in enumerate(allowed):
        path = f"allowed_tools[{position}]"
        found += _lint_mcp_name(label, path, name, providers)
        if name in taken:
            found.append(
                Finding(
                    "error",
                    label,
                    path,
                    f"{name!r} is also another tool of the assistant: the model cannot tell "
                    "them apart; rename one",
                )
            )
        taken.add(name)
    return found, len(allowed)


def _lint_mcp_name(
    label: str, path: str, name: str, providers: Collection[str]
) -> Iterator[Finding]:
    if not _MCP_TOOL_NAME.fullmatch(name):
        yield Finding(
            "error",
            label,
            path,
            f"{name!r} is not an MCP tool name (1 to 128 ASCII letters, digits, '_', '-' or "
            "'.'): no server offers a tool by that name",
        )
        return
    refusing = [p for p in providers if not _FUNCTION_NAMES[p].fullmatch(name)]
    if refusing:
        yield Finding(
            "error" if set(refusing) == set(providers) else "warning",
            label,
            path,
            f"{name!r} is not a function name {', '.join(refusing)} accept(s): rename the "
            "tool on the MCP server (letters, digits, '_' and '-', at most 64)",
        )


def _lint_tool(
    name: str, definition: Mapping[str, Any], providers: Collection[str]
) -> Iterator[Finding]:
    if not _TOOL_NAME.fullmatch(name):
        yield Finding(
            "error",
            name or "(no name)",
            "name",
            f"{name!r} is not a valid tool name: start with a letter or '_', then use only "
            "letters, digits, '_' or '-', at most 64 characters",
        )
    yield from _lint_description(name, definition.get("description"))
    if definition.get("async_response") and not definition.get("async"):
        yield Finding(
            "warning",
            name,
            "async_response",
            "only used by async tools, this one is not: remove it or set fire_and_forget=True",
        )
    parameters = definition.get("parameters")
    if parameters is None:
        return
    if not isinstance(parameters, dict) or parameters.get("type") != "object":
        yield Finding(
            "error",
            name,
            "parameters",
            'must be a JSON Schema of "type": "object" with the arguments as properties',
        )
        return
    yield from _lint_parameters(name, parameters)
    for path, node in _walk(parameters, "parameters"):
        yield from _lint_keywords(name, path, node, providers)


def _lint_description(name: str, description: Any) -> Iterator[Finding]:
    text = description.strip() if isinstance(description, str) else ""
    if not text:
        yield Finding(
            "error",
            name,
            "description",
            "missing or blank: the model decides when to call a tool from its description; "
            "give the function a docstring",
        )
    elif len(text) > DESCRIPTION_MAX_CHARS:
        yield Finding(
            "error",
            name,
            "description",
            f"{len(text):,} characters; OpenAI refuses more than {DESCRIPTION_MAX_CHARS:,}: "
            "keep when to call it there and move the rest to the assistant's prompt",
        )
    elif len(text.split()) < 3:
        yield Finding(
            "warning",
            name,
            "description",
            f"{text!r} is too short to tell the model when to call it: say what it does and "
            "when to use it",
        )


def _lint_parameters(name: str, schema: Mapping[str, Any]) -> Iterator[Finding]:
    properties: Mapping[str, Any] = schema.get("properties") or {}
    required = schema.get("required") or []
    for argument in required:
        if argument not in properties:
            yield Finding(
                "error",
                name,
                "parameters.required",
                f"names {argument!r}, which is not a property: remove it or add the property",
            )
    if len(set(required)) != len(required):
        yield Finding("error", name, "parameters.required", "lists a name twice")
    for argument, prop in properties.items():
        path = f"parameters.properties.{argument}"
        if not _PARAMETER_NAME.fullmatch(argument):
            yield Finding(
                "warning",
                name,
                path,
                "Gemini accepts parameter names of ASCII letters, digits and '_' (at most 64) "
                "only: rename it",
            )
        if not isinstance(prop, dict):
            continue
        target = resolve_ref(schema, prop) or {}
        described = prop.get("description") or target.get("description")
        if not described:
            yield Finding(
                "warning",
                name,
                path,
                "no description: add an 'Args:' line for it to the docstring, saying what it "
                "is and in which format",
            )
        if argument in required and "default" in prop:
            yield Finding(
                "error",
                name,
                path,
                "required and has a default: drop it from 'required' or drop the default",
            )
        if argument not in required and "default" not in prop:
            yield Finding(
                "warning",
                name,
                path,
                "optional without a default: give it a default so the model knows what "
                "leaving it out means, or make it required",
            )
        if isinstance(described, str) and _CLOSED_SET.search(described) and "enum" not in target:
            yield Finding(
                "warning",
                name,
                path,
                "the description lists choices but the schema does not: annotate it with a "
                "Literal[...] of the values so the model can only pick one of them",
            )


def _lint_keywords(
    name: str, path: str, node: Mapping[str, Any], providers: Collection[str]
) -> Iterator[Finding]:
    parent = path.rsplit(".", 2)[-2:-1]
    if parent in (["properties"], ["$defs"]) and not any(key in node for key in _TYPED_BY):
        yield Finding(
            "error",
            name,
            path,
            'no "type": the model may send anything; annotate the parameter '
            "(str, int, float, bool, a Literal, ...)",
        )
    enum = node.get("enum")
    if isinstance(enum, list):
        if not enum:
            yield Finding("error", name, path, "an empty enum: no value can be sent")
        elif len(enum) == 1:
            yield Finding(
                "warning",
                name,
                path,
                f"an enum with one value ({enum[0]!r}) is a constant: remove the parameter "
                "and use the value in the function, or list every allowed value",
            )
    if "google" in providers:
        if isinstance(node.get("type"), list):
            yield Finding(
                "warning",
                name,
                f"{path}.type",
                "a list of types is not supported by google: use one type (and nullable)",
            )
        if "enum" in node and "type" not in node:
            yield Finding(
                "warning",
                name,
                path,
                'an enum without "type" is not supported by google: add "type": "string"',
            )
    checked = [p for p in providers if p in SCHEMA_KEYWORDS]
    for keyword in node:
        refusing = [p for p in checked if not _accepts(p, keyword, node)]
        rules = [p for p in checked if p != "mistral"]
        if not refusing:
            continue
        severity = "error" if rules and set(refusing) == set(rules) else "warning"
        yield Finding(
            severity,
            name,
            f"{path}.{keyword}",
            f"{keyword!r} is not supported by {', '.join(refusing)}: "
            + _KEYWORD_FIXES.get(keyword, "express it with type, enum or a description"),
        )


_KEYWORD_FIXES = {
    "$ref": "inline the nested type (a dict or flat parameters) if the assistant uses it",
    "$defs": "inline the nested type (a dict or flat parameters) if the assistant uses it",
    "additionalProperties": "use a nested Struct with named fields instead of a dict",
    "prefixItems": "use a list or separate parameters instead of a tuple",
    "uniqueItems": "use a list and say 'no duplicates' in the description",
    "contentEncoding": "take a str instead of bytes",
    "const": "use an enum",
    "examples": "put an example in the description",
}


def _accepts(provider: str, keyword: str, node: Mapping[str, Any]) -> bool:
    if provider == "xai":
        if keyword == "allOf" and len(node.get("allOf") or []) > 1:
            return False  # documented: allOf with a single subschema only
        return keyword not in _XAI_UNSUPPORTED
    allowed = SCHEMA_KEYWORDS[provider]
    return allowed is None or keyword in allowed


def _walk(node: Any, path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every subschema of ``node`` (a JSON Schema), with its dotted path."""
    if not isinstance(node, dict):
        return
    yield path, node
    for key in _SUBSCHEMA_MAPS:
        children = node.get(key)
        if isinstance(children, dict):
            for child_name, child in children.items():
                yield from _walk(child, f"{path}.{key}.{child_name}")
    for key in _SUBSCHEMA_LISTS:
        children = node.get(key)
        if isinstance(children, list):
            for index, child in enumerate(children):
                yield from _walk(child, f"{path}.{key}[{index}]")
    for key in _SUBSCHEMAS:
        yield from _walk(node.get(key), f"{path}.{key}")


def _lint_docstring(tool: Tool, definition: Mapping[str, Any]) -> Iterator[Finding]:
    _, documented = parse_docstring(inspect.getdoc(tool.function) or "")
    properties = (definition.get("parameters") or {}).get("properties") or {}
    for argument in documented:
        if argument.lstrip("*") in properties:
            continue
        close = difflib.get_close_matches(argument, list(properties), n=1)
        hint = f"did you mean {close[0]!r}?" if close else "remove the line"
        yield Finding(
            "warning",
            tool.name,
            "description",
            f"the docstring documents {argument!r}, which is not a parameter: {hint}",
        )


_SIDE_EFFECT = re.compile(
    r"(?<![a-z])(book|pay|order|send|create)(s|es|ed|ing|ment|ments)?(?![a-z])", re.IGNORECASE
)


def _lint_side_effect(tool: Tool) -> Iterator[Finding]:
    if tool.once_per_call or tool.fire_and_forget:
        return
    # Any word of the name; of the description only the first, its verb ("Book a table"):
    # "the work order number" in a description is no order placed.
    first_word = tool.description.split(maxsplit=1)[0] if tool.description.strip() else ""
    words = tool.name.replace("_", " ").replace("-", " ") + " " + first_word
    found = _SIDE_EFFECT.search(words)
    if found:
        yield Finding(
            "hint",
            tool.name,
            "once_per_call",
            f"it says {found.group(0).lower()!r}: a model that did not hear back in time "
            "calls it again with a new id; @app.tool(once_per_call=True) runs it once per "
            "intent (see 'Retries from the model')",
        )


def _lint_latency(
    name: str, definition: Mapping[str, Any], summary: Mapping[str, Any], slow_seconds: float
) -> Iterator[Finding]:
    count = int(summary.get("timed", summary.get("count")) or 0)
    timeouts = int(summary.get("timeouts") or 0)
    p95 = summary.get("p95_seconds")
    spoken = definition.get("message") or definition.get("async_response")
    if definition.get("async") or spoken:
        return
    if count >= MIN_SAMPLES and isinstance(p95, (int, float)) and p95 >= slow_seconds:
        yield Finding(
            "warning",
            name,
            "latency",
            f"95% of {count} measured calls took up to {p95:.1f} s of silence: give it an "
            "interim message the assistant says meanwhile, or make it faster",
        )
    if timeouts:
        yield Finding(
            "warning",
            name,
            "latency",
            f"{timeouts} of {count} measured calls hit the deadline: raise timeout_seconds, "
            "make it faster or give it an interim message",
        )
