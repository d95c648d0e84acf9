"""Sensitive tool arguments: the tool gets the value, every copy outside it a keyed token.

``Annotated[str, Sensitive()]`` marks a parameter. When the model calls the tool, the value
reaches the function unchanged; everywhere else the app keeps or shows the delivery (the
body and answer observers read: recordings, the inspector and its history; the body a
durable job of the same delivery carries; the result remembered for duplicates, when the
tool echoes the value) it is replaced by ``[sensitive:<12 hex>]``, the first 48 bits of
HMAC-SHA256 of the value's JSON under a key. Log lines, metrics, spans and tool statistics
never held arguments in the first place.

The token is keyed so that it cannot be reversed by hashing guesses (a PIN has 10,000
values): with a random key per process by default (tokens join records of one process),
or ``Privacy(token_key=...)`` shared by every process (tokens join across processes and
restarts). The replacing is exact: the value is found as a whole JSON number, or as text
inside strings (an argument object sent as a JSON string included).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any, Final

import msgspec

__all__ = ["Sensitive", "Tokens", "mask_body", "mask_value"]

_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode
_MALFORMED: Final = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


class Sensitive:
    """Marks a tool parameter whose value must not leave the tool: ``Annotated[str,
    Sensitive()]``. Records, recordings, the inspector and queued copies hold a keyed token.

    Examples:
        >>> from typing import Annotated
        >>> from voicehooks import Sensitive, VoiceHooks
        >>> app = VoiceHooks(secret="whsec_example")
        >>> @app.tool
        ... def pay(card_number: Annotated[str, Sensitive()], amount: float) -> str:
        ...     '''Pay the open invoice.'''
        ...     return "paid"
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "Sensitive()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sensitive)

    def __hash__(self) -> int:
        return hash(Sensitive)


class Tokens:
    """Makes the tokens of sensitive values under one key (random when ``None``)."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)

    def of(self, value: Any) -> str:
        """The token of ``value`` (any JSON value)."""
        digest = hmac.new(self._key, _encode(value), hashlib.sha256).hexdigest()
        return f"[sensitive:{digest[:12]}]"

    def of_arguments(self, raw: bytes, names: tuple[str, ...]) -> dict[Any, str]:
        """``{value: token}`` for the arguments ``names`` in ``raw`` (a call's arguments: an
        object, or a JSON string of one); empty when they are not there."""
        try:
            arguments = _decode(raw)
            if isinstance(arguments, str):
                arguments = _decode(arguments)
        except _MALFORMED:
            return {}
        if not isinstance(arguments, dict):
            return {}
        masks: dict[Any, str] = {}
        for name in names:
            value = arguments.get(name)
            if isinstance(value, str | int | float) and not isinstance(value, bool) and value != "":
                masks[value] = self.of(value)
            elif isinstance(value, list | dict):  # each scalar inside, as its own token
                for item in _scalars(value):
                    masks[item] = self.of(item)
        return masks


def mask_body(body: bytes, masks: Mapping[Any, str]) -> bytes:
    """``body`` (JSON) with every value of ``masks`` replaced by its token; not-JSON bodies
    have the values' text replaced."""
    if not masks:
        return body
    try:
        decoded = _decode(body)
    except _MALFORMED:
        text = body.decode("utf-8", "replace")
        for value, token in masks.items():
            text = text.replace(str(value), token)
        return text.encode()
    return _encode(mask_value(decoded, masks))


def mask_value(value: Any, masks: Mapping[Any, str]) -> Any:
    """A copy of ``value`` (decoded JSON) with every value of ``masks`` replaced."""
    if isinstance(value, str):
        for secret, token in masks.items():
            text = secret if isinstance(secret, str) else _encode(secret).decode()
            if text in value:
                value = value.replace(text, token)
            # A value inside a JSON string (arguments sent as text) is escaped there.
            escaped = _encode(text).decode()[1:-1]
            if escaped != text and escaped in value:
                value = value.replace(escaped, token)
        return value
    if isinstance(value, dict):
        return {key: mask_value(item, masks) for key, item in value.items()}
    if isinstance(value, list):
        return [mask_value(item, masks) for item in value]
    if isinstance(value, int | float) and not isinstance(value, bool) and value in masks:
        return masks[value]
    return value


def _scalars(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [item for inner in value.values() for item in _scalars(inner)]
    if isinstance(value, list):
        return [item for inner in value for item in _scalars(inner)]
    if isinstance(value, str | int | float) and not isinstance(value, bool) and value != "":
        return [value]
    return []
