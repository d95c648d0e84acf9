"""Whether a run of digits is a phone number: libphonenumber's metadata, or a plain rule.

With the ``privacy`` extra (``pip install "voicehooks[privacy]"``), a run is a phone number
when Google's libphonenumber (the ``phonenumbers`` package) calls it a *valid* number: with
a ``+`` (or ``00``) as an international number, otherwise as a national number of one of the
languages' regions (English: US, GB; Dutch: NL, BE). That knows every country's lengths and
ranges, so ``0301234567`` is a Dutch landline and ``0123456789`` is nothing.

Without the extra, a conservative rule of our own applies, and misses more:

* ``+`` or ``00`` followed by 8 to 15 digits (E.164's lengths);
* 10 or 11 digits starting with ``0`` (a national number in the Netherlands, Belgium's
  mobiles, the UK);
* 10 digits in North America's shape (area code and exchange each start 2-9), or 11 with a
  leading ``1``.

Both need at least 8 digits: shorter local numbers are not found.
"""

from __future__ import annotations

from functools import lru_cache
from types import ModuleType
from typing import Any

__all__ = ["is_phone"]

phonenumbers: ModuleType | None
try:
    import phonenumbers
except ImportError:  # pragma: no cover - the tests run with the extra, and patch it away
    phonenumbers = None


def is_phone(digits: str, *, plus: bool, regions: tuple[str, ...]) -> bool:
    """Whether ``digits`` (``plus``: written after a ``+``) is a phone number.

    Examples:
        >>> is_phone("31655018342", plus=True, regions=("NL",))
        True
        >>> is_phone("2291", plus=False, regions=("NL",))
        False
    """
    if not 8 <= len(digits) <= 17:
        return False
    if not plus and digits.startswith("00"):
        plus, digits = True, digits[2:]
    if phonenumbers is None:
        return _builtin_rule(digits, plus=plus)
    return _valid(digits, plus, regions)


def _builtin_rule(digits: str, *, plus: bool) -> bool:
    if plus:
        return 8 <= len(digits) <= 15
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    elif len(digits) in (10, 11) and digits[0] == "0":
        return True
    return len(digits) == 10 and digits[0] in "23456789" and digits[3] in "23456789"


@lru_cache(maxsize=1024)
def _valid(digits: str, plus: bool, regions: tuple[str, ...]) -> bool:
    assert phonenumbers is not None
    attempts = [("+" + digits, None)] if plus else [(digits, region) for region in regions]
    for number, region in attempts:
        try:
            parsed = phonenumbers.parse(number, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed) and (plus or _as_dialled(digits, parsed)):
            return True
    return False


def _as_dialled(digits: str, parsed: Any) -> bool:
    """Whether ``digits`` are the number as its country dials it, trunk prefix and all, or
    with its country code: libphonenumber also accepts a Dutch ``503110798`` (no ``0``),
    which in a Dutch sentence is a customer number far more often than a phone number."""
    assert phonenumbers is not None
    national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    significant = phonenumbers.national_significant_number(parsed)
    return digits in ("".join(filter(str.isdigit, national)), f"{parsed.country_code}{significant}")
