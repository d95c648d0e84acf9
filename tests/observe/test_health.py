"""The health probes: live while serving, ready inside the lifespan with Redis answering."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from tests.helpers.postgres_server import running_postgres
from tests.helpers.redis_server import RedisServer
from voicehooks import (
    Background,
    Duplicates,
    MemoryStore,
    PostgresQueue,
    PostgresStore,
    RedisQueue,
    RedisStore,
    VoiceHooks,
)
from voicehooks.observe import Health
from voicehooks.testing import WebhookClient

pytestmark = pytest.mark.anyio


class PingedStore(MemoryStore):
    """A store with a ping that can be made to fail, counting the pings."""

    def __init__(self) -> None:
        super().__init__()
        self.pings = 0
        self.answers = True

    async def ping(self) -> None:
        self.pings += 1
        if not self.answers:
            raise ConnectionError("redis is gone")


async def get(client: WebhookClient, path: str) -> tuple[int, bytes]:
    response = await client.request("GET", path, [], [])
    return response.status_code, response.content


async def test_live_answers_without_the_lifespan_and_ready_only_inside_it(secret: str) -> None:
    app = VoiceHooks(secret=secret)
    client = WebhookClient(app)
    assert await get(client, "/healthz") == (200, b'{"status":"live"}')
    assert await get(client, "/healthz/ready") == (503, b'{"status":"not ready"}')
    async with client:
        assert await get(client, "/healthz/ready") == (200, b'{"status":"ready"}')
    assert await get(client, "/healthz/ready") == (503, b'{"status":"not ready"}')


async def test_ready_pings_the_store_once_per_cache_period_and_names_nothing(
    secret: str,
) -> None:
    store = PingedStore()
    app = VoiceHooks(
        secret=secret,
        duplicates=Duplicates(store=store),
        observers=[Health(cache_seconds=3600)],
    )
    async with WebhookClient(app) as client:
        for _ in range(5):
            assert await get(client, "/healthz/ready") == (200, b'{"status":"ready"}')
        assert store.pings == 1
        store.answers = False
        app_health = Health(cache_seconds=0)
        app.add_observer(app_health)  # a second, uncached one: sees the failure at once
        assert app_health.path == "/healthz"
        assert not await app_health.is_ready()
        status, body = await get(client, "/healthz/ready")  # the first route still caches
        assert (status, body) == (200, b'{"status":"ready"}')


async def test_a_store_that_does_not_answer_makes_the_app_not_ready(
    secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = PingedStore()
    store.answers = False
    app = VoiceHooks(
        secret=secret, duplicates=Duplicates(store=store), observers=[Health(cache_seconds=0)]
    )
    async with WebhookClient(app) as client:
        with caplog.at_level(logging.DEBUG, logger="voicehooks"):
            assert await get(client, "/healthz/ready") == (503, b'{"status":"not ready"}')
            assert await get(client, "/healthz/ready") == (503, b'{"status":"not ready"}')
            store.answers = True
            assert await get(client, "/healthz/ready") == (200, b'{"status":"ready"}')
    above_debug = [r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG]
    # Once per change, never per probe, and never what failed or why.
    assert above_debug == [
        "readiness: not ready, a store or queue did not answer",
        "readiness: ready again",
    ]
    assert "redis is gone" not in caplog.text


async def test_probes_are_not_logged_above_debug(
    secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = VoiceHooks(secret=secret)
    async with WebhookClient(app) as client:
        with caplog.at_level(logging.DEBUG):
            for path in ("/healthz", "/healthz/ready"):
                status, _ = await get(client, path)
                assert status == 200
            head = await client.request("HEAD", "/healthz", [], [])
            assert head.status_code == 200
    assert [r for r in caplog.records if r.levelno > logging.DEBUG] == []


async def test_the_path_is_configurable_and_none_serves_no_probe(secret: str) -> None:
    moved = WebhookClient(VoiceHooks(secret=secret, observers=[Health(path="/_health/")]))
    assert await get(moved, "/_health") == (200, b'{"status":"live"}')
    assert (await get(moved, "/healthz"))[0] == 404
    none = WebhookClient(VoiceHooks(secret=secret, observers=[Health(path=None)]))
    assert (await get(none, "/healthz"))[0] == 404
    assert (await get(none, "/healthz/ready"))[0] == 404


@pytest.mark.parametrize("path", ["healthz", "/"])
def test_a_path_that_cannot_be_a_probe_is_refused(path: str) -> None:
    with pytest.raises(ValueError, match="Health path"):
        Health(path=path)


async def test_mounted_the_probes_answer_under_the_mount_and_ready_follows_the_parent(
    secret: str,
) -> None:
    hooks = VoiceHooks(secret=secret)

    @asynccontextmanager
    async def lifespan(parent: Starlette) -> AsyncIterator[None]:
        async with hooks.lifespan():
            yield

    parent = Starlette(routes=[Mount("/hooks", app=hooks)], lifespan=lifespan)
    client = WebhookClient(parent, path="/hooks/")
    assert await get(client, "/hooks/healthz") == (200, b'{"status":"live"}')
    async with client:
        assert await get(client, "/hooks/healthz/ready") == (200, b'{"status":"ready"}')


async def test_ready_pings_the_redis_store_and_queue(
    secret: str, redis_server: RedisServer
) -> None:
    app = VoiceHooks(
        secret=secret,
        duplicates=Duplicates(store=RedisStore.from_url(redis_server.url)),
        background=Background(queue=RedisQueue.from_url(redis_server.url)),
        observers=[Health(cache_seconds=0, ping_timeout_seconds=1)],
    )
    async with WebhookClient(app) as client:
        assert await get(client, "/healthz/ready") == (200, b'{"status":"ready"}')
        redis_server.stop()
        assert await get(client, "/healthz/ready") == (503, b'{"status":"not ready"}')
        assert await get(client, "/healthz") == (200, b'{"status":"live"}')


async def test_ready_pings_the_postgres_store_and_queue(secret: str) -> None:
    with running_postgres() as postgres:
        app = VoiceHooks(
            secret=secret,
            duplicates=Duplicates(store=PostgresStore.from_url(postgres.url)),
            background=Background(queue=PostgresQueue.from_url(postgres.url)),
            observers=[Health(cache_seconds=0, ping_timeout_seconds=1)],
        )
        async with WebhookClient(app) as client:
            assert await get(client, "/healthz/ready") == (200, b'{"status":"ready"}')
            postgres.stop()
            assert await get(client, "/healthz/ready") == (503, b'{"status":"not ready"}')
            assert await get(client, "/healthz") == (200, b'{"status":"live"}')
