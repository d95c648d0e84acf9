"""Writes the labelled privacy corpus, ``tests/fixtures/privacy/corpus.jsonl``; deterministic.

``python -m benchmarks.privacy_corpus`` rewrites it; the file is committed data, so a change
to this script shows in the corpus's diff. Each line is one utterance: ``id``, ``language``
(``en``/``nl``), ``form`` (``written``/``spoken``), ``turns`` (``role``, ``text``) and
``labels`` (``turn``, ``kind``, ``start``, ``end``: the personal items, offsets into their
turn). Utterances without labels are the negatives: order numbers, times, prices,
quantities, dates, years, numbers that fail the checksums.

The values are made up but valid: card numbers pass Luhn, IBANs mod-97, BSNs the 11-test,
and every phone number is one libphonenumber calls valid.
"""

from __future__ import annotations

import json
import random
import string
from pathlib import Path
from typing import Any

import phonenumbers

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "privacy" / "corpus.jsonl"

WORDS = {
    "en": ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"],
    "nl": ["nul", "een", "twee", "drie", "vier", "vijf", "zes", "zeven", "acht", "negen"],
}
DOUBLE = {"en": "double", "nl": "dubbel"}
AT = {"en": "at", "nl": "apenstaartje"}
DOT = {"en": "dot", "nl": "punt"}
GO_ON = {"en": ["go on", "yes", "okay, and then?"], "nl": ["ga door", "ja", "oké, en verder?"]}

Item = dict[str, Any]


class Writer:
    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.items: list[Item] = []

    def add(self, language: str, form: str, parts: list[list[tuple[str, str | None]]]) -> None:
        """One utterance: turns of (text, kind or None) pieces; odd turns are the assistant's."""
        turns, labels = [], []
        for number, pieces in enumerate(parts):
            text = ""
            for piece, kind in pieces:
                if kind is not None:
                    labels.append(
                        {
                            "turn": number,
                            "kind": kind,
                            "start": len(text),
                            "end": len(text) + len(piece),
                        }
                    )
                text += piece
            turns.append({"role": "assistant" if number % 2 else "user", "text": text})
        self.items.append(
            {
                "id": f"{language}-{len(self.items):03d}",
                "language": language,
                "form": form,
                "turns": turns,
                "labels": labels,
            }
        )

    def digits(self, count: int) -> str:
        return "".join(self.random.choice(string.digits) for _ in range(count))

    def spoken(self, digits: str, language: str) -> str:
        """Digits as a caller says them: words, "oh" now and then, "double" for a pair."""
        words, index = [], 0
        while index < len(digits):
            digit = digits[index]
            word = WORDS[language][int(digit)]
            if language == "en" and digit == "0" and self.random.random() < 0.5:
                word = "oh"
            if (
                index + 1 < len(digits)
                and digits[index + 1] == digit
                and self.random.random() < 0.6
            ):
                words.append(f"{DOUBLE[language]} {word}")
                index += 2
            else:
                words.append(word)
                index += 1
            if index % 4 == 0 and index < len(digits) and self.random.random() < 0.4:
                words[-1] += ","
        return " ".join(words)


def luhn_completed(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for last in string.digits:
        number = body + last
        total = 0
        for index, character in enumerate(reversed(number)):
            value = int(character) * (2 if index % 2 else 1)
            total += value - 9 if value > 9 else value
        if total % 10 == 0:
            return number
    raise AssertionError  # pragma: no cover


def iban(country: str, bban: str) -> str:
    rearranged = bban + country + "00"
    check = 98 - int("".join(str(int(c, 36)) for c in rearranged)) % 97
    return f"{country}{check:02d}{bban}"


def bsn(rng: random.Random) -> str:
    while True:
        body = str(rng.randint(1, 9)) + "".join(rng.choice(string.digits) for _ in range(7))
        total = sum(int(d) * w for d, w in zip(body, range(9, 1, -1), strict=True))
        last = total % 11
        if last < 10:
            return body + str(last)


def valid_phone(number: str, region: str) -> bool:
    return phonenumbers.is_valid_number(phonenumbers.parse(number, region))


def grouped(text: str, size: int = 4) -> str:
    return " ".join(text[i : i + size] for i in range(0, len(text), size))


def positives(w: Writer) -> None:
    rng = w.random
    card_say = {
        "en": ["my card number is ", "it's ", "the card is ", "sure: "],
        "nl": ["mijn kaartnummer is ", "het is ", "de pas is ", "dat is "],
    }
    for language in ("en", "nl"):
        for n in range(16):
            prefix = rng.choice(["4", "51", "53", "55", "2221", "37", "6011"])
            number = luhn_completed(prefix, 15 if prefix == "37" else 16, rng)
            lead = rng.choice(card_say[language])
            if n % 4 == 0:
                w.add(language, "written", [[(lead, None), (grouped(number), "card"), (".", None)]])
            elif n % 4 == 1:
                w.add(language, "written", [[(lead, None), (number, "card")]])
            elif n % 4 == 2:
                w.add(language, "spoken", [[(lead, None), (w.spoken(number, language), "card")]])
            else:  # over two turns, the assistant between
                first, second = number[:8], number[8:]
                w.add(
                    language,
                    "spoken",
                    [
                        [(lead, None), (w.spoken(first, language), "card")],
                        [(rng.choice(GO_ON[language]), None)],
                        [(w.spoken(second, language), "card"), (".", None)],
                    ],
                )
        for n in range(14):
            country = rng.choice(["NL", "NL", "DE", "BE", "GB"])
            bban = {
                "NL": lambda: rng.choice(["ABNA", "INGB", "RABO", "TRIO"]) + w.digits(10),
                "DE": lambda: w.digits(18),
                "BE": lambda: w.digits(12),
                "GB": lambda: "NWBK" + w.digits(14),
            }[country]()
            value = iban(country, bban)
            lead = {"en": "my IBAN is ", "nl": "mijn IBAN is "}[language]
            if n % 3 == 0:
                w.add(language, "written", [[(lead, None), (grouped(value), "iban")]])
            elif n % 3 == 1:
                w.add(language, "written", [[(lead, None), (value, "iban"), (", thanks", None)]])
            else:
                letters = " ".join(value[:2]) + " " + w.spoken(value[2:4], language)
                rest = " ".join(
                    " ".join(part) if part.isalpha() else w.spoken(part, language)
                    for part in split_letters(value[4:])
                )
                w.add(language, "spoken", [[(lead, None), (f"{letters} {rest}", "iban")]])
        for n in range(10):
            value = bsn(rng)
            lead = {"en": "my BSN is ", "nl": "mijn burgerservicenummer is "}[language]
            if n % 2 == 0:
                w.add(language, "written", [[(lead, None), (value, "national_id")]])
            else:
                w.add(
                    language, "spoken", [[(lead, None), (w.spoken(value, language), "national_id")]]
                )
        phone_positives(w, language)
        email_positives(w, language)
        context_positives(w, language)
    for _ in range(6):
        area, group, serial = rng.randint(100, 665), rng.randint(10, 99), rng.randint(1000, 9999)
        w.add(
            "en",
            "written",
            [
                [
                    ("my social security number is ", None),
                    (f"{area}-{group}-{serial}", "national_id"),
                ]
            ],
        )
        w.add(
            "en",
            "spoken",
            [
                [
                    ("social security number ", None),
                    (w.spoken(f"{area}{group}{serial}", "en"), "national_id"),
                ]
            ],
        )


def split_letters(text: str) -> list[str]:
    parts, current = [], ""
    for character in text:
        if current and current[-1].isalpha() != character.isalpha():
            parts.append(current)
            current = ""
        current += character
    return [*parts, current]


def phone(w: Writer, kind: str) -> tuple[str, str]:
    """A valid number: (its digits as dialled in its country, its region)."""
    rng = w.random
    while True:
        if kind == "nl-mobile":
            number, region = "06" + str(rng.randint(1, 5)) + w.digits(7), "NL"
        elif kind == "nl-fixed":
            number, region = (
                rng.choice(["020", "030", "010", "070"]) + str(rng.randint(2, 9)) + w.digits(6),
                "NL",
            )
        elif kind == "us":
            exchange = rng.randint(201, 989)
            if exchange == 555:
                continue
            number, region = (
                rng.choice(["212", "415", "617", "312", "646"]) + str(exchange) + w.digits(4),
                "US",
            )
        else:
            number, region = "0207946" + w.digits(4), "GB"
        if valid_phone(number, region):
            return number, region


def phone_positives(w: Writer, language: str) -> None:
    rng = w.random
    kinds = ["nl-mobile", "nl-fixed"] if language == "nl" else ["us", "us", "gb", "nl-mobile"]
    leads = {
        "en": ["you can reach me on ", "my number is ", "call me back at ", "it's "],
        "nl": ["mijn nummer is ", "bel me op ", "je kunt me bereiken op ", "het is "],
    }
    for n in range(24):
        number, region = phone(w, kinds[n % len(kinds)])
        lead = rng.choice(leads[language])
        country = {"NL": "31", "US": "1", "GB": "44"}[region]
        national = number[1:] if number.startswith("0") else number
        written = [
            number,
            f"+{country} {national[:1]} {national[1:]}"
            if region == "NL"
            else f"+{country} {national}",
            f"({number[:3]}) {number[3:6]}-{number[6:]}"
            if region == "US"
            else f"{number[:3]}-{number[3:]}",
            f"+{country}{national}",
        ][n % 4]
        if region != "US" and n % 4 == 2:
            written = f"{number[:4]} {number[4:7]} {number[7:]}"
        if n % 3 == 0:
            w.add(language, "written", [[(lead, None), (written, "phone"), (".", None)]])
        elif n % 3 == 1:
            spoken = w.spoken(number, language)
            if n % 2 and region != "US":
                plus = "plus" if language == "en" else rng.choice(["plus", "plus"])
                spoken = f"{plus} {w.spoken(country, language)} {w.spoken(national, language)}"
            w.add(language, "spoken", [[(lead, None), (spoken, "phone")]])
        else:
            cut = rng.randint(4, 6)
            w.add(
                language,
                "spoken",
                [
                    [(lead, None), (w.spoken(number[:cut], language), "phone")],
                    [(rng.choice(GO_ON[language]), None)],
                    [(w.spoken(number[cut:], language), "phone")],
                ],
            )


def email_positives(w: Writer, language: str) -> None:
    rng = w.random
    firsts = ["jan", "sanne", "pieter", "emma", "lucas", "fenna", "tom", "noor", "daan", "olivia"]
    lasts = ["de vries", "jansen", "bakker", "smith", "visser", "van dijk", "meijer"]
    domains = ["example.nl", "gmail.com", "outlook.com", "ziggo.nl", "example.co.uk", "kpnmail.nl"]
    for n in range(16):
        first, last, domain = rng.choice(firsts), rng.choice(lasts), rng.choice(domains)
        lead = {"en": "my email is ", "nl": "mijn e-mailadres is "}[language]
        if n % 2 == 0:
            local = rng.choice(
                [
                    f"{first}.{last.replace(' ', '')}",
                    f"{first}{rng.randint(1, 99)}",
                    f"{first}_{last.split()[-1]}",
                    first,
                ]
            )
            w.add(
                language, "written", [[(lead, None), (f"{local}@{domain}", "email"), (".", None)]]
            )
        else:
            dot = f" {DOT[language]} "
            at = AT[language] if language == "en" or n % 3 else "at"
            local = rng.choice([f"{first}{dot}{last}", first, f"{first}{dot}{last.split()[-1]}"])
            spoken = f"{local} {at} {domain.replace('.', dot)}"
            w.add(language, "spoken", [[(lead, None), (spoken, "email"), (", thanks", None)]])


def context_positives(w: Writer, language: str) -> None:
    rng = w.random
    months = {
        "en": ["January", "March", "May", "October", "December"],
        "nl": ["januari", "maart", "mei", "oktober", "december"],
    }
    for n in range(8):
        day, month, year = rng.randint(1, 28), rng.randint(1, 12), rng.randint(1940, 2005)
        named = rng.choice(months[language])
        if language == "en":
            lead = ["I was born on ", "my date of birth is ", "date of birth: ", "born "][n % 4]
        else:
            lead = ["ik ben geboren op ", "mijn geboortedatum is ", "geboortedatum: ", "geboren "][
                n % 4
            ]
        value = [
            f"{day} {named} {year}",
            f"{day:02d}-{month:02d}-{year}",
            f"{day:02d}/{month:02d}/{year}",
        ][n % 3]
        w.add(language, "written", [[(lead, None), (value, "birth_date")]])
    for n in range(8):
        code = w.digits(3 + n % 2)
        lead = (
            ["the security code is ", "CVV ", "cvc: ", "the three digit code is "]
            if language == "en"
            else ["de beveiligingscode is ", "CVC ", "de cvc is ", "beveiligingscode: "]
        )[n % 4]
        spoken = n % 2 == 1
        value = w.spoken(code, language).replace(",", "") if spoken else code
        w.add(language, "spoken" if spoken else "written", [[(lead, None), (value, "card_code")]])
    for n in range(6):
        month, year = rng.randint(1, 12), rng.randint(26, 32)
        lead = (
            ["it expires ", "expiry date ", "valid thru "]
            if language == "en"
            else ["hij vervalt ", "vervaldatum ", "geldig tot "]
        )[n % 3]
        value = f"{month:02d}/{year}" if n % 2 == 0 else w.spoken(f"{month:02d}{year}", language)
        w.add(
            language,
            "written" if n % 2 == 0 else "spoken",
            [[(lead, None), (value, "card_expiry")]],
        )


def negatives(w: Writer) -> None:
    rng = w.random
    for language in ("en", "nl"):
        say = WORDS[language]
        for _ in range(3):
            reference = luhn_failing(rng)
            order = f"WO-{rng.randint(1000, 9999)}"
            time = f"{rng.randint(8, 20)}:{rng.choice(['00', '15', '30', '45'])}"
            price = f"{rng.randint(5, 400)}.{rng.choice(['00', '50', '95', '99'])}"
            date = f"{rng.randint(1, 28)} {rng.choice(['March', 'June', 'September'])} 2026"
            iso = f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            people = rng.randint(2, 9)
            year = rng.randint(1990, 2025)
            nine = bsn_failing(rng)
            if language == "en":
                texts = [
                    f"my order number is {order}",
                    f"can I book for {people} people at {time}?",
                    f"it costs {price} euros",
                    f"the appointment is on {date}",
                    f"we moved here in {year}",
                    f"the reference is {grouped(reference)}",
                    f"invoice INV-{year}-{rng.randint(10000, 99999)}",
                    f"the repair was on {iso} at {time}",
                    "I work at Philips in Eindhoven",
                    f"room {rng.randint(100, 499)}, floor {rng.randint(1, 9)}",
                    "one or two, maybe three",
                    f"order {say[people]} {say[rng.randint(0, 9)]} {say[rng.randint(0, 9)]}",
                    f"tracking code 3SABC{w.digits(10)}",
                    f"my customer number is {nine}",
                    "the bike is ready at half past four",
                    f"it was twenty {say[people]} minutes",
                    f"version {people}.{rng.randint(0, 9)}.{rng.randint(0, 9)}",
                    "the code on the receipt is 4471",
                    f"we arrived at {time} and left at {time}",
                    "twenty twenty six was a good year",
                ]
            else:
                texts = [
                    f"mijn ordernummer is {order}",
                    f"kan ik reserveren voor {people} personen om {time}?",
                    f"het kost {price.replace('.', ',')} euro",
                    f"de afspraak is op {rng.randint(1, 28)} maart 2026",
                    f"we wonen hier sinds {year}",
                    f"het kenmerk is {grouped(reference)}",
                    f"factuur {year}-{rng.randint(10000, 99999)}",
                    f"postcode {rng.randint(1000, 9999)} AB, huisnummer {people}",
                    f"de reparatie was op {iso} om {time}",
                    f"ik wil er {say[people]}",
                    f"bestelling {say[people]} {say[rng.randint(0, 9)]} {say[rng.randint(0, 9)]}",
                    f"mijn klantnummer is {nine}",
                    "de fiets is om half vijf klaar",
                    f"het duurde vijfentwintig minuten, {people} keer",
                    "ik werk bij de gemeente",
                    f"kamer {rng.randint(100, 499)}",
                    "een of twee, misschien drie",
                    "de code op de bon is 4471",
                    f"versie {people}.{rng.randint(0, 9)}",
                    "tweeduizend zesentwintig was een goed jaar",
                ]
            for text in texts:
                spoken = any(word in text.split() for word in say) or "twenty" in text
                w.add(language, "spoken" if spoken else "written", [[(text, None)]])


def luhn_failing(rng: random.Random) -> str:
    while True:
        number = str(rng.randint(2, 6)) + "".join(rng.choice(string.digits) for _ in range(15))
        if luhn_completed(number[:15], 16, random.Random(0))[-1] != number[-1]:
            return number


def bsn_failing(rng: random.Random) -> str:
    while True:
        number = str(rng.randint(1, 9)) + "".join(rng.choice(string.digits) for _ in range(8))
        total = sum(int(d) * w for d, w in zip(number[:8], range(9, 1, -1), strict=True))
        if (total - int(number[8])) % 11:
            return number


def main() -> None:
    writer = Writer(seed=21)
    positives(writer)
    negatives(writer)
    CORPUS.parent.mkdir(parents=True, exist_ok=True)
    with CORPUS.open("w") as file:
        for item in writer.items:
            file.write(json.dumps(item, ensure_ascii=False) + "\n")
    print(f"{len(writer.items)} utterances -> {CORPUS}")


if __name__ == "__main__":
    main()
