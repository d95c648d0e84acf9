"""How well and how fast ``voicehooks.privacy`` finds personal data: ``make bench-privacy``.

Accuracy is measured on the committed corpus (``tests/fixtures/privacy/corpus.jsonl``,
written by ``benchmarks/privacy_corpus.py``): per kind, recall (a labelled item counts as
found when items of its kind cover all its letters and digits) and precision (a found item
is right when it overlaps a label of its kind), and the share of negative utterances in
which anything at all was found. Each utterance is read in its own language, its turns
through ``find_turns``.

Speed is ``find`` (English and Dutch) over two 30 KB texts, with libphonenumber and with the
built-in phone rule:

* *a call* (:func:`conversation`): what a 30 KB end-of-call report's transcript looks like,
  mostly words and some numbers: 72 turns of about 400 characters of ordinary sentences,
  every fourth turn holding one utterance of the corpus (positives and negatives in turn): 18
  in 30 KB, 9 of them with personal items;
* *numbers only* (:func:`number_dense`), the worst case: the corpus's turns one after the
  other, every line a number.

Each is timed in rounds of back-to-back calls; the figure is the fastest round (the machine
is shared: slower rounds measure other processes), per 30 KB and per KB.

The corpus is ours and made up: the figures say how the detector does on the shapes in it
(the goals of issue 21 are checked by ``tests/privacy/test_detect.py``), not on your calls.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voicehooks.privacy import KINDS, Turn, find, find_turns, phones

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "privacy" / "corpus.jsonl"


@dataclass
class Score:
    labels: Counter[str] = field(default_factory=Counter)
    recalled: Counter[str] = field(default_factory=Counter)
    found: Counter[str] = field(default_factory=Counter)
    right: Counter[str] = field(default_factory=Counter)
    negatives: int = 0
    false_alarms: int = 0
    misses: list[str] = field(default_factory=list)  # ids, for the curious reader

    def recall(self, kind: str) -> float:
        return self.recalled[kind] / self.labels[kind] if self.labels[kind] else 1.0

    def precision(self, kind: str) -> float:
        return self.right[kind] / self.found[kind] if self.found[kind] else 1.0

    @property
    def false_positive_rate(self) -> float:
        return self.false_alarms / self.negatives if self.negatives else 0.0


def corpus() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CORPUS.read_text().splitlines() if line]


def score(items: list[dict[str, Any]]) -> Score:
    result = Score()
    for item in items:
        turns = [Turn(turn["role"], turn["text"]) for turn in item["turns"]]
        found = find_turns(turns, languages=[item["language"]])
        labels = item["labels"]
        if not labels:
            result.negatives += 1
            if any(found):
                result.false_alarms += 1
                result.misses.append(f"{item['id']} (negative)")
        for label in labels:
            result.labels[label["kind"]] += 1
            text = turns[label["turn"]].text
            needed = {i for i in range(label["start"], label["end"]) if text[i].isalnum()}
            covered = {
                i
                for hit in found[label["turn"]]
                if hit.kind == label["kind"]
                for i in range(hit.start, hit.end)
            }
            if needed <= covered:
                result.recalled[label["kind"]] += 1
            else:
                result.misses.append(f"{item['id']} ({label['kind']})")
        for number, hits in enumerate(found):
            for hit in hits:
                result.found[hit.kind] += 1
                if any(
                    label["turn"] == number
                    and label["kind"] == hit.kind
                    and label["start"] < hit.end
                    and hit.start < label["end"]
                    for label in labels
                ):
                    result.right[hit.kind] += 1
    return result


# Ordinary sentences of a call to a bike shop: no numbers, but the words callers use around
# them ("one", "at", "een", "a").
FILLER = {
    "en": [
        "Good morning, you're speaking with Rijwielhuis Kade, how can I help you today?",
        "Hi, yes, I'm calling about the repair of my bike, I dropped it off last week.",
        "Oh okay, let me look that up for you, one moment please.",
        "I can see it here, the mechanic had a look at the brakes and the chain.",
        "Is it ready to be picked up, or do you still need a part for it?",
        "We're waiting for one part, it should arrive at the shop tomorrow afternoon.",
        "That's fine, I'm at work until the evening anyway.",
        "Would you like us to send you a message when it's ready?",
        "Yes please, that would be great, thank you so much.",
        "Actually, could you also check the back light? It flickers a bit at night.",
        "Of course, I'll add a note for the mechanic, he can take a look at it as well.",
        "Is there anything else I can help you with?",
    ],
    "nl": [
        "Goedemorgen, u spreekt met Rijwielhuis Kade, waarmee kan ik u helpen?",
        "Hallo, ik bel over de reparatie van mijn fiets, ik heb hem vorige week gebracht.",
        "Een moment, ik zoek het even voor u op.",
        "Ik zie het hier staan, de monteur heeft naar de remmen en de ketting gekeken.",
        "We wachten nog op een onderdeel, dat komt morgen in de loop van de middag binnen.",
        "Dat is goed, ik ben toch tot vanavond op mijn werk.",
        "Zal ik u een berichtje sturen als hij klaar is om op te halen?",
        "Ja graag, dank u wel, dat is fijn.",
        "Eigenlijk wel, het achterlicht doet het soms niet, kunt u daar ook naar kijken?",
        "Natuurlijk, ik zet er een notitie bij voor de monteur, die kijkt er ook even naar.",
        "Kan ik u nog ergens anders mee helpen?",
        "Nee, dat was het, fijne dag nog en tot ziens.",
    ],
}


def conversation(size: int = 30_000) -> str:
    """A call's transcript of about ``size`` bytes: mostly words, some numbers.

    Turns of about 400 characters of ``FILLER`` (the language changes every 8 turns); every
    fourth turn also holds the next utterance of the corpus in its language, a positive and
    a negative in turn.
    """
    items = corpus()
    utterances = {
        language: [
            " ".join(turn["text"] for turn in item["turns"])
            for pair in zip(
                (i for i in items if i["language"] == language and i["labels"]),
                (i for i in items if i["language"] == language and not i["labels"]),
                strict=False,
            )
            for item in pair
        ]
        for language in FILLER
    }
    turns: list[str] = []
    length = 0
    sentence = 0
    while length < size:
        language = ("en", "nl")[len(turns) // 8 % 2]
        words: list[str] = []
        while sum(len(part) + 1 for part in words) < 375:
            words.append(FILLER[language][sentence % len(FILLER[language])])
            sentence += 1
        if len(turns) % 4 == 3:
            utterance = utterances[language].pop(0)
            words.insert(len(words) // 2, utterance + ("." if utterance[-1].isalnum() else ""))
        turns.append(" ".join(words))
        length += len(turns[-1].encode()) + 1
    return "\n".join(turns)


def number_dense(size: int = 30_000) -> str:
    """The worst case: the corpus's turns, in order and again, up to ``size`` bytes."""
    texts = [turn["text"] for item in corpus() for turn in item["turns"]]
    lines: list[str] = []
    length = 0
    while length < size:
        for text in texts:
            lines.append(text)
            length += len(text.encode()) + 1
            if length >= size:
                break
    return "\n".join(lines)


@contextmanager
def builtin_phone_rule() -> Iterator[None]:
    """``find`` as it runs without the ``privacy`` extra."""
    saved = phones.phonenumbers
    phones.phonenumbers = None
    try:
        yield
    finally:
        phones.phonenumbers = saved


def milliseconds(text: str, rounds: int = 30, calls: int = 5) -> float:
    """The fastest of ``rounds`` rounds of ``calls`` calls of ``find``: ms per call."""
    find(text, languages=["en", "nl"])  # warm the caches
    fastest = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            find(text, languages=["en", "nl"])
        fastest = min(fastest, (time.perf_counter() - started) / calls)
    return fastest * 1000


def main() -> None:
    items = corpus()
    texts = {"a call": conversation(), "numbers only": number_dense()}
    print(f"corpus: {len(items)} utterances, {sum(bool(i['labels']) for i in items)} with items")
    for mode, context in (
        ("libphonenumber", nullcontext),
        ("built-in phone rule", builtin_phone_rule),
    ):
        with context():
            result = score(items)
            speeds = {name: milliseconds(text) for name, text in texts.items()}
        print(f"\n{mode}\n{'kind':<12} {'items':>5} {'recall':>7} {'precision':>9}")
        for kind in KINDS:
            print(
                f"{kind:<12} {result.labels[kind]:>5} {result.recall(kind):>7.3f}"
                f" {result.precision(kind):>9.3f}"
            )
        print(
            f"false positives on negatives: {result.false_alarms}/{result.negatives}"
            f" ({result.false_positive_rate:.1%})"
        )
        for name, ms in speeds.items():
            kilobytes = len(texts[name].encode()) / 1000
            found = len(find(texts[name], languages=["en", "nl"]))
            print(
                f"find() over {name} ({kilobytes:.0f} KB, {found} items): {ms:.2f} ms,"
                f" {ms * 1000 / kilobytes:.0f} µs per KB (fastest of 30 rounds)"
            )
        if result.misses:
            print("missed or wrong: " + ", ".join(result.misses))


if __name__ == "__main__":
    main()
