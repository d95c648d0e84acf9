"""Reading a text the way it was spoken: tokens, and the runs of digits and letters in them.

A caller says ``oh six, double five, oh one eight three four two``; a transcriber writes
``06 55 01 83 42`` or ``0655018342``. All three are the same run: units (a group of digits,
a number word, a spelled letter) that only separators (spaces, ``-``, ``.``, ``(``, ``)``,
``/``, ``,``) and hesitations (``uh``) keep apart. Each unit remembers where in the text it
came from, so whatever a check finds in the run's characters maps back to the words that
held them. A time (``9:30``) is two runs: a colon ends one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from .languages import Lexicon

__all__ = ["Run", "Token", "Unit", "runs", "tokens"]

_TOKEN: Final = re.compile(r"[^\W_]+|\S")
_SEPARATORS: Final = frozenset("-.()/,")


@dataclass(frozen=True, slots=True)
class Token:
    """A run of letters or digits, or one other visible character, and where it is."""

    text: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Unit:
    """Characters of a run (digits, or upper-case letters and digits) and their source span."""

    chars: str
    start: int
    end: int
    letters: bool  # a spelled letter or a token with letters: never part of a digit run
    plus: bool = False  # a "+" or "plus" came right before it
    tens: bool = False  # a tens word ("twenty"): a unit word after it joins it
    written: bool = False  # digits as digits, not words


@dataclass(frozen=True, slots=True)
class Run:
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


def tokens(text: str) -> list[Token]:
    """The tokens of ``text``."""
    return [Token(match.group(), match.start(), match.end()) for match in _TOKEN.finditer(text)]


def runs(found_tokens: list[Token], lexicon: Lexicon) -> list[Run]:
    """The runs of ``found_tokens``: each maximal stretch of units and separators."""
    result: list[Run] = []
    units: list[Unit] = []
    repeat = 1
    plus = False
    lead: int | None = None  # where a "+" or "(" right before the next unit starts
    for token in found_tokens:
        text = token.text
        lowered = text.lower()
        start = token.start if lead is None else lead
        if text.isdigit():
            units.append(Unit(text * repeat, start, token.end, False, plus, written=True))
        elif lowered in lexicon.numbers:
            digits = lexicon.numbers[lowered]
            previous = units[-1] if units else None
            if previous is not None and previous.tens and len(digits) == 1 and digits != "0":
                # "twenty one" is 21, one number, not "201"
                units[-1] = Unit(previous.chars[0] + digits, previous.start, token.end, False,
                                 previous.plus)  # fmt: skip
            else:
                tens = len(digits) == 2 and digits.endswith("0") and digits != "10"
                units.append(Unit(digits * repeat, start, token.end, False, plus, tens))
        elif lowered in lexicon.repeats:
            repeat = lexicon.repeats[lowered]
            lead = start
            continue
        elif text == "+" or lowered in lexicon.plus:
            plus = True
            lead = start
            continue
        elif text == "(":
            lead = start
            continue
        elif text in _SEPARATORS or lowered in lexicon.fillers:
            continue
        elif text.isascii() and text.isalnum() and (len(text) == 1 or _spelled(text)):
            units.append(Unit(text.upper(), token.start, token.end, True))
        else:
            if units:
                result.append(Run(tuple(units)))
            units = []
        repeat, plus, lead = 1, False, None
    if units:
        result.append(Run(tuple(units)))
    return result


def _spelled(text: str) -> bool:
    """Upper-case letters (a bank code, ``ABNA``) or letters and digits (``NL91``)."""
    return (text.isupper() and len(text) <= 4) or not (text.isalpha() or text.isdigit())
