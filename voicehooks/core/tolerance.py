"""Repairing a delivery whose fields drifted from their documented types.

The platform documents its field types loosely (PLATFORM.md §2, §6, §8) and they drift: a
``duration_seconds`` of ``95.0``, a transcript turn whose ``content`` is ``null``, a web
call's ``"customer": null``, an epoch number where an ISO time was documented. A strict
decoder refuses the whole delivery for any of them, and an end-of-call-report is the only copy
of a call's transcript. So when the strict decode fails, the body is decoded untyped and
``repair`` walks it along the target type:

* a value that can be read without guessing is converted: whole floats and numeric strings
  where an int is declared, numbers where a string is, epoch seconds or milliseconds where a
  time is;
* ``null`` becomes the field's default;
* anything else is dropped, so the field gets its default, and named in a ``DecodeIssue``
  (path and expected type, never the value).

Strictness stays where it protects: a required field (the envelope's essentials: a
``tool-calls`` delivery's ``tool_call_list``, each call's ``id`` and ``function.name``) is
never repaired, so the typed decode that follows still refuses it with msgspec's path; a
tool call answered under an id the platform did not send would be lost to it. Values typed
``Any`` (``analysis``, tool arguments, the assistant configuration) are user data and pass
through untouched.

A message nested more than ``MAX_DEPTH`` levels deep is refused before the walk (a
``ValidationError`` naming the field, so a 400): no delivery nests anywhere near that, the walk
stays bounded, and the answer no longer depends on how deep the Python version lets msgspec
recurse (3.11 gave up at about 1000 levels, 3.13 at about 10,000).

This path runs only after the strict decode failed: the common delivery never pays for it.
"""

from __future__ import annotations

import datetime
import math
from functools import cache
from typing import Any, Final

import msgspec
import msgspec.inspect as mi

__all__ = ["DecodeIssue", "MAX_DEPTH", "repair"]

MAX_DEPTH: Final = 128
"""How deeply a message that needs repair may nest its objects and arrays (the message is 1)."""


class DecodeIssue(msgspec.Struct, frozen=True):
    """A field of a delivery that could not be read and was given its default instead.

    ``path`` is where it was (``$.message.duration_seconds``), ``expected`` the type the
    field has; the value itself is never kept: it may be personal data.
    """

    path: str
    expected: str


_DROP: Final = object()
_MILLISECONDS_ABOVE: Final = 10**11  # as in signing: seconds have 10 digits until 2286
_LEAVES: Final[dict[type[mi.Type], type]] = {
    mi.IntType: int,
    mi.FloatType: float,
    mi.BoolType: bool,
    mi.DateTimeType: datetime.datetime,
}
_NAMES: Final[dict[type[mi.Type], str]] = {
    mi.StrType: "string",
    mi.IntType: "integer",
    mi.FloatType: "number",
    mi.BoolType: "boolean",
    mi.DateTimeType: "date-time",
    mi.ListType: "array",
    mi.DictType: "object",
    mi.StructType: "object",
}


def repair(
    message: dict[str, Any], target: type[msgspec.Struct]
) -> tuple[dict[str, Any], list[DecodeIssue]]:
    """Fit the untyped ``message`` to the Struct ``target``; see the module docstring.

    Returns:
        The repaired copy (unknown keys left out) and the issues found, in document order.

    Raises:
        msgspec.ValidationError: ``message`` nests deeper than ``MAX_DEPTH``; names the field.
    """
    info = _info(target)
    # A sender's mistake, refused (400) rather than repaired: a field that deep is no drift.
    deep = _too_deep(message)
    if deep is not None:
        known = any(field.encode_name == deep for field in info.fields)
        path = f"$.message.{deep}" if known else "$.message"  # never echo the sender's key
        raise msgspec.ValidationError(f"Nested more than {MAX_DEPTH} levels deep - at `{path}`")
    issues: list[DecodeIssue] = []
    repaired = _struct(message, info, "$.message", issues)
    return repaired, issues


def _too_deep(message: dict[str, Any]) -> str | None:
    """The first key of ``message`` nested deeper than ``MAX_DEPTH``, found without recursion."""
    for name, value in message.items():
        stack = [(value, 2)]  # the message is level 1, its objects and arrays level 2
        while stack:
            node, depth = stack.pop()
            if depth > MAX_DEPTH:
                return name
            children = (
                node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
            )
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return None


@cache
def _info(target: type[msgspec.Struct]) -> mi.StructType:
    info = mi.type_info(target)
    assert isinstance(info, mi.StructType)
    return info


def _struct(
    value: dict[str, Any], info: mi.StructType, path: str, issues: list[DecodeIssue]
) -> dict[str, Any]:
    repaired: dict[str, Any] = {}
    for field in info.fields:
        name = field.encode_name
        if name not in value:
            continue
        if field.required:
            repaired[name] = value[name]  # an essential: the typed decode judges it as it is
            continue
        fitted = _fit(value[name], field.type, f"{path}.{name}", issues)
        if fitted is not _DROP:
            repaired[name] = fitted
    return repaired


def _fit(value: Any, info: mi.Type, path: str, issues: list[DecodeIssue]) -> Any:
    """``value`` fitted to ``info``, or ``_DROP`` (with an issue unless the value was null)."""
    if value is None:
        return None if _nullable(info) else _DROP
    if isinstance(info, mi.UnionType):
        members = [member for member in info.types if not isinstance(member, mi.NoneType)]
        # Only optional values occur in the event Structs; other unions go to the decoder.
        return _fit(value, members[0], path, issues) if len(members) == 1 else value
    kind = type(info)
    if kind in (mi.AnyType, mi.RawType):
        return value
    if kind is mi.StructType and isinstance(value, dict):
        assert isinstance(info, mi.StructType)
        return _struct(value, info, path, issues)
    if kind is mi.ListType and isinstance(value, list):
        assert isinstance(info, mi.ListType)
        return _list(value, info.item_type, path, issues)
    if kind is mi.DictType and isinstance(value, dict):
        return value  # dict[str, Any] in the event Structs: user data
    if kind is mi.StrType:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return msgspec.json.encode(value).decode()
    elif kind in _LEAVES:
        fitted = _leaf(value, _LEAVES[kind])
        if fitted is not _DROP:
            return fitted
    issues.append(DecodeIssue(path, _NAMES.get(kind, kind.__name__)))
    return _DROP


def _list(value: list[Any], item: mi.Type, path: str, issues: list[DecodeIssue]) -> list[Any]:
    essential = isinstance(item, mi.StructType) and any(f.required for f in item.fields)
    fitted_items = []
    for index, entry in enumerate(value):
        fitted = _fit(entry, item, f"{path}[{index}]", issues)
        if fitted is not _DROP:
            fitted_items.append(fitted)
        elif essential:
            fitted_items.append(entry)  # a tool call without an id: refused by path
    return fitted_items


def _leaf(value: Any, python_type: type) -> Any:
    try:
        if python_type is datetime.datetime and isinstance(value, int | float):
            if isinstance(value, bool):
                return _DROP
            if abs(value) >= _MILLISECONDS_ABOVE:
                value = value / 1000  # OverflowError from about 1.8e311: no time at all
        fitted: Any = msgspec.convert(value, python_type, strict=False)
    except (msgspec.ValidationError, OverflowError):
        return _DROP
    # "nan" and "inf" read as floats, but no field means them: a guess, not a reading.
    return _DROP if isinstance(fitted, float) and not math.isfinite(fitted) else fitted


def _nullable(info: mi.Type) -> bool:
    return isinstance(info, mi.NoneType | mi.AnyType) or (
        isinstance(info, mi.UnionType) and any(isinstance(t, mi.NoneType) for t in info.types)
    )
