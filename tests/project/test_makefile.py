"""The Makefile's ``run`` (a real ``make run`` on a free port, stopped by its PID) and ``dist``."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import pytest

import voicehooks
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
    command = ["make", "-o", f"{venv}/.run-stamp", "run", f"PORT={port}", f"VENV={venv}"]
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


def test_make_dist_builds_a_checked_sdist_and_wheel_of_the_one_version(tmp_path: Path) -> None:
    venv = Path(sys.prefix)
    dist = tmp_path / "dist"
    result = subprocess.run(
        ["make", "-o", f"{venv}/.installed-stamp", "dist", f"VENV={venv}", f"DIST={dist}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    version = voicehooks.__version__
    assert sorted(path.name for path in dist.iterdir()) == [
        f"voicehooks-{version}-py3-none-any.whl",
        f"voicehooks-{version}.tar.gz",
    ]
    assert result.stdout.count("PASSED") == 2  # twine check --strict, each file
    with zipfile.ZipFile(dist / f"voicehooks-{version}-py3-none-any.whl") as wheel:
        assert "voicehooks/py.typed" in wheel.namelist()
    # The version is written once: hatch reads voicehooks/__init__.py, pyproject.toml has none.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"]
    assert pyproject["project"]["dynamic"] == ["version"]
    assert pyproject["tool"]["hatch"]["version"]["path"] == "voicehooks/__init__.py"


def test_make_run_and_dev_install_the_package_alone(tmp_path: Path) -> None:
    for target in ("run", "dev"):
        planned = subprocess.run(
            ["make", "-n", "-B", target, f"VENV={tmp_path / 'venv'}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
        assert "pip install --quiet -e .\n" in planned, planned
        assert "--group" not in planned, planned  # no dev, bench or docs group to serve


def test_the_readme_says_what_make_test_runs() -> None:
    makefile = (ROOT / "Makefile").read_text()
    steps = next(line for line in makefile.splitlines() if line.startswith("test:")).split()[1:]
    steps = steps[: steps.index("##")] if "##" in steps else steps
    said = next(
        line
        for line in (ROOT / "README.md").read_text().splitlines()
        if line.startswith("make test")
    )
    words = {
        "lint": "linters",
        "typecheck": "mypy --strict",
        "docs": "docs build",
        "pytest": "pytest",
    }
    assert steps == list(words), "a new step of `make test`: say it in the README"
    for step in steps:
        assert words[step] in said, f"README's `make test` line does not say it runs {step}"
