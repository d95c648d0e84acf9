"""Real servers for tests: ``voicehooks run`` (or any server command) in a subprocess on a free
loopback port."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import msgspec
import pytest

from tests.helpers.paths import ROOT
from voicehooks import sign


def unavailable(problem: str, tests: str) -> NoReturn:
    """Skip a test whose server cannot run here, saying why; under ``CI``, where .ci/run
    installs every server, fail instead: a green run must not hide a missing install step."""
    if os.environ.get("CI"):
        pytest.fail(f"{problem}; the {tests} tests are mandatory in CI")
    pytest.skip(f"{problem}; the {tests} tests are skipped")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A running ``voicehooks run`` process."""

    process: subprocess.Popen[str]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """Everything the server printed so far (stdout and stderr together)."""
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout: float = 30.0) -> int:
        """Send SIGTERM and wait for the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def wait_until_listening(port: int, process: subprocess.Popen[str], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early with code {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on port {port} within {timeout} s")


@contextlib.contextmanager
def running_server(
    target: str,
    tmp_path: Path,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    command: str = "run",
) -> Iterator[Server]:
    """Run ``voicehooks run TARGET --port <free>`` until the block ends (then SIGTERM it).

    ``command="dev"`` runs ``voicehooks dev`` instead (pass ``--no-reload`` in ``args``).
    """
    with running_command(
        lambda port: [
            sys.executable,
            "-m",
            "voicehooks",
            command,
            target,
            "--port",
            str(port),
            *args,
        ],
        tmp_path,
        env=env,
        cwd=cwd,
    ) as server:
        yield server


@contextlib.contextmanager
def running_command(
    argv: Callable[[int], Sequence[str]],
    tmp_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[Server]:
    """Run the server command ``argv(port)`` on a free port until the block ends (SIGTERM)."""
    port = free_port()
    log_path = tmp_path / f"server-{port}.log"
    full_env = {**os.environ, **(env or {})}
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            list(argv(port)),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=str(cwd or ROOT),
            text=True,
        )
    server = Server(process, port, log_path)
    try:
        wait_until_listening(port, process)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def post(
    server: Server | int,
    body: bytes | Mapping[str, Any],
    *,
    secret: str,
    headers: Mapping[str, str] | None = None,
    method: str = "POST",
    path: str = "/",
    signed: bool = True,
    timeout: float = 30,
) -> tuple[int, dict[str, str], bytes]:
    """One request to a running server, signed with ``secret`` unless ``signed`` is false.

    Returns the status, the headers (lower-case names) and the body.
    """
    port = server if isinstance(server, int) else server.port
    raw = body if isinstance(body, bytes) else msgspec.json.encode(body)
    all_headers = sign(raw, secret) if signed else {"content-type": "application/json"}
    all_headers.update(headers or {})
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=raw, headers=all_headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()
