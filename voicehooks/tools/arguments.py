"""When the model's arguments do not fit a tool: the coercions we accept and the errors we send.

A tool first decodes its arguments strictly (the fast path). Only when that fails does
``recover`` look again:

* **Unambiguous coercions are applied and counted.** A string holding a JSON number where a
  number is expected (``"4"`` → 4, ``"2.5"`` → 2.5, ``"4.0"`` → 4), a float with no fraction
  where an integer is expected (``4.0`` → 4), ``"true"``/``"false"`` (any case) where a
  boolean is expected, and a number or numeric string naming a member of a closed set of
  choices (``1`` for ``Literal["1", "2"]``, ``"2"`` for ``Literal[1, 2]``).
* **Everything else stays an error**, because the intent is not clear: ``"yes"``, ``1`` or
  ``"1"`` for a boolean (did the model confuse two arguments?), ``"nan"``, ``"inf"`` or
  ``"null"`` as numbers, ``4.5`` for an integer, a number for a free-text string (``2291``
  for an order number that may need its prefix ``WO-``).

The error is phrased for the model, which reads it as the tool's result: which argument, what
was expected, an example value, and what to do next. Only a missing argument tells it to ask
the caller (if the caller has not said it yet); a wrongly typed one tells it to call again.
"""

from __future__ import annotations

import datetime
import difflib
import functools
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

import msgspec
from msgspec import inspect as mi

__all__ = ["COERCIONS", "Unfit", "explain", "not_json", "recover", "resolve_ref"]

COERCIONS = (
    "string_to_integer",
    "float_to_integer",
    "string_to_number",
    "string_to_boolean",
    "to_choice",
)
"""The kinds of coercion ``Tool.coercions`` counts."""

_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_MALFORMED = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)
_MAX_CHOICES_SHOWN = 8


class Unfit(Exception):
    """The arguments cannot be made to fit; ``str(exc)`` is the text for the model."""


def recover(
    decoder: msgspec.json.Decoder[Any],
    raw: bytes | str,
    first: msgspec.ValidationError,
    schema: dict[str, Any],
    tool: str,
    counts: Counter[str],
) -> Any:
    """Decode ``raw`` after the strict decode failed with ``first``, coercing what is clear.

    Raises:
        Unfit: The message says which argument, what was expected and what to do.
    """
    try:
        value = msgspec.json.decode(raw)
    except _MALFORMED:
        raise Unfit(not_json(tool)) from None
    if isinstance(value, str):  # OpenAI-style engines send a JSON-encoded string (PLATFORM.md 8.11)
        try:
            value = msgspec.json.decode(value)
        except _MALFORMED:
            raise Unfit(not_json(tool)) from None
        try:
            return decoder.decode(msgspec.json.encode(value))
        except msgspec.ValidationError as exc:
            first = exc
    if not isinstance(value, dict):
        raise Unfit(explain(first, schema, tool))
    found: Counter[str] = Counter()
    coerced = _coerce(value, _info(decoder), found)
    if not found:
        raise Unfit(explain(first, schema, tool))
    try:
        decoded = decoder.decode(msgspec.json.encode(coerced))
    except msgspec.ValidationError as exc:
        raise Unfit(explain(exc, schema, tool)) from None
    counts.update(found)
    return decoded


@functools.lru_cache(maxsize=512)  # one entry per tool decoder: bounded by the registry
def _info(decoder: msgspec.json.Decoder[Any]) -> mi.Type:
    return mi.type_info(decoder.type)


def _coerce(value: Any, info: mi.Type, found: Counter[str]) -> Any:
    """``value`` with the unambiguous coercions for ``info`` applied; each counted in ``found``."""
    if isinstance(info, mi.Metadata):
        return _coerce(value, info.type, found)
    if isinstance(info, (mi.IntType, mi.FloatType, mi.BoolType)):
        return _scalar(value, info, found)
    if isinstance(info, mi.LiteralType):
        return _choice(value, info.values, found)
    if isinstance(info, mi.EnumType):
        return _choice(value, [member.value for member in info.cls], found)
    if isinstance(info, mi.UnionType):
        members = [t for t in info.types if not isinstance(t, mi.NoneType)]
        # Only an optional X is unambiguous; in X | Y the value may already be a valid Y.
        return _coerce(value, members[0], found) if len(members) == 1 else value
    if isinstance(value, list):
        if isinstance(info, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
            return [_coerce(item, info.item_type, found) for item in value]
        if isinstance(info, mi.TupleType) and len(value) == len(info.item_types):
            return [_coerce(v, t, found) for v, t in zip(value, info.item_types, strict=True)]
    if isinstance(value, dict):
        if isinstance(info, mi.DictType):
            return {k: _coerce(v, info.value_type, found) for k, v in value.items()}
        if isinstance(info, (mi.StructType, mi.DataclassType, mi.TypedDictType)):
            fields = {f.encode_name: f.type for f in info.fields}
            return {k: _coerce(v, fields[k], found) if k in fields else v for k, v in value.items()}
    return value


def _scalar(value: Any, info: mi.Type, found: Counter[str]) -> Any:
    if isinstance(info, mi.BoolType):
        if isinstance(value, str) and value.lower() in ("true", "false"):
            found["string_to_boolean"] += 1
            return value.lower() == "true"
        return value
    if isinstance(value, float) and isinstance(info, mi.IntType) and value.is_integer():
        found["float_to_integer"] += 1
        return int(value)
    number = _number(value)
    if number is None:
        return value
    if isinstance(info, mi.FloatType):
        found["string_to_number"] += 1
        return number
    # An int is whole as it is: float() of one with 309 or more digits would overflow.
    if isinstance(number, int) or number.is_integer():
        found["string_to_integer"] += 1
        return int(number)
    return value


def _number(value: Any) -> int | float | None:
    """The number a string holds when it is exactly a JSON number, else None."""
    if not isinstance(value, str) or not _JSON_NUMBER.fullmatch(value):
        return None
    try:
        number = msgspec.json.decode(value)
    except msgspec.MsgspecError:  # "1e400": out of range (never an infinity)
        return None
    return number  # type: ignore[no-any-return]


def _choice(value: Any, choices: Any, found: Counter[str]) -> Any:
    if value in choices and type(value) in {type(c) for c in choices}:
        return value
    candidates = [value]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        candidates.append(str(value))
    number = _number(value)
    if number is not None:
        candidates.append(number)
    for candidate in candidates[1:]:
        if any(candidate == c and type(candidate) is type(c) for c in choices):
            found["to_choice"] += 1
            return candidate
    return value


# -- the text the model reads ------------------------------------------------------------


def not_json(tool: str) -> str:
    """The text for arguments that are not JSON at all."""
    return (
        f"The arguments for {tool} were not usable: they are not valid JSON. "
        f"Call {tool} again with a JSON object of its arguments."
    )


def explain(error: msgspec.ValidationError, schema: dict[str, Any], tool: str) -> str:
    """The model-facing text for a validation ``error`` of ``tool``'s arguments."""
    message = str(error)
    head = f"The arguments for {tool} were not usable:"
    missing = re.match(r"Object missing required field `([^`]+)`(?: - at `\$\.?(.*)`)?", message)
    if missing:
        path = _join(missing.group(2), missing.group(1))
        expected = _expected(_node(schema, path), schema)
        return (
            f"{head} the argument '{path}' is missing ({expected}). If the caller has not "
            f"said it yet, ask them for it; then call {tool} again with it."
        )
    unknown = re.match(r"Object contains unknown field `([^`]+)`(?: - at `\$\.?(.*)`)?", message)
    if unknown:
        path = _join(unknown.group(2), unknown.group(1))
        parent = _node(schema, unknown.group(2) or "")
        known = list((parent.get("properties") or {}) if parent else [])
        close = difflib.get_close_matches(unknown.group(1), known, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        listing = ", ".join(known) if known else "none"
        return (
            f"{head} '{path}' is not an argument of {tool}.{hint} Its arguments are: "
            f"{listing}. Call {tool} again with only those."
        )
    located = re.match(r"(.*) - at `\$\.?(.*)`$", message)
    got = re.search(r"got `(\w+)`", message)
    received = f" (it was {_NAMES.get(got.group(1), got.group(1))})" if got else ""
    if not located or not located.group(2):
        shape = _expected(schema, schema)
        return f"{head} the arguments must be {shape}{received}. Call {tool} again with them."
    path = located.group(2)
    expected = _expected(_node(schema, path), schema)
    return (
        f"{head} the argument '{path}' must be {expected}{received}. "
        f"Call {tool} again with a corrected value."
    )


_NAMES = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "null": "null",
    "array": "a list",
    "object": "an object",
}
_FORMATS = {
    "date": "a date as YYYY-MM-DD, for example {today}",
    "date-time": "a date and time in RFC 3339, for example {today}T14:30:00Z",
    "time": "a time as HH:MM:SS, for example 14:30:00",
    "uuid": "a UUID, for example 3f2b8c1e-5d4a-4e6b-9c7d-8a1f0e2d3c4b",
    "duration": "an ISO 8601 duration, for example PT30M",
}


def _join(parent: str | None, name: str) -> str:
    return f"{parent}.{name}" if parent else name


def _node(schema: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The schema of the argument at a msgspec path (``bike.kind``, ``tags[0]``)."""
    node: dict[str, Any] | None = schema
    for part in re.findall(r"[^.\[\]]+|\[[^\]]*\]", path):
        node = resolve_ref(schema, node)
        if node is None:
            return None
        if part.startswith("["):
            index, fixed = part[1:-1], node.get("prefixItems")  # a tuple's own item types
            if isinstance(fixed, list) and index.isdigit() and int(index) < len(fixed):
                items = fixed[int(index)]
            else:
                items = node.get("items") if "items" in node else node.get("additionalProperties")
            node = items if isinstance(items, dict) else None
        else:
            node = (node.get("properties") or {}).get(part)
    return resolve_ref(schema, node)


def resolve_ref(
    root: Mapping[str, Any], node: Any, followed: set[str] | None = None
) -> dict[str, Any] | None:
    """``node``, a part of the JSON Schema ``root``, as it reads: references followed.

    The one ``$ref`` resolver of voicehooks: the argument errors, the lint of tool
    definitions and their diff all read schemas through it. A ``$ref`` to a local JSON
    pointer (``#/$defs/Slot``, ``#/definitions/Slot``, ``#``) is replaced by its target, the
    node's other keys kept over the target's, for as long as the result is a reference again;
    one that cannot be followed (another document, a missing target) or that closes a cycle
    is left in place. An ``anyOf`` of one schema besides ``null`` (an optional value) reads
    as that schema, the outer keys (``default``, ``description``) kept.

    Args:
        root: The whole schema, which local pointers start from.
        node: The part of it to read.
        followed: The references followed on the way to ``node``, by a caller that walks on
            through what it gets (to stop at a recursive type): they are not followed again,
            and the ones followed now are added.

    Returns:
        The resolved node (a new dict when anything was followed), or None when ``node`` is
        not an object.

    Examples:
        >>> root = {"$defs": {"Hour": {"type": "integer"}, "Slot": {"$ref": "#/$defs/Hour"}}}
        >>> resolve_ref(root, {"$ref": "#/$defs/Slot", "default": 9})
        {'type': 'integer', 'default': 9}
        >>> resolve_ref(root, {"anyOf": [{"$ref": "#/$defs/Hour"}, {"type": "null"}]})
        {'type': 'integer'}
    """
    if not isinstance(node, dict):
        return None
    resolved: dict[str, Any] = node
    followed = set() if followed is None else followed
    while True:
        ref = resolved.get("$ref")
        if isinstance(ref, str):
            target = None if ref in followed else _pointer(root, ref)
            if target is None:
                return resolved
            followed.add(ref)
            resolved = {**target, **{k: v for k, v in resolved.items() if k != "$ref"}}
            continue
        branches = resolved.get("anyOf")
        if not isinstance(branches, list):
            return resolved
        kept = [b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")]
        if len(kept) != 1 or not isinstance(kept[0], dict):
            return resolved
        resolved = {**kept[0], **{k: v for k, v in resolved.items() if k != "anyOf"}}


def _pointer(root: Mapping[str, Any], ref: str) -> dict[str, Any] | None:
    """The object a local JSON pointer (``#/$defs/A~1B``) names in ``root``, if any."""
    if ref != "#" and not ref.startswith("#/"):
        return None  # another document: nothing voicehooks fetches
    target: Any = root
    for part in ref[2:].split("/") if ref != "#" else ():
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(target, Mapping):
            target = target.get(part)
        elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
        else:
            return None
    return dict(target) if isinstance(target, Mapping) else None


def _expected(node: dict[str, Any] | None, schema: dict[str, Any]) -> str:
    """What the model should send, with an example: ``an integer, for example 4``."""
    if node is None:
        return "a value of the type in the tool's definition"
    examples = node.get("examples")
    example = f", for example {msgspec.json.encode(examples[0]).decode()}" if examples else ""
    choices = node.get("enum")
    if isinstance(choices, list) and choices:
        shown = ", ".join(msgspec.json.encode(c).decode() for c in choices[:_MAX_CHOICES_SHOWN])
        more = ", ..." if len(choices) > _MAX_CHOICES_SHOWN else ""
        return f"one of {shown}{more}"
    kind = node.get("type")
    if kind == "string":
        # Today as the example: a fixed date would read as a suggestion once it has passed.
        today = datetime.date.today().isoformat()
        text = _FORMATS.get(str(node.get("format")), "a string").format(today=today)
        if "pattern" in node:
            text += f" matching the pattern {node['pattern']}"
        return text + example
    if kind in ("integer", "number"):
        return _numeric(node, kind) + (example or f", for example {_sample(node, kind)}")
    if kind == "boolean":
        return "true or false"
    if kind == "array":
        return _list(node, schema)
    if kind == "object" or "properties" in node:
        fields = list(node.get("properties") or {})
        return f"an object with the fields {', '.join(fields)}" if fields else "an object"
    return "a value of the type in the tool's definition"


def _list(node: dict[str, Any], schema: dict[str, Any]) -> str:
    low, high = node.get("minItems"), node.get("maxItems")
    if low is not None and high is not None:
        size = f" of exactly {low} items" if low == high else f" of {low} to {high} items"
    elif low is not None or high is not None:
        size = f" of at least {low} items" if low is not None else f" of at most {high} items"
    else:
        size = ""
    items = resolve_ref(schema, node.get("items"))
    return f"a list{size}, each item {_expected(items, schema)}" if items else f"a list{size}"


def _numeric(node: dict[str, Any], kind: str) -> str:
    text = "a whole number" if kind == "integer" else "a number"
    low = node.get("minimum", node.get("exclusiveMinimum"))
    high = node.get("maximum", node.get("exclusiveMaximum"))
    if low is not None and high is not None:
        return f"{text} from {low} to {high}"
    if low is not None:
        return f"{text} of at least {low}"
    if high is not None:
        return f"{text} of at most {high}"
    return text


def _sample(node: dict[str, Any], kind: str) -> Any:
    default = node.get("default")
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        return default
    low = node.get("minimum")
    if isinstance(low, (int, float)):
        return low
    return 4 if kind == "integer" else 2.5
