"""The growth and feature-cost levels of the benchmarks, and the issue-17 targets table.

Like the smoke test, nothing here asserts a speed: the machine is shared. What must hold is
that the growth workloads are what they claim (call counts, body sizes, a drifted body that
takes the tolerant path) and pass the conformance check, that the analysis and the plot are
built from the figures given, and that the feature-cost level measures both sides of each
feature and leaves the logging configuration as it found it.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import msgspec
import pytest

from benchmarks import conformance, features, growth, harness
from benchmarks.workloads import GROWTH_CALLS, GROWTH_REPORTS, SECRET, make_pool
from voicehooks.core.events import ToolCalls, decode_delivery


class _Call(msgspec.Struct):
    id: str


class _CallList(msgspec.Struct):
    tool_call_list: list[_Call]


class _Calls(msgspec.Struct):
    message: _CallList


class _Customer(msgspec.Struct):
    number: str | None = None


class _Message(msgspec.Struct):
    customer: _Customer


class _StrictCustomer(msgspec.Struct):
    """What the strict decode requires of ``customer``: an object, as ``Event`` declares it."""

    message: _Message


@pytest.mark.parametrize(("calls", "workload"), list(GROWTH_CALLS.items()))
def test_each_tool_growth_workload_carries_its_number_of_calls(calls: int, workload: str) -> None:
    pool = make_pool(workload, 2, stream="test", seed=3)
    event = decode_delivery(pool.body(0))
    assert isinstance(event, ToolCalls)
    assert len(event.tool_call_list) == calls
    ids = {
        call.id
        for i in range(2)
        for call in msgspec.json.decode(pool.body(i), type=_Calls).message.tool_call_list
    }
    assert len(ids) == 2 * calls  # every call of every request has its own id


@pytest.mark.parametrize(("kib", "workload"), list(GROWTH_REPORTS.items()))
def test_each_report_growth_workload_is_about_its_size(kib: int, workload: str) -> None:
    size = len(make_pool(workload, 1, stream="test", seed=3).body(0))
    assert abs(size - kib * 1024) < 0.1 * kib * 1024


def test_the_drifted_workload_takes_the_tolerant_path() -> None:
    drifted = make_pool("tool-1-drifted", 1, stream="test", seed=3).body(0)
    with pytest.raises(msgspec.ValidationError, match="customer"):
        msgspec.json.decode(drifted, type=_StrictCustomer)
    event = decode_delivery(drifted)  # repaired: null becomes the default
    assert isinstance(event, ToolCalls)
    assert event.customer.number is None
    strict = decode_delivery(make_pool("tool-1", 1, stream="test", seed=3).body(0))
    assert strict.customer.number is not None


@pytest.mark.anyio
async def test_the_growth_workloads_pass_the_conformance_check() -> None:
    compared = await conformance.check(("raw", "voicehooks"), growth.workloads(), seed=4)
    assert compared == 2 * 3 * len(growth.workloads())


def _fake_inprocess(raw: float, per_call: float, per_kib: tuple[float, float]) -> dict[str, Any]:
    us: dict[str, dict[str, float]] = {}
    for n, workload in GROWTH_CALLS.items():
        us[workload] = {"raw": raw * n, "voicehooks": raw * n + 5 + per_call * n}
    for kib, workload in GROWTH_REPORTS.items():
        us[workload] = {"raw": 10 + per_kib[0] * kib, "voicehooks": 20 + per_kib[1] * kib}
    return {"us": us}


def test_growth_analysis_reads_overhead_per_call_and_cost_per_kib(tmp_path: Path) -> None:
    analysis = growth.analyse(_fake_inprocess(2.0, 1.0, (1.0, 1.5)), seed=3)
    by_calls = {row["calls"]: row["overhead_us_per_call"] for row in analysis["calls"]}
    assert by_calls[1] == pytest.approx(6.0)
    assert by_calls[30] == pytest.approx(1 + 5 / 30)
    assert analysis["flat"] is True
    # Slopes per real KiB: nominal sizes are within a few percent of the real ones.
    assert analysis["us_per_kib"]["raw"] == pytest.approx(1.0, rel=0.05)
    assert analysis["slope_ratio"] == pytest.approx(1.5, rel=0.01)
    drawn = growth.plot(analysis, tmp_path / "growth.png", subtitle="test")
    assert drawn.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = "\n".join(growth.table(analysis))
    assert "| 30 |" in text
    assert "flat or falling" in text


def test_growth_that_rises_per_call_is_called_so() -> None:
    result = _fake_inprocess(2.0, 1.0, (1.0, 1.0))
    result["us"]["tool-30"]["voicehooks"] += 60  # two more µs per call at 30 calls
    analysis = growth.analyse(result, seed=3)
    assert analysis["flat"] is False
    assert "**rising**" in "\n".join(growth.table(analysis))


def test_the_feature_level_measures_both_sides_and_restores_logging() -> None:
    logger = logging.getLogger("voicehooks")
    level, handlers = logger.level, list(logger.handlers)
    settings = features.Settings(
        features=["per-delivery INFO line", "deadline, tool suspends"],
        numbers={"tool-1": 5},
        rounds=2,
        warmup=2,
        seed=5,
    )
    measured = features.run(settings)
    assert set(measured) == {"per-delivery INFO line", "deadline, tool suspends"}
    for row in measured.values():
        assert len(row["rounds_us"]["baseline"]) == len(row["rounds_us"]["variant"]) == 2
        assert math.isfinite(row["cost_us"])
    assert measured["per-delivery INFO line"]["budget_us"] == 5.0
    assert measured["deadline, tool suspends"]["within_budget"] is None
    assert (logger.level, logger.handlers) == (level, handlers)


def test_the_info_line_side_really_logs_each_delivery(tmp_path: Path) -> None:
    with features._info_line():
        logger = logging.getLogger("voicehooks")
        assert logger.isEnabledFor(logging.INFO)
        assert any(isinstance(h, logging.StreamHandler) for h in logger.handlers)


def test_every_feature_names_its_workloads_and_builds_its_apps() -> None:
    for name, feature in features.FEATURES.items():
        for side in (feature.baseline, feature.variant):
            make_pool(side.workload, 1, stream="test")
            assert callable(side.build(SECRET)), name


def test_targets_name_each_goal_of_issue_26() -> None:
    results: dict[str, Any] = {
        "inprocess": {
            "ratios": {
                "tool-1": {"voicehooks/raw": 1.5},
                "tool-3": {"voicehooks/raw": 2.5},
                "report": {"voicehooks/raw": 1.1},
                "assistant-request": {"voicehooks/raw": 1.7},
            }
        },
        "http_summary": {
            "tool-1-sync": {"ratios": {"cpu voicehooks/raw": 1.2, "voicehooks/raw": 0.95}},
        },
        "http_tail": {"workloads": {"tool-1": {"p99_excess_ms": 0.4}}},
        "growth": growth.analyse(_fake_inprocess(2.0, 1.0, (1.0, 1.05)), seed=3),
        "features": {
            "per-delivery INFO line": {
                "cost_us": 7.0,
                "budget_us": 5.0,
                "budget_source": "x",
                "within_budget": False,
            },
            "sync tool's thread trip": {
                "cost_us": 3.0,
                "ratio": 1.2,
                "budget_us": None,
                "budget_ratio": 1.3,
                "budget_source": "issue 26",
                "within_budget": True,
            },
        },
    }
    rows = {row["target"]: row["met"] for row in harness.targets(results)}
    assert rows["1. in-process tool-1: voicehooks/raw"] is True
    assert rows["1. in-process tool-3: voicehooks/raw"] is False
    assert rows["1. in-process assistant-request: voicehooks/raw"] is False
    assert rows["2. HTTP tool-1-sync: server CPU per request, voicehooks/raw"] is True
    assert rows["2. HTTP tool-1-sync: voicehooks req/s / raw"] is True
    assert rows["3. HTTP tool-1 at half the floor's rate: p99 voicehooks - raw (ms)"] is True
    assert rows["4. report cost per KiB: voicehooks/raw"] is True
    assert rows["5. per-delivery INFO line: µs per delivery"] is False
    assert rows["5. sync tool's thread trip: with / without"] is True
    per_call = "4. overhead per extra tool call at 30 calls (µs above the floor's)"
    assert rows[per_call] is (results["growth"]["overhead_per_call_at_30_us"] <= 2.0)
    tail_row = {"rps": 100.0, "p50_ms": 0.2, "p99_ms": 1.0}
    shown = {
        "environment": _environment(),
        "mode": "quick",
        "growth": results["growth"],
        "http_tail": {
            "share_of_floor": 0.5,
            "workloads": {
                "tool-1": {
                    "rate_target": 100.0,
                    "raw": tail_row,
                    "voicehooks": tail_row,
                    "p99_excess_ms": 0.0,
                }
            },
        },
        "features": {
            "observers": {
                "what": "w",
                "workloads": {"baseline": "tool-1", "variant": "tool-1"},
                "baseline_us": 1.0,
                "variant_us": 2.0,
                "cost_us": 1.0,
                "budget_us": None,
                "within_budget": None,
            }
        },
        "targets": harness.targets(results),
    }
    table = harness.format_tables(shown)
    assert "| observers | tool-1 | 1.0 | 2.0 | +1.00 | — |" in table
    assert "HTTP tail at 50%" in table
    assert "Targets (issue 26" in table


def _environment() -> dict[str, Any]:
    return {
        "cpu": "cpu",
        "usable_cores": 2,
        "cores": 2,
        "python": "CPython",
        "platform": "p",
        "packages": {"voicehooks": "0"},
        "wrk": "wrk",
        "git": "abc",
        "loadavg": [1, 1, 1],
    }
