"""What ``find`` answers: an item of personal data, its kind and where it is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

__all__ = ["KINDS", "Found", "Kind"]

Kind = Literal[
    "birth_date", "card", "card_code", "card_expiry", "email", "iban", "national_id", "phone"
]
KINDS: Final[tuple[Kind, ...]] = (
    "birth_date", "card", "card_code", "card_expiry", "email", "iban", "national_id", "phone"
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Found:
    """One personal item: its kind and where it is, ``text[start:end]``."""

    kind: Kind
    start: int
    end: int
