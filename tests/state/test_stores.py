"""The delivery stores on their own: MemoryStore in-process, RedisStore against a real Redis."""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import pytest
import redis.asyncio

from tests.helpers.redis_server import RedisServer
from tests.helpers.redis_topologies import ALL_BACKENDS, BACKEND_NAMES, RedisBackend, backend_for
from voicehooks import (
    ConfigurationError,
    DeliveryStore,
    Duplicates,
    MemoryStore,
    PostgresStore,
    RedisStore,
)
from voicehooks.core.environment import QUEUE_URL, REDIS_URL, STORE_URL
from voicehooks.exceptions import StoreError
from voicehooks.state.connections import RedisClient
from voicehooks.state.postgres import run_statement
from voicehooks.state.stores import default_store, store_from_url
from voicehooks.work.queue import RedisQueue

pytestmark = pytest.mark.anyio


def pool(client: RedisClient) -> redis.asyncio.ConnectionPool:
    """The connection pool of a client on one server (not a cluster's)."""
    assert isinstance(client, redis.asyncio.Redis)
    return client.connection_pool


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- MemoryStore -------------------------------------------------------------------------


async def test_memory_the_first_claim_wins_until_it_expires() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    assert await store.claim("k", 10)
    assert not await store.claim("k", 10)
    clock.now += 9.9
    assert not await store.claim("k", 10)
    clock.now += 0.2
    assert await store.claim("k", 10)


async def test_memory_a_zero_ttl_is_remembered_for_no_time() -> None:
    store = MemoryStore()
    assert await store.claim("k", 0)
    assert len(store) == 0
    assert await store.claim("k", 0)


async def test_memory_a_stored_result_is_kept_for_its_own_ttl() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    assert await store.claim("k", 1)
    await store.put_result("k", b'{"ok":true}', 100)
    clock.now += 50  # long past the claim's own ttl
    assert not await store.claim("k", 1)
    assert await store.wait_result("k", 0) == b'{"ok":true}'
    clock.now += 51
    assert await store.wait_result("k", 0) is None
    assert await store.claim("k", 1)


async def test_memory_a_waiter_is_woken_by_the_result() -> None:
    store = MemoryStore()
    await store.claim("k", 10)
    got: list[bytes | None] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:

            async def wait() -> None:
                got.append(await store.wait_result("k", 30))

            group.start_soon(wait)
            group.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            assert got == []
            await store.put_result("k", b"42", 10)
    assert got == [b"42", b"42"]


async def test_memory_release_wakes_waiters_empty_handed_and_frees_the_key() -> None:
    store = MemoryStore()
    await store.claim("k", 10)
    got: list[bytes | None] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:

            async def wait() -> None:
                got.append(await store.wait_result("k", 30))

            group.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            await store.release("k")
    assert got == [None]
    assert await store.claim("k", 10)


async def test_memory_waiting_gives_up_after_its_timeout() -> None:
    store = MemoryStore()
    await store.claim("k", 10)
    assert await store.wait_result("k", 0.01) is None
    assert await store.wait_result("unknown", 10) is None  # nothing to wait for: at once


async def test_memory_the_size_bound_evicts_the_oldest_entry() -> None:
    store = MemoryStore(max_entries=3)
    for key in "abcd":
        assert await store.claim(key, 60)
    assert len(store) == 3
    assert await store.claim("a", 60)  # forgotten: claimable again, and "b" goes in its place
    assert not await store.claim("c", 60)
    assert not await store.claim("d", 60)
    assert await store.claim("b", 60)


async def test_memory_expired_entries_are_dropped_as_new_ones_arrive() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    for i in range(10):
        await store.claim(f"old-{i}", 1)
    clock.now += 2
    for i in range(10):
        await store.claim(f"new-{i}", 60)
    assert len(store) == 10


async def test_memory_a_result_outlives_an_evicted_claim_and_moves_to_the_back() -> None:
    store = MemoryStore(max_entries=2)
    await store.claim("a", 60)
    await store.claim("b", 60)
    await store.put_result("a", b"1", 60)  # "a" is now the newest write
    await store.claim("c", 60)  # evicts "b", the oldest
    assert await store.wait_result("a", 0) == b"1"
    assert await store.claim("b", 60)
    await store.put_result("gone", b"2", 60)  # never claimed here: remembered anyway
    assert await store.wait_result("gone", 0) == b"2"


async def test_memory_aclose_forgets_everything() -> None:
    store = MemoryStore()
    await store.claim("k", 60)
    await store.aclose()
    assert len(store) == 0
    assert await store.claim("k", 60)


def test_memory_needs_room_for_one_entry() -> None:
    with pytest.raises(ConfigurationError, match="max_entries"):
        MemoryStore(max_entries=0)


# -- RedisStore --------------------------------------------------------------------------


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
async def make_store(redis_backend: RedisBackend) -> AsyncIterator[Callable[[], RedisStore]]:
    """Independent stores on one Redis, as separate processes would have."""
    stores: list[RedisStore] = []

    def make() -> RedisStore:
        # A TLS handshake or a cluster's slot map on a loaded machine may take more than the
        # default quarter of a second; the timeout is tested elsewhere.
        stores.append(RedisStore.from_url(redis_backend.url, operation_timeout_seconds=1))
        return stores[-1]

    yield make
    for store in stores:
        await store.aclose()


@pytest.fixture(params=[*BACKEND_NAMES, "postgres"])
async def make_shared(
    request: pytest.FixtureRequest,
) -> AsyncIterator[Callable[[], DeliveryStore]]:
    """Independent stores on one server (Redis: one server, TLS, a cluster; PostgreSQL), as
    separate processes would have. The server is made ready first, as an app's startup
    (``open``) does.
    """
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
    else:
        url = backend_for(request, request.param).url
    ready = store_from_url(url, operation_timeout_seconds=1)
    await ready.open()
    await ready.aclose()
    stores: list[DeliveryStore] = []

    def make() -> DeliveryStore:
        # A TLS handshake or a cluster's slot map on a loaded machine may take more than the
        # default quarter of a second; the timeout is tested elsewhere.
        stores.append(store_from_url(url, operation_timeout_seconds=1))
        return stores[-1]

    yield make
    for store in stores:
        await store.aclose()


async def test_shared_one_claim_wins_across_stores(
    make_shared: Callable[[], DeliveryStore],
) -> None:
    stores = [make_shared() for _ in range(4)]
    wins: list[bool] = []
    async with anyio.create_task_group() as group:
        for store in stores:

            async def claim(store: DeliveryStore = store) -> None:
                wins.append(await store.claim("k", 10))

            group.start_soon(claim)
    assert sorted(wins) == [False, False, False, True]


async def test_shared_claim_many_claims_each_key_as_claim_would(
    make_shared: Callable[[], DeliveryStore],
) -> None:
    first, second = make_shared(), make_shared()
    assert await first.claim("a", 10)
    assert await second.claim_many(["a", "b", "c"], 10) == [False, True, True]
    assert await first.claim_many(["b", "c", "d"], 10) == [False, False, True]
    assert await first.claim_many(["e"], 10) == [True]  # the one-key path
    assert await second.claim_many(["e"], 10) == [False]


async def test_shared_put_results_answers_every_waiter_and_keeps_the_keys_claimed(
    make_shared: Callable[[], DeliveryStore],
) -> None:
    first, second = make_shared(), make_shared()
    assert await first.claim_many(["a", "b"], 10) == [True, True]
    await first.put_results([("a", b'"one"'), ("b", b'"two"')], 60)
    assert await second.wait_result("a", 1) == b'"one"'
    assert await second.wait_result("b", 1) == b'"two"'
    assert await second.claim_many(["a", "b"], 10) == [False, False]
    assert await first.claim("c", 10)
    await first.put_results([("c", b'"three"')], 60)  # the one-key path
    assert await second.wait_result("c", 1) == b'"three"'


async def test_memory_claim_many_and_put_results_are_claim_and_put_result_in_a_loop() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    assert await store.claim_many(["a", "b"], 10) == [True, True]
    assert await store.claim_many(["b", "c"], 10) == [False, True]
    await store.put_results([("a", b"1"), ("b", b"2")], 60)
    clock.now += 30  # past the claims, within the results' TTL
    assert await store.claim_many(["a", "b", "c"], 10) == [False, False, True]
    assert await store.wait_result("b", 0) == b"2"


async def test_redis_every_key_expires(
    make_store: Callable[[], RedisStore], redis_client: redis.asyncio.Redis
) -> None:
    store = make_store()
    assert await store.claim("k", 10)
    assert 9_000 < await redis_client.pttl("voicehooks:claim:k") <= 10_000
    await store.put_result("k", b"result", 3600)
    keys = sorted(await redis_client.keys("*"))
    assert keys == [b"voicehooks:claim:k", b"voicehooks:result:k"]
    for key in keys:
        assert 3500 < await redis_client.ttl(key) <= 3600
    assert await redis_client.get("voicehooks:result:k") == b"result"


async def test_shared_a_waiter_elsewhere_gets_the_result(
    make_shared: Callable[[], DeliveryStore],
) -> None:
    first, second = make_shared(), make_shared()
    await first.claim("k", 10)
    got: list[bytes | None] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:

            async def wait() -> None:
                got.append(await second.wait_result("k", 30))

            group.start_soon(wait)
            await anyio.sleep(0.05)
            assert got == []
            await first.put_result("k", b"42", 60)
    assert got == [b"42"]
    assert await second.wait_result("k", 0.01) == b"42"


async def test_shared_release_is_the_owners_and_ends_the_wait(
    make_shared: Callable[[], DeliveryStore],
) -> None:
    first, second = make_shared(), make_shared()
    await first.claim("k", 10)
    await second.release("k")  # not its claim: nothing happens
    assert not await second.claim("k", 10)
    got: list[bytes | None] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:

            async def wait() -> None:
                got.append(await second.wait_result("k", 30))

            group.start_soon(wait)
            await anyio.sleep(0.05)
            await first.release("k")
    assert got == [None]
    assert await second.claim("k", 10)


async def test_shared_a_stored_result_cannot_be_released(
    make_shared: Callable[[], DeliveryStore],
) -> None:
    store = make_shared()
    await store.claim("k", 10)
    await store.put_result("k", b"1", 60)
    await store.release("k")
    assert not await store.claim("k", 10)


async def test_shared_waiting_gives_up_after_its_timeout(
    make_shared: Callable[[], DeliveryStore],
) -> None:
    first, second = make_shared(), make_shared()
    await first.claim("k", 10)
    assert await second.wait_result("k", 0.05) is None


async def test_redis_the_prefix_namespaces_keys(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis
) -> None:
    store = RedisStore(redis.asyncio.Redis.from_url(redis_server.url), prefix="staging:")
    try:
        assert await store.claim("k", 10)
        assert await redis_client.keys("*") == [b"staging:claim:k"]
    finally:
        await store.aclose()


@pytest.mark.parametrize("fault", ["stopped", "paused"])
async def test_redis_faults_become_store_errors_within_the_operation_timeout(
    redis_server: RedisServer, fault: str
) -> None:
    store = RedisStore.from_url(redis_server.url, operation_timeout_seconds=0.2)
    try:
        assert await store.claim("k", 10)
        if fault == "stopped":
            redis_server.stop()
        else:
            redis_server.pause()
        operations: list[Awaitable[object]] = [
            store.claim("j", 10),
            store.put_result("k", b"1", 10),
            store.release("k"),
        ]
        for operation in operations:
            with anyio.fail_after(2), pytest.raises(StoreError, match="redis"):
                await operation
        if fault == "stopped":
            with anyio.fail_after(2), pytest.raises(StoreError, match="ConnectionError"):
                await store.wait_result("k", 5)
        else:  # slow polls are no failure: the wait goes on until its own deadline
            with anyio.fail_after(2):
                assert await store.wait_result("k", 0.5) is None
    finally:
        redis_server.resume()
        await store.aclose()


def test_redis_checks_its_options_and_scheme() -> None:
    with pytest.raises(ConfigurationError, match="operation_timeout_seconds"):
        RedisStore.from_url("redis://localhost", operation_timeout_seconds=0)
    with pytest.raises(ConfigurationError, match="must start with redis://") as caught:
        RedisStore.from_url("http://user:hunter2@localhost")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    "password", ["Zq7/Xw9", "Zq7?Xw9", "Zq7#Xw9", "Zq7/Xw9?Kp3#Vb5", "Zq7[Xw9"]
)
@pytest.mark.parametrize(
    "template",
    [
        "redis://:{}@localhost:6379/0",
        "redis://default:{}@localhost:6379/0",
        "rediss://default:{}@redis.example.com/1",
        "REDIS://:{}@localhost",
    ],
)
def test_a_url_that_does_not_parse_is_reported_without_any_part_of_it(
    template: str, password: str
) -> None:
    with pytest.raises(ConfigurationError, match="does not parse") as caught:
        RedisStore.from_url(template.format(password))
    error = caught.value
    assert error.__cause__ is None
    assert error.__suppress_context__
    for fragment in ("Zq7", "Xw9", "Kp3", "Vb5", "localhost", "example"):
        assert fragment not in str(error)
    assert "%2F" in str(error)  # how to write such a password


async def test_a_percent_encoded_password_reaches_redis_intact() -> None:
    store = RedisStore.from_url("redis://default:Zq7%2FXw9%3FKp3%23Vb5@localhost:6379/0")
    try:
        kwargs = pool(store.client).connection_kwargs
        assert (kwargs["username"], kwargs["password"]) == ("default", "Zq7/Xw9?Kp3#Vb5")
    finally:
        await store.aclose()


async def connections(observer: redis.asyncio.Redis) -> int:
    """How many clients Redis has besides ``observer``."""
    return len(await observer.client_list()) - 1


async def until_connections(observer: redis.asyncio.Redis, expected: int) -> None:
    # A closed socket reaches Redis on its own connection, not in order with ``observer``'s.
    with anyio.fail_after(5):
        while await connections(observer) != expected:
            await anyio.sleep(0.01)


@pytest.mark.parametrize("closed_first", ["store", "queue"])
async def test_a_store_and_a_queue_on_one_url_share_one_pool_until_both_close(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis, closed_first: str
) -> None:
    store = RedisStore.from_url(redis_server.url)
    queue = RedisQueue.from_url(redis_server.url)
    try:
        assert pool(store.client) is pool(queue.client)
        await store.open()
        await queue.open()
        assert await store.claim("k", 60)
        await queue.enqueue([b"a"])
        assert await connections(redis_client) == 1  # one pooled connection, used in turn

        first, other = (store, queue) if closed_first == "store" else (queue, store)
        await first.aclose()
        await first.aclose()  # a second close takes nothing more from the other
        if other is store:
            assert await store.claim("k2", 60)
        else:
            await queue.enqueue([b"b"])
            assert (await queue.stats()).length == 2
        assert await connections(redis_client) == 1
    finally:
        await store.aclose()
        await queue.aclose()
    await until_connections(redis_client, 0)  # the last one to close closed the pool
    again = RedisStore.from_url(redis_server.url)
    try:
        assert pool(again.client) is not pool(store.client)
        assert await again.claim("k3", 60)
    finally:
        await again.aclose()


async def test_an_app_on_the_queue_url_alone_has_one_pool_for_its_store_and_queue(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voicehooks import VoiceHooks

    monkeypatch.setenv(QUEUE_URL, redis_server.url)
    app = VoiceHooks(secret="whsec_one_pool")
    assert isinstance(app.store, RedisStore)
    assert isinstance(app.queue, RedisQueue)
    assert pool(app.store.client) is pool(app.queue.client)
    async with app.lifespan():
        assert await app.store.claim("k", 60)
        await app.queue.enqueue([b"a"])
        assert await connections(redis_client) == 1
    await until_connections(redis_client, 0)


async def test_past_its_bound_the_registry_forgets_a_url_whose_clients_still_close_their_pool(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voicehooks.state import connections as factory

    monkeypatch.setattr(factory, "_MAX_SHARED_POOLS", 2)
    monkeypatch.setattr(factory, "_shared", OrderedDict())  # none left by earlier tests
    first = RedisStore.from_url(redis_server.url)
    others = [RedisStore.from_url(redis_server.url[:-1] + db) for db in "12"]
    late = RedisStore.from_url(redis_server.url)  # db 0 was the least recently used: forgotten
    also = RedisStore.from_url(redis_server.url[:-1] + "2")  # still known
    try:
        assert pool(late.client) is not pool(first.client)
        assert pool(also.client) is pool(others[1].client)
        assert await first.claim("k", 60)
        assert await connections(redis_client) == 1
        await first.aclose()
        await until_connections(redis_client, 0)  # its pool closed with its last client
        assert await late.claim("k2", 60)
    finally:
        for store in (first, *others, late, also):
            await store.aclose()


def test_clients_made_in_different_event_loops_get_different_pools(
    redis_server: RedisServer,
) -> None:
    # A pool's connections belong to the loop that opened them.
    async def make() -> tuple[RedisStore, RedisQueue]:
        return RedisStore.from_url(redis_server.url), RedisQueue.from_url(redis_server.url)

    store, queue = anyio.run(make)
    later_store, later_queue = anyio.run(make)
    try:
        assert pool(store.client) is pool(queue.client)
        assert pool(later_store.client) is not pool(store.client)
    finally:
        for user in (store, queue, later_store, later_queue):
            anyio.run(user.aclose)


def test_redis_without_the_package_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'voicehooks\[redis\]'"):
        RedisStore.from_url("redis://localhost")


async def test_the_default_store_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(default_store(), MemoryStore)
    monkeypatch.setenv(REDIS_URL, "redis://127.0.0.1:1/0")
    store = default_store()
    assert isinstance(store, RedisStore)
    await store.aclose()


async def test_the_default_store_follows_the_durable_queue_when_it_has_no_url_of_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VOICEHOOKS_QUEUE_URL", "redis://127.0.0.1:1/3")
    store = default_store()
    assert isinstance(store, RedisStore)
    assert pool(store.client).connection_kwargs["db"] == 3
    await store.aclose()


async def test_redis_open_connects_and_loads_the_scripts_before_the_first_call(
    make_store: Callable[[], RedisStore], redis_client: redis.asyncio.Redis
) -> None:
    await redis_client.script_flush()
    store = make_store()
    await store.open()
    shas = [store._put_result.sha, store._release.sha]
    assert await redis_client.script_exists(*shas) == [True, True]
    assert await store.claim("k", 10)


async def test_redis_open_fails_fast_with_a_store_error() -> None:
    from tests.helpers.servers import free_port

    store = RedisStore.from_url(f"redis://127.0.0.1:{free_port()}/0")
    with anyio.fail_after(5), pytest.raises(StoreError, match="redis open failed"):
        await store.open()
    await store.aclose()


async def test_the_app_opens_its_store_at_startup_and_starts_even_if_it_is_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from voicehooks import VoiceHooks
    from voicehooks.testing import WebhookClient

    class Recording(MemoryStore):
        opened = 0

        async def open(self) -> None:
            type(self).opened += 1
            raise StoreError("the store is down")

    store = Recording()
    app = VoiceHooks(secret="whsec_store_open", duplicates=Duplicates(store=store))
    with caplog.at_level("ERROR", "voicehooks"):
        async with WebhookClient(app, secret="whsec_store_open") as client:
            assert (await client.status_update()).status_code == 200
    assert Recording.opened == 1
    assert "not ready at startup: the store is down" in caplog.text
    await MemoryStore().open()  # the in-memory store has nothing to prepare


# -- rate-limit tokens (both stores) -----------------------------------------------------


async def test_memory_tokens_come_back_one_window_after_each_was_taken() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    assert [await store.take_token("c", 3, 10) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert await store.take_token("c", 3, 10) == 10
    assert await store.take_token("other", 3, 10) == 0.0
    clock.now += 4
    assert await store.take_token("c", 3, 10) == 6
    clock.now += 6
    assert await store.take_token("c", 3, 10) == 0.0  # the first token came back
    assert await store.take_token("c", 3, 10) == 0.0
    assert await store.take_token("c", 3, 10) == 0.0
    assert await store.take_token("c", 3, 10) == 10


async def test_memory_buckets_are_bounded_and_spent_ones_leave() -> None:
    clock = Clock()
    store = MemoryStore(max_entries=2, clock=clock)
    for key in ("a", "b", "c"):
        await store.take_token(key, 1, 10)
    assert list(store._buckets) == ["b", "c"]  # the least recently used went first
    clock.now += 11
    await store.take_token("d", 1, 10)  # "b" has all its tokens back: it leaves
    assert list(store._buckets) == ["c", "d"]
    await store.aclose()
    assert not store._buckets


@ALL_BACKENDS
async def test_redis_tokens_keep_the_limit_across_clients(redis_backend: RedisBackend) -> None:
    first = RedisStore.from_url(redis_backend.url, operation_timeout_seconds=1)
    second = RedisStore.from_url(redis_backend.url, operation_timeout_seconds=1)
    await first.open()
    try:
        waits = [await store.take_token("c", 4, 0.6) for store in (first, second) * 3]
        assert waits[:4] == [0.0] * 4
        assert all(0 < wait <= 0.6 for wait in waits[4:])
        await anyio.sleep(waits[-1] + 0.05)
        assert await second.take_token("c", 4, 0.6) == 0.0
        ttl = await first.client.pttl(first._key("tokens:", "c"))
        assert 0 < ttl <= 600
    finally:
        await first.aclose()
        await second.aclose()


async def test_redis_a_token_fault_is_a_store_error(redis_server: RedisServer) -> None:
    store = RedisStore.from_url(redis_server.url)
    redis_server.stop()
    with pytest.raises(StoreError, match="take_token"):
        await store.take_token("c", 1, 1)
    await store.aclose()


# -- maps (CallState) and counters --------------------------------------------------------


@pytest.fixture(params=["memory", *BACKEND_NAMES, "postgres"])
async def any_store(request: pytest.FixtureRequest) -> AsyncIterator[DeliveryStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
    else:
        url = backend_for(request, request.param).url
    store = store_from_url(url, operation_timeout_seconds=1)
    await store.open()
    yield store
    await store.aclose()


async def test_fields_are_set_read_deleted_and_bounded_in_both_stores(
    any_store: DeliveryStore,
) -> None:
    store = any_store
    assert await store.get_fields("m") == {}
    assert await store.put_field("m", "a", b"12345", 60, 20)  # 1 + 5 bytes
    assert await store.put_field("m", "bb", b"123456", 60, 20)  # 2 + 6: 14 in all
    assert not await store.put_field("m", "c", b"1234567", 60, 20)  # 22 > 20: refused
    assert await store.get_fields("m") == {"a": b"12345", "bb": b"123456"}
    assert await store.put_field("m", "a", b"1", 60, 20)  # a replaced value frees its bytes
    assert await store.put_field("m", "c", b"1234", 60, 20)  # 2 + 8 + 5 = 15
    assert await store.put_field("m", "bb", None, 60, 20)  # deleted
    assert await store.put_field("m", "zz", None, 60, 20)  # deleting nothing is fine
    assert await store.get_fields("m") == {"a": b"1", "c": b"1234"}
    assert await store.get_fields("other") == {}
    await store.forget("m")
    assert await store.get_fields("m") == {}


async def test_counters_count_from_one_in_both_stores(any_store: DeliveryStore) -> None:
    assert [await any_store.count("n", 60) for _ in range(3)] == [1, 2, 3]
    assert await any_store.count("other", 60) == 1


async def test_redis_fields_and_counters_expire(
    make_store: Callable[[], RedisStore], redis_client: redis.asyncio.Redis
) -> None:
    store = make_store()
    await store.put_field("m", "a", b"1", 10, 100)
    await store.count("n", 10)
    for key in (b"voicehooks:map:m", b"voicehooks:count:n"):
        assert 9_000 < await redis_client.pttl(key) <= 10_000
    await store.put_field("m", "a", b"2", 100, 100)  # a write pushes the expiry out
    assert 99_000 < await redis_client.pttl(b"voicehooks:map:m") <= 100_000


async def test_memory_maps_expire_and_are_bounded() -> None:
    clock = Clock()
    store = MemoryStore(max_entries=2, clock=clock)
    await store.put_field("old", "a", b"1", 5, 100)
    clock.now += 10
    assert await store.get_fields("old") == {}
    assert await store.count("n", 5) == 1  # the expired map leaves as this one comes
    assert "old" not in store._maps
    clock.now += 10
    assert await store.count("n", 5) == 1  # expired: counts from one again
    await store.put_field("x", "a", b"1", 60, 100)
    await store.put_field("y", "a", b"1", 60, 100)  # past max_entries: the oldest goes
    assert list(store._maps) == ["x", "y"]
    await store.aclose()
    assert not store._maps


# -- PostgreSQL's own ----------------------------------------------------------------------


async def test_postgres_tokens_keep_the_limit_across_clients(postgres_url: str) -> None:
    first, second = PostgresStore.from_url(postgres_url), PostgresStore.from_url(postgres_url)
    try:
        waits = [await store.take_token("c", 4, 0.6) for store in (first, second) * 3]
        assert waits[:4] == [0.0] * 4
        assert all(0 < wait <= 0.6 for wait in waits[4:])
        await anyio.sleep(waits[-1] + 0.05)
        assert await second.take_token("c", 4, 0.6) == 0.0
        assert await first.take_token("other", 1, 10) == 0.0
    finally:
        await first.aclose()
        await second.aclose()


async def test_postgres_concurrent_tokens_never_pass_the_capacity(postgres_url: str) -> None:
    stores = [PostgresStore.from_url(postgres_url) for _ in range(4)]
    waits: list[float] = []
    try:
        await stores[0].open()
        async with anyio.create_task_group() as group:
            for store in stores * 5:

                async def take(store: PostgresStore = store) -> None:
                    waits.append(await store.take_token("c", 7, 30))

                group.start_soon(take)
        assert waits.count(0.0) == 7
    finally:
        for store in stores:
            await store.aclose()


async def test_postgres_expired_rows_are_ignored_then_swept(postgres_url: str) -> None:
    store = PostgresStore.from_url(postgres_url)
    try:
        assert await store.claim("k", 0.05)
        await store.put_field("m", "a", b"1", 0.05, 100)
        assert await store.count("n", 0.05) == 1
        await store.take_token("t", 1, 0.05)
        await anyio.sleep(0.1)
        assert await store.claim("k", 10)  # expired: claimable again
        assert await store.get_fields("m") == {}
        assert await store.count("n", 10) == 1
        assert (
            await store.sweep() == 2
        )  # the map and the bucket (the claim and counter were reused)
        assert await store.sweep() == 0
        assert not await store.claim("k", 10)  # the live claim stayed
    finally:
        await store.aclose()


async def test_postgres_a_store_and_a_queue_on_one_url_share_one_pool(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voicehooks import VoiceHooks
    from voicehooks.work.pgqueue import PostgresQueue

    monkeypatch.setenv(QUEUE_URL, postgres_url)
    app = VoiceHooks(secret="whsec_one_pool")
    assert isinstance(app.store, PostgresStore)
    assert isinstance(app.queue, PostgresQueue)
    assert app.store.pool.pool is app.queue.pool.pool
    pool = app.store.pool.pool
    async with app.lifespan():
        assert await app.store.claim("k", 60)
        await app.queue.enqueue([b"a"])
        assert not pool.closed
    assert pool.closed  # the last of the two closed it


async def test_the_store_url_has_a_new_name_and_takes_postgres(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(QUEUE_URL, "redis://127.0.0.1:1/3")
    monkeypatch.setenv(REDIS_URL, "redis://127.0.0.1:1/4")
    store = default_store()
    assert isinstance(store, RedisStore)
    assert pool(store.client).connection_kwargs["db"] == 4  # the old name
    await store.aclose()
    monkeypatch.setenv(STORE_URL, "postgresql://127.0.0.1:1/app")  # the new one wins
    assert isinstance(default_store(), PostgresStore)
    with pytest.raises(ConfigurationError, match="must start with redis://"):
        store_from_url("mysql://localhost/app")


def test_postgres_checks_its_options_and_scheme() -> None:
    with pytest.raises(ConfigurationError, match="must be > 0"):
        PostgresStore.from_url("postgresql://localhost/app", operation_timeout_seconds=0)
    with pytest.raises(ConfigurationError, match="must start with postgresql://") as caught:
        PostgresStore.from_url("mysql://user:hunter2@localhost/app")
    assert "hunter2" not in str(caught.value)


async def test_postgres_tables_lost_are_made_again_and_a_newer_schema_is_refused(
    postgres_url: str,
) -> None:
    store = PostgresStore.from_url(postgres_url)
    try:
        await store.open()
        await store.ping()
        await run_statement(store.pool, "DROP SCHEMA voicehooks CASCADE", [])
        with pytest.raises(StoreError, match="UndefinedTable"):
            await store.claim("k", 10)
        assert await store.claim("k", 10)  # the schema was made again
        await run_statement(store.pool, "UPDATE voicehooks.schema_version SET version = 99", [])
    finally:
        await store.aclose()
    newer = PostgresStore.from_url(postgres_url)
    try:
        with pytest.raises(ConfigurationError, match="newer voicehooks"):
            await newer.claim("k", 10)
    finally:
        await newer.aclose()


async def test_postgres_the_store_sweeps_on_its_own_timer_and_on_a_pool_of_yours(
    postgres_url: str,
) -> None:
    from psycopg_pool import AsyncConnectionPool

    pool = AsyncConnectionPool(postgres_url, open=False, kwargs={"autocommit": True})
    store = PostgresStore(pool, sweep_every_seconds=0.05)
    try:
        await store.open()
        await store.put_field("m", "a", b"1", 0.01, 100)
        with anyio.fail_after(10):
            while await run_statement(store.pool, "SELECT 1 FROM voicehooks.maps", []):
                await anyio.sleep(0.02)
    finally:
        await store.aclose()
    assert pool.closed  # a pool given to the store is the store's to close


async def test_postgres_an_unreachable_store_is_a_store_error_and_a_slow_wait_goes_on() -> None:
    from tests.helpers.servers import free_port

    store = PostgresStore.from_url(
        f"postgresql://postgres@127.0.0.1:{free_port()}/none", operation_timeout_seconds=0.1
    )
    try:
        with anyio.fail_after(10), pytest.raises(StoreError, match="postgres"):
            await store.open()
        with anyio.fail_after(10):
            assert await store.wait_result("k", 0.3) is None  # slow polls until its deadline
    finally:
        await store.aclose()
