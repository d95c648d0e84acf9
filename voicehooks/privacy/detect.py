"""``find`` and ``redact``: personal data in one text, written or spoken.

How each kind is found (the checks are in ``checks`` and ``phones``):

* ``card``: 13-19 digits of one run, an issuer's first digit and the Luhn check;
* ``iban``: a run of letters and digits with a known country's length and mod-97;
* ``national_id``: 9 digits passing the Dutch BSN's 11-test; a US SSN written
  ``123-45-6789``, or 9 digits of its format after "social security" or "ssn";
* ``phone``: 8 or more digits of one run that are a valid number (``phones``);
* ``email``: an address, written or spoken ("jan dot de vries at example dot nl");
* ``birth_date``, ``card_code``, ``card_expiry``: a date, a 3-4 digit code or an expiry
  only right after one of their context words ("born on", "security code", "expires").

Within a run the longest stretch that is a card, an id or a phone wins, from the left. What
no check accepts stays: an order number, a time, a price, a quantity, a date or a year.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from . import checks, phones
from .emails import emails, emails_at
from .found import KINDS, Found, Kind
from .languages import Lexicon, lexicon, word_set
from .prefilter import lower, places
from .scan import BREAK, Run, Token, Unit, role, run_start, runs, tokens, tokens_after

__all__ = ["KINDS", "Found", "Kind", "find", "redact"]


def find(text: str, *, languages: Sequence[str] = ("en",)) -> list[Found]:
    """The personal items in ``text``, in order, none overlapping.

    Args:
        text: written or transcribed speech.
        languages: the codes of the language tables to read spoken numbers and context
            words with (``"en"``, ``"nl"``, or one added with ``add_language``).

    Examples:
        >>> text = "Card 4111 1111 1111 1111, order WO-2291"
        >>> [(item.kind, text[item.start:item.end]) for item in find(text)]
        [('card', '4111 1111 1111 1111')]
    """
    return _find(text, lexicon(tuple(languages)))


def _find(text: str, words: Lexicon, *, everywhere: bool = False) -> list[Found]:
    """``find`` with the languages' tables; ``everywhere``: read every token of the text.

    Reading every token is the plain way, and slow; usually only the places ``prefilter`` finds
    are read, with the same result (``tests/privacy/test_prefilter.py``).
    """
    lowered = lower(text)
    spots = None if everywhere else places(text, lowered, words)
    if spots is None:
        found_tokens = tokens(text)
        found_runs = runs(found_tokens, words)
        # The context kinds first: a date after "born on" is a date of birth, whatever else it is.
        items = _in_context(found_tokens, found_runs, lowered, words)
        items += _in_runs(text, found_runs, lowered, words)
        items += _written_ssns(text, 0, len(text))
        if "@" in text or any(token.text.lower() in words.at for token in found_tokens):
            items += emails(found_tokens, words)
        return _without_overlaps(items)
    items = _in_context_near(text, lowered, words, spots.phrases, spots.reach)
    items += _in_runs(text, spots.runs, lowered, words)
    for start in spots.ssns:
        items += _written_ssns(text, start, start + 11)
    items += emails_at(text, spots.mail, words)
    return _without_overlaps(items)


def redact(text: str, *, languages: Sequence[str] = ("en",)) -> str:
    """``text`` with each personal item replaced by its kind in brackets.

    The placeholders are ``[card]``, ``[iban]``, ``[phone]``, ``[email]``,
    ``[national_id]``, ``[birth_date]``, ``[card_code]`` and ``[card_expiry]``.

    Examples:
        >>> redact("my number is four one five, two three nine, oh one double eight")
        'my number is [phone]'
        >>> redact("IBAN NL91 ABNA 0417 1643 00 for order WO-2291 at 9:30, 49.95 euros")
        'IBAN [iban] for order WO-2291 at 9:30, 49.95 euros'
        >>> redact("mail jan punt de vries apenstaartje voorbeeld punt nl", languages=["nl"])
        'mail [email]'
    """
    pieces: list[str] = []
    position = 0
    for item in find(text, languages=languages):
        pieces += (text[position : item.start], f"[{item.kind}]")
        position = item.end
    pieces.append(text[position:])
    return "".join(pieces)


def _without_overlaps(items: list[Found]) -> list[Found]:
    """The earliest of overlapping items, the longest of those starting together."""
    kept: list[Found] = []
    for item in sorted(items, key=lambda item: (item.start, -item.end)):
        if not kept or item.start >= kept[-1].end:
            kept.append(item)
    return kept


# --- cards, IBANs, ids and phones: checks over the runs ---------------------------------------

_CONTEXT_CHARACTERS: Final = 40  # how far before a number its context word may end


def _in_runs(text: str, found_runs: list[Run], lowered: str, words: Lexicon) -> list[Found]:
    items: list[Found] = []
    for run in found_runs:
        if any(unit.letters for unit in run.units):
            items += _ibans(run.units)
        for stretch in run.digit_runs():
            before = _unit_before(run, stretch[0])
            if before is not None and not text[before.end : stretch[0].start].isspace():
                continue  # the number of a code: WO-2291, INV-2020-33636
            if sum(len(unit.chars) for unit in stretch) >= 8:
                hyphens = "-" in text[stretch[0].start : stretch[-1].end]
                items += _numbers(stretch, hyphens, lowered, words)
    return items


def _unit_before(run: Run, unit: Unit) -> Unit | None:
    index = run.units.index(unit)
    return run.units[index - 1] if index else None


def _ibans(units: tuple[Unit, ...]) -> list[Found]:
    items: list[Found] = []
    for first, unit in enumerate(units):
        if not (unit.letters and unit.chars[:2].isalpha()):
            continue
        characters = ""
        length: int | None = None  # the country's: no other length passes
        for last in range(first, len(units)):
            characters += units[last].chars
            if length is None and len(characters) >= 2:
                length = checks.IBAN_LENGTHS.get(characters[:2], 0)
            if length is not None and len(characters) > length:
                break
            if len(characters) == length and checks.is_iban(characters):
                items.append(Found("iban", unit.start, units[last].end))
                break
    return items


def _numbers(stretch: tuple[Unit, ...], hyphens: bool, lowered: str, words: Lexicon) -> list[Found]:
    """Cards, ids and phones in a stretch of digits, the longest from the left.

    Written digits are one number: ``3081 9316 7013 3421`` is a reference that fails Luhn,
    not a phone number in its middle. Spoken ones may have neighbours: "een" is also "a".
    """
    if all(unit.written for unit in stretch):
        digits = "".join(unit.chars for unit in stretch)
        kind = _kind(digits, stretch[0], not hyphens, lowered, words)
        return [] if kind is None else [Found(kind, stretch[0].start, stretch[-1].end)]
    items: list[Found] = []
    first = 0
    while first < len(stretch):
        ends = []
        digits = ""
        for last in range(first, len(stretch)):
            digits += stretch[last].chars
            if len(digits) > 19:
                break
            if len(digits) >= 8:  # shorter is no card, id or phone number
                ends.append((last, digits))
        for last, digits in reversed(ends):  # the longest first
            kind = _kind(digits, stretch[first], last == len(stretch) - 1, lowered, words)
            if kind is not None:
                items.append(Found(kind, stretch[first].start, stretch[last].end))
                first = last
                break
        first += 1
    return items


def _kind(digits: str, first: Unit, closes: bool, lowered: str, words: Lexicon) -> Kind | None:
    if len(digits) >= 13 and checks.is_card(digits):
        return "card"
    # An id ends its run (the first 9 digits of a longer number pass the 11-test one time in
    # 11) and is not written with hyphens (2023-95960 is an invoice).
    if len(digits) == 9 and not first.plus and closes:
        if checks.is_bsn(digits):
            return "national_id"
        if checks.is_ssn(digits) and _after(lowered, first.start, words.national_id):
            return "national_id"
    if phones.is_phone(digits, plus=first.plus, regions=words.regions):
        return "phone"
    return None


def _after(lowered: str, position: int, phrases: tuple[str, ...]) -> bool:
    """Whether one of ``phrases`` ends in the few characters before ``position``."""
    before = lowered[max(0, position - _CONTEXT_CHARACTERS) : position]
    return _phrases(phrases).search(before) is not None


@lru_cache(maxsize=64)
def _phrases(phrases: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(phrase) for phrase in sorted(phrases, key=len, reverse=True))
    return re.compile(rf"(?<![^\W_])(?:{alternatives})(?![^\W_])")


_SSN: Final = re.compile(r"(?<![\d-])(\d{3})-(\d{2})-(\d{4})(?![\d-])")


def _written_ssns(text: str, start: int, end: int) -> list[Found]:
    """The SSNs written ``123-45-6789`` in ``text[start:end]``, with what comes right after."""
    return [
        Found("national_id", match.start(), match.end())
        for match in _SSN.finditer(text, start, end + 1)
        if checks.is_ssn("".join(match.groups()))
    ]


# --- dates of birth, card codes and expiry dates: only after their context words ----------------

_SKIPPED: Final = word_set(
    "on the is was in at of date my : op de het is was in van mijn"
)  # fmt: skip
_MONTHS: Final = word_set(
    "january february march april may june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec januari februari maart mei juni juli "
    "augustus oktober mrt okt"
)


def _in_context(
    found_tokens: list[Token], found_runs: list[Run], lowered: str, words: Lexicon
) -> list[Found]:
    """The dates of birth, card codes and expiry dates in a whole text."""
    items: list[Found] = []
    stretches = [stretch for run in found_runs for stretch in run.digit_runs()]
    starts = _Starts([token.start for token in found_tokens], [s[0].start for s in stretches])
    for kind, phrases in _context_phrases(words):
        for match in _phrases(phrases).finditer(lowered):
            found = _after_context(kind, match.end(), found_tokens, stretches, starts)
            if found is not None:
                items.append(found)
    return items


def _in_context_near(
    text: str, lowered: str, words: Lexicon, windows: list[tuple[int, int]], reach: int
) -> list[Found]:
    """``_in_context`` reading only ``windows``: every phrase match starts in one, and ends at
    most ``reach`` characters after it (``prefilter``)."""
    items: list[Found] = []
    backwards = ""
    for kind, phrases in _context_phrases(words):
        pattern = _phrases(phrases)
        for start, stop in windows:
            # Past ``stop`` only as far as a match from before it can reach: whatever the
            # search finds further (a phrase cut off by that end) starts after ``stop``.
            for match in pattern.finditer(lowered, start, stop + reach + 1):
                if match.start() >= stop:
                    break
                backwards = backwards or text[::-1]
                end = match.end()
                found_tokens = _tokens_near(text, backwards, end, words)
                stretches = [s for run in runs(found_tokens, words) for s in run.digit_runs()]
                starts = _Starts([t.start for t in found_tokens], [s[0].start for s in stretches])
                found = _after_context(kind, end, found_tokens, stretches, starts)
                if found is not None:
                    items.append(found)
    return items


def _context_phrases(words: Lexicon) -> tuple[tuple[Kind, tuple[str, ...]], ...]:
    return (
        ("birth_date", words.birth_date),
        ("card_code", words.card_code),
        ("card_expiry", words.card_expiry),
    )


def _tokens_near(text: str, backwards: str, end: int, words: Lexicon) -> list[Token]:
    """The tokens ``_after_context`` reads after a phrase ending at ``end``, in whole runs.

    Those of the run that holds the phrase's end, and the ones after it up to the first that
    ends a run beyond the context's reach.
    """
    found = tokens(text, run_start(text, backwards, end, words), end)
    for token in tokens_after(text, end):
        if (
            token.start > end + _CONTEXT_CHARACTERS
            and role(token.text, token.text.lower(), words) == BREAK
        ):
            break
        found.append(token)
    return found


@dataclass(frozen=True, slots=True)
class _Starts:
    """Where the tokens and the digit stretches start, to find those after a context word."""

    tokens: list[int]
    stretches: list[int]


def _after_context(
    kind: str,
    end: int,
    found_tokens: list[Token],
    stretches: list[tuple[Unit, ...]],
    starts: _Starts,
) -> Found | None:
    """The value a context word ending at ``end`` introduces, if a number close after is one."""
    first = next(
        (
            token
            for token in found_tokens[bisect_left(starts.tokens, end) :]
            if token.text.lower() not in _SKIPPED
        ),
        None,
    )
    near = stretches[
        bisect_left(starts.stretches, end) : bisect_right(
            starts.stretches, end + _CONTEXT_CHARACTERS
        )
    ]
    if first is None or not near:
        return None
    if kind == "card_code":  # the very next number, of 3 or 4 digits
        digits = "".join(unit.chars for unit in near[0])
        if len(digits) in (3, 4) and first.start == near[0][0].start:
            return Found("card_code", near[0][0].start, near[0][-1].end)
        return None
    for stretch in near:
        digits = "".join(unit.chars for unit in stretch)
        between = first.start < stretch[0].start  # words between: "12 March", "the 12th of"
        if kind == "card_expiry":
            month_named = any(
                token.text.lower() in _MONTHS
                for token in found_tokens[
                    bisect_left(starts.tokens, first.start) : bisect_left(
                        starts.tokens, stretch[0].start
                    )
                ]
            )
            if (month_named and len(digits) in (2, 4)) or (
                not between and len(digits) in (4, 6) and 1 <= int(digits[:2]) <= 12
            ):
                return Found("card_expiry", first.start, stretch[-1].end)
        elif len(digits) >= 4 and digits[-4:-2] in ("19", "20") and (between or len(digits) >= 6):
            return Found("birth_date", first.start, stretch[-1].end)
    return None
