"""``redact_json``: personal data in a decoded JSON document, such as a webhook's body.

Every string is redacted where it stands (a summary, an analysis value, a status update's
``error``, metadata, a call id made from a phone number), except a list of turns: a list
whose items are objects with a ``role`` is read as a transcript with ``redact_turns``, so
a number the caller spells over several turns is found. A turn's text is its ``content``
(a string, or a list of parts with a ``text``) or its ``message``. A JSON number is kept:
numbers in a body are counts, durations and timestamps (the inspector masks the few that
are phone numbers for display, ``voicehooks.dev.inspector.masking``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from .detect import redact
from .turns import Turn, redact_turns

__all__ = ["redact_body", "redact_json"]

_TEXT_KEYS = ("content", "message")


def redact_json(value: Any, *, languages: Sequence[str] = ("en",)) -> Any:
    """A copy of ``value`` (decoded JSON) with the personal items of its strings replaced by
    their kinds, and transcripts read turn by turn together.

    Examples:
        >>> redact_json({"summary": "Card 4111 1111 1111 1111", "duration": 42,
        ...              "messages": [{"role": "user", "content": "nul zes vijf vijf"},
        ...                           {"role": "user", "content": "nul een acht drie vier twee"}]},
        ...             languages=["nl"])  # doctest: +NORMALIZE_WHITESPACE
        {'summary': 'Card [card]', 'duration': 42,
         'messages': [{'role': 'user', 'content': '[phone]'},
                      {'role': 'user', 'content': '[phone]'}]}
    """
    return _walk(value, tuple(languages))


def redact_body(body: bytes, *, languages: Sequence[str] = ("en",)) -> bytes:
    """A JSON body with ``redact_json`` applied; a body that is not JSON is redacted as text."""
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return redact(body.decode("utf-8", "replace"), languages=languages).encode()
    return msgspec.json.encode(_walk(decoded, tuple(languages)))


def _walk(value: Any, languages: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        return redact(value, languages=languages) if value else value
    if isinstance(value, dict):
        return {key: _walk(item, languages) for key, item in value.items()}
    if isinstance(value, list):
        if value and all(isinstance(item, dict) and "role" in item for item in value):
            return _transcript(value, languages)
        return [_walk(item, languages) for item in value]
    return value


def _transcript(turns: list[dict[str, Any]], languages: tuple[str, ...]) -> list[Any]:
    """The turns with their texts redacted together, and every other field on its own."""
    places: list[tuple[int, str, int | None]] = []  # (turn, key, index of the part or None)
    read: list[Turn] = []
    for index, turn in enumerate(turns):
        role = turn.get("role")
        seconds = _seconds(turn)
        for key in _TEXT_KEYS:
            text = turn.get(key)
            if isinstance(text, str) and text:
                places.append((index, key, None))
                read.append(Turn(str(role), text, seconds))
            elif isinstance(text, list):
                for part_index, part in enumerate(text):
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        places.append((index, key, part_index))
                        read.append(Turn(str(role), part["text"], seconds))
    texts = redact_turns(read, languages=languages)
    copies = [
        {key: item if key in _TEXT_KEYS and _is_text(item) else _walk(item, languages)
         for key, item in turn.items()}
        for turn in turns
    ]  # fmt: skip
    for (index, key, part), text in zip(places, texts, strict=True):
        if part is None:
            copies[index][key] = text
        else:
            parts = copies[index][key] = list(copies[index][key])
            parts[part] = {**parts[part], "text": text}
    for copy in copies:  # parts that are not text (an image, a tool call) on their own
        for key in _TEXT_KEYS:
            if isinstance(copy.get(key), list):
                copy[key] = [
                    part if isinstance(part, dict) and isinstance(part.get("text"), str)
                    else _walk(part, languages)
                    for part in copy[key]
                ]  # fmt: skip
    return copies


def _is_text(value: Any) -> bool:
    return isinstance(value, str | list)


def _seconds(turn: dict[str, Any]) -> float | None:
    for key in ("seconds_from_start", "secondsFromStart"):
        value = turn.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None
