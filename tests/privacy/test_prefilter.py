"""``find`` reads only the places ``prefilter`` finds, and finds what reading every token finds."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.privacy import conversation, corpus, number_dense
from tests.helpers.fuzzing import fuzz_settings
from voicehooks.privacy import Language, add_language, find, languages, number_words, redact
from voicehooks.privacy.detect import _find
from voicehooks.privacy.languages import lexicon, word_set
from voicehooks.privacy.prefilter import places

CODES = [("en",), ("nl",), ("en", "nl")]

# Pieces a text is made of: what the checks read, what only looks like it, and characters
# the byte view must stand for (beyond Latin-1, a lower case of another length, digits that
# are no decimals).
PIECES = [
    *sorted(
        word_set(
            "one two three four five six seven eight nine zero oh double triple plus uh twenty "
            "een twee drie vier vijf zes zeven acht negen nul dubbel tweeënveertig drieëntachtig "
            "at apenstaartje et dot punt dash underscore streepje laagstreepje jan de vries "
            "example voorbeeld com nl gmail it work the is on a I my order born geboren "
            "geboortedatum expires vervalt valid until thru good security code d.o.b cvv2 March "
            "4111111111111111 4111 1111 NL91ABNA0417164300 NL91 ABNA 0417 1643 00 N L 0655018342 "
            "06 55 01 83 42 +31 111222333 123-45-6789 123 45 6789 2027 1985 12 9 9:30 49.95 "
            "WO-2291 jan.devries@example.nl jan@example CVV DOB AT BSN SSN "
            "é één oké ł İ \u212a ² ٣٤ \u2019 😀 Σ ß ª _ @"
        )
    ),
    "security code",
    "valid until",
    "three digits on the back",
]
CASES: list[Callable[[str], str]] = [str.lower, str, str.upper, str.capitalize]
SEPARATORS = [" ", " ", " ", "", ", ", ". ", "-", "/", "(", ")", "\n", "  ", "+", ".", ": "]


@st.composite
def texts(draw: st.DrawFn) -> str:
    pieces = draw(st.lists(st.sampled_from(PIECES), min_size=1, max_size=30))
    cases = draw(st.lists(st.sampled_from(CASES), min_size=30))
    glue = draw(st.lists(st.sampled_from(SEPARATORS), min_size=30))
    return "".join(case(piece) + sep for piece, case, sep in zip(pieces, cases, glue, strict=False))


def read_whole(text: str, codes: tuple[str, ...]) -> list[tuple[str, int, int]]:
    return [(i.kind, i.start, i.end) for i in _find(text, lexicon(codes), everywhere=True)]


def read_places(text: str, codes: tuple[str, ...]) -> list[tuple[str, int, int]]:
    return [(i.kind, i.start, i.end) for i in find(text, languages=codes)]


@fuzz_settings(400)
@given(texts(), st.sampled_from(CODES))
def test_reading_the_places_finds_what_reading_every_token_finds(
    text: str, codes: tuple[str, ...]
) -> None:
    assert read_places(text, codes) == read_whole(text, codes)


def test_the_corpus_and_the_benchmark_texts_read_the_same_either_way() -> None:
    for item in corpus():
        text = " ".join(turn["text"] for turn in item["turns"])
        assert read_places(text, (item["language"],)) == read_whole(text, (item["language"],))
    for text in (conversation(), number_dense()):
        assert read_places(text, ("en", "nl")) == read_whole(text, ("en", "nl"))


@pytest.mark.parametrize(
    "text",
    [
        "nummer drieënveertig123-45-6789 and 123-45-6789x",  # an SSN inside a word
        "it flickers at night. Call me",  # "at", a word and a dot: a domain?
        "write to jan at my-shop dot com or piet at my_shop dot nl",
        "mail jan dot de vries at a dash very dash long dash name dot example dot com",
        "mail " + "a." * 60 + "b at example dot com",  # the mailbox reaches far back
        "shop@tweeënzeventig - negenenzeventigvierennegentig. there(x",  # a domain past 48
        "x inssn@De de(twintig online een. code@social - OnlineVIERENVIJFTIGZeven_works. her",
        "İ 4111 1111 1111 1111",  # its lower case is longer: read whole
        "٤١١١١١١١١١١١١١١١ and ٠٦٥٥٠١٨٣٤٢",  # digits beyond Latin-1
        "it\u2019s 0655018342 \u2014 call ½ past ł",
        "a one a two NL 91 ABNA 0417 1643 00",
    ],
)
def test_edges_of_the_view_read_the_same_either_way(text: str) -> None:
    for codes in CODES:
        assert read_places(text, codes) == read_whole(text, codes)


def test_numbers_alone_among_words_are_not_read_twice() -> None:
    text = "een moment, ik zoek het even op. One moment please, it is at 9:30"
    found = places(text, text.lower(), lexicon(("en", "nl")))
    assert found is not None
    assert found.runs == []  # no run there is long enough to be anything
    assert found.mail == []  # no "at" there has a domain after it


def test_a_digit_that_is_no_decimal_is_kept() -> None:
    assert find("bsn ²²²²²²²²² and ①②③④⑤⑥⑦⑧⑨", languages=["en", "nl"]) == []


@pytest.fixture
def polish() -> Iterator[None]:
    add_language(
        Language(
            code="pl",
            numbers=number_words(
                [
                    "zero",
                    "jeden",
                    "dwa",
                    "trzy",
                    "cztery",
                    "pięć",
                    "sześć",
                    "siedem",
                    "osiem",
                    "dziewięć",
                ]
            ),
            regions=("PL",),
        )
    )
    yield
    del languages._LANGUAGES["pl"]
    languages.lexicon.cache_clear()


def test_words_beyond_latin1_are_read_in_the_whole_text(polish: None) -> None:
    assert places("pięć", "pięć", lexicon(("pl",))) is None
    spoken = "zero sześć pięć pięć zero jeden osiem trzy cztery dwa"
    assert redact(spoken, languages=["pl", "nl"]) == "[phone]"
