"""Two saved runs' targets side by side: ``python -m benchmarks.sidebyside A.json B.json``.

``make bench`` runs the benchmark on Python 3.11 and on 3.13 and ends with this table: each of
issue 26's goals, what each run measured, and whether it holds. The in-process split by the
second floor (``handmade``) follows, since it says which part of each gap is the features'.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "table"]


def table(runs: Mapping[str, Mapping[str, Any]]) -> str:
    """The Markdown table of every target of ``runs`` (label -> saved result), in order."""
    labels = list(runs)
    goals: dict[str, str] = {}
    values: dict[str, dict[str, str]] = {}
    for label, result in runs.items():
        for row in result.get("targets", []):
            goals.setdefault(row["target"], row["goal"])
            mark = "" if row["met"] else " **no**"
            values.setdefault(row["target"], {})[label] = f"{row['value']:.2f}{mark}"
    lines = [
        "Targets of issue 26, side by side (**no**: not met):",
        "",
        "| target | goal | " + " | ".join(labels) + " |",
        "|---|---|" + "---|" * len(labels),
    ]
    for target, goal in goals.items():
        measured = " | ".join(values[target].get(label, "—") for label in labels)
        lines.append(f"| {target} | {goal} | {measured} |")
    lines += [
        "",
        "In-process split by the second floor (voicehooks/raw = handmade/raw times "
        "voicehooks/handmade):",
        "",
        "| workload | "
        + " | ".join(f"{label}: {kind}" for label in labels for kind in ("features", "framework"))
        + " |",
        "|---|" + "---:|" * (2 * len(labels)),
    ]
    workloads: dict[str, None] = {}
    for result in runs.values():
        workloads.update(dict.fromkeys(result.get("inprocess", {}).get("ratios", {})))
    for workload in workloads:
        cells = []
        for result in runs.values():
            ratios = result.get("inprocess", {}).get("ratios", {}).get(workload, {})
            for key in ("handmade/raw", "voicehooks/handmade"):
                value = ratios.get(key)
                cells.append("—" if value is None else f"{value:.2f}x")
        lines.append(f"| {workload} | " + " | ".join(cells) + " |")
    return "\n".join([*lines, ""])


def _label(result: Mapping[str, Any], path: str) -> str:
    python = str(result.get("environment", {}).get("python", ""))
    return python.replace("CPython ", "Python ") or Path(path).stem


def main(argv: Sequence[str] | None = None) -> int:
    """Print the side-by-side table of the saved runs named on the command line."""
    paths = list(sys.argv[1:] if argv is None else argv)
    if len(paths) < 2:
        print("usage: python -m benchmarks.sidebyside RESULT.json RESULT.json ...", file=sys.stderr)
        return 2
    runs: dict[str, Mapping[str, Any]] = {}
    for path in paths:
        result = json.loads(Path(path).read_text())
        label = _label(result, path)
        runs[label if label not in runs else f"{label} ({Path(path).name})"] = result
    print(table(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
