"""How cost grows with the work: tool calls per request and the size of a report.

The growth level times voicehooks and the floor in-process (the same method as the in-process
level, a fresh process per contender, under a running lifespan) on requests of 1, 3, 10 and
30 tool calls and on end-of-call-reports of 8, 32, 128 and 512 KiB. ``analyse`` turns the
timings into what the issue asks about:

* **overhead per call**: ``(voicehooks - floor) / calls``. Per-request work is spread over
  more calls as they grow, so it must fall or stay flat; a rise means work per call that
  grows with the number of calls (per-request set-up that scales worse than the work).
* **cost per KiB**: the slope of a least-squares line through µs per request against KiB,
  for each contender. The floor's slope is HMAC plus decoding; voicehooks' should approach
  it, since nothing else it does should read the body.

``plot`` draws both as one PNG (matplotlib, headless ``Agg``).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.workloads import GROWTH_CALLS, GROWTH_REPORTS, make_pool

__all__ = ["CONTENDERS", "FULL_NUMBERS", "PLOT", "analyse", "plot", "workloads"]

CONTENDERS = ("raw", "voicehooks")

FULL_NUMBERS = {
    "tool-1": 2000,
    "tool-3": 1000,
    "tool-10": 400,
    "tool-30": 150,
    "report-8k": 1000,
    "report-32k": 400,
    "report-128k": 100,
    "report-512k": 30,
}
"""Requests per repeat in a full run: each repeat takes roughly 0.03 to 0.1 s."""

PLOT = Path(__file__).resolve().parent / "growth.png"

FLAT_TOLERANCE = 1.10
"""Overhead per call at 10 and 30 calls may exceed that at 3 calls by this factor at most."""

_ROUND_TICKS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)

SLOPE_TARGET = 1.10
"""voicehooks' cost per KiB may exceed the floor's by this factor at most."""


def workloads() -> tuple[str, ...]:
    """The growth workloads, calls first."""
    return (*GROWTH_CALLS.values(), *GROWTH_REPORTS.values())


def analyse(inprocess: Mapping[str, Any], seed: int = 0) -> dict[str, Any]:
    """Overhead per call and cost per KiB from an in-process result of the growth workloads."""
    us = inprocess["us"]
    calls = []
    for n, workload in GROWTH_CALLS.items():
        raw, vh = us[workload]["raw"], us[workload]["voicehooks"]
        calls.append(
            {
                "calls": n,
                "workload": workload,
                "raw_us": raw,
                "voicehooks_us": vh,
                "raw_us_per_call": raw / n,
                "voicehooks_us_per_call": vh / n,
                "overhead_us_per_call": (vh - raw) / n,
            }
        )
    by_calls = {row["calls"]: row["overhead_us_per_call"] for row in calls}
    reference = by_calls[3]
    flat = all(by_calls[n] <= reference * FLAT_TOLERANCE for n in (10, 30))
    reports = []
    for kib, workload in GROWTH_REPORTS.items():
        size = len(make_pool(workload, 1, stream="size", seed=seed, timestamp=0).body(0))
        raw, vh = us[workload]["raw"], us[workload]["voicehooks"]
        reports.append(
            {
                "kib": size / 1024,
                "nominal_kib": kib,
                "workload": workload,
                "raw_us": raw,
                "voicehooks_us": vh,
                "overhead_us": vh - raw,
            }
        )
    sizes = [row["kib"] for row in reports]
    slopes = {
        name: statistics.linear_regression(sizes, [row[f"{name}_us"] for row in reports]).slope
        for name in CONTENDERS
    }
    return {
        "calls": calls,
        "flat": flat,
        "overhead_per_call_at_3_us": reference,
        "overhead_per_call_at_30_us": by_calls[30],
        "reports": reports,
        "us_per_kib": slopes,
        "slope_ratio": slopes["voicehooks"] / slopes["raw"],
    }


def plot(analysis: Mapping[str, Any], path: Path = PLOT, *, subtitle: str = "") -> Path:
    """Draw the two growth curves into ``path`` (PNG) and return it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4), dpi=110)
    calls = analysis["calls"]
    xs = [row["calls"] for row in calls]
    left.plot(xs, [r["raw_us_per_call"] for r in calls], "o-", label="floor (raw), per call")
    left.plot(xs, [r["voicehooks_us_per_call"] for r in calls], "o-", label="voicehooks, per call")
    left.plot(
        xs, [r["overhead_us_per_call"] for r in calls], "s--", label="voicehooks overhead per call"
    )
    left.set_xscale("log")
    left.set_xticks(xs, [str(x) for x in xs])
    left.set_ylim(bottom=0)
    left.set_xlabel("tool calls per request")
    left.set_ylabel("µs per tool call (in-process)")
    left.set_title("Tool calls: cost per call as calls grow")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)

    reports = analysis["reports"]
    sizes = [row["kib"] for row in reports]
    slopes = analysis["us_per_kib"]
    for name, label in (("raw", "floor (raw)"), ("voicehooks", "voicehooks")):
        right.plot(
            sizes,
            [row[f"{name}_us"] for row in reports],
            "o-",
            label=f"{label}: {slopes[name]:.2f} µs/KiB",
        )
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xticks(sizes, [f"{row['nominal_kib']}" for row in reports])
    right.xaxis.set_minor_formatter(NullFormatter())
    values = [row[f"{name}_us"] for row in reports for name in CONTENDERS]
    ticks = [t for t in _ROUND_TICKS if min(values) / 2 <= t <= max(values) * 2]
    right.set_yticks(ticks)
    right.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    right.yaxis.set_minor_formatter(NullFormatter())
    right.set_xlabel("end-of-call-report body (KiB)")
    right.set_ylabel("µs per request (in-process)")
    right.set_title("Reports: cost as the body grows")
    right.legend(fontsize=8)
    right.grid(alpha=0.3, which="both")
    if subtitle:
        figure.suptitle(subtitle, fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def table(analysis: Mapping[str, Any]) -> list[str]:
    """The growth figures as Markdown lines."""
    lines = [
        "Growth, in-process µs per request (fastest of the repeats; overhead = voicehooks - raw):",
        "",
        "| tool calls | raw | voicehooks | raw per call | overhead per call |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in analysis["calls"]:
        lines.append(
            f"| {row['calls']} | {row['raw_us']:.1f} | {row['voicehooks_us']:.1f} | "
            f"{row['raw_us_per_call']:.2f} | {row['overhead_us_per_call']:.2f} |"
        )
    lines += [
        "",
        "| report body | raw | voicehooks | overhead |",
        "|---:|---:|---:|---:|",
    ]
    for row in analysis["reports"]:
        lines.append(
            f"| {row['kib']:.0f} KiB | {row['raw_us']:.1f} | {row['voicehooks_us']:.1f} | "
            f"{row['overhead_us']:.1f} |"
        )
    slopes = analysis["us_per_kib"]
    lines += [
        "",
        f"Cost per KiB (least squares): raw {slopes['raw']:.3f} µs, voicehooks "
        f"{slopes['voicehooks']:.3f} µs ({analysis['slope_ratio']:.2f}x); overhead per call "
        f"{analysis['overhead_per_call_at_3_us']:.2f} µs at 3 calls, "
        f"{analysis['overhead_per_call_at_30_us']:.2f} µs at 30 "
        f"({'flat or falling' if analysis['flat'] else '**rising**'}).",
        "",
    ]
    return lines
