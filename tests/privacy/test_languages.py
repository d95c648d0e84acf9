"""Languages are tables: one more is a table and one call."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from voicehooks.privacy import Language, add_language, languages, number_words, redact


@pytest.fixture
def german() -> Iterator[Language]:
    table = Language(
        code="de",
        numbers=number_words(
            ["null", "eins", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun"],
            tens=["zwanzig", "dreißig", "vierzig", "fünfzig", "sechzig", "siebzig", "achtzig",
                  "neunzig"],
            units_before_tens="und",
        ) | {"zwo": "2"},
        repeats={"doppel": 2},
        dot=frozenset({"punkt"}),
        birth_date=("geboren", "geburtsdatum"),
        regions=("DE",),
    )  # fmt: skip
    add_language(table)
    yield table
    del languages._LANGUAGES["de"]
    languages.lexicon.cache_clear()


def test_a_language_added_reads_its_numbers_and_context_words(german: Language) -> None:
    spoken = "null eins sieben eins, zwo drei vier fünf sechs sieben acht"
    assert redact(spoken, languages=["de"]) == "[phone]"
    assert redact("Geburtsdatum 03.05.1990", languages=["de"]) == "Geburtsdatum [birth_date]"
    assert (
        number_words(["nul", "een", "twee"], tens=["twintig"], units_before_tens="en")[
            "tweeëntwintig"
        ]
        == "22"
    )
