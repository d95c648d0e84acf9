"""The benchmark harness in its quickest mode: it runs, and what it reports is well formed.

No timing is asserted: the machine is shared. What must hold is that the conformance check
passes (every contender answers the same bytes), that every contender was measured on every
workload, and that the conformance check would catch a contender that answers differently.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from benchmarks import bench_raw, conformance, contenders, harness, sidebyside
from benchmarks.workloads import SECRET, WORKLOADS
from voicehooks import sign

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def smoke() -> dict[str, object]:
    return harness.run(harness.MODES["smoke"])


def test_smoke_run_measures_every_contender_on_every_workload(smoke: dict[str, object]) -> None:
    inprocess = smoke["inprocess"]
    assert isinstance(inprocess, dict)
    assert set(inprocess["us"]) == set(WORKLOADS)
    for workload, by_name in inprocess["us"].items():
        assert set(by_name) == set(contenders.CONFORMING), workload
        for name, us in by_name.items():
            assert math.isfinite(us), (workload, name)
            assert us > 0, (workload, name)
        assert set(inprocess["ratios"][workload]) == {
            "voicehooks/raw",
            "handmade/raw",
            "voicehooks/handmade",
            "voicehooks/fastapi",
            "fastapi/voicehooks",
        }


def test_smoke_run_checked_conformance_and_describes_the_machine(
    smoke: dict[str, object],
) -> None:
    checked = smoke["conformance"]
    assert isinstance(checked, dict)
    assert checked["contenders"] == list(contenders.CONFORMING)
    assert checked["answers_compared"] > 0
    environment = smoke["environment"]
    assert isinstance(environment, dict)
    assert environment["packages"]["voicehooks"]
    assert "targets" not in smoke  # a handful of requests proves nothing about speed


def test_smoke_result_renders_as_tables(smoke: dict[str, object]) -> None:
    text = harness.format_tables(smoke)
    assert "| tool-1 |" in text
    assert "voicehooks/raw" in text
    assert "voicehooks/handmade" in text  # the second floor splits the gap


async def test_conformance_catches_a_contender_that_answers_differently(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = bench_raw.make_app

    def make_app(secret: str) -> ASGIApp:
        inner = real(secret)

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            async def shout(message: Message) -> None:
                if message["type"] == "http.response.body" and message["body"] != b"{}":
                    message = {**message, "body": bytes(message["body"]).upper()}
                await send(message)

            await inner(scope, receive, shout)

        return app

    monkeypatch.setattr(bench_raw, "make_app", make_app)
    with pytest.raises(conformance.ConformanceError, match="tool-1"):
        await conformance.check(("raw", "voicehooks"), ("tool-1",), seed=1)


async def test_conformance_catches_a_contender_that_skips_the_signature(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = bench_raw.make_app

    def make_app(secret: str) -> ASGIApp:
        return _accept_everything(real(secret))

    monkeypatch.setattr(bench_raw, "make_app", make_app)
    with pytest.raises(conformance.ConformanceError, match="expected 401"):
        await conformance.check(("raw", "voicehooks"), ("tool-1",), seed=1)


def _accept_everything(inner: ASGIApp) -> ASGIApp:
    """Re-sign every request with the right secret before ``inner`` sees it: no real check."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await inner(scope, receive, send)
            return
        message = await receive()
        body = message.get("body", b"")
        headers = [(k.encode(), v.encode()) for k, v in sign(body, SECRET).items()]
        replayed = [message]

        async def again() -> Message:
            return replayed.pop() if replayed else {"type": "http.disconnect"}

        await inner({**scope, "headers": headers}, again, send)

    return app


def test_the_observers_benchmark_measures_every_configuration(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from benchmarks import observers

    assert observers.main(["--number", "20", "--rounds", "1"]) == 0
    output = capsys.readouterr().out
    for name in observers.CONFIGURATIONS:
        assert output.count(f"  {name} ") == 2, output


async def test_the_interim_benchmark_reports_every_number() -> None:
    from benchmarks import interim

    report = await interim.measure(quick=True)
    for key in ("interim_error_ms", "late_inject_ms"):
        assert set(report[key]) == {"median", "p95", "max"}
        assert math.isfinite(report[key]["max"])
    assert report["interim_error_ms"]["median"] > -5  # never before interim_after_seconds
    assert set(report["fast_tool_us"]) == {"fast", "fast_interim"}


def test_two_saved_runs_print_their_targets_side_by_side(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def saved(python: str, value: float, met: bool) -> Path:
        result = {
            "environment": {"python": f"CPython {python}"},
            "targets": [
                {"target": "in-process tool-1", "value": value, "goal": "≤ 1.5x", "met": met}
            ],
            "inprocess": {
                "ratios": {"tool-1": {"handmade/raw": 1.5, "voicehooks/handmade": value / 1.5}}
            },
        }
        path = tmp_path / f"{python}.json"
        path.write_text(json.dumps(result))
        return path

    older, newer = saved("3.11.7", 2.25, False), saved("3.13.0", 1.2, True)
    assert sidebyside.main([str(older), str(newer)]) == 0
    printed = capsys.readouterr().out
    assert "| target | goal | Python 3.11.7 | Python 3.13.0 |" in printed
    assert "| in-process tool-1 | ≤ 1.5x | 2.25 **no** | 1.20 |" in printed
    assert "| tool-1 | 1.50x | 1.50x | 1.50x | 0.80x |" in printed
    assert sidebyside.main([str(older)]) == 2  # two runs at least
