"""A private ``redis-server`` for tests: a free loopback port, a temp dir, persistence optional.

Tests that need Redis take the ``redis_server`` fixture (tests/conftest.py). Without a
``redis-server`` binary (or the ``redis`` package) they skip with a message saying how to get
one; when ``CI`` is set they fail instead, so CI never passes by skipping them.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.servers import free_port, unavailable


@dataclass
class RedisServer:
    """A running ``redis-server`` that only this test session uses."""

    process: subprocess.Popen[bytes]
    port: int
    command: list[str]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        """Kill the server (idempotent); clients see refused connections from now on."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self, timeout: float = 10.0) -> None:
        """Stop the server gracefully (SIGTERM: it flushes its append-only file) and start it
        again on the same port and directory; returns once it answers PING."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=timeout)
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait_for_ping(self, timeout)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections stay open but nothing is answered."""
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Undo ``pause``."""
        self.process.send_signal(signal.SIGCONT)


def require_redis() -> str:
    """The path of ``redis-server``, or skip (fail under ``CI``) saying what is missing."""
    binary = shutil.which("redis-server")
    problem = None
    if binary is None:
        problem = "redis-server is not installed (Debian/Ubuntu: apt-get install redis-server)"
    else:
        try:
            import redis  # noqa: F401
        except ImportError:
            problem = "the redis package is missing (pip install 'voicehooks[redis]')"
    if problem is not None:
        unavailable(problem, "Redis")
    assert binary is not None
    return binary


@contextlib.contextmanager
def running_redis(
    tmp_path: Path, timeout: float = 10.0, *, appendonly: bool = False
) -> Iterator[RedisServer]:
    """Start ``redis-server`` on a free port in ``tmp_path`` and stop it when the block ends.

    With ``appendonly`` it persists every write (``appendonly yes``, ``appendfsync
    everysec``), so ``RedisServer.restart`` keeps the data, as production Redis should.
    """
    binary = require_redis()
    port = free_port()
    directory = tmp_path / f"redis-{port}"
    directory.mkdir()
    options = {
        "port": str(port),
        "bind": "127.0.0.1",
        "dir": str(directory),
        "save": "",  # no snapshots
        "appendonly": "yes" if appendonly else "no",
        "logfile": str(directory / "redis.log"),
    }
    command = [binary, *(part for key, value in options.items() for part in (f"--{key}", value))]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = RedisServer(process, port, command)
    try:
        _wait_for_ping(server, timeout)
        yield server
    finally:
        if server.process.poll() is None:
            server.process.kill()  # nothing to keep, and SIGKILL also ends a paused server
            server.process.wait()


def _wait_for_ping(server: RedisServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"redis-server exited early with code {server.process.returncode}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", server.port), 0.2) as sock,
        ):
            sock.settimeout(0.5)
            sock.sendall(b"PING\r\n")
            if sock.recv(16).startswith(b"+PONG"):
                return
        time.sleep(0.02)
    raise TimeoutError(f"redis-server did not answer PING on port {server.port} in {timeout} s")
