"""The inspector's masking rule: personal data is hidden until the developer asks to see it.

Masked by default, in a decoded delivery:

* phone numbers: ``customer.number``, ``phone_number.number``, and any string anywhere that
  looks like one (``+31 6 55018342``: 8 digits after a ``+``, or 9 without; not a date),
  shown as ``+31•••••••42``;
* everything under ``customer`` (the caller: number, name, ...);
* what was said or derived from it: ``messages[].content``, ``transcript``, ``summary``,
  ``analysis``, ``recording_url``;
* the values of tool-call arguments (the keys stay): callers dictate names, addresses and
  order numbers, and the model passes them on;
* runs of 7 or more digits in ids (a call id made from a phone number), as the log does.

Kept: event type, call id and status, timestamps, the platform number's name (a business
line), the assistant configuration and metadata (the app's own data), tool names and ids.
Hidden text becomes ``[hidden: N characters]`` so its size still shows. The answer is masked
by the phone-number rule only: it is the app's own output, and what is debugged.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from voicehooks.core.logs import masked

__all__ = ["mask", "mask_phone_numbers"]

_PHONE: Final = re.compile(r"\+?[0-9][0-9 ().-]{5,}[0-9]")
_DATE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SPOKEN: Final = frozenset({"transcript", "summary", "analysis", "recording_url", "customer"})


def mask(payload: Any) -> Any:
    """A copy of a decoded delivery with its personal data hidden (see the module docstring).

    Example:
        >>> mask({"message": {"customer": {"number": "+31655018342"}, "summary": "Hi"}})
        {'message': {'customer': {'number': '+31•••••••42'}, 'summary': '[hidden: 2 characters]'}}
    """
    return _walk(payload, key=None, hide=False)


def mask_phone_numbers(value: Any) -> Any:
    """A copy of ``value`` with only strings that look like phone numbers masked."""
    if isinstance(value, dict):
        return {key: mask_phone_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [mask_phone_numbers(item) for item in value]
    if isinstance(value, str) and _looks_like_phone(value):
        return _phone(value)
    return value


def _looks_like_phone(text: str) -> bool:
    text = text.strip()
    if not _PHONE.fullmatch(text) or _DATE.fullmatch(text):
        return False
    digits = sum(character.isdigit() for character in text)
    return digits >= (8 if text.startswith("+") else 9)


def _walk(value: Any, key: str | None, hide: bool) -> Any:
    hide = hide or key in _SPOKEN
    if isinstance(value, dict):
        return {
            k: _walk(v, k, hide or (key == "function" and k == "arguments"))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_walk(item, None, hide) for item in value]
    if isinstance(value, str):
        if _looks_like_phone(value):
            return _phone(value)
        if key == "id":  # call ids made from a phone number exist: the log's rule applies
            return masked(value)
        if key == "arguments":  # OpenAI-style engines send the arguments as a JSON string
            return _masked_json_arguments(value)
        if hide or key == "content":
            return _hidden(value)
    elif hide and isinstance(value, int | float) and not isinstance(value, bool):
        return "[hidden number]"
    return value


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
