"""A private PostgreSQL for tests: a throwaway cluster on a free loopback port in a temp dir.

``initdb`` makes the cluster (trust authentication: only loopback, only this session) and
``pg_ctl`` starts it with durability off (``fsync``, ``synchronous_commit`` and
``full_page_writes``: nothing here needs to survive a power cut; ``durable_commits`` keeps
``synchronous_commit`` on, for runs that kill the server) and its socket in the temp
dir; ``pg_ctl stop -m immediate`` ends it. Run as root, both run as the ``postgres`` user, who
owns the temp dir. Tests take the ``postgres_url`` fixture (a fresh database on the session's
cluster, tests/conftest.py); the chaos run starts a cluster of its own to restart it.

Without the binaries (Debian: ``apt-get install postgresql``) or psycopg the tests skip
saying what is missing; under ``CI`` they fail instead, so CI never passes by skipping them.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.servers import free_port, unavailable

_OPTIONS = (
    "-c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off "
    "-c max_connections=200 -c shared_buffers=32MB"
)


@dataclass
class PostgresServer:
    """A running cluster that only this test session (or one chaos run) uses."""

    bin_dir: Path
    directory: Path
    port: int
    durable_commits: bool = False
    _databases: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def url(self) -> str:
        """The ``postgres`` database, as the superuser ``postgres`` (trust)."""
        return self.url_of("postgres")

    def url_of(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        name = f"test_{next(self._databases)}"
        self.psql(f"CREATE DATABASE {name}")
        return self.url_of(name)

    def psql(self, statement: str) -> str:
        """Run one statement with ``psql``; its output."""
        command = [str(self.bin_dir / "psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"]
        command += ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-c", statement]
        return subprocess.run(command, check=True, capture_output=True, text=True).stdout

    def pg_ctl(self, *args: str) -> None:
        command = [str(self.bin_dir / "pg_ctl"), "-D", str(self.directory / "data"), *args]
        subprocess.run(_as_owner(command), check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        # synchronous_commit=off answers a commit before its WAL is written: a crash (a stop
        # -m immediate) may then lose the last commits, which a chaos run must not allow.
        commit = "on" if self.durable_commits else "off"
        options = f"-p {self.port} -k {self.directory} {_OPTIONS} -c synchronous_commit={commit}"
        log = str(self.directory / "postgres.log")
        self.pg_ctl("-w", "-t", "30", "-l", log, "-o", options, "start")

    def stop(self) -> None:
        """Stop at once (``-m immediate``), as a crash would; idempotent."""
        with contextlib.suppress(subprocess.CalledProcessError):
            self.pg_ctl("-w", "stop", "-m", "immediate")

    def restart(self) -> None:
        """Stop (``-m fast``: sessions are cut, what was committed stays) and start again on
        the same port and directory; returns once it accepts connections."""
        self.pg_ctl("-w", "stop", "-m", "fast")
        self.start()


def postgres_bin_dir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are: on PATH, else Debian's newest version."""
    found = shutil.which("initdb")
    if found is not None:
        return Path(os.path.realpath(found)).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


def require_postgres() -> Path:
    """The directory of the PostgreSQL binaries, or skip (fail under ``CI``) saying why."""
    bin_dir = postgres_bin_dir()
    problem = None
    if bin_dir is None:
        problem = "PostgreSQL is not installed (Debian/Ubuntu: apt-get install postgresql)"
    else:
        try:
            import psycopg_pool  # noqa: F401
        except ImportError:
            problem = "psycopg is missing (pip install 'voicehooks[postgres]')"
    if problem is not None:
        unavailable(problem, "PostgreSQL")
    assert bin_dir is not None
    return bin_dir


@contextlib.contextmanager
def running_postgres(*, durable_commits: bool = False) -> Iterator[PostgresServer]:
    """Make a cluster in a new temp dir, start it on a free port, and remove both after.

    With ``durable_commits`` a commit is answered once its WAL is written (to the OS: fsync
    stays off), so a killed server loses nothing it confirmed, as production's would not.
    """
    bin_dir = require_postgres()
    # Not pytest's tmp_path: its parents are private to root, and the server runs as postgres.
    directory = Path(tempfile.mkdtemp(prefix="voicehooks-pg-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(directory, "postgres", "postgres")
        initdb = [str(bin_dir / "initdb"), "-D", str(directory / "data"), "-A", "trust"]
        initdb += ["-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"]
        subprocess.run(_as_owner(initdb), check=True, capture_output=True, timeout=120)
        server = PostgresServer(bin_dir, directory, free_port(), durable_commits)
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _as_owner(command: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root: as root, run it as the postgres user.
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command
