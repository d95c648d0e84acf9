"""The checksums that tell a real card, IBAN or national id from an order number.

Each takes the bare characters (digits, or for an IBAN letters and digits, no separators)
and answers whether they could be one; none of them does I/O or knows about speech.
"""

from __future__ import annotations

from typing import Final

__all__ = ["is_bsn", "is_card", "is_iban", "is_ssn"]

# IBAN length by country (ISO 13616 registry), for the countries whose callers we expect
# most; an IBAN of another country is found when its length is one of these and mod-97 holds.
IBAN_LENGTHS: Final = {
    "AT": 20, "BE": 16, "CH": 21, "DE": 22, "DK": 18, "ES": 24, "FI": 18, "FR": 27,
    "GB": 22, "IE": 22, "IT": 27, "LU": 20, "NL": 18, "NO": 15, "PL": 28, "PT": 25,
    "SE": 24,
}  # fmt: skip


def is_card(digits: str) -> bool:
    """A payment card number: 13 to 19 digits, an issuer's first digit (2-6), the Luhn check.

    Examples:
        >>> is_card("4111111111111111"), is_card("4111111111111112")
        (True, False)
    """
    if not 13 <= len(digits) <= 19 or digits[0] not in "23456":
        return False
    total = 0
    for index, character in enumerate(reversed(digits)):
        value = int(character)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def is_iban(characters: str) -> bool:
    """An IBAN: a known country's length and the mod-97 check.

    Examples:
        >>> is_iban("NL91ABNA0417164300"), is_iban("NL91ABNA0417164301")
        (True, False)
    """
    characters = characters.upper()
    if IBAN_LENGTHS.get(characters[:2]) != len(characters) or not characters[2:4].isdigit():
        return False
    if not characters.isascii() or not characters.isalnum():
        return False
    rearranged = characters[4:] + characters[:4]
    return int("".join(str(int(character, 36)) for character in rearranged)) % 97 == 1


def is_bsn(digits: str) -> bool:
    """A Dutch citizen service number (BSN): 9 digits passing the 11-test.

    Examples:
        >>> is_bsn("111222333"), is_bsn("123456789")
        (True, False)
    """
    if len(digits) != 9 or digits == "000000000":
        return False
    total = sum(int(digit) * weight for digit, weight in zip(digits, range(9, 1, -1), strict=False))
    return (total - int(digits[8])) % 11 == 0


def is_ssn(digits: str) -> bool:
    """A US social security number's format: 9 digits, no area 000, 666 or 9xx, no group 00
    and no serial 0000 (the SSN has no checksum).

    Examples:
        >>> is_ssn("123456789"), is_ssn("666123456")
        (True, False)
    """
    return (
        len(digits) == 9
        and digits[:3] not in ("000", "666")
        and digits[0] != "9"
        and digits[3:5] != "00"
        and digits[5:] != "0000"
    )
