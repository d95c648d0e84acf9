"""The benchmark harness: conformance first, then the in-process, HTTP and memory levels.

``python -m benchmarks`` (``make bench``) runs everything; ``--quick`` (``make bench-quick``)
a short variant; ``--smoke`` only the conformance check and a handful of in-process requests
per contender (what the test suite runs). The result is a table, or JSON with ``--json``;
every run carries the machine, Python and package versions and the machine's load, and the
ratios are always computed between contenders measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import conformance, contenders, features, growth, inprocess, memory, over_http
from benchmarks.workloads import DEFAULT_SEED, MAIN_WORKLOADS, SYNC_WORKLOADS, WORKLOADS

__all__ = ["Mode", "main", "run", "run_inprocess"]

ROOT = Path(__file__).resolve().parent.parent

# Requests per repeat in a full run; a repeat takes roughly 0.05 to 0.3 s per contender.
FULL_NUMBERS = {
    "tool-1": 2000,
    "tool-3": 1000,
    "report": 400,
    "assistant-request": 2000,
    "tool-1-sync": 500,
    "tool-1-drifted": 2000,
    "mcp-tool-1": 2000,
    **growth.FULL_NUMBERS,
}

# The goals of issue 17 (in-process ratios under a running lifespan; HTTP server CPU per
# request and requests/s against the floor in the same run).
INPROCESS_TARGETS = {"tool-1": 1.5, "tool-3": 1.8, "report": 1.2, "assistant-request": 1.5}
PER_CALL_TARGET_US = 2.0  # each extra tool call of a delivery, above the floor's (issue 26)
HTTP_CPU_TARGET = 1.3
HTTP_SHARE_TARGET = 0.90
FASTAPI_SPEEDUP_TARGET = 5.0
FEATURE_ROUNDS = {"full": 9, "quick": 5}

_PACKAGES = (
    "voicehooks",
    "msgspec",
    "anyio",
    "starlette",
    "fastapi",
    "pydantic",
    "pydantic-core",
    "uvicorn",
    "uvloop",
    "httptools",
)


@dataclass(frozen=True)
class Mode:
    """How much to measure."""

    name: str
    number_scale: float
    repeats: int
    warmup: int
    rounds: int
    http_duration: int
    http_warmup: int
    http_rounds: int
    memory: bool
    fixed_number: int | None = None
    levels: tuple[str, ...] = ("inprocess", "http", "memory", "growth", "features")
    extra: dict[str, Any] = field(default_factory=dict)

    def numbers(self, workloads: Sequence[str]) -> dict[str, int]:
        """Requests per repeat for each workload."""
        if self.fixed_number is not None:
            return dict.fromkeys(workloads, self.fixed_number)
        return {w: max(1, round(FULL_NUMBERS[w] * self.number_scale)) for w in workloads}


MODES = {
    # Over HTTP, several short runs with the contenders' order rotated between them resist a
    # busy machine better than one long run: the median of three keeps out a burst.
    "full": Mode(
        "full",
        1.0,
        repeats=5,
        warmup=200,
        rounds=3,
        http_duration=3,
        http_warmup=0,
        http_rounds=3,
        memory=True,
    ),
    "quick": Mode(
        "quick",
        0.2,
        repeats=3,
        warmup=50,
        rounds=1,
        http_duration=1,
        http_warmup=0,
        http_rounds=1,
        memory=False,
    ),
    "smoke": Mode(
        "smoke",
        0.0,
        repeats=1,
        warmup=1,
        rounds=1,
        http_duration=1,
        http_warmup=0,
        http_rounds=1,
        memory=False,
        fixed_number=3,
        levels=("inprocess",),
    ),
}


# -- environment --------------------------------------------------------------------------


def environment() -> dict[str, Any]:
    """The machine, Python, package versions, git revision and current load."""
    model = platform.processor() or "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    packages: dict[str, str | None] = {}
    for package in _PACKAGES:
        try:
            packages[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            packages[package] = None
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": packages,
        "wrk": _command_output([over_http.WRK, "-v"]).split(" Copyright")[0],
        "git": _git_revision(),
        "loadavg": load(),
    }


def load() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def _command_output(command: Sequence[str]) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (done.stdout or done.stderr).strip()


def _git_revision() -> str:
    revision = _command_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = _command_output(["git", "-C", str(ROOT), "status", "--porcelain", "voicehooks"])
    return f"{revision} (voicehooks/ has uncommitted changes)" if dirty else revision


# -- in-process ---------------------------------------------------------------------------


def run_inprocess(
    names: Sequence[str],
    numbers: Mapping[str, int],
    *,
    repeats: int,
    warmup: int,
    rounds: int,
    seed: int,
    isolate: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Time every contender in-process; each in a fresh subprocess unless ``isolate=False``.

    Returns, per workload and contender, every repeat's microseconds per request and the
    fastest of them, plus the ratios between contenders. The fastest, not the median: the
    work is deterministic CPU, and on a shared machine another job only ever adds to a
    repeat's time (the median of ten still moved by a quarter from one run to the next).
    """
    repeats_us: dict[str, dict[str, list[float]]] = {w: {n: [] for n in names} for w in numbers}
    loops: set[str] = set()
    for round_ in range(rounds):
        shift = round_ % len(names)
        for name in [*names[shift:], *names[:shift]]:
            settings = inprocess.settings_for(
                name, numbers, repeats=repeats, warmup=warmup, seed=seed
            )
            result = _inprocess_subprocess(settings) if isolate else inprocess.run(settings)
            loops.add(result["loop"])
            for workload, measured in result["workloads"].items():
                repeats_us[workload][name].extend(measured["repeats_us"])
            if log is not None:
                cells = ", ".join(
                    f"{w} {statistics.median(m['repeats_us']):.1f}"
                    for w, m in result["workloads"].items()
                )
                log(f"  in-process {name:<11} µs/request: {cells}")
    fastest = {
        w: {n: min(values) for n, values in by_name.items()} for w, by_name in repeats_us.items()
    }
    return {
        "loop": sorted(loops),
        "numbers": dict(numbers),
        "repeats": repeats,
        "rounds": rounds,
        "us": fastest,
        "repeats_us": repeats_us,
        "ratios": {w: _inprocess_ratios(m) for w, m in fastest.items()},
    }


def _inprocess_subprocess(settings: inprocess.Settings) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.inprocess", json.dumps(settings)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"in-process run of {settings['contender']} failed:\n{done.stderr[-3000:]}"
        )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _inprocess_ratios(us: Mapping[str, float]) -> dict[str, float]:
    ratios: dict[str, float] = {}
    if "voicehooks" in us and "raw" in us:
        ratios["voicehooks/raw"] = us["voicehooks"] / us["raw"]
    if "handmade" in us and "raw" in us:
        ratios["handmade/raw"] = us["handmade"] / us["raw"]
    if "voicehooks" in us and "handmade" in us:
        ratios["voicehooks/handmade"] = us["voicehooks"] / us["handmade"]
    if "voicehooks" in us and "fastapi" in us:
        ratios["voicehooks/fastapi"] = us["voicehooks"] / us["fastapi"]
        ratios["fastapi/voicehooks"] = us["fastapi"] / us["voicehooks"]
    return ratios


def _http_ratios(runs: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, float]:
    # Per round, then the median: the two runs of a round were measured close together.
    def ratio(top: str, bottom: str) -> float | None:
        if top not in runs or bottom not in runs:
            return None
        pairs = zip(runs[top], runs[bottom], strict=True)
        return statistics.median(float(a["rps"]) / float(b["rps"]) for a, b in pairs)

    ratios: dict[str, float] = {}
    if "voicehooks" in runs and "raw" in runs:
        pairs = zip(runs["voicehooks"], runs["raw"], strict=True)
        ratios["cpu voicehooks/raw"] = statistics.median(
            float(a["server_cpu_us"]) / float(b["server_cpu_us"]) for a, b in pairs
        )
    for key, (top, bottom) in {
        "voicehooks/raw": ("voicehooks", "raw"),
        "voicehooks/fastapi": ("voicehooks", "fastapi"),
        "voicehooks/constant": ("voicehooks", "constant"),
    }.items():
        value = ratio(top, bottom)
        if value is not None:
            ratios[key] = value
    return ratios


def summarize_http(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Median requests/s and latencies over the rounds, and the ratios, per workload."""
    summary: dict[str, Any] = {}
    for workload, by_name in raw["runs"].items():
        rows: dict[str, Any] = {}
        for name, runs in by_name.items():
            rows[name] = {
                "rps": statistics.median(r["rps"] for r in runs),
                "p50_ms": statistics.median(r["latency_us"]["p50"] for r in runs) / 1000,
                "p99_ms": statistics.median(r["latency_us"]["p99"] for r in runs) / 1000,
                "server_cpu_us": statistics.median(r["server_cpu_us"] for r in runs),
                "exhausted": any(r["exhausted"] for r in runs),
                "errors": sum(sum(r["errors"].values()) for r in runs),
            }
        summary[workload] = {
            "contenders": rows,
            "ratios": _http_ratios(by_name),
        }
    return summary


# -- targets ------------------------------------------------------------------------------


def targets(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each goal of issue 26 (issue 17's, tightened) with the measured value and whether it
    holds."""
    rows: list[dict[str, Any]] = []
    ratios = results.get("inprocess", {}).get("ratios", {})
    for workload, limit in INPROCESS_TARGETS.items():
        value = ratios.get(workload, {}).get("voicehooks/raw")
        if value is not None:
            rows.append(
                _target(
                    f"1. in-process {workload}: voicehooks/raw",
                    value,
                    f"≤ {limit}x",
                    value <= limit,
                )
            )
    for workload, summary in results.get("http_summary", {}).items():
        if workload not in (*MAIN_WORKLOADS, *SYNC_WORKLOADS):
            continue
        cpu = summary["ratios"].get("cpu voicehooks/raw")
        if cpu is not None:
            rows.append(
                _target(
                    f"2. HTTP {workload}: server CPU per request, voicehooks/raw",
                    cpu,
                    f"≤ {HTTP_CPU_TARGET}x",
                    cpu <= HTTP_CPU_TARGET,
                )
            )
        share = summary["ratios"].get("voicehooks/raw")
        if share is not None:
            rows.append(
                _target(
                    f"2. HTTP {workload}: voicehooks req/s / raw",
                    share,
                    f"≥ {HTTP_SHARE_TARGET:.0%}",
                    share >= HTTP_SHARE_TARGET,
                )
            )
    for workload, tail in results.get("http_tail", {}).get("workloads", {}).items():
        excess = tail["p99_excess_ms"]
        rows.append(
            _target(
                f"3. HTTP {workload} at half the floor's rate: p99 voicehooks - raw (ms)",
                excess,
                f"≤ {over_http.TAIL_TARGET_MS:g} ms",
                excess <= over_http.TAIL_TARGET_MS,
            )
        )
    grown = results.get("growth")
    if grown:
        rows.append(
            _target(
                "4. overhead per tool call at 30 calls / at 3 calls",
                grown["overhead_per_call_at_30_us"] / grown["overhead_per_call_at_3_us"],
                f"≤ {growth.FLAT_TOLERANCE}x (flat)",
                bool(grown["flat"]),
            )
        )
        rows.append(
            _target(
                "4. overhead per extra tool call at 30 calls (µs above the floor's)",
                grown["overhead_per_call_at_30_us"],
                f"≤ {PER_CALL_TARGET_US:g} µs",
                grown["overhead_per_call_at_30_us"] <= PER_CALL_TARGET_US,
            )
        )
        rows.append(
            _target(
                "4. report cost per KiB: voicehooks/raw",
                grown["slope_ratio"],
                f"≤ {growth.SLOPE_TARGET}x",
                grown["slope_ratio"] <= growth.SLOPE_TARGET,
            )
        )
    for name, row in results.get("features", {}).items():
        if row.get("budget_ratio") is not None:
            rows.append(
                _target(
                    f"5. {name}: with / without",
                    row["ratio"],
                    f"≤ {row['budget_ratio']:g}x ({row['budget_source']})",
                    bool(row["within_budget"]),
                )
            )
        if row["budget_us"] is not None:
            rows.append(
                _target(
                    f"5. {name}: µs per delivery",
                    row["cost_us"],
                    f"≤ {row['budget_us']:g} µs ({row['budget_source']})",
                    bool(row["within_budget"]),
                )
            )
    speedup = ratios.get("tool-1", {}).get("fastapi/voicehooks")
    if speedup is not None:
        rows.append(
            _target(
                "in-process tool-1: FastAPI/voicehooks (issue 7)",
                speedup,
                f"≥ {FASTAPI_SPEEDUP_TARGET}x",
                speedup >= FASTAPI_SPEEDUP_TARGET,
            )
        )
    for name, measured in results.get("memory", {}).items():
        rows.append(
            _target(
                f"memory {name}: RSS growth over the second half of the requests (MiB)",
                measured["growth_second_half_kib"] / 1024,
                f"≤ {memory.FLAT_KIB / 1024:.0f} MiB",
                bool(measured["flat"]),
            )
        )
    return rows


def _target(name: str, value: float, goal: str, met: bool) -> dict[str, Any]:
    return {"target": name, "value": round(value, 3), "goal": goal, "met": met}


# -- the run ------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_voicehooks() -> Iterator[None]:
    """The conformance check's rejections are expected; keep their warnings off the screen."""
    logger = logging.getLogger("voicehooks")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def run(
    mode: Mode,
    *,
    names: Sequence[str] = contenders.CONFORMING,
    workloads: Sequence[str] = tuple(WORKLOADS),
    levels: Sequence[str] | None = None,
    seed: int = DEFAULT_SEED,
    isolate: bool = True,
    connections: int = 16,
    http_duration: int | None = None,
    rounds: int | None = None,
    memory_requests: int = 100_000,
    plot: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the benchmark; return everything measured as one JSON-ready dict.

    ``plot`` is where the growth level draws its PNG (none when omitted).
    """
    chosen = tuple(levels if levels is not None else mode.levels)
    conforming = [n for n in names if n in contenders.CONFORMING]
    results: dict[str, Any] = {"mode": mode.name, "environment": environment()}
    checked = (*workloads, *(w for w in growth.workloads() if w not in workloads))
    if "growth" not in chosen:
        checked = tuple(workloads)
    with _quiet_voicehooks():
        compared = asyncio.run(conformance.check(conforming, checked, seed=seed))
    results["conformance"] = {"contenders": conforming, "answers_compared": compared}
    if log is not None:
        log(f"conformance: {compared} answers identical across {', '.join(conforming)}")
    if "inprocess" in chosen:
        results["inprocess"] = run_inprocess(
            conforming,
            mode.numbers(workloads),
            repeats=mode.repeats,
            warmup=mode.warmup,
            rounds=rounds or mode.rounds,
            seed=seed,
            isolate=isolate,
            log=log,
        )
        results["load_after_inprocess"] = load()
    if "http" in chosen:
        http_names = tuple(
            n
            for n in ("constant", *names)
            if n in contenders.ALL and n not in contenders.INPROCESS_ONLY
        )
        raw = over_http.run(
            over_http.HttpSettings(
                contenders=tuple(dict.fromkeys(http_names)),
                workloads=tuple(workloads),
                duration_seconds=http_duration or mode.http_duration,
                warmup_seconds=mode.http_warmup,
                connections=connections,
                rounds=mode.http_rounds,
                seed=seed,
                tail_workloads=tuple(w for w in workloads if w in MAIN_WORKLOADS),
            ),
            log=log,
        )
        results["http_tail"] = raw.pop("tail")
        results["http"] = raw
        results["http_summary"] = summarize_http(raw)
        results["load_after_http"] = load()
    if "memory" in chosen and mode.memory:
        memory_names = [n for n in ("voicehooks", "raw") if n in names]
        results["memory"] = memory.run(
            memory_names, total=memory_requests, connections=connections, seed=seed, log=log
        )
        results["load_after_memory"] = load()
    if "growth" in chosen:
        measured = run_inprocess(
            growth.CONTENDERS,
            mode.numbers(growth.workloads()),
            repeats=mode.repeats,
            warmup=mode.warmup,
            rounds=rounds or mode.rounds,
            seed=seed,
            isolate=isolate,
            log=log,
        )
        results["growth"] = {"inprocess": measured, **growth.analyse(measured, seed)}
        if plot is not None:
            load_now = " ".join(str(x) for x in load())
            subtitle = (
                f"voicehooks {results['environment']['git']}, {mode.name} run, load {load_now}"
            )
            drawn = growth.plot(results["growth"], plot, subtitle=subtitle)
            results["growth"]["plot"] = os.path.relpath(drawn, ROOT)
        results["load_after_growth"] = load()
    if "features" in chosen:
        results["features"] = run_features(mode, seed=seed, log=log)
        results["load_after_features"] = load()
    if mode.name != "smoke":  # a handful of requests says nothing about the targets
        results["targets"] = targets(results)
    return results


def run_features(
    mode: Mode, *, seed: int, log: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Each feature's cost (``benchmarks.features``), in a fresh process."""
    workloads = sorted({w for f in features.FEATURES.values() for w in _feature_workloads(f)})
    settings = features.Settings(
        features=list(features.FEATURES),
        numbers=mode.numbers(workloads),
        rounds=FEATURE_ROUNDS.get(mode.name, 1),
        warmup=mode.warmup,
        seed=seed,
    )
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.features", json.dumps(settings)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the feature-cost level failed:\n{done.stderr[-3000:]}")
    measured: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if log is not None:
        for name, row in measured.items():
            log(f"  feature {name:<34} {row['cost_us']:+.2f} µs/request")
    return measured


def _feature_workloads(feature: features.Feature) -> tuple[str, str]:
    return feature.baseline.workload, feature.variant.workload


# -- output -------------------------------------------------------------------------------


def format_tables(results: Mapping[str, Any]) -> str:
    """The results as Markdown tables."""
    env = results["environment"]
    packages = ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v)
    lines = [
        f"Machine: {env['cpu']}, {env['usable_cores']} usable of {env['cores']} cores; "
        f"{env['python']}; {env['platform']}",
        f"Packages: {packages}; {env['wrk']}",
        f"voicehooks revision: {env['git']}; mode: {results['mode']}",
        "Load average (1/5/15 min) at start: "
        + " ".join(str(x) for x in env["loadavg"])
        + "".join(
            f"; after {key.removeprefix('load_after_')}: {' '.join(str(x) for x in results[key])}"
            for key in (
                "load_after_inprocess",
                "load_after_http",
                "load_after_memory",
                "load_after_growth",
                "load_after_features",
            )
            if key in results
        ),
        "",
    ]
    if "inprocess" in results:
        lines += _inprocess_table(results["inprocess"])
    if "http_summary" in results:
        lines += _http_tables(results["http"], results["http_summary"])
    if results.get("http_tail", {}).get("workloads"):
        lines += _tail_table(results["http_tail"])
    if "memory" in results:
        lines += _memory_table(results["memory"])
    if "growth" in results:
        lines += growth.table(results["growth"])
    if "features" in results:
        lines += _features_table(results["features"])
    if results.get("targets"):
        lines += [
            "Targets (issue 26; the goal numbers are the issue's):",
            "",
            "| target | measured | goal | met |",
            "|---|---|---|---|",
        ]
        for row in results["targets"]:
            lines.append(
                f"| {row['target']} | {row['value']:.2f} | {row['goal']} | "
                f"{'yes' if row['met'] else '**no**'} |"
            )
        lines.append("")
    return "\n".join(lines)


def _inprocess_table(data: Mapping[str, Any]) -> list[str]:
    names = list(next(iter(data["us"].values())))
    samples = data["repeats"] * data["rounds"]
    lines = [
        f"In-process, µs per request (fastest of {samples} repeats; {', '.join(data['loop'])}):",
        "",
        "| workload | "
        + " | ".join(names)
        + " | voicehooks/raw | handmade/raw | voicehooks/handmade | FastAPI/voicehooks |",
        "|---|" + "---:|" * (len(names) + 4),
    ]
    for workload, us in data["us"].items():
        ratios = data["ratios"][workload]
        cells = " | ".join(f"{us[n]:.1f}" for n in names)
        shown = ("voicehooks/raw", "handmade/raw", "voicehooks/handmade", "fastapi/voicehooks")
        lines.append(
            f"| {workload} | {cells} | " + " | ".join(_times(ratios.get(r)) for r in shown) + " |"
        )
    lines += [
        "",
        "handmade is the second floor: raw plus voicehooks' default features written by hand "
        "(benchmarks/bench_handmade.py); handmade/raw is what the features cost, "
        "voicehooks/handmade what the framework adds.",
    ]
    return [*lines, ""]


def _http_tables(raw: Mapping[str, Any], summary: Mapping[str, Any]) -> list[str]:
    names = list(next(iter(summary.values()))["contenders"])
    lines = [
        f"HTTP, requests/s (uvicorn + httptools + uvloop, 1 worker on core {raw['cpu']['server']}; "
        f"wrk -t1 -c{raw['connections']} on core {raw['cpu']['wrk']}; "
        f"median of {raw['rounds']} run(s) of {raw['duration_seconds']} s; ratios: median of the "
        "rounds' ratios):",
        "",
        "| workload | " + " | ".join(names) + " | voicehooks/raw | voicehooks/FastAPI |",
        "|---|" + "---:|" * (len(names) + 2),
    ]
    notes: list[str] = []
    for workload, data in summary.items():
        rows = data["contenders"]
        cells = " | ".join(f"{rows[n]['rps']:.0f}" for n in names)
        ratios = data["ratios"]
        share = ratios.get("voicehooks/raw")
        lines.append(
            f"| {workload} | {cells} | {f'{share:.0%}' if share is not None else '—'} | "
            f"{_times(ratios.get('voicehooks/fastapi'))} |"
        )
        for name, row in rows.items():
            if row["exhausted"]:
                notes.append(f"{workload}/{name}: the request pool ran out (run cut short)")
            if row["errors"]:
                notes.append(f"{workload}/{name}: {row['errors']} errors")
    lines += [
        "",
        "HTTP, server CPU time per request in µs (user + system of the server process; "
        "steadier than requests/s when other processes share the core):",
        "",
        "| workload | " + " | ".join(names) + " | voicehooks/raw |",
        "|---|" + "---:|" * (len(names) + 1),
    ]
    for workload, data in summary.items():
        rows = data["contenders"]
        cells = " | ".join(f"{rows[n]['server_cpu_us']:.1f}" for n in names)
        lines.append(
            f"| {workload} | {cells} | {_times(data['ratios'].get('cpu voicehooks/raw'))} |"
        )
    lines += ["", "HTTP latency, p50 / p99 in ms:", ""]
    lines += ["| workload | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for workload, data in summary.items():
        rows = data["contenders"]
        cells = " | ".join(f"{rows[n]['p50_ms']:.2f} / {rows[n]['p99_ms']:.2f}" for n in names)
        lines.append(f"| {workload} | {cells} |")
    return [*lines, *(f"Note: {n}" for n in notes), ""]


def _memory_table(data: Mapping[str, Any]) -> list[str]:
    lines = [
        "Memory, RSS of one uvicorn worker (MiB):",
        "",
        "| contender | requests | start | after 10 % | after 50 % | end | peak | flat |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, m in data.items():
        lines.append(
            f"| {name} | {m['requests']} | {m['start_kib'] / 1024:.1f} | "
            f"{m['after_first_chunk_kib'] / 1024:.1f} | "
            f"{(m['end_kib'] - m['growth_second_half_kib']) / 1024:.1f} | "
            f"{m['end_kib'] / 1024:.1f} | "
            f"{m['peak_kib'] / 1024:.1f} | {'yes' if m['flat'] else '**no**'} |"
        )
    return [*lines, ""]


def _tail_table(data: Mapping[str, Any]) -> list[str]:
    lines = [
        f"HTTP tail at {data['share_of_floor']:.0%} of the floor's requests/s (closed-loop "
        "pacing; the rate reached is shown):",
        "",
        "| workload | aimed req/s | raw req/s | voicehooks req/s | raw p99 ms | voicehooks p99 ms "
        "| excess ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for workload, row in data["workloads"].items():
        raw, vh = row["raw"], row["voicehooks"]
        lines.append(
            f"| {workload} | {row['rate_target']:.0f} | {raw['rps']:.0f} | {vh['rps']:.0f} | "
            f"{raw['p99_ms']:.2f} | {vh['p99_ms']:.2f} | {row['p99_excess_ms']:+.2f} |"
        )
    return [*lines, ""]


def _features_table(data: Mapping[str, Any]) -> list[str]:
    lines = [
        "Feature costs, in-process µs per request (voicehooks with the feature - without; "
        "median of the paired rounds, both under a running lifespan):",
        "",
        "| feature | workload | without | with | cost | budget | what is compared |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for name, row in data.items():
        budget = "—"
        verdict = "met" if row["within_budget"] else "**over**"
        if row.get("budget_ratio") is not None:
            budget = f"≤ {row['budget_ratio']:g}x: {row['ratio']:.2f}x, {verdict}"
        elif row["budget_us"] is not None:
            budget = f"≤ {row['budget_us']:g} µs: {verdict}"
        lines.append(
            f"| {name} | {row['workloads']['variant']} | {row['baseline_us']:.1f} | "
            f"{row['variant_us']:.1f} | {row['cost_us']:+.2f} | {budget} | {row['what']} |"
        )
    return [*lines, ""]


def _times(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


# -- command line -------------------------------------------------------------------------


def _csv(choices: Sequence[str]) -> Callable[[str], tuple[str, ...]]:
    def parse(value: str) -> tuple[str, ...]:
        items = tuple(v.strip() for v in value.split(",") if v.strip())
        unknown = [v for v in items if v not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown: {', '.join(unknown)}; choose from {', '.join(choices)}"
            )
        return items

    return parse


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point (``python -m benchmarks``)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description="Benchmark voicehooks against the floor."
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="a fast variant (~1 min)")
    group.add_argument(
        "--smoke", action="store_true", help="conformance and a few in-process requests only"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--save", type=Path, help="also write the JSON result to this file")
    parser.add_argument(
        "--levels",
        type=_csv(("inprocess", "http", "memory", "growth", "features")),
        help="levels to run",
    )
    parser.add_argument(
        "--plot",
        type=Path,
        help=f"where to draw the growth plot (a full run: {growth.PLOT.name} by default)",
    )
    parser.add_argument(
        "--contenders", type=_csv(contenders.CONFORMING), default=contenders.CONFORMING
    )
    parser.add_argument("--workloads", type=_csv(tuple(WORKLOADS)), default=tuple(WORKLOADS))
    parser.add_argument("--rounds", type=int, help="in-process rounds (fresh processes each)")
    parser.add_argument("--duration", type=int, help="seconds per HTTP run")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--memory-requests", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args(argv)
    mode = MODES["quick" if args.quick else "smoke" if args.smoke else "full"]

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    log(f"load average before: {' '.join(str(x) for x in load())}")
    results = run(
        mode,
        names=args.contenders,
        workloads=args.workloads,
        levels=args.levels,
        seed=args.seed,
        connections=args.connections,
        http_duration=args.duration,
        rounds=args.rounds,
        memory_requests=args.memory_requests,
        plot=args.plot or (growth.PLOT if mode.name == "full" else None),
        log=log,
    )
    if args.save:
        args.save.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2) if args.json else format_tables(results))
    return 0
