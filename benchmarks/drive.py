"""Driving an ASGI app directly, without HTTP: prebuilt scopes, receives and a counting send.

Everything a request needs is built before the clock starts; the timed loop only awaits
``app(scope, receive, send)``. ``send`` counts the statuses, so a run that answered anything
but 200 is refused instead of timed. ``lifespan(app)`` runs the app's lifespan around a block,
as a server does: background work then runs as tasks, the loop turns once after each
request (as a server's does between requests), and ``time_batch`` keeps the clock running
until the tasks the batch started have finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from benchmarks.workloads import Pool

__all__ = ["Answer", "Prepared", "lifespan", "prepare", "request", "scope_for", "time_batch"]


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
    app: ASGIApp, batch: Prepared, *, clock: Callable[[], float] = time.process_time
) -> float:
    """CPU seconds this process spent answering every request of ``batch`` one by one.

    CPU time (of all the process's threads, so a worker-thread hop counts) rather than
    wall time: on a shared machine a core stolen by another process inflates wall time
    but not CPU time, as with the HTTP level's server CPU per request.

    Raises:
        RuntimeError: An answer was not a 200.
    """
    send, statuses = counting_send()
    gc.collect()
    idle = len(asyncio.all_tasks())
    started = clock()
    for scope, receive in batch:
        await app(scope, receive, send)
        # A server's loop turns between requests: background work the request started runs
        # now, not piled up behind the whole batch (where 30 reports of 512 KiB held 15 MiB).
        await asyncio.sleep(0)
    await _settle(idle)
    elapsed = clock() - started
    if statuses[200] != len(batch):
        raise RuntimeError(f"expected {len(batch)} answers 200, got {dict(statuses)}")
    return elapsed


async def _settle(idle: int, turns: int = 100_000) -> None:
    """Turn the event loop until no more tasks than ``idle`` are left (background jobs)."""
    for _ in range(turns):
        if len(asyncio.all_tasks()) <= idle:
            return
        await asyncio.sleep(0)
    raise RuntimeError("background tasks did not finish")


@contextlib.asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """Run ``app``'s ASGI lifespan protocol around the block, as a server does."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()

    async def run() -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        await app(scope, inbox.get, outbox.put)

    task = asyncio.create_task(run())
    await inbox.put({"type": "lifespan.startup"})
    started = await outbox.get()
    if started["type"] != "lifespan.startup.complete":
        raise RuntimeError(f"lifespan startup failed: {started}")
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        await outbox.get()
        await task


Runner = Callable[[Callable[[], Awaitable[Any]]], Any]
