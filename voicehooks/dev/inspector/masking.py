"""The inspector's masking rule: personal data is hidden until the developer asks to see it.

Masked by default, in a decoded delivery:

* personal data anywhere, found by ``voicehooks.privacy`` in English and Dutch: inside any
  string (a status update's ``error``, metadata, a tool's answer), a phone number shown as
  ``+31•••••••42`` (national formats such as ``(065) 501-8342`` and ``tel:`` URIs too), any
  other kind as its placeholder (``[card]``, ``[iban]``, ``[email]``, ...);
* phone numbers stored as JSON numbers (``31655018342``, which lost its ``+`` or ``0``);
* everything under ``customer`` (the caller: number, name, ...);
* what was said or derived from it: a turn's ``content`` (text or a list of parts) or
  ``message``, ``transcript``, ``summary``, ``analysis``, ``recording_url``;
* the values of tool-call arguments (the keys stay), of a webhook's ``function`` and of an
  MCP ``tools/call``'s ``params``: callers dictate names, addresses and order numbers, and
  the model passes them on;
* in ids, phone numbers with separators (``call-+31-6-5501-8342``) and runs of 7 or more
  digits (a call id made from a phone number), as the log does.

Kept: event type, call id and status, timestamps, the platform number's name (a business
line), the assistant configuration, order numbers and dates, tool names and ids.
Hidden text becomes ``[hidden: N characters]`` so its size still shows. The answer is masked
by the detector only: it is the app's own output, and what is debugged.

The detector is imported here, in the development tools, and never on the request path.
"""

from __future__ import annotations

import json
from typing import Any, Final

from voicehooks.core.logs import masked
from voicehooks.privacy import find

__all__ = ["mask", "mask_id", "mask_phone_numbers"]

_LANGUAGES: Final = ("en", "nl")
_SPOKEN: Final = frozenset(
    {"transcript", "summary", "analysis", "recording_url", "customer", "content"}
)


_CALLS: Final = frozenset({"function", "params"})  # a webhook tool call's, an MCP call's


def mask(payload: Any) -> Any:
    """A copy of a decoded delivery with its personal data hidden (see the module docstring).

    Example:
        >>> mask({"message": {"customer": {"number": "+31655018342"}, "summary": "Hi"}})
        {'message': {'customer': {'number': '+31•••••••42'}, 'summary': '[hidden: 2 characters]'}}
    """
    return _walk(payload, key=None, hide=False)


def mask_phone_numbers(value: Any) -> Any:
    """A copy of ``value`` with the personal data the detector finds masked, the rest kept."""
    if isinstance(value, dict):
        return {key: mask_phone_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [mask_phone_numbers(item) for item in value]
    if isinstance(value, str):
        return _masked_text(value)
    if _is_phone_number(value):
        return _phone(str(value))
    return value


def mask_id(value: str | None) -> str:
    """An id for display: phone numbers in it masked, then the log's rule (7+ digit runs)."""
    return masked(None if value is None else _masked_text(value))


def _walk(value: Any, key: str | None, hide: bool) -> Any:
    hide = hide or key in _SPOKEN or (key == "message" and isinstance(value, str | list))
    if isinstance(value, dict):
        return {
            k: _walk(v, k, hide or (key in _CALLS and k == "arguments")) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_walk(item, None, hide) for item in value]
    if isinstance(value, str):
        if key == "arguments":  # OpenAI-style engines send the arguments as a JSON string
            return _masked_json_arguments(value)
        if hide:  # a bare phone number still shows its country code
            return _phone(value) if _is_whole_phone(value) else _hidden(value)
        if key == "id":
            return mask_id(value)
        return _masked_text(value)
    if _is_phone_number(value):
        return _phone(str(value))
    if hide and isinstance(value, int | float) and not isinstance(value, bool):
        return "[hidden number]"
    return value


def _masked_text(text: str) -> str:
    """``text`` with what the detector finds masked: phones partly, the rest by kind."""
    pieces: list[str] = []
    position = 0
    for item in find(text, languages=_LANGUAGES):
        found = text[item.start : item.end]
        pieces += (
            text[position : item.start],
            _phone(found) if item.kind == "phone" else f"[{item.kind}]",
        )
        position = item.end
    pieces.append(text[position:])
    return "".join(pieces)


def _is_whole_phone(text: str) -> bool:
    found = find(text, languages=_LANGUAGES)
    return (
        len(found) == 1
        and found[0].kind == "phone"
        and not text.replace(text[found[0].start : found[0].end], "").strip()
    )


def _is_phone_number(value: Any) -> bool:
    """A JSON number that is a phone number without its ``+`` or its leading ``0``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 10_000_000:
        return False
    digits = str(value)
    return any(find(text, languages=_LANGUAGES) for text in (f"+{digits}", f"0{digits}", digits))


def _masked_json_arguments(text: str) -> Any:
    try:
        decoded = json.loads(text)
    except ValueError:
        return _hidden(text)
    return _walk(decoded, None, True)


def _phone(value: str) -> str:
    digits = value.strip()
    return digits[:3] + "•" * max(len(digits) - 5, 1) + digits[-2:]


def _hidden(text: str) -> str:
    return f"[hidden: {len(text)} characters]"
