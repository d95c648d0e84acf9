"""The Makefile's ``run``: a real ``make run`` on a free port, stopped by make's PID."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT
from tests.helpers.servers import free_port, wait_until_listening

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("make") is None, reason="needs make (.ci/run installs it)"),
]


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_stopping_make_run_by_its_pid_frees_the_port(tmp_path: Path) -> None:
    port = free_port()
    venv = Path(sys.prefix)  # the environment running the tests, whatever its path
    # -o: take the install stamp as up to date; installing is not what is tested here.
    command = ["make", "-o", f"{venv}/.installed-stamp", "run", f"PORT={port}", f"VENV={venv}"]
    log = tmp_path / "make-run.log"
    with open(log, "w") as output:
        make = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its own process group, so the finally can clean up
        )
    try:
        wait_until_listening(port, make)
        make.send_signal(signal.SIGTERM)  # `kill <make's PID>`
        make.wait(timeout=30)
        deadline = time.monotonic() + 15  # the server drains, then closes its socket
        while not port_is_free(port) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert port_is_free(port), log.read_text()
        assert "Finished server process" in log.read_text()
    finally:
        # Anything of this make left behind (a server orphaned by a shell that did not exec).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(make.pid, signal.SIGKILL)
        make.wait()
