"""The one Redis client factory: URL forms, TLS against a real TLS-only redis-server, and one
shared client per URL on a cluster."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import redis.asyncio
from redis.asyncio.cluster import RedisCluster

from tests.helpers.redis_topologies import Cluster, TLSRedis, running_tls_redis
from voicehooks import ConfigurationError, Duplicates, RedisQueue, RedisStore, VoiceHooks
from voicehooks.exceptions import StoreError
from voicehooks.state.connections import _parse, close_redis_client, is_cluster, redis_client
from voicehooks.testing import WebhookClient

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("url", "topology", "hosts", "service", "db"),
    [
        (
            "redis+sentinel://a:1,b,[::1]:3/mymaster/2",
            "sentinel",
            [("a", 1), ("b", 26379), ("::1", 3)],
            "mymaster",
            2,
        ),
        ("rediss+sentinel://:pw@a/mymaster", "sentinel", [("a", 26379)], "mymaster", None),
        ("redis+cluster://a:7000,b:7001/", "cluster", [("a", 7000), ("b", 7001)], "", None),
        ("REDISS+CLUSTER://a", "cluster", [("a", 6379)], "", None),
    ],
)
def test_topology_urls_name_their_hosts_service_and_database(
    url: str, topology: str, hosts: list[tuple[str, int]], service: str, db: int | None
) -> None:
    target = _parse(url)
    assert (target.topology, target.hosts, target.service) == (topology, hosts, service)
    assert target.options.get("db") == db
    assert ("connection_class" in target.options) == url.lower().startswith("rediss")


def test_sentinel_credentials_go_to_the_sentinels_and_the_rest_to_the_data_nodes() -> None:
    target = _parse(
        "redis+sentinel://app:s3cret@a:1/m?sentinel_password=watch&socket_keepalive=yes"
    )
    assert target.sentinel_options == {"password": "watch"}
    assert target.options == {"username": "app", "password": "s3cret", "socket_keepalive": True}


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://a:1/",  # no service
        "redis+sentinel://a:1/m/0/extra",
        "redis+cluster://a:1/3",  # a cluster has database 0 only
        "redis+cluster://a:xport/",
        "redis+cluster://:Zq7/Xw9@a:1/",
    ],
)
def test_a_topology_url_that_does_not_parse_says_the_forms_and_nothing_of_it(url: str) -> None:
    with pytest.raises(ConfigurationError, match="does not parse") as caught:
        redis_client(url)
    assert "sentinel://" in str(caught.value)
    for fragment in ("Zq7", "Xw9", "xport", "extra"):
        assert fragment not in str(caught.value)


@pytest.mark.parametrize("scheme", ["unix+cluster", "redis+replica", "http"])
def test_an_unknown_scheme_is_not_a_redis_url(scheme: str) -> None:
    with pytest.raises(ConfigurationError, match="not a Redis URL"):
        redis_client(f"{scheme}://a:1/")


@pytest.mark.parametrize("option", ["ssl_ca_certs", "ssl_certfile", "ssl_keyfile"])
def test_a_tls_option_naming_a_missing_file_is_refused_at_construction(
    option: str, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.pem"
    with pytest.raises(ConfigurationError, match=option) as caught:
        RedisStore.from_url(f"rediss://127.0.0.1:1/0?{option}={missing}")
    assert str(missing) not in str(caught.value)


# -- TLS ---------------------------------------------------------------------------------


@pytest.mark.slow
async def test_tls_with_the_servers_ca_verifies_and_serves_the_store_and_the_queue(
    tls_redis: TLSRedis,
) -> None:
    store = RedisStore.from_url(tls_redis.url(), operation_timeout_seconds=2)
    queue = RedisQueue.from_url(tls_redis.url())
    try:
        await store.open()
        await queue.open()
        assert await store.claim("k", 10)
        await queue.enqueue([b"job"])
        assert (await queue.stats()).length == 1
        assert isinstance(store.client, redis.asyncio.Redis)
        assert isinstance(queue.client, redis.asyncio.Redis)
        assert store.client.connection_pool is queue.client.connection_pool
    finally:
        await store.aclose()
        await queue.aclose()


@pytest.mark.slow
async def test_tls_with_a_wrong_ca_fails_at_startup_with_a_clear_error_and_no_traceback_out(
    tls_redis: TLSRedis, caplog: pytest.LogCaptureFixture
) -> None:
    url = tls_redis.url(ca=tls_redis.certificates.wrong_ca)
    store = RedisStore.from_url(url, operation_timeout_seconds=1)
    with pytest.raises(StoreError, match="certificate verify failed"):
        await store.open()
    await store.aclose()
    app = VoiceHooks(secret="whsec_tls", duplicates=Duplicates(store=RedisStore.from_url(url)))
    with caplog.at_level(logging.ERROR, "voicehooks"):
        async with WebhookClient(app, secret="whsec_tls") as client:
            response = await client.end_of_call_report()
    assert "not ready at startup" in caplog.text
    assert "certificate verify failed" in caplog.text
    assert response.status_code in (200, 503)  # the store_failure policy, never a 500
    assert b"Traceback" not in response.content
    assert b"certificate" not in response.content


@pytest.mark.slow
async def test_tls_with_client_certificates_needs_one_the_ca_signed(tmp_path: Path) -> None:
    with running_tls_redis(tmp_path, client_certificates=True) as server:
        certificates = server.certificates
        # A second per operation: a TLS handshake on a loaded machine may take more than the
        # default quarter of a second, and the timeout is not what is tested here.
        without = RedisStore.from_url(server.url(), operation_timeout_seconds=1)
        with_certificate = RedisStore.from_url(
            f"{server.url()}&ssl_certfile={certificates.client_cert}"
            f"&ssl_keyfile={certificates.client_key}",
            operation_timeout_seconds=1,
        )
        try:
            with pytest.raises(StoreError):
                await without.open()
            await with_certificate.open()
            assert await with_certificate.claim("k", 10)
        finally:
            await without.aclose()
            await with_certificate.aclose()


# -- Cluster -----------------------------------------------------------------------------


@pytest.mark.slow
async def test_a_store_and_a_queue_on_one_cluster_url_share_one_client_until_both_close(
    redis_cluster: Cluster,
) -> None:
    store = RedisStore.from_url(redis_cluster.url)
    queue = RedisQueue.from_url(redis_cluster.url)
    assert store.client is queue.client
    assert is_cluster(store.client)
    assert isinstance(store.client, RedisCluster)
    await store.open()
    await queue.open()
    await store.aclose()
    assert await queue.client.ping()  # still open for the queue
    await queue.aclose()
    again = redis_client(redis_cluster.url)
    assert again is not store.client  # the last close let the shared client go
    await close_redis_client(again)


@pytest.mark.slow
async def test_on_a_cluster_each_key_family_shares_one_slot_whatever_the_key_holds(
    redis_cluster: Cluster,
) -> None:
    from redis.crc import key_slot

    # A generous budget: the first command on a cluster client also maps its slots.
    store = RedisStore.from_url(redis_cluster.url, operation_timeout_seconds=5.0)
    queue = RedisQueue.from_url(redis_cluster.url)
    try:
        for key in ("k", "report:{call}", "}x{", "{}"):
            slots = {
                key_slot(store._key(kind, key).encode()) for kind in ("claim:", "result:", "map:")
            }
            assert len(slots) == 1
            assert await store.claim(key, 10)
            await store.put_result(key, b"r", 10)
            assert await store.wait_result(key, 1) == b"r"
            await store.forget(key)
        assert (queue.stream, queue.dead_stream) == ("{voicehooks:jobs}", "{voicehooks:jobs}:dead")
        await queue.open()
        await queue.enqueue([b"a", b"b"])
        (entry,) = await queue.read("w", 1, 0.01)
        await queue.bury(entry, "ValueError")
        stats = await queue.stats()  # a pipeline over the stream and its dead letters
        assert (stats.length, stats.pending, stats.dead) == (1, 0, 1)
        assert await queue.forget_idle(0) == 1
        tagged = RedisQueue(queue.client, stream="{app}:jobs")
        assert tagged.stream == "{app}:jobs"
        with pytest.raises(ConfigurationError, match="min_replicas_acks"):
            RedisQueue(queue.client, min_replicas_acks=1)
    finally:
        await store.aclose()
        await queue.aclose()


async def test_on_one_server_the_key_names_are_unchanged(redis_server: object) -> None:
    client = redis.asyncio.Redis()
    store = RedisStore(client)
    queue = RedisQueue(client)
    assert store._key("claim:", "k") == "voicehooks:claim:k"
    assert (queue.stream, queue.dead_stream) == ("voicehooks:jobs", "voicehooks:jobs:dead")
    await client.aclose()
