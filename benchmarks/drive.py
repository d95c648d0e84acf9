"""Driving an ASGI app directly, without HTTP: prebuilt scopes, receives and a counting send.

Everything a request needs is built before the clock starts; the timed loop only awaits
``app(scope, receive, send)``. ``send`` counts the statuses, so a run that answered anything
but 200 is refused instead of timed.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from benchmarks.workloads import Pool

__all__ = ["Answer", "Prepared", "prepare", "request", "scope_for", "time_batch"]


def scope_for(headers: list[tuple[bytes, bytes]], *, method: str = "POST") -> Scope:
    """An HTTP scope like the one uvicorn builds for a POST to ``/``."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "headers": headers,
        "state": {},
    }


def _receiver(body: bytes) -> Receive:
    messages: list[Message] = [
        {"type": "http.disconnect"},
        {"type": "http.request", "body": body, "more_body": False},
    ]

    async def receive() -> Message:
        return messages.pop() if len(messages) > 1 else messages[0]

    return receive


@dataclass(frozen=True)
class Answer:
    """A captured response."""

    status: int
    content_type: str
    body: bytes


async def request(app: ASGIApp, body: bytes, headers: list[tuple[bytes, bytes]]) -> Answer:
    """Send one request to ``app`` and capture the whole answer."""
    start: dict[str, Any] = {}
    parts: list[bytes] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            parts.append(message.get("body", b""))

    await app(scope_for(headers), _receiver(body), send)
    content_type = dict(start.get("headers", [])).get(b"content-type", b"").decode("latin-1")
    return Answer(start.get("status", 0), content_type, b"".join(parts))


Prepared = list[tuple[Scope, Receive]]


def prepare(pool: Pool, start: int, stop: int) -> Prepared:
    """Scopes and receives for requests ``start`` to ``stop - 1`` of ``pool``."""
    return [(scope_for(pool.headers(i)), _receiver(pool.body(i))) for i in range(start, stop)]


def counting_send() -> tuple[Send, Counter[int]]:
    """A send that only counts response statuses."""
    statuses: Counter[int] = Counter()

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses[message["status"]] += 1

    return send, statuses


async def time_batch(
    app: ASGIApp, batch: Prepared, *, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Seconds to answer every request of ``batch`` one after the other.

    Raises:
        RuntimeError: An answer was not a 200.
    """
    send, statuses = counting_send()
    gc.collect()
    started = clock()
    for scope, receive in batch:
        await app(scope, receive, send)
    elapsed = clock() - started
    if statuses[200] != len(batch):
        raise RuntimeError(f"expected {len(batch)} answers 200, got {dict(statuses)}")
    return elapsed


Runner = Callable[[Callable[[], Awaitable[Any]]], Any]
