"""Personal data in what callers say: find it, or replace it with its kind.

:func:`redact` and :func:`find` read one text; :func:`redact_turns` and :func:`find_turns`
read a transcript, where a number a caller spells over several turns is still one number;
:func:`redact_json` and :func:`redact_body` read a whole webhook body, its transcripts turn
by turn.
They find payment cards, IBANs, phone numbers, e-mail addresses and national ids, written
or spoken, by their checksums where those exist, and dates of birth, card codes and expiry
dates only after their context words. Spoken numbers are read with one table per language
(:class:`Language`; English and Dutch are built in, :func:`add_language` adds one).

Phone numbers are checked with Google's libphonenumber when the ``privacy`` extra is
installed (``pip install "voicehooks[privacy]"``), else with a stricter rule of our own
that finds fewer. Nothing of this runs on the request path: it is for what you keep.
"""

from .detect import KINDS, Found, Kind, find, redact
from .documents import redact_body, redact_json
from .languages import DUTCH, ENGLISH, Language, add_language, number_words
from .turns import Turn, find_turns, redact_turns

__all__ = [
    "DUTCH",
    "ENGLISH",
    "Found",
    "KINDS",
    "Kind",
    "Language",
    "Turn",
    "add_language",
    "find",
    "find_turns",
    "number_words",
    "redact",
    "redact_body",
    "redact_json",
    "redact_turns",
]
