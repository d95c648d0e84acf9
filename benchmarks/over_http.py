"""The HTTP level: each contender under uvicorn, loaded by ``wrk`` on loopback.

Every contender runs as its own ``python -m benchmarks.serve`` process (one uvicorn worker,
uvloop, httptools, no access log), pinned with ``taskset`` to one core; ``wrk`` runs pinned
to another with one thread. ``wrk.lua`` posts pre-signed deliveries from a pool file, each
exactly once: a pool holds more requests than the fastest server can answer in the run's
duration, and should a run use it up, wrk stops and the run is flagged ``exhausted``.

A pool is signed once and served to every contender (each is its own process with its own
duplicate store, so no contender sees a delivery twice); with the 300 s tolerance a pool stays
valid for a few minutes, and pools are signed anew for every workload and round.

The **tail** runs come last: the floor and voicehooks, paced at half the floor's measured
requests/s on each main workload, and the difference of their p99 latencies. wrk paces
closed-loop (each connection waits a think time after each answer; ``wrk.lua``); a
calibration run on the floor measures the latency and timer slack to take off the think
time. The rate reached still differs from the one aimed at; both are reported.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import contenders
from benchmarks.workloads import Pool, make_pool

__all__ = [
    "HttpSettings",
    "Server",
    "cpu_plan",
    "run",
    "running_servers",
    "wrk_run",
    "write_pool_file",
]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WRK = shutil.which("wrk") or "/usr/bin/wrk"
_MAGIC = "voicehooks-bench-pool 1"
TAIL_TARGET_MS = 1.0
"""At half the floor's rate, voicehooks' p99 may exceed the floor's by this much (issue 17)."""
TAIL_SHARE = 0.5


@dataclass(frozen=True)
class HttpSettings:
    """How the HTTP level runs."""

    contenders: tuple[str, ...]
    workloads: tuple[str, ...]
    duration_seconds: int = 5
    warmup_seconds: int = 1
    connections: int = 16
    rounds: int = 1
    max_rate: int = 60_000  # requests/s a pool is sized for; above it a run is "exhausted"
    seed: int = 0
    tail_workloads: tuple[str, ...] = ()  # paced at half the floor's rate, after the rounds


@dataclass(frozen=True)
class CpuPlan:
    """Which cores the server and the load generator run on (``None``: not pinned)."""

    server: str | None
    client: str | None


def cpu_plan() -> CpuPlan:
    """Server on the first usable core, wrk on the second, when there are two and taskset."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2 or shutil.which("taskset") is None:
        return CpuPlan(None, None)
    return CpuPlan(str(cores[0]), str(cores[1]))


def _pinned(core: str | None, command: list[str]) -> list[str]:
    return ["taskset", "-c", core, *command] if core is not None else command


# -- servers ------------------------------------------------------------------------------


@dataclass
class Server:
    """A contender served by uvicorn in its own process."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server process has used so far."""
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_kib(self) -> dict[str, int]:
        """``VmRSS`` and ``VmHWM`` (peak) of the server process, in KiB."""
        values: dict[str, int] = {}
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0])
        return values


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (all held open until all are chosen)."""
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
        return ports


def _wait_listening(server: Server, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _check_alive(server)
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", server.port), 0.2),
        ):
            break
        time.sleep(0.05)
    else:
        raise TimeoutError(f"{server.name} did not listen within {timeout} s")
    # A server that lost its port to another process exits a moment after someone else
    # answered the connection: look again before trusting the port.
    time.sleep(0.3)
    _check_alive(server)


def _check_alive(server: Server) -> None:
    if server.process.poll() is not None:
        log = server.log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the {server.name} server has exited:\n{log}")


@contextlib.contextmanager
def running_servers(
    names: Sequence[str], workdir: Path, plan: CpuPlan
) -> Iterator[dict[str, Server]]:
    """Start one server per contender, all pinned to the server core; stop them at the end."""
    servers: dict[str, Server] = {}
    try:
        for name, port in zip(names, _free_ports(len(names)), strict=True):
            log_path = workdir / f"server-{name}.log"
            with open(log_path, "wb") as log:
                process = subprocess.Popen(
                    _pinned(
                        plan.server, [sys.executable, "-m", "benchmarks.serve", name, str(port)]
                    ),
                    cwd=ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"},
                )
            servers[name] = Server(name, port, process, log_path)
        for server in servers.values():
            _wait_listening(server)
        yield servers
    finally:
        for server in servers.values():
            if server.process.poll() is None:
                server.process.send_signal(signal.SIGTERM)
        for server in servers.values():
            try:
                server.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()


def post(server: Server, pool: Pool, i: int) -> tuple[int, bytes]:
    """Send request ``i`` of ``pool`` over HTTP; return status and body."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        headers = {k.decode(): v.decode() for k, v in pool.headers(i)}
        connection.request("POST", "/", body=pool.body(i), headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


# -- wrk ----------------------------------------------------------------------------------


def write_pool_file(path: Path, pools: Sequence[Pool]) -> int:
    """Write ``pools`` for ``wrk.lua``, their requests interleaved; return how many."""
    stamps = {pool.timestamp for pool in pools}
    if len(stamps) != 1:
        raise ValueError("every pool of one file must be signed at the same timestamp")
    total = 0
    with open(path, "wb") as out:
        out.write(f"{_MAGIC}\n{stamps.pop()}\n{len(pools)}\n".encode())
        for pool in pools:
            if b"\n" in pool.prefix:
                raise ValueError("a body prefix must be one line")
            out.write(pool.event.encode() + b" " + pool.prefix + b"\n")
        for i in range(max(len(pool) for pool in pools)):
            for k, pool in enumerate(pools, start=1):
                if i < len(pool):
                    out.write(b"%d %s %s\n" % (k, pool.signatures[i].encode(), pool.tails[i]))
                    total += 1
    return total


def wrk_run(
    port: int,
    pool_file: Path,
    *,
    limit: int,
    duration_seconds: int,
    connections: int,
    core: str | None,
    think_ms: float | None = None,
) -> dict[str, Any]:
    """Run wrk once against ``port``; return what ``wrk.lua`` reports, plus requests/s.

    The run ends after ``duration_seconds`` or as soon as ``limit`` requests were sent;
    ``think_ms`` paces each connection (see ``wrk.lua``).
    """
    marker = pool_file.with_suffix(".exhausted")
    marker.unlink(missing_ok=True)
    command = _pinned(
        core,
        [
            WRK,
            "-t1",
            f"-c{connections}",
            f"-d{duration_seconds}s",
            "--latency",
            "-s",
            str(HERE / "wrk.lua"),
            f"http://127.0.0.1:{port}/",
            "--",
            str(pool_file),
            str(limit),
            str(marker),
        ],
    )
    env = dict(os.environ)
    env.pop("VOICEHOOKS_WRK_THINK_MS", None)
    if think_ms is not None:
        env["VOICEHOOKS_WRK_THINK_MS"] = f"{think_ms:.3f}"
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + duration_seconds + 60
    interrupted = False
    while process.poll() is None:
        if not interrupted and marker.exists():
            process.send_signal(signal.SIGINT)  # wrk ends the run and prints its summary
            interrupted = True
        if time.monotonic() > deadline:
            process.kill()
            raise TimeoutError("wrk did not finish in time")
        time.sleep(0.01)
    stdout, stderr = process.communicate()
    for line in stdout.decode(errors="replace").splitlines():
        if line.startswith("WRK-JSON "):
            result: dict[str, Any] = json.loads(line[len("WRK-JSON ") :])
            break
    else:
        raise RuntimeError(f"wrk printed no result: {stderr.decode(errors='replace')[-1000:]}")
    marker.unlink(missing_ok=True)
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


# -- the level ----------------------------------------------------------------------------


def _check_answers(servers: Mapping[str, Server], workload: str, seed: int) -> None:
    """The same delivery, over HTTP, gets the same answer from every conforming contender."""
    pool = make_pool(workload, 1, stream="http-conformance", seed=seed)
    answers = {name: post(server, pool, 0) for name, server in servers.items()}
    reference = None
    for name, (status, body) in answers.items():
        if status != 200:
            raise RuntimeError(f"{name} answered {status} over HTTP to {workload}")
        if name not in contenders.CONFORMING:
            continue
        if reference is None:
            reference = (name, body)
        elif body != reference[1]:
            raise RuntimeError(
                f"{workload} over HTTP: {name} answered {body[:200]!r}, "
                f"{reference[0]} {reference[1][:200]!r}"
            )


def _spare(settings: HttpSettings) -> int:
    # Requests past the limit, for the few wrk sends while its thread stops.
    return 2 * settings.connections + 8


def _pool_files(
    settings: HttpSettings, workdir: Path, workload: str, round_: int
) -> list[tuple[Path, int, int]]:
    """(pool file, limit, seconds) of the warm-up run, if any, then of the timed run."""
    stamp = int(time.time())
    runs = [("warm", settings.warmup_seconds), ("timed", settings.duration_seconds)]
    files: list[tuple[Path, int, int]] = []
    for purpose, seconds in runs:
        if not seconds:
            continue
        limit = seconds * settings.max_rate
        pool = make_pool(
            workload,
            limit + _spare(settings),
            stream=f"http-{purpose}-{round_}",
            seed=settings.seed,
            timestamp=stamp,
        )
        path = workdir / f"{workload}.{purpose}.pool"
        write_pool_file(path, [pool])
        files.append((path, limit, seconds))
    return files


def _warm_up(
    servers: Mapping[str, Server], settings: HttpSettings, workdir: Path, plan: CpuPlan
) -> None:
    """One second of every workload, interleaved, for each server before anything is timed."""
    limit = settings.max_rate
    per_workload = -(-limit // len(settings.workloads)) + _spare(settings)
    stamp = int(time.time())
    pools = [
        make_pool(w, per_workload, stream="http-first-warm-up", seed=settings.seed, timestamp=stamp)
        for w in settings.workloads
    ]
    path = workdir / "first-warm-up.pool"
    write_pool_file(path, pools)
    for server in servers.values():
        wrk_run(
            server.port,
            path,
            limit=limit,
            duration_seconds=1,
            connections=settings.connections,
            core=plan.client,
        )


def _tail(
    servers: Mapping[str, Server],
    settings: HttpSettings,
    workdir: Path,
    plan: CpuPlan,
    results: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]],
    log: Any,
) -> dict[str, Any]:
    """p99 of the floor and voicehooks, each paced at half the floor's measured rate."""
    measured: dict[str, Any] = {}
    names = [n for n in ("raw", "voicehooks") if n in servers]
    if len(names) < 2:
        return {"workloads": measured}
    for workload in settings.tail_workloads:
        floor_runs = results.get(workload, {}).get("raw", [])
        if not floor_runs:
            continue
        rate = TAIL_SHARE * sorted(r["rps"] for r in floor_runs)[len(floor_runs) // 2]

        # One calibration run on the floor: each connection's cycle is its think time plus
        # the answer's latency plus wrk's timer slack, which the second guess takes off.
        cycle_ms = 1000.0 * settings.connections / rate
        trial = _paced(servers["raw"], settings, workdir, workload, plan, cycle_ms, -2)
        slack_ms = max(0.0, 1000.0 * settings.connections / trial["rps"] - cycle_ms)
        think_ms = max(0.0, cycle_ms - slack_ms)
        row: dict[str, Any] = {"rate_target": rate, "think_ms": think_ms}
        for name in names:
            result = _paced(servers[name], settings, workdir, workload, plan, think_ms, -1)
            row[name] = {
                "rps": result["rps"],
                "p50_ms": result["latency_us"]["p50"] / 1000,
                "p99_ms": result["latency_us"]["p99"] / 1000,
            }
            if log is not None:
                log(
                    f"  tail {workload:<18} {name:<11} {result['rps']:>9.0f} req/s "
                    f"(aimed {rate:.0f})  p99 {row[name]['p99_ms']:.2f} ms"
                )
        row["p99_excess_ms"] = row["voicehooks"]["p99_ms"] - row["raw"]["p99_ms"]
        measured[workload] = row
    return {"share_of_floor": TAIL_SHARE, "workloads": measured}


def _paced(
    server: Server,
    settings: HttpSettings,
    workdir: Path,
    workload: str,
    plan: CpuPlan,
    think_ms: float,
    round_: int,
) -> dict[str, Any]:
    # A pool of its own for each run (signed anew; the same round gives the same requests).
    pool_file, limit, seconds = _pool_files(settings, workdir, workload, round_)[-1]
    return wrk_run(
        server.port,
        pool_file,
        limit=limit,
        duration_seconds=seconds,
        connections=settings.connections,
        core=plan.client,
        think_ms=think_ms,
    )


def run(settings: HttpSettings, *, log: Any = None) -> dict[str, Any]:
    """Run every contender on every workload; return the results by workload and contender."""
    plan = cpu_plan()
    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        w: {c: [] for c in settings.contenders} for w in settings.workloads
    }
    with (
        tempfile.TemporaryDirectory(prefix="voicehooks-bench-") as tmp,
        running_servers(settings.contenders, Path(tmp), plan) as servers,
    ):
        workdir = Path(tmp)
        for workload in settings.workloads:
            _check_answers(servers, workload, settings.seed)
        _warm_up(servers, settings, workdir, plan)
        for round_ in range(settings.rounds):
            # Rotate the order each round so drift in the machine's load spreads evenly.
            shift = round_ % len(settings.contenders)
            order = settings.contenders[shift:] + settings.contenders[:shift]
            for workload in settings.workloads:
                files = _pool_files(settings, workdir, workload, round_)
                for name in order:
                    for pool_file, limit, seconds in files:
                        cpu_before = servers[name].cpu_seconds()
                        result = wrk_run(
                            servers[name].port,
                            pool_file,
                            # The constant checks nothing: it may see a delivery twice.
                            limit=limit if name in contenders.CONFORMING else 2**40,
                            duration_seconds=seconds,
                            connections=settings.connections,
                            core=plan.client,
                        )
                    # The last file is the timed one. Its server CPU per request holds up on a
                    # busy machine better than requests/s: a stolen core slows the server
                    # down without making a request cost more of its time.
                    _check_alive(servers[name])  # else its port may be someone else's
                    cpu = servers[name].cpu_seconds() - cpu_before
                    result["server_cpu_us"] = 1e6 * cpu / max(1, result["requests"])
                    results[workload][name].append(result)
                    if log is not None:
                        log(
                            f"  http {workload:<18} {name:<11} {result['rps']:>9.0f} req/s  "
                            f"p50 {result['latency_us']['p50'] / 1000:.2f} ms  "
                            f"p99 {result['latency_us']['p99'] / 1000:.2f} ms  "
                            f"server CPU {result['server_cpu_us']:.1f} µs/request"
                        )
        tail = _tail(servers, settings, workdir, plan, results, log)
    return {
        "tail": tail,
        "cpu": {"server": plan.server, "wrk": plan.client},
        "connections": settings.connections,
        "duration_seconds": settings.duration_seconds,
        "rounds": settings.rounds,
        "runs": results,
    }
