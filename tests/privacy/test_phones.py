"""Phone numbers with libphonenumber (the ``privacy`` extra) and with the built-in rule."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from benchmarks.privacy import builtin_phone_rule
from voicehooks.privacy import phones, redact

REGIONS = ("US", "GB", "NL", "BE")


@pytest.fixture(params=["libphonenumber", "built-in"])
def mode(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "built-in":
        with builtin_phone_rule():
            yield request.param
    else:
        yield request.param


@pytest.mark.parametrize(
    "text",
    ["+31 6 55018342", "0655018342", "(415) 239-0188", "1 415 239 0188", "0031655018342",
     "020 7946 0123", "oh six double five oh one eight three four two"],
)  # fmt: skip
def test_phone_numbers_are_found_in_both_modes(mode: str, text: str) -> None:
    assert redact(text, languages=["en", "nl"]) == "[phone]"


@pytest.mark.parametrize("text", ["12345678", "2291", "123456789012345678"])
def test_what_is_no_phone_number_stays_in_both_modes(mode: str, text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    ("digits", "plus", "libphonenumber", "builtin"),
    [
        ("0123456789", False, False, True),  # the built-in rule is wider here...
        ("2122390188", False, True, True),
        ("1234567890", False, False, False),  # no area code starts with 1
        ("503110798", False, False, False),  # ...and narrower: no trunk 0
        ("31655018342", True, True, True),
        ("999999999", True, False, True),
    ],
)
def test_the_two_modes_differ_where_the_docstring_says(
    digits: str, plus: bool, libphonenumber: bool, builtin: bool
) -> None:
    assert phones.is_phone(digits, plus=plus, regions=REGIONS) is libphonenumber
    with builtin_phone_rule():
        assert phones.is_phone(digits, plus=plus, regions=REGIONS) is builtin


def test_an_unparseable_number_is_no_phone_number() -> None:
    assert phones.is_phone("000000000", plus=True, regions=REGIONS) is False
