"""How well and how fast ``voicehooks.privacy`` finds personal data: ``make bench-privacy``.

Accuracy is measured on the committed corpus (``tests/fixtures/privacy/corpus.jsonl``,
written by ``benchmarks/privacy_corpus.py``): per kind, recall (a labelled item counts as
found when items of its kind cover all its letters and digits) and precision (a found item
is right when it overlaps a label of its kind), and the share of negative utterances in
which anything at all was found. Each utterance is read in its own language, its turns
through ``find_turns``. Speed is ``find`` over a 30 KB transcript made of the corpus's
turns, the median of repeated runs, with libphonenumber and with the built-in phone rule.

The corpus is ours and made up: the figures say how the detector does on the shapes in it
(the goals of issue 21 are checked by ``tests/privacy/test_corpus.py``), not on your calls.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
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


def transcript(size: int = 30_000) -> str:
    """Turns of the corpus, in order and again, up to ``size`` bytes."""
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


def milliseconds(text: str, repeats: int) -> float:
    find(text, languages=["en", "nl"])  # warm the caches
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        find(text, languages=["en", "nl"])
        runs.append(time.perf_counter() - started)
    return statistics.median(runs) * 1000


def main() -> None:
    items = corpus()
    text = transcript()
    kilobytes = len(text.encode()) / 1000
    print(f"corpus: {len(items)} utterances, {sum(bool(i['labels']) for i in items)} with items")
    for mode, context in (("libphonenumber", None), ("built-in phone rule", builtin_phone_rule)):
        if context is None:
            result, ms = score(items), milliseconds(text, 20)
        else:
            with context():
                result, ms = score(items), milliseconds(text, 20)
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
        print(f"find() over {kilobytes:.0f} KB: {ms:.1f} ms ({ms / kilobytes:.2f} ms per KB)")
        if result.misses:
            print("missed or wrong: " + ", ".join(result.misses))


if __name__ == "__main__":
    main()
