"""A transcript's turns: a number the caller spells over several turns is one number.

Callers pause: "my card is four one one one" ... "mm-hm" ... "one one one one, ...". The
caller's turns that follow each other closely are read as one text, so the checks see the
whole number, and what is found maps back to the words of each turn that held a part.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .detect import Found, find

__all__ = ["Turn", "find_turns", "redact_turns"]


@dataclass(frozen=True, slots=True)
class Turn:
    """One turn of a transcript.

    Attributes:
        role: who spoke (the platform's ``role``: ``"user"`` is the caller).
        text: what was said.
        seconds: when the turn started, in seconds from any fixed point; ``None`` if unknown.
    """

    role: str
    text: str
    seconds: float | None = None


def find_turns(
    turns: Sequence[Turn],
    *,
    languages: Sequence[str] = ("en",),
    window_seconds: float = 10.0,
    caller_roles: Sequence[str] = ("user",),
) -> list[list[Found]]:
    """The personal items of each turn, offsets into that turn's ``text``.

    A caller's turn is read together with the caller's previous turn when it started at
    most ``window_seconds`` after it or, when a start time is unknown, when at most one other
    turn (the assistant's "go on") came between them. Other roles' turns are read alone.

    Examples:
        >>> turns = [Turn("user", "it is four one one one one one one one"),
        ...          Turn("assistant", "go on"), Turn("user", "one one one one one one one one")]
        >>> [[item.kind for item in found] for found in find_turns(turns)]
        [['card'], [], ['card']]
    """
    found: list[list[Found]] = [[] for _ in turns]
    for group in _groups(turns, window_seconds, caller_roles):
        offsets = []
        position = 0
        for index in group:
            offsets.append(position)
            position += len(turns[index].text) + 1
        joined = " ".join(turns[index].text for index in group)
        for item in find(joined, languages=languages):
            for index, offset in zip(group, offsets, strict=True):
                start = max(item.start, offset) - offset
                end = min(item.end, offset + len(turns[index].text)) - offset
                if start < end:
                    found[index].append(Found(item.kind, start, end))
    return found


def redact_turns(
    turns: Sequence[Turn],
    *,
    languages: Sequence[str] = ("en",),
    window_seconds: float = 10.0,
    caller_roles: Sequence[str] = ("user",),
) -> list[str]:
    """Each turn's text with its personal items replaced by their kinds (see ``redact``).

    Examples:
        >>> redact_turns([Turn("user", "mijn nummer is nul zes vijf vijf"),
        ...               Turn("user", "nul een acht drie vier twee")], languages=["nl"])
        ['mijn nummer is [phone]', '[phone]']
    """
    texts = []
    found = find_turns(
        turns, languages=languages, window_seconds=window_seconds, caller_roles=caller_roles
    )
    for turn, items in zip(turns, found, strict=True):
        pieces: list[str] = []
        position = 0
        for item in items:
            pieces += (turn.text[position : item.start], f"[{item.kind}]")
            position = item.end
        pieces.append(turn.text[position:])
        texts.append("".join(pieces))
    return texts


def _groups(
    turns: Sequence[Turn], window_seconds: float, caller_roles: Sequence[str]
) -> list[list[int]]:
    groups: list[list[int]] = []
    caller: list[int] = []  # the group of the caller's previous turn
    for index, turn in enumerate(turns):
        if turn.role not in caller_roles:
            groups.append([index])
        elif caller and _close(turns[caller[-1]], turn, index - caller[-1], window_seconds):
            caller.append(index)
        else:
            caller = [index]
            groups.append(caller)
    return groups


def _close(previous: Turn, turn: Turn, distance: int, window_seconds: float) -> bool:
    if previous.seconds is not None and turn.seconds is not None:
        return 0 <= turn.seconds - previous.seconds <= window_seconds
    return distance <= 2
