"""Shared fixtures: the anyio backend, secrets, and a real ``voicehooks run`` on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.postgres_server import PostgresServer, running_postgres
from tests.helpers.redis_server import RedisServer, running_redis
from tests.helpers.redis_topologies import (
    Cluster,
    RedisBackend,
    TLSRedis,
    backend_for,
    running_cluster,
    running_tls_redis,
)
from tests.helpers.servers import free_port, running_server  # noqa: F401  (re-exported for tests)

SECRET = "whsec_voicehooks_test_secret"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def secret(monkeypatch: pytest.MonkeyPatch) -> str:
    """The test secret, also exported as VOICEHOOKS_SECRET."""
    monkeypatch.setenv("VOICEHOOKS_SECRET", SECRET)
    return SECRET


@pytest.fixture(autouse=True)
def _no_redis_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's VOICEHOOKS_REDIS_URL must not turn every test app into a Redis client.
    monkeypatch.delenv("VOICEHOOKS_REDIS_URL", raising=False)
    monkeypatch.delenv("VOICEHOOKS_STORE_URL", raising=False)
    monkeypatch.delenv("VOICEHOOKS_QUEUE_URL", raising=False)
    # Nor may a developer's queue key or dead-letter bounds change what the tests expect.
    for name in (
        "VOICEHOOKS_QUEUE_KEY",
        "VOICEHOOKS_QUEUE_KEY_FILE",
        "VOICEHOOKS_QUEUE_MAX_DEAD",
        "VOICEHOOKS_QUEUE_MAX_DEAD_AGE_SECONDS",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server on a free port, stopped afterwards.

    Skips when redis-server is not installed, except under ``CI``, where it fails.
    """
    with running_redis(tmp_path) as server:
        yield server


@pytest.fixture(scope="session")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSRedis]:
    """One TLS-only redis-server for the session (the tests flush it before each use)."""
    with running_tls_redis(tmp_path_factory.mktemp("tls")) as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One three-master Redis Cluster for the session (flushed before each use)."""
    with running_cluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@pytest.fixture
def redis_backend(request: pytest.FixtureRequest) -> RedisBackend:
    """``single``: the test's own ``redis_server``; ``tls`` and ``cluster``: the session's,
    emptied first."""
    return backend_for(request, getattr(request, "param", "single"))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL cluster for the session (initdb takes seconds), stopped after.

    Skips when PostgreSQL is not installed, except under ``CI``, where it fails.
    """
    with running_postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh database on the session's cluster: each test starts with no tables."""
    return postgres_server.new_database()


@pytest.fixture(params=["redis", "postgres"])
def backend_url(request: pytest.FixtureRequest) -> str:
    """The URL of a fresh server of each backend the store and the queue run on: a private
    redis-server, then a fresh database on the session's PostgreSQL."""
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return server.url
    url: str = request.getfixturevalue("postgres_url")
    return url
