"""E-mail addresses, written (``jan@example.nl``) or spoken (``jan at example dot nl``).

The tokens are copied with each spoken connector replaced by its character: ``jan dot de vries
at example dot nl`` reads ``jan.de vries@example.nl``. Each character of the copy knows the
token it came from, so an address found in the copy maps back to the words.

:func:`emails` reads the copy of a whole text; :func:`emails_at` only the copies of the text
around the places that can hold an address's "@" (``prefilter``), with the same result: a
match there is kept once nothing beyond the part read could change it (its characters and the
80 before it, for the mailbox ahead of a spoken "at", are all in the copy).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final, NamedTuple

from .found import Found
from .languages import Lexicon, word_set
from .scan import Token, tokens, tokens_after

__all__ = ["emails", "emails_at"]

_EMAIL: Final = re.compile(r"[^\W_][\w.+-]*@[^\W_](?:[\w-]*[^\W_])?(?:\.[^\W_](?:[\w-]*[^\W_])?)+")
_MAILBOX_REACH: Final = 80  # how far before an address its mailbox's first words may start
_MAILBOX_BEFORE: Final = re.compile(r"([^\W_]+(?:[._-][^\W_]+)*[._-][^\W_]+) $")
_OUTSIDE: Final = re.compile(r"[^\w.+@-]")  # no address holds one of these
_NO_MAILBOX: Final = re.compile(r"[^\w.-]")  # nor the mailbox words before one
_SPOKEN_DOMAINS: Final = word_set(
    "com nl org net io co uk de be eu fr info biz us ca au app dev me edu gov ai es it ch at se "
    "dk no pl nu email online shop"
)
_JOINING: Final = frozenset("@._-")  # no space between these and their neighbours
_DOMAIN: Final = re.compile(r"[^\W_](?:[\w-]*[^\W_])?(?:\.[^\W_](?:[\w-]*[^\W_])?)+")
# Text characters read before and after an "@" (more when an address reaches further).
_BEFORE: Final = 48
_AFTER: Final = 48


class _Copy(NamedTuple):
    text: str
    origin: list[Token]  # for each character of ``text``, the token it came from
    spoken_at: set[int]  # where in ``text`` a spoken "at" became "@"


def emails(found_tokens: list[Token], words: Lexicon) -> list[Found]:
    """The addresses in ``found_tokens``: every token of a text."""
    copy = _copy(found_tokens, words)
    return [item for match in _EMAIL.finditer(copy.text) if (item := _address(copy, match, words))]


def emails_at(text: str, places: list[int], words: Lexicon) -> list[Found]:
    """The addresses in ``text`` whose "@" is a token starting at one of ``places`` (in order).

    ``places`` holds every "@" and every spoken "at" that a domain can follow; places close
    together are read in one copy.
    """
    places = [place for place in places if text[place] == "@" or _spoken_domain(text, place, words)]
    items: list[Found] = []
    index = 0
    while index < len(places):
        first = last = places[index]
        index += 1
        while index < len(places) and places[index] - last < _AFTER:
            last = places[index]
            index += 1
        items += _around(text, first, last, words)
    return items


def _spoken_domain(text: str, place: int, words: Lexicon) -> bool:
    """Whether the spoken "at" starting at ``place`` is followed by a domain ``_address``
    keeps: its top level is one callers say (``dot com``), not ``at night. The``.

    An address's domain is all in the tokens after its "@" that the copy joins to it.
    """
    following = tokens_after(text, place)
    chain = [next(following)]
    joins = True  # the "at" becomes "@"
    for token in following:
        piece = _piece(token, words)
        token_joins = piece in _JOINING
        if chain[-1].end < token.start and not (joins or token_joins):
            break  # the copy has a space here: the domain ends before it
        chain.append(token)
        joins = token_joins
    domain = _DOMAIN.match(_copy(chain, words).text, 1)
    return domain is not None and domain.group().rsplit(".", 1)[-1].lower() in _SPOKEN_DOMAINS


def _around(text: str, first: int, last: int, words: Lexicon) -> list[Found]:
    """The addresses whose "@" starts between ``first`` and ``last``, from a copy around them."""
    before, after = _BEFORE, _AFTER
    while True:
        # Both ends at a space, so at token boundaries.
        start = text.rfind(" ", 0, max(0, first - before)) + 1
        end = text.find(" ", last + after)
        end = len(text) if end < 0 else end
        copy = _copy(tokens(text, start, end), words)
        items = _read(copy, first, last, start == 0, end == len(text), words)
        if items is not None:
            return items
        before, after = before * 4, after * 4  # the copy may end inside an address: read more


def _read(
    copy: _Copy, first: int, last: int, from_start: bool, to_end: bool, words: Lexicon
) -> list[Found] | None:
    """The addresses in ``copy`` whose "@" starts between ``first`` and ``last``, or ``None``
    if what decides them may lie beyond it: the run of address characters around each such
    "@" must end inside (or the copy start or end with the text's), and so must the part
    ``_MAILBOX_BEFORE`` reads."""
    text = copy.text
    at = text.find("@")
    while at >= 0:
        if first <= copy.origin[at].start <= last and not (
            (from_start or _OUTSIDE.search(text, 0, at) is not None)
            and (to_end or _OUTSIDE.search(text, at) is not None)
        ):
            return None
        at = text.find("@", at + 1)
    items: list[Found] = []
    for match in _EMAIL.finditer(text):
        if not first <= copy.origin[text.index("@", match.start())].start <= last:
            continue
        if not (from_start or _whole_before(text, match.start())):
            return None
        if item := _address(copy, match, words):
            items.append(item)
    return items


def _whole_before(copy: str, start: int) -> bool:
    """Whether a copy of part of a text holds all that the address ``_EMAIL`` found at
    ``start`` depends on before it: where its run of address characters starts, and what
    ``_MAILBOX_BEFORE`` would read (up to 80 characters, after a character of no mailbox)."""
    return _OUTSIDE.search(copy, 0, start) is not None and (
        start >= _MAILBOX_REACH
        or copy[start - 1] != " "
        or _NO_MAILBOX.search(copy, 0, start - 1) is not None
    )


def _copy(found_tokens: list[Token], words: Lexicon) -> _Copy:
    normal: list[str] = []
    origin: list[Token] = []
    spoken_at: set[int] = set()
    previous: Token | None = None
    previous_joins = False
    connectors = _connectors(words)
    for token in found_tokens:
        piece = connectors.get(token.text.lower(), token.text)
        if piece == "@" and token.text.lower() in words.at:
            spoken_at.add(len(normal))
        joins = piece in _JOINING
        if previous is not None and previous.end < token.start and not (joins or previous_joins):
            normal.append(" ")
            origin.append(previous)
        normal += piece
        origin += [token] * len(piece)
        previous, previous_joins = token, joins
    return _Copy("".join(normal), origin, spoken_at)


def _piece(token: Token, words: Lexicon) -> str:
    """What ``token`` is in the copy: itself, or the character a spoken connector stands for."""
    return _connectors(words).get(token.text.lower(), token.text)


@lru_cache(maxsize=32)
def _connectors(words: Lexicon) -> dict[str, str]:
    """Each spoken connector and its character; a word that is two is an "at" first."""
    pieces = dict.fromkeys(words.dash, "-") | dict.fromkeys(words.underscore, "_")
    return pieces | dict.fromkeys(words.dot, ".") | dict.fromkeys(words.at, "@")


def _address(copy: _Copy, match: re.Match[str], words: Lexicon) -> Found | None:
    """The address ``match`` found in ``copy``, with the mailbox words before it, if it is one.

    A spoken "at" makes an address only before a known top-level domain and after a word that
    can be a mailbox (``work at example dot com`` is a workplace).
    """
    start, at = match.start(), copy.text.index("@", match.start())
    if at in copy.spoken_at:
        mailbox_word = re.split(r"[._-]", copy.text[start:at])[-1].lower()
        top_level = match.group().rsplit(".", 1)[-1].lower()
        if mailbox_word in words.not_mailbox or top_level not in _SPOKEN_DOMAINS:
            return None
    before = _MAILBOX_BEFORE.search(copy.text, max(0, start - _MAILBOX_REACH), start)
    if before is not None and before.group(1).split(".")[0].lower() not in words.not_mailbox:
        start = before.start(1)
    return Found("email", copy.origin[start].start, copy.origin[match.end() - 1].end)
