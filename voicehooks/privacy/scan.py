"""Reading a text the way it was spoken: tokens, and the runs of digits and letters in them.

A caller says ``oh six, double five, oh one eight three four two``; a transcriber writes
``06 55 01 83 42`` or ``0655018342``. All three are the same run: units (a group of digits,
a number word, a spelled letter) that only separators (spaces, ``-``, ``.``, ``(``, ``)``,
``/``, ``,``) and hesitations (``uh``) keep apart. Each unit remembers where in the text it
came from, so whatever a check finds in the run's characters maps back to the words that
held them. A time (``9:30``) is two runs: a colon ends one.

Every token has one :func:`role`; only a ``BREAK`` ends a run, so a run can be read on its own
from the token after one ``BREAK`` to the token before the next (:func:`run_around` finds
those edges without reading the rest of the text).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final, NamedTuple

from .languages import Lexicon

__all__ = [
    "BREAK",
    "SEPARATORS",
    "Run",
    "Token",
    "Unit",
    "role",
    "run_around",
    "run_start",
    "runs",
    "tokens",
    "tokens_after",
]

_TOKEN: Final = re.compile(r"[^\W_]+|\S")
_NEXT_TOKEN: Final = re.compile(r"\s*([^\W_]+|\S)")  # also the previous one, in the text reversed
SEPARATORS: Final = frozenset("-.()/,")  # signs a run goes on over

# What a token does in a run (see ``runs``).
DIGITS, NUMBER, REPEAT, PLUS, OPEN, SEPARATOR, LETTERS, BREAK = range(8)


class Token(NamedTuple):
    """A run of letters or digits, or one other visible character, and where it is."""

    text: str
    start: int
    end: int


class Unit(NamedTuple):
    """Characters of a run (digits, or upper-case letters and digits) and their source span."""

    chars: str
    start: int
    end: int
    letters: bool  # a spelled letter or a token with letters: never part of a digit run
    plus: bool = False  # a "+" or "plus" came right before it
    tens: bool = False  # a tens word ("twenty"): a unit word after it joins it
    written: bool = False  # digits as digits, not words


class Run(NamedTuple):
    """Units only separators keep apart."""

    units: tuple[Unit, ...]

    def digit_runs(self) -> list[tuple[Unit, ...]]:
        """The stretches of this run without letters."""
        stretches: list[tuple[Unit, ...]] = []
        current: list[Unit] = []
        for unit in self.units:
            if unit.letters:
                if current:
                    stretches.append(tuple(current))
                current = []
            else:
                current.append(unit)
        if current:
            stretches.append(tuple(current))
        return stretches


def tokens(text: str, start: int = 0, end: int | None = None) -> list[Token]:
    """The tokens of ``text[start:end]``; both ends must be token boundaries."""
    return [
        Token(match.group(), match.start(), match.end())
        for match in _TOKEN.finditer(text, start, len(text) if end is None else end)
    ]


def tokens_after(text: str, start: int) -> Iterator[Token]:
    """The tokens of ``text`` from ``start`` (a token boundary) on, one by one."""
    for match in _TOKEN.finditer(text, start):
        yield Token(match.group(), match.start(), match.end())


def role(text: str, lowered: str, lexicon: Lexicon) -> int:
    """What the token ``text`` (``lowered``: the same, lower-cased) does in a run."""
    if text.isdecimal():  # not isdigit(): "²" is no digit a check could read
        return DIGITS
    if lowered in lexicon.numbers:
        return NUMBER
    if lowered in lexicon.repeats:
        return REPEAT
    if text == "+" or lowered in lexicon.plus:
        return PLUS
    if text == "(":
        return OPEN
    if text in SEPARATORS or lowered in lexicon.fillers:
        return SEPARATOR
    if text.isascii() and text.isalnum() and (len(text) == 1 or _spelled(text)):
        return LETTERS
    return BREAK


def runs(found_tokens: list[Token], lexicon: Lexicon) -> list[Run]:
    """The runs of ``found_tokens``: each maximal stretch of units and separators."""
    read: list[_Read] = []
    for token in found_tokens:
        lowered = token.text.lower()
        read.append((token, lowered, role(token.text, lowered, lexicon)))
    return _runs(read, lexicon)


def run_around(text: str, backwards: str, start: int, end: int, lexicon: Lexicon) -> list[Run]:
    """The run that holds the tokens of ``text[start:end]`` (the runs, if one ends a run).

    The tokens before and after are read one by one up to one that ends a run (``BREAK``) or
    the text's end; ``backwards`` is ``text[::-1]``, to read the ones before.
    """
    read: list[_Read] = []  # the tokens before, nearest first
    size = len(text)
    position = start
    while (match := _NEXT_TOKEN.match(backwards, size - position)) is not None:
        token = match.group(1)[::-1]
        lowered = token.lower()
        kind = role(token, lowered, lexicon)
        if kind == BREAK:
            break
        position = size - match.end()
        read.append((Token(token, position, position + len(token)), lowered, kind))
    read.reverse()
    for token in tokens(text, start, end):
        lowered = token.text.lower()
        read.append((token, lowered, role(token.text, lowered, lexicon)))
    for match in _TOKEN.finditer(text, end):
        text_of = match.group()
        lowered = text_of.lower()
        kind = role(text_of, lowered, lexicon)
        if kind == BREAK:
            break
        read.append((Token(text_of, match.start(), match.end()), lowered, kind))
    return _runs(read, lexicon)


_Read = tuple[Token, str, int]  # a token, lower-cased, and its role


def _runs(found_tokens: list[_Read], lexicon: Lexicon) -> list[Run]:
    result: list[Run] = []
    units: list[Unit] = []
    repeat = 1
    plus = False
    lead: int | None = None  # where a "+" or "(" right before the next unit starts
    for token, lowered, kind in found_tokens:
        text = token.text
        start = token.start if lead is None else lead
        if kind == DIGITS:
            units.append(Unit(text * repeat, start, token.end, False, plus, written=True))
        elif kind == NUMBER:
            digits = lexicon.numbers[lowered]
            previous = units[-1] if units else None
            if previous is not None and previous.tens and len(digits) == 1 and digits != "0":
                # "twenty one" is 21, one number, not "201"
                units[-1] = Unit(previous.chars[0] + digits, previous.start, token.end, False,
                                 previous.plus)  # fmt: skip
            else:
                tens = len(digits) == 2 and digits.endswith("0") and digits != "10"
                units.append(Unit(digits * repeat, start, token.end, False, plus, tens))
        elif kind == REPEAT:
            repeat = lexicon.repeats[lowered]
            lead = start
            continue
        elif kind == PLUS:
            plus = True
            lead = start
            continue
        elif kind == OPEN:
            lead = start
            continue
        elif kind == SEPARATOR:
            continue
        elif kind == LETTERS:
            units.append(Unit(text.upper(), token.start, token.end, True))
        else:
            if units:
                result.append(Run(tuple(units)))
            units = []
        repeat, plus, lead = 1, False, None
    if units:
        result.append(Run(tuple(units)))
    return result


def run_start(text: str, backwards: str, position: int, lexicon: Lexicon) -> int:
    """Where the run the tokens right before ``position`` belong to starts (``run_around``)."""
    size = len(text)
    while (match := _NEXT_TOKEN.match(backwards, size - position)) is not None:
        token = match.group(1)[::-1]
        if role(token, token.lower(), lexicon) == BREAK:
            break
        position = size - match.end()
    return position


def _spelled(text: str) -> bool:
    """Upper-case letters (a bank code, ``ABNA``) or letters and digits (``NL91``)."""
    return (text.isupper() and len(text) <= 4) or not (text.isalpha() or text.isdigit())
