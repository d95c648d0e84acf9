"""The language tables: how callers say digits, e-mail addresses and the context words.

One small :class:`Language` per language; :func:`find` takes the codes of the ones to use.
English and Dutch are built in. Another is a table and one call::

    from voicehooks.privacy import ENGLISH, Language, add_language, number_words

    GERMAN = Language(
        code="de",
        numbers=number_words(
            ["null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"],
            teens=["zehn", "elf", "zwölf", "dreizehn", "vierzehn", "fünfzehn", "sechzehn",
                   "siebzehn", "achtzehn", "neunzehn"],
            tens=["zwanzig", "dreißig", "vierzig", "fünfzig", "sechzig", "siebzig", "achtzig",
                  "neunzig"],
            units_before_tens="und",  # einundzwanzig
        ) | {"ein": "1", "zwo": "2"},
        repeats={"doppel": 2, "doppelt": 2},
        at=frozenset({"at", "ät"}), dot=frozenset({"punkt"}),
        ...
        regions=("DE", "AT", "CH"),
    )
    add_language(GERMAN)

Words are matched lower-cased, one token at a time (a token is a run of letters or digits).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

__all__ = [
    "DUTCH",
    "ENGLISH",
    "Language",
    "Lexicon",
    "add_language",
    "lexicon",
    "number_words",
    "word_set",
]


@dataclass(frozen=True)
class Language:
    """How one language speaks what :func:`find` looks for.

    Attributes:
        code: the code callers pass in ``languages=`` (``"en"``).
        numbers: number word -> its digits: ``"oh"`` -> ``"0"``, ``"twenty"`` -> ``"20"``.
            A tens word followed by a unit word makes one number (``twenty one`` -> ``21``).
        repeats: a word that repeats the next digit: ``"double"`` -> 2.
        plus: the words for the ``+`` of an international number.
        fillers: hesitations skipped inside a run of digits (``uh``).
        at, dot, underscore, dash: the spoken parts of an e-mail address.
        not_mailbox: words that are no mailbox before a spoken "at" (``work at example dot
            com`` is a workplace, not an address).
        birth_date, card_code, card_expiry, national_id: the context words: a date, a
            3-4 digit code, an expiry or a 9-digit id is personal data only after one.
        regions: the phone regions (ISO 3166) where the language is spoken. A national
            number is tried in the regions of every added language, whichever languages a
            text is read in: a Dutch number said in English is still a phone number.
    """

    code: str
    numbers: Mapping[str, str]
    repeats: Mapping[str, int] = field(default_factory=dict)
    plus: frozenset[str] = frozenset({"plus"})
    fillers: frozenset[str] = frozenset()
    at: frozenset[str] = frozenset({"at"})
    dot: frozenset[str] = frozenset({"dot"})
    underscore: frozenset[str] = frozenset({"underscore"})
    dash: frozenset[str] = frozenset({"dash", "hyphen"})
    not_mailbox: frozenset[str] = frozenset()
    birth_date: tuple[str, ...] = ()
    card_code: tuple[str, ...] = ()
    card_expiry: tuple[str, ...] = ()
    national_id: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()


def word_set(text: str) -> frozenset[str]:
    """The words of ``text``, split at spaces: a table's sets, written as one string."""
    return frozenset(text.split())


def number_words(
    units: Sequence[str],
    *,
    teens: Sequence[str] = (),
    tens: Sequence[str] = (),
    units_before_tens: str = "",
) -> dict[str, str]:
    """The ``numbers`` table from the words for 0-9, 10-19 and 20, 30, ... 90.

    ``units_before_tens`` is the joiner of languages that write 21 as one word, unit first
    (Dutch ``eenentwintig``: ``"en"``; German ``einundzwanzig``: ``"und"``).

    Examples:
        >>> number_words(["nul", "een"], tens=["twintig"], units_before_tens="en")["eenentwintig"]
        '21'
    """
    table = {word: str(value) for value, word in enumerate(units)}
    table |= {word: str(10 + value) for value, word in enumerate(teens)}
    for ten, tens_word in enumerate(tens, start=2):
        table[tens_word] = f"{ten}0"
        if units_before_tens:
            for unit, unit_word in enumerate(units[1:], start=1):
                joiner = units_before_tens
                if unit_word.endswith("e") and joiner.startswith("e"):
                    joiner = "ë" + joiner[1:]  # twee + en -> tweeën
                table[f"{unit_word}{joiner}{tens_word}"] = f"{ten}{unit}"
    return table


ENGLISH = Language(
    code="en",
    numbers=number_words(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
        teens=["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
               "seventeen", "eighteen", "nineteen"],
        tens=["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"],
    ) | {"oh": "0", "nought": "0"},
    repeats={"double": 2, "triple": 3},
    fillers=frozenset({"uh", "um", "er", "erm", "uhm", "hmm"}),
    not_mailbox=word_set(
    "i me you we us they them he him she her it is are am was were be been work "
    "works worked working live lives stay stayed arrive arrived look looked shop "
    "buy bought order ordered found find see available online that this there here "
    "one it's"
),
    birth_date=("born", "birth", "birthday", "dob", "d.o.b"),
    card_code=("security code", "cvv", "cvc", "cvv2", "card verification", "verification code",
               "three digit code", "three digits on the back", "digits on the back"),
    card_expiry=("expires", "expiry", "expiration", "exp", "valid until", "valid thru",
                 "valid through", "good thru", "expiring"),
    national_id=("social security", "ssn", "social"),
    regions=("US", "GB"),
)  # fmt: skip

DUTCH = Language(
    code="nl",
    numbers=number_words(
        ["nul", "een", "twee", "drie", "vier", "vijf", "zes", "zeven", "acht", "negen"],
        teens=["tien", "elf", "twaalf", "dertien", "veertien", "vijftien", "zestien",
               "zeventien", "achttien", "negentien"],
        tens=["twintig", "dertig", "veertig", "vijftig", "zestig", "zeventig", "tachtig",
              "negentig"],
        units_before_tens="en",
    ) | {"één": "1", "eén": "1"},
    repeats={"dubbel": 2, "dubbele": 2, "tripel": 3, "driedubbel": 3},
    fillers=frozenset({"eh", "ehm", "euh", "uh", "uhm", "hmm"}),
    at=frozenset({"apenstaartje", "at", "et"}),
    dot=frozenset({"punt"}),
    underscore=frozenset({"underscore", "laagstreepje"}),
    dash=frozenset({"streepje", "koppelteken", "min"}),
    not_mailbox=word_set(
    "ik jij je we wij ze zij hij het is ben was"
),
    birth_date=("geboren", "geboortedatum", "geboortedag", "verjaardag", "jarig"),
    card_code=("beveiligingscode", "veiligheidscode", "cvc", "cvv", "controlecode",
               "cijfers op de achterkant", "verificatiecode"),
    card_expiry=("vervalt", "vervaldatum", "geldig tot", "verloopt", "verloopdatum"),
    national_id=("bsn", "burgerservicenummer", "sofinummer"),
    regions=("NL", "BE"),
)  # fmt: skip

_LANGUAGES: dict[str, Language] = {ENGLISH.code: ENGLISH, DUTCH.code: DUTCH}


def add_language(language: Language) -> None:
    """Make ``language`` available to ``languages=`` under its code (replacing one of the code).

    Call it at import time, before the first :func:`find` in that language.
    """
    _LANGUAGES[language.code] = language
    lexicon.cache_clear()


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one per set of codes
class Lexicon:
    """The tables of several languages merged: what the scanner looks words up in."""

    numbers: Mapping[str, str]
    repeats: Mapping[str, int]
    plus: frozenset[str]
    fillers: frozenset[str]
    at: frozenset[str]
    dot: frozenset[str]
    underscore: frozenset[str]
    dash: frozenset[str]
    not_mailbox: frozenset[str]
    birth_date: tuple[str, ...]
    card_code: tuple[str, ...]
    card_expiry: tuple[str, ...]
    national_id: tuple[str, ...]
    regions: tuple[str, ...]


@lru_cache(maxsize=32)
def lexicon(codes: tuple[str, ...]) -> Lexicon:
    """The merged tables of the languages ``codes`` names.

    Raises:
        ValueError: a code no table was added for.
    """
    unknown = [code for code in codes if code not in _LANGUAGES]
    if unknown:
        raise ValueError(
            f"no language table for {', '.join(map(repr, unknown))}: the built-in ones are "
            f"{', '.join(map(repr, sorted(_LANGUAGES)))}; add one with add_language()"
        )
    languages = [_LANGUAGES[code] for code in dict.fromkeys(codes)]

    def union(sets: Iterable[frozenset[str]]) -> frozenset[str]:
        return frozenset().union(*sets)

    def joined(tuples: Iterable[tuple[str, ...]]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(item for items in tuples for item in items))

    return Lexicon(
        numbers={word: digits for lang in languages for word, digits in lang.numbers.items()},
        repeats={word: n for lang in languages for word, n in lang.repeats.items()},
        plus=union(lang.plus for lang in languages),
        fillers=union(lang.fillers for lang in languages),
        at=union(lang.at for lang in languages),
        dot=union(lang.dot for lang in languages),
        underscore=union(lang.underscore for lang in languages),
        dash=union(lang.dash for lang in languages),
        not_mailbox=union(lang.not_mailbox for lang in languages),
        birth_date=joined(lang.birth_date for lang in languages),
        card_code=joined(lang.card_code for lang in languages),
        card_expiry=joined(lang.card_expiry for lang in languages),
        national_id=joined(lang.national_id for lang in languages),
        regions=joined(lang.regions for lang in [*languages, *_LANGUAGES.values()]),
    )
