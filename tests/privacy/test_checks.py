"""The checksums: what passes and what an order number fails."""

from __future__ import annotations

import pytest

from voicehooks.privacy.checks import is_bsn, is_card, is_iban, is_ssn


@pytest.mark.parametrize(
    ("check", "value", "valid"),
    [
        (is_card, "378282246310005", True),  # Amex, 15 digits
        (is_card, "1111111111111117", False),  # Luhn holds, no issuer starts with 1
        (is_card, "411111111111", False),  # too short
        (is_iban, "GB29NWBK60161331926819", True),
        (is_iban, "NL91ABNA041716430", False),  # a digit short for NL
        (is_iban, "XX91ABNA0417164300", False),  # no such country
        (is_iban, "NLAAABNA0417164300", False),  # check digits are digits
        (is_iban, "NL91ABNA04171643é0", False),
        (is_bsn, "000000000", False),
        (is_bsn, "11122233", False),
        (is_ssn, "123006789", False),
        (is_ssn, "123450000", False),
        (is_ssn, "912345678", False),
    ],
)
def test_checks(check: object, value: str, valid: bool) -> None:
    assert callable(check)
    assert check(value) is valid
