"""Chaos proof of durable mode: nothing a receiver accepted is lost.

One server (``--backend redis``: ``redis-server`` with ``appendonly yes``; ``--backend
postgres``: a PostgreSQL cluster that answers a commit once its WAL is written), two receivers
(``voicehooks run`` on two ports, as two hosts would be) and two workers (``voicehooks
worker``) of ``tests/apps/durable.py``, whose queue and duplicate store are both on that
server. Signed status-updates and end-of-call-reports go to both receivers while one worker
is ``kill -9``-ed every ``--kill-every`` seconds and started again, and the server is
restarted once, halfway. Then the driver waits until every accepted (200) delivery's
handler has run, and checks the app's side-effect files:

* **missing**: accepted deliveries no handler ever finished a run of (must be 0);
* **naive duplicates**: extra runs of a side effect a handler does not key (counted, expected
  > 0 under ``kill -9``: a handler whose worker died after the side effect runs again);
* **keyed duplicates**: extra side effects of the handler that keys them on
  ``CallContext.delivery_id`` (must be 0: the id is stable across redeliveries);
* **dead letters** and what is left in the queue (must be 0), and the receivers' memory.

``tests/integration/test_chaos.py`` runs a short variant of each in the suite; ``make chaos``
and ``make chaos-postgres`` run 10,000 deliveries and print the table (``python -m
tests.helpers.chaos --help``). Everything is bounded in count and time (``--time-limit``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

import msgspec

from benchmarks.loadtest import read_answer, rss_kib
from tests.helpers.paths import ROOT
from tests.helpers.postgres_server import running_postgres
from tests.helpers.redis_server import running_redis
from tests.helpers.servers import Server, running_server
from voicehooks.core.signing import sign
from voicehooks.testing import end_of_call_report, status_update

APP = "tests/apps/durable.py"
SECRET = "whsec_chaos_only_not_a_real_secret"
KINDS = {"end-of-call-report": "report", "status-update": "status"}


@dataclass
class Outcome:
    """What the run saw and found."""

    deliveries: int
    backend: str = "redis"
    accepted: set[tuple[str, str]] = field(default_factory=set)  # (kind, call id)
    statuses: Counter[int] = field(default_factory=Counter)
    connection_errors: int = 0
    kills: int = 0
    server_restarts: int = 0
    missing: int = -1
    naive_duplicates: int = -1
    keyed_duplicates: int = -1
    dead_letters: int = -1
    left_in_queue: int = -1
    rss_mib: list[tuple[float, float]] = field(default_factory=list)  # per receiver
    seconds: float = 0.0
    drained: bool = False

    @property
    def passed(self) -> bool:
        return (
            self.drained
            and self.missing == 0
            and self.keyed_duplicates == 0
            and self.dead_letters == 0
            and self.left_in_queue == 0
        )

    def table(self) -> str:
        rows: list[tuple[str, object]] = [
            ("deliveries sent", self.deliveries),
            ("accepted (200)", len(self.accepted)),
            ("refused (503)", self.statuses[503]),
            ("connection errors", self.connection_errors),
            ("worker kill -9", self.kills),
            (f"{self.backend} restarts", self.server_restarts),
            ("missing (accepted, never handled)", self.missing),
            ("duplicated side effects, naive handler", self.naive_duplicates),
            ("duplicated side effects, keyed on delivery_id", self.keyed_duplicates),
            ("dead letters", self.dead_letters),
            ("left in the queue", self.left_in_queue),
        ]
        rows += [
            (f"receiver {i + 1} RSS MiB (warm → end)", f"{start:.1f} → {end:.1f}")
            for i, (start, end) in enumerate(self.rss_mib)
        ]
        rows.append(("seconds", f"{self.seconds:.1f}"))
        width = max(len(name) for name, _ in rows)
        lines = [f"{name.ljust(width)}  {value}" for name, value in rows]
        return "\n".join([*lines, "PASS" if self.passed else "FAIL"])


def delivery(index: int, port: int) -> tuple[str, str, bytes]:
    """The ``index``-th request: every third a report (one in 50 of them fails once)."""
    if index % 3 == 0:
        call_id = f"chaos-{'flaky-' if index % 150 == 0 else ''}{index}"
        payload = end_of_call_report(call_id=call_id)
    else:
        call_id = f"chaos-{index}"
        payload = status_update("in-progress", call_id=call_id)
    kind = payload["message"]["type"]
    body = msgspec.json.encode(payload)
    head = [f"POST / HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-length: {len(body)}\r\n"]
    head += [f"{k}: {v}\r\n" for k, v in sign(body, SECRET, event=kind).items()]
    return KINDS[kind], call_id, "".join(head).encode() + b"\r\n" + body


async def send_all(
    ports: list[int], total: int, concurrency: int, rate: float, outcome: Outcome
) -> None:
    """Send ``total`` deliveries round-robin over ``ports``, ``concurrency`` at a time, at
    most ``rate`` per second (so that the chaos lands all along the run)."""
    indices = iter(range(total))
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def client(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for index in indices:
                await asyncio.sleep(started + index / rate - loop.time())
                kind, call_id, request = delivery(index, port)
                try:
                    writer.write(request)
                    status, _, closing = await read_answer(reader)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    outcome.connection_errors += 1  # not accepted: the platform would know
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                outcome.statuses[status] += 1
                if status == 200:
                    outcome.accepted.add((kind, call_id))
                if closing:
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
        finally:
            writer.close()

    await asyncio.gather(*(client(ports[i % len(ports)]) for i in range(concurrency)))


class Workers:
    """``voicehooks worker`` processes; ``kill(0)`` is the one the chaos hits."""

    def __init__(self, env: dict[str, str], directory: Path, count: int) -> None:
        self.env, self.directory = env, directory
        self.logs: list[IO[bytes]] = []
        self.processes = [self._start(i) for i in range(count)]

    def _start(self, index: int) -> subprocess.Popen[bytes]:
        log = open(self.directory / f"worker-{index}.log", "ab")  # noqa: SIM115 (closed in stop)
        self.logs.append(log)
        command = [sys.executable, "-m", "voicehooks", "worker", APP]
        command += ["--concurrency", "8", "--claim-idle-seconds", "1", "--log-level", "warning"]
        return subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT
        )

    def kill_and_restart(self, index: int) -> None:
        process = self.processes[index]
        process.kill()
        process.wait()
        self.processes[index] = self._start(index)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self.logs:
            log.close()


def lines(path: Path) -> Counter[tuple[str, str]]:
    """``(kind, call id)`` of each line of ``path``, counted."""
    counts: Counter[tuple[str, str]] = Counter()
    with contextlib.suppress(FileNotFoundError):
        for line in path.read_text().splitlines():
            kind, call_id, *_ = line.split()
            counts[kind, call_id] += 1
    return counts


def keyed_effects(directory: Path) -> Counter[str]:
    """The side effects keyed on the delivery id, per kind."""
    return Counter(name.split("-", 1)[0] for name in os.listdir(directory / "once"))


class Restartable(Protocol):
    """A server the run can restart: a ``RedisServer`` or a ``PostgresServer``."""

    @property
    def url(self) -> str: ...

    def restart(self) -> None: ...


async def chaos(
    server: Restartable,
    receivers: list[Server],
    workers: Workers,
    outcome: Outcome,
    concurrency: int,
    rate: float,
    kill_every: float,
    time_limit: float,
) -> None:
    started = time.monotonic()
    sending = asyncio.ensure_future(
        send_all([r.port for r in receivers], outcome.deliveries, concurrency, rate, outcome)
    )
    warm: list[int] = []
    directory = Path(workers.env["DURABLE_EFFECTS_DIR"])
    next_kill = time.monotonic() + kill_every
    while time.monotonic() - started < time_limit:
        await asyncio.sleep(0.1)
        if sending.done():
            if outcome.accepted <= set(lines(directory / "done.log")):
                outcome.drained = True
                break
        elif (
            not outcome.server_restarts
            and sum(outcome.statuses.values()) >= outcome.deliveries // 2
        ):
            await asyncio.to_thread(server.restart)
            outcome.server_restarts += 1
        if not warm and sum(outcome.statuses.values()) >= min(200, outcome.deliveries // 10):
            warm = [rss_kib(r.process.pid) for r in receivers]  # warmed up by a first few
        if time.monotonic() >= next_kill:
            workers.kill_and_restart(0)
            outcome.kills += 1
            next_kill = time.monotonic() + kill_every
    if not sending.done():
        sending.cancel()
    outcome.rss_mib = [
        (start / 1024, rss_kib(r.process.pid) / 1024)
        for start, r in zip(warm, receivers, strict=False)
    ]
    outcome.seconds = time.monotonic() - started


async def queue_leftovers(url: str) -> tuple[int, int]:
    from voicehooks.work.durable import queue_from_url

    queue = queue_from_url(url)
    try:
        stats = await queue.stats()
    finally:
        await queue.aclose()
    return stats.length, stats.dead


def run(
    directory: Path,
    *,
    deliveries: int,
    concurrency: int = 16,
    rate: float = 200.0,
    kill_every: float = 2.0,
    handler_seconds: float = 0.05,
    time_limit: float = 120.0,
    backend: str = "redis",
) -> Outcome:
    """One chaos run in ``directory``; see the module docstring."""
    (directory / "effects" / "once").mkdir(parents=True)
    outcome = Outcome(deliveries, backend)
    servers: contextlib.AbstractContextManager[Restartable] = (
        running_redis(directory, appendonly=True)
        if backend == "redis"
        else running_postgres(durable_commits=True)
    )
    with servers as server:
        env = {
            **os.environ,
            "VOICEHOOKS_SECRET": SECRET,
            "VOICEHOOKS_QUEUE_URL": server.url,
            "DURABLE_EFFECTS_DIR": str(directory / "effects"),
            "DURABLE_HANDLER_SECONDS": str(handler_seconds),
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("VOICEHOOKS_REDIS_URL", None)  # the duplicate store follows the queue's URL
        env.pop("VOICEHOOKS_STORE_URL", None)
        with contextlib.ExitStack() as stack:
            receivers = [
                stack.enter_context(
                    running_server(APP, directory, args=["--log-level", "warning"], env=env)
                )
                for _ in range(2)
            ]
            workers = Workers(env, directory, 2)
            stack.callback(workers.stop)
            asyncio.run(
                chaos(
                    server, receivers, workers, outcome, concurrency, rate, kill_every, time_limit
                )
            )
        outcome.left_in_queue, outcome.dead_letters = asyncio.run(queue_leftovers(server.url))
    effects = directory / "effects"
    runs, keyed = lines(effects / "runs.log"), keyed_effects(effects)
    outcome.missing = len(outcome.accepted - set(lines(effects / "done.log")))
    outcome.naive_duplicates = sum(runs.values()) - len(runs)
    kinds = Counter(kind for kind, _ in runs)
    outcome.keyed_duplicates = sum(keyed[kind] - kinds[kind] for kind in kinds)
    return outcome


@contextlib.contextmanager
def _directory(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="voicehooks-chaos-") as tmp:
        yield Path(tmp)


def main(argv: list[str] | None = None) -> int:
    """``make chaos``: 10,000 deliveries by default; exit code 0 only for a PASS."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=200.0, help="deliveries per second")
    parser.add_argument("--kill-every", type=float, default=2.0, help="seconds")
    parser.add_argument("--time-limit", type=float, default=600.0, help="seconds; then FAIL")
    parser.add_argument("--keep", type=Path, help="run in this directory and keep the logs")
    parser.add_argument("--backend", choices=["redis", "postgres"], default="redis")
    args = parser.parse_args(argv)
    with _directory(args.keep) as directory:
        outcome = run(
            directory,
            deliveries=args.deliveries,
            concurrency=args.concurrency,
            rate=args.rate,
            kill_every=args.kill_every,
            time_limit=args.time_limit,
            backend=args.backend,
        )
    print(outcome.table())
    return 0 if outcome.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
