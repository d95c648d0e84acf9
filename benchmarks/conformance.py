"""The check that runs before any timing: every contender answers the same bytes.

For each workload a few fresh requests go to every contender in-process. Their status,
content type and body must be identical, their handlers must have run (``demo.Stats``), and
each must refuse a wrong signature and a timestamp outside the 300 s tolerance (either way)
with a 401. A difference aborts the benchmark: timing contenders that do different work
would measure nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from benchmarks import contenders, demo, drive
from benchmarks.workloads import SECRET, WORKLOADS, Pool, make_pool

__all__ = ["ConformanceError", "check"]

_REQUESTS_PER_WORKLOAD = 3


class ConformanceError(AssertionError):
    """Contenders disagree, or one of them skips part of the work."""


async def check(
    names: Sequence[str] = contenders.CONFORMING,
    workloads: Sequence[str] = tuple(WORKLOADS),
    *,
    seed: int,
) -> int:
    """Compare every contender's answers; return how many answers were compared.

    Raises:
        ConformanceError: With every difference found.
    """
    apps = {name: contenders.make_app(name, SECRET) for name in names}
    problems: list[str] = []
    compared = 0
    for workload in workloads:
        pool = make_pool(workload, _REQUESTS_PER_WORKLOAD, stream="conformance", seed=seed)
        for i in range(len(pool)):
            answers: dict[str, drive.Answer] = {}
            for name, app in apps.items():
                before = (demo.Stats.reports, demo.Stats.assistant_requests)
                answers[name] = await drive.request(app, pool.body(i), pool.headers(i))
                for _ in range(3):  # a handler that runs after the answer, as a task
                    await asyncio.sleep(0)
                problems += _handlers_ran(name, pool, before)
                compared += 1
            reference_name, reference = next(iter(answers.items()))
            if reference.status != 200 or reference.content_type != "application/json":
                problems.append(f"{workload}: {reference_name} answered {reference.status}")
            for name, answer in answers.items():
                if answer != reference:
                    problems.append(
                        f"{workload} request {i}: {name} answered {answer.status} "
                        f"{answer.content_type} {answer.body[:200]!r}, {reference_name} "
                        f"{reference.status} {reference.content_type} {reference.body[:200]!r}"
                    )
    for name, app in apps.items():
        for case, (pool, index) in _rejections(seed).items():
            answer = await drive.request(app, pool.body(index), _tampered(pool, index, case))
            if answer.status != 401:
                problems.append(f"{name} answered {answer.status} to {case}, expected 401")
    if problems:
        raise ConformanceError("contenders disagree:\n  " + "\n  ".join(problems))
    return compared


def _handlers_ran(name: str, pool: Pool, before: tuple[int, int]) -> list[str]:
    after = (demo.Stats.reports, demo.Stats.assistant_requests)
    expected = {
        "end-of-call-report": (before[0] + 1, before[1]),
        "assistant-request": (before[0], before[1] + 1),
    }.get(pool.event, before)
    if after != expected:
        return [f"{pool.workload}: {name} did not run its handler exactly once"]
    return []


def _rejections(seed: int) -> dict[str, tuple[Pool, int]]:
    fresh = make_pool("tool-1", 3, stream="rejections", seed=seed)
    stale = make_pool("tool-1", 1, stream="stale", seed=seed, timestamp=fresh.timestamp - 301)
    future = make_pool("tool-1", 1, stream="future", seed=seed, timestamp=fresh.timestamp + 301)
    return {
        "a wrong signature": (fresh, 0),
        "a body signed for another request": (fresh, 1),
        "a timestamp 301 s old": (stale, 0),
        "a timestamp 301 s ahead": (future, 0),
    }


def _tampered(pool: Pool, index: int, case: str) -> list[tuple[bytes, bytes]]:
    headers = pool.headers(index)
    if case == "a wrong signature":
        return [
            (k, b"sha256=" + b"0" * 64 if k == b"x-webhook-signature" else v) for k, v in headers
        ]
    if case == "a body signed for another request":
        other = pool.headers(index + 1)
        return [(k, dict(other)[k] if k == b"x-webhook-signature" else v) for k, v in headers]
    return headers
