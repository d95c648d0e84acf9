"""Where personal data can be in a text: the few places the checks must read.

Reading every token of a 30 KB transcript in Python costs milliseconds, and almost every
token is an ordinary word. :func:`places` finds, mostly in C, where the checks in ``detect``
can find something:

* the runs (``scan``) that hold a digit or a number word and are long enough to be a card,
  an IBAN, an id or a phone number: digits by translating the text's bytes and
  ``bytes.find``, number words by one regular expression, each grown to its whole run;
* every "@", and each spoken "at" that a domain can follow (a word, then a dot or another
  joining word: ``jan at example dot com``);
* the context phrases ("security code", "geboren"), each by its longest stretch of words
  that holds no number word and no "at" (the search finds those as themselves).

Both searches read a *view* of the text: lower-cased, one byte per character (Latin-1; a
character beyond it becomes ``0`` if it is a digit, ``ª`` if it is a letter), and every
character that is no letter or digit (``[^\\W_]``) a space. The view's words are the text's
word tokens, at the same offsets. What the checks would find anywhere is in a place found here;
``tests/privacy/test_prefilter.py`` compares ``find`` with reading every token. A text the view
cannot stand for (its lower case has another length, like ``İ``), or languages whose words
it cannot hold, are read whole: :func:`places` returns ``None``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, TypeAlias

from . import scan
from .languages import Lexicon

__all__ = ["Places", "lower", "places"]

_NUMBER, _AT, _PHRASE = 1, 2, 4  # what a word of the view starts (several bits: several things)
_WORD: Final = re.compile(r"[^\W_]+")
_Node: TypeAlias = "dict[str, _Node]"  # a trie: a character -> what may follow; "": a word ends


@dataclass(frozen=True, slots=True)
class Places:
    """Where ``detect`` reads: text offsets, in order.

    Attributes:
        runs: each run worth its checks (with 8 characters or more), whole.
        phrases: ``(start, stop)`` windows: every match of a context phrase starts in one,
            and ends at most ``reach`` characters after its ``stop``.
        reach: the length of the longest context phrase.
        ssns: where each ``123-45-6789`` starts (digits and hyphens, nothing of either around).
        mail: where an "@" or a spoken "at" that a domain can follow starts.
    """

    runs: list[scan.Run]
    phrases: list[tuple[int, int]]
    reach: int
    ssns: list[int]
    mail: list[int]


@dataclass(frozen=True, slots=True)
class _Tables:
    """What ``places`` needs of one set of languages, built once."""

    words: re.Pattern[bytes]  # number words, spoken "at"s and phrase words, in the view
    kinds: dict[bytes, int]  # a word the pattern matched -> what it starts
    domain: re.Pattern[str]  # what follows a spoken "at" that can be an address's
    alone_after: re.Pattern[str]  # from a token's end: no other token of its run follows
    alone_before: re.Pattern[str]  # the same, in the text reversed: none comes before
    reach: int  # the longest context phrase: how far from its word a phrase can end
    shortest: int  # a token alone in its run and shorter than this is no item (0: none is)


def places(text: str, lowered: str, words: Lexicon) -> Places | None:
    """The places in ``text`` worth reading, or ``None`` if only reading it all will do.

    Args:
        text: the text.
        lowered: ``text.lower()``.
        words: the languages' tables.
    """
    tables = _tables(words)
    if tables is None or len(lowered) != len(text):
        return None
    raw = _latin1(lowered)
    view = b" " + raw.translate(_VIEW) + b" "
    marks = b" " + raw.translate(_MARKS) + b" "
    seeds: list[tuple[int, int, bool]] = []  # start, end, a number word (or digits)
    phrases: list[tuple[int, int]] = []
    mail: list[int] = []
    for match in tables.words.finditer(view):
        start, end = match.start(), match.end() - 1  # the view has a space in front
        kind = tables.kinds[match.group()[1:]]
        if kind & _NUMBER:
            seeds.append((start, end, True))
        if kind & _AT and tables.domain.match(lowered, end) is not None:
            mail.append(start)
        if kind & _PHRASE:
            phrases.append((max(0, start - tables.reach), end + tables.reach))
    seeds += _digits(view, marks)
    position = text.find("@")
    while position >= 0:
        mail.append(position)
        position = text.find("@", position + 1)
    mail.sort()
    runs = _runs(text, seeds, words, tables)
    return Places(runs, _merged(phrases), tables.reach, _ssns(marks), mail)


def _runs(
    text: str, seeds: list[tuple[int, int, bool]], words: Lexicon, tables: _Tables
) -> list[scan.Run]:
    """The runs around ``seeds`` (number words, tokens with digits) long enough to check."""
    found: list[scan.Run] = []
    backwards = ""
    covered = 0
    for start, end, number in sorted(seeds):
        if start < covered:
            continue  # in the run of an earlier seed
        if not number:
            token = text[start:end]
            if scan.role(token, token.lower(), words) == scan.BREAK:
                continue  # digits in a word that is none ("9é")
        backwards = backwards or text[::-1]
        if (
            end - start < tables.shortest
            and tables.alone_after.match(text, end) is not None
            and tables.alone_before.match(backwards, len(text) - start) is not None
        ):
            continue  # "een moment": a run of one short number
        for run in scan.run_around(text, backwards, start, end, words):
            covered = run.units[-1].end
            if sum(len(unit.chars) for unit in run.units) >= 8:  # a phone number's least
                found.append(run)
    return found


def _digits(view: bytes, marks: bytes) -> list[tuple[int, int, bool]]:
    """The text spans of the tokens that hold a digit (view offsets less its first space)."""
    found = []
    position = marks.find(b"0")
    while position >= 0:
        start = view.rfind(b" ", 0, position)  # the token's start, less one
        end = view.find(b" ", position)
        found.append((start, end - 1, False))
        position = marks.find(b"0", end)
    return found


def _ssns(marks: bytes) -> list[int]:
    """Where ``ddd-dd-dddd`` stands between characters that are neither a digit nor ``-``."""
    found = []
    position = marks.find(b"000-00-0000")
    while position >= 0:
        if marks[position - 1] == marks[position + 11] == 32:
            found.append(position - 1)
        position = marks.find(b"000-00-0000", position + 1)
    return found


def _merged(windows: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in windows:  # in order of start already
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


# --- the view --------------------------------------------------------------------------------

_OUTSIDE: Final = ord("ª")  # a letter beyond Latin-1, in the view
_LOWER: Final = bytes(ord(chr(byte).lower()) for byte in range(256))  # all one Latin-1 byte
_VIEW: Final = bytes(byte if chr(byte).isalnum() else 32 for byte in range(256))
# Digits as "0", hyphens as they are, the rest spaces: where the digits and SSNs are.
_MARKS: Final = bytes(
    48 if chr(byte).isdecimal() else byte if byte == 45 else 32 for byte in range(256)
)


def lower(text: str) -> str:
    """``text.lower()``; by a byte table when every character is Latin-1, where that is the
    same and ``str.lower`` is slow (it is fast for ASCII only)."""
    if text.isascii():
        return text.lower()
    try:
        encoded = text.encode("latin-1")
    except UnicodeEncodeError:
        return text.lower()
    return encoded.translate(_LOWER).decode("latin-1")


def _latin1(lowered: str) -> bytes:
    try:
        return lowered.encode("latin-1")
    except UnicodeEncodeError:
        return _beyond_latin1(lowered)


def _beyond_latin1(lowered: str) -> bytes:
    """Latin-1 bytes for ``lowered``, each character beyond it a digit, a letter or a space."""
    raw = bytearray(lowered.encode("latin-1", "replace"))  # one "?" for each
    position = raw.find(b"?")
    while position >= 0:
        character = lowered[position]
        if character != "?":
            if character.isdecimal():
                raw[position] = 48
            elif character.isalnum():
                raw[position] = _OUTSIDE
        position = raw.find(b"?", position + 1)
    return bytes(raw)


# --- the tables --------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _tables(words: Lexicon) -> _Tables | None:
    """The search for ``words``, or ``None`` if a word cannot be found in the view.

    A word to find must be a word token (letters and digits) of Latin-1 characters.
    """
    kinds: dict[bytes, int] = {}
    for table, kind in ((words.numbers, _NUMBER), (words.at, _AT)):
        for word in table:
            if _WORD.fullmatch(word):
                encoded = _latin1_word(word)
                if encoded is None:
                    return None
                kinds[encoded] = kinds.get(encoded, 0) | kind
            elif len(word) == 1 and not word.isspace() and word != "@":
                return None  # a sign is a token too, but the view has no signs
    phrases = (*words.birth_date, *words.card_code, *words.card_expiry)
    for phrase in phrases:
        anchor = _anchor(phrase, kinds)
        if anchor is None:
            return None
        kinds[anchor] = kinds.get(anchor, 0) | _PHRASE
    joiners = sorted({*words.dot, *words.underscore, *words.dash}, key=len, reverse=True)
    in_runs = {*words.numbers, *words.repeats, *words.plus, *words.fillers}
    plain, backwards = _trie(sorted(in_runs)), _trie(sorted(word[::-1] for word in in_runs))
    signs = {"+", "(", *scan.SEPARATORS, *(word for word in in_runs if len(word) == 1)}
    over = r"(?:\s|[" + re.escape("".join(sorted(signs))) + r"])*+"
    return _Tables(
        words=re.compile(
            b" (?:" + _trie([k.decode("latin-1") for k in kinds]).encode("latin-1") + b")(?= )"
        ),
        kinds=kinds,
        # After the "@" of an address: a word, then a ".", "-" or "_" (or the word for one).
        domain=re.compile(
            r"\s*[^\W_]+(?![^\W_])\s*(?:[._-]|(?:"
            + "|".join(map(re.escape, joiners))
            + r")(?![^\W_]))"
        ),
        # Spaces and signs a run goes on over ("," "-"), then one that ends it (":") or a word
        # that does (letters, lower-case but the first, no word of the tables), or the end:
        # a token before that is alone in its run, as far as its right side goes.
        alone_after=re.compile(
            over + r"(?:(?![^\W_])|(?!(?i:" + plain + r")(?![^\W_]))[A-Za-z][a-z]++(?![^\W_]))"
        ),
        alone_before=re.compile(
            over
            + r"(?:(?![^\W_])|(?!(?i:"
            + backwards
            + r")(?![^\W_]))[a-z][a-z]*+[A-Z]?+(?![^\W_]))"
        ),
        reach=max(map(len, phrases), default=0),
        shortest=8 if _units_fit_tokens(words) else 0,
    )


def _latin1_word(word: str) -> bytes | None:
    try:
        return word.encode("latin-1")
    except UnicodeEncodeError:
        return None


def _anchor(phrase: str, kinds: dict[bytes, int]) -> bytes | None:
    """What the view holds wherever ``phrase`` is: its longest stretch of words without a
    number word or an "at" (the search finds those as themselves, one thing at each place)."""
    best: tuple[int, int] | None = None
    stretch: tuple[int, int] | None = None
    for match in _WORD.finditer(phrase):
        if kinds.get(_latin1_word(match.group()) or b"", 0) & (_NUMBER | _AT):
            stretch = None
            continue
        stretch = (stretch[0] if stretch else match.start(), match.end())
        if best is None or stretch[1] - stretch[0] > best[1] - best[0]:
            best = stretch
    if best is None:
        return None
    encoded = _latin1_word(phrase[best[0] : best[1]])
    return None if encoded is None else encoded.translate(_VIEW)


def _units_fit_tokens(words: Lexicon) -> bool:
    """Whether a token alone in its run makes no more characters of units than it has.

    True when no number word has more digits than letters, and no repeating word ("double")
    is a sign: a word next to a number keeps ``alone_before`` from matching, a sign would not.
    A lone token shorter than 8 characters is then no card, IBAN, id or phone number.
    """
    return all(len(digits) <= len(word) for word, digits in words.numbers.items()) and all(
        _WORD.fullmatch(word) for word in words.repeats
    )


def _trie(words: list[str]) -> str:
    """A regular expression for ``words`` that shares their prefixes: one try per place."""
    tree: _Node = {}
    for word in words:
        node = tree
        for character in word:
            node = node.setdefault(character, {})
        node[""] = {}

    def pattern(node: _Node) -> str:
        branches = [re.escape(key) + pattern(child) for key, child in node.items() if key]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return "(?:" + body + ")?" if "" in node else body

    return pattern(tree)
