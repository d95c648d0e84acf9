"""Where deliveries are remembered, so that a duplicate is answered without running twice.

A ``DeliveryStore`` answers three questions for a key: am I the first to see it (``claim``),
what did the first one answer (``put_result`` / ``wait_result``), and may someone else try
again (``release``). It also keeps the one rate limit the app shares between its processes,
the platform's 10 call-control commands per minute per call (``take_token``). Two
implementations:

* ``MemoryStore``, the default: one dict per process. Duplicates are caught within one
  process only (``voicehooks run --workers 1``, the default). No locks, no threads, O(1).
* ``RedisStore``: atomic across workers and hosts (``pip install 'voicehooks[redis]'``). Claims
  are ``SET NX PX``, results live under their own key, rate-limit tokens are one Lua script
  on Redis's own clock, and every key it writes expires.

A third, ``PostgresStore`` (``voicehooks.state.postgres``), keeps the same in PostgreSQL
(``pip install 'voicehooks[postgres]'``). ``store_from_url`` is the one place a URL becomes a
store: ``VoiceHooks`` picks ``store_from_url($VOICEHOOKS_STORE_URL)`` (or its old name
``$VOICEHOOKS_REDIS_URL``) when set, else a store on the durable queue's server
(``$VOICEHOOKS_QUEUE_URL``: receivers and workers on several hosts must share the store), a
``MemoryStore`` otherwise. A store signals trouble
with ``StoreError`` and nothing else; what happens then is the app's choice
(``store_failure``), never the store's.

Its Redis client comes from ``voicehooks.state.connections``, the one way voicehooks makes
one: the store and the durable queue on the same URL share one connection pool.
"""

from __future__ import annotations

import math
import time
import uuid
import zlib
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, Protocol, TypeVar

import anyio

from voicehooks.core import environment
from voicehooks.core.exceptions import ConfigurationError, StoreError

from .connections import RedisClient, close_redis_client, is_cluster, redis_client
from .pgpool import is_postgres_url

__all__ = ["DeliveryStore", "MemoryStore", "RedisStore", "default_store", "store_from_url"]

T = TypeVar("T")


class DeliveryStore(Protocol):
    """What once-only processing needs from a store. Every method is a coroutine.

    Implementations raise ``StoreError`` (and only that) when they cannot answer, and should
    answer fast: the caller is a live phone call. Keys are short strings chosen by voicehooks;
    results are the encoded JSON of a tool's answer.
    """

    async def open(self) -> None:
        """Get ready to answer fast (connect, load scripts); the app's lifespan calls this at
        startup, so the first live call does not pay for it."""
        ...

    async def claim(self, key: str, ttl_seconds: float) -> bool:
        """Claim ``key`` for ``ttl_seconds``: ``True`` for the first caller, ``False`` after."""
        ...

    async def put_result(self, key: str, result: bytes, ttl_seconds: float) -> None:
        """Store the first caller's ``result`` and keep ``key`` claimed for ``ttl_seconds``.

        Wakes every ``wait_result`` on ``key``.
        """
        ...

    async def claim_many(self, keys: Sequence[str], ttl_seconds: float) -> list[bool]:
        """``claim`` each of ``keys`` (distinct) in one operation: one answer per key, in order.

        A ``tool-calls`` delivery claims its calls with this, one round trip however many
        calls it carries. Not atomic across keys: each key is claimed as ``claim`` would.
        """
        ...

    async def put_results(self, results: Sequence[tuple[str, bytes]], ttl_seconds: float) -> None:
        """``put_result`` each ``(key, result)`` in one operation (a delivery's answers)."""
        ...

    async def wait_result(self, key: str, timeout_seconds: float) -> bytes | None:
        """The result stored for ``key``, waiting up to ``timeout_seconds`` for it.

        ``None`` when it does not come in time, or when the claim is released or gone.
        """
        ...

    async def release(self, key: str) -> None:
        """Drop this process's claim of ``key`` so that a redelivery may run again."""
        ...

    async def take_token(self, key: str, capacity: int, window_seconds: float) -> float:
        """Take one of ``key``'s ``capacity`` tokens; each comes back ``window_seconds`` later.

        So at most ``capacity`` tokens are taken within any ``window_seconds``, whichever way
        the limited side counts its window.

        Returns:
            ``0.0`` when a token was taken, else the seconds until one comes back (nothing
            is taken then).
        """
        ...

    async def get_fields(self, key: str) -> dict[str, bytes]:
        """Every field of the small map ``key`` (a call's ``CallState``); ``{}`` when none."""
        ...

    async def put_field(
        self, key: str, name: str, value: bytes | None, ttl_seconds: float, max_bytes: int
    ) -> bool:
        """Set (or with ``value=None`` delete) field ``name`` of the map ``key``, atomically.

        The map then expires ``ttl_seconds`` from now.

        Returns:
            ``False``, changing nothing, when the map's names and values would together
            take more than ``max_bytes``.
        """
        ...

    async def forget(self, key: str) -> None:
        """Drop everything kept under ``key``: a map and its fields, a claim and its result."""
        ...

    async def count(self, key: str, ttl_seconds: float) -> int:
        """Add one to the counter ``key`` (expiring ``ttl_seconds`` after its first count) and
        return its new value."""
        ...

    async def aclose(self) -> None:
        """Release the store's resources; the app's lifespan calls this at shutdown."""
        ...


def default_store() -> DeliveryStore:
    """The store of ``$VOICEHOOKS_STORE_URL`` (or its old name ``$VOICEHOOKS_REDIS_URL``),
    else of ``$VOICEHOOKS_QUEUE_URL``, else a ``MemoryStore``."""
    url = (
        environment.read(environment.STORE_URL)
        or environment.read(environment.REDIS_URL)
        or environment.read(environment.QUEUE_URL)
    )
    return store_from_url(url) if url else MemoryStore()


def store_from_url(url: str, *, operation_timeout_seconds: float = 0.25) -> DeliveryStore:
    """The one place a URL becomes a store: a ``PostgresStore`` for ``postgresql://`` or
    ``postgres://``, else a ``RedisStore`` (every form ``redis_client`` reads).

    Raises:
        ConfigurationError: The URL is neither, or the extra its server needs is missing.
    """
    if is_postgres_url(url):
        from .postgres import PostgresStore

        return PostgresStore.from_url(url, operation_timeout_seconds=operation_timeout_seconds)
    return RedisStore.from_url(url, operation_timeout_seconds=operation_timeout_seconds)


# -- in memory ---------------------------------------------------------------------------


class MemoryStore:
    """The default store: a dict in this process, bounded in size, entries expire.

    It catches duplicates that reach the same process. Behind several workers or hosts use
    ``RedisStore``. Everything runs on the event loop, so no method needs a lock, and each is
    a few O(1) dict operations. Expired entries are dropped as new ones arrive; past
    ``max_entries`` the oldest entry goes first (a duplicate arriving after its entry went
    would run again, so size the bound for your traffic times the TTL).

    Rate-limit buckets (``take_token``) are kept apart, at most ``max_entries`` of them, the
    least recently used dropped first (its call would then get a fresh budget: size the bound
    above the number of calls live at once). A bucket whose tokens have all come back leaves.

    Args:
        max_entries: Most deliveries remembered at once, and most rate-limit buckets.
        clock: Monotonic seconds; injectable for tests.

    Examples:
        >>> from voicehooks import Duplicates, MemoryStore, VoiceHooks
        >>> store = MemoryStore(max_entries=100_000)
        >>> app = VoiceHooks(secret="whsec_example", duplicates=Duplicates(store=store))
    """

    def __init__(
        self, *, max_entries: int = 50_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_entries < 1:
            raise ConfigurationError(f"max_entries must be >= 1, got {max_entries!r}")
        self.max_entries = max_entries
        self._clock = clock
        # Ordered by last write: the front holds the oldest, so expiry and eviction only look
        # at the front, and ``put_result`` moves its entry to the back. An OrderedDict, not a
        # dict: a dict finds its first key by skipping the holes that deletions leave at its
        # front, which makes a queue of a dict O(n) per operation. Entries are (expires at,
        # result) tuples: tuples of a float and bytes are untracked by the garbage collector,
        # where 50,000 small objects made each full collection a pause of tens of ms.
        self._slots: OrderedDict[str, tuple[float, bytes | None]] = OrderedDict()
        self._waiters: dict[str, anyio.Event] = {}  # only for keys a duplicate waits on
        # key -> when each token still out was taken, oldest first; least recently used first.
        self._buckets: OrderedDict[str, deque[float]] = OrderedDict()
        # key -> (expires at, fields, their size in bytes); least recently written first.
        # Counters (``count``) live here too, as a map with one field.
        self._maps: OrderedDict[str, tuple[float, dict[str, bytes], int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._slots)

    async def open(self) -> None:
        """Nothing to prepare; see ``DeliveryStore.open``."""

    async def claim(self, key: str, ttl_seconds: float) -> bool:
        """Claim ``key``; see ``DeliveryStore.claim``."""
        return self._claim(key, self._clock(), ttl_seconds)

    async def claim_many(self, keys: Sequence[str], ttl_seconds: float) -> list[bool]:
        """Claim each of ``keys``; see ``DeliveryStore.claim_many``."""
        now = self._clock()
        firsts = []
        for key in keys:  # a loop: a comprehension is a frame of its own on 3.11
            firsts.append(self._claim(key, now, ttl_seconds))
        return firsts

    def _claim(self, key: str, now: float, ttl_seconds: float) -> bool:
        slots = self._slots
        slot = slots.get(key)
        if slot is not None:
            if slot[0] > now:
                return False
            self._drop(key)
        slots[key] = (now + ttl_seconds, None)
        if len(slots) > self.max_entries:
            self._drop(next(iter(slots)))
            return True
        # Two expired entries at most leave per claim: each claim adds one, so the store
        # still shrinks back, and no single request pays for a long sweep.
        for _ in range(2):
            oldest = next(iter(slots))
            if slots[oldest][0] > now:
                break
            self._drop(oldest)
            if not slots:
                break
        return True

    async def put_result(self, key: str, result: bytes, ttl_seconds: float) -> None:
        """Store ``result``; see ``DeliveryStore.put_result``."""
        await self.put_results(((key, result),), ttl_seconds)

    async def put_results(self, results: Sequence[tuple[str, bytes]], ttl_seconds: float) -> None:
        """Store each result; see ``DeliveryStore.put_results``."""
        expires = self._clock() + ttl_seconds
        slots, waiters = self._slots, self._waiters
        for key, result in results:
            # Evicted or expired meanwhile: remember the result all the same.
            slots[key] = (expires, result)
            slots.move_to_end(key)
            waiter = waiters.pop(key, None)
            if waiter is not None:
                waiter.set()

    async def wait_result(self, key: str, timeout_seconds: float) -> bytes | None:
        """Wait for ``key``'s result; see ``DeliveryStore.wait_result``."""
        slot = self._slots.get(key)
        if slot is None or slot[0] <= self._clock():
            return None
        if slot[1] is None:
            waiter = self._waiters.get(key)
            if waiter is None:
                waiter = self._waiters[key] = anyio.Event()
            with anyio.move_on_after(timeout_seconds):
                await waiter.wait()
            slot = self._slots.get(key)
        return None if slot is None else slot[1]

    async def release(self, key: str) -> None:
        """Drop the claim of ``key``; see ``DeliveryStore.release``."""
        self._drop(key)

    async def take_token(self, key: str, capacity: int, window_seconds: float) -> float:
        """Take a token of ``key``; see ``DeliveryStore.take_token``."""
        now = self._clock()
        buckets = self._buckets
        taken = buckets.get(key)
        if taken is None:
            taken = buckets[key] = deque()
            if len(buckets) > self.max_entries:
                buckets.popitem(last=False)
            else:  # a bucket whose tokens have all come back leaves, one per new bucket
                oldest_key, oldest = next(iter(buckets.items()))
                if oldest_key != key and (not oldest or now - oldest[-1] >= window_seconds):
                    del buckets[oldest_key]
        else:
            buckets.move_to_end(key)
        while taken and now - taken[0] >= window_seconds:
            taken.popleft()
        if len(taken) < capacity:
            taken.append(now)
            return 0.0
        return window_seconds - (now - taken[0])

    async def get_fields(self, key: str) -> dict[str, bytes]:
        """The fields of ``key``; see ``DeliveryStore.get_fields``."""
        entry = self._maps.get(key)
        if entry is None or entry[0] <= self._clock():
            return {}
        return dict(entry[1])

    async def put_field(
        self, key: str, name: str, value: bytes | None, ttl_seconds: float, max_bytes: int
    ) -> bool:
        """Set or delete a field of ``key``; see ``DeliveryStore.put_field``."""
        now = self._clock()
        entry = self._maps.get(key)
        fields, size = ({}, 0) if entry is None or entry[0] <= now else entry[1:]
        old = fields.get(name)
        if old is not None:
            size -= len(name) + len(old)
        if value is not None:
            size += len(name) + len(value)
            if size > max_bytes:
                return False
            fields[name] = value
        elif old is not None:
            del fields[name]
        self._keep_map(key, (now + ttl_seconds, fields, size), now)
        return True

    async def forget(self, key: str) -> None:
        """Drop all of ``key``; see ``DeliveryStore.forget``."""
        self._maps.pop(key, None)
        self._drop(key)

    async def count(self, key: str, ttl_seconds: float) -> int:
        """Count one more for ``key``; see ``DeliveryStore.count``."""
        now = self._clock()
        entry = self._maps.get(key)
        if entry is None or entry[0] <= now:
            entry = (now + ttl_seconds, {"n": b"0"}, 0)
        value = int(entry[1]["n"]) + 1
        self._keep_map(key, (entry[0], {"n": str(value).encode()}, 0), now)
        return value

    def _keep_map(self, key: str, entry: tuple[float, dict[str, bytes], int], now: float) -> None:
        maps = self._maps
        maps[key] = entry
        maps.move_to_end(key)
        if len(maps) > self.max_entries:
            maps.popitem(last=False)
        else:  # an expired map leaves, one per write, as claims do
            oldest_key, oldest = next(iter(maps.items()))
            if oldest[0] <= now:
                del maps[oldest_key]

    async def aclose(self) -> None:
        """Forget everything and wake all waiters (they get ``None``)."""
        for key in list(self._slots):
            self._drop(key)
        self._buckets.clear()
        self._maps.clear()

    def _drop(self, key: str) -> None:
        self._slots.pop(key, None)
        waiter = self._waiters.pop(key, None)
        if waiter is not None:
            waiter.set()  # a waiter wakes, finds no result, and answers without one


# -- Redis -------------------------------------------------------------------------------

# Both scripts touch one key or two keys of the same delivery; Redis runs each atomically.
_PUT_RESULT = """
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[2], 'done', 'PX', ARGV[2])
return 1
"""
# A token bucket whose tokens come back one window after each was taken: a list of the times
# the tokens still out were taken, on Redis's own clock (the workers' clocks may differ).
# Answers 0 (taken) or the milliseconds until the oldest token comes back.
_TAKE_TOKEN = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local capacity = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
while true do
    local oldest = redis.call('LINDEX', KEYS[1], 0)
    if not oldest or now - tonumber(oldest) < window then break end
    redis.call('LPOP', KEYS[1])
end
if redis.call('LLEN', KEYS[1]) < capacity then
    redis.call('RPUSH', KEYS[1], now)
    redis.call('PEXPIRE', KEYS[1], window)
    return 0
end
return math.max(1, window - (now - tonumber(redis.call('LINDEX', KEYS[1], 0))))
"""
# One field of a call's map, within its size bound: the map's size is kept in a field of its
# own ("\0size"), so a write reads two fields, not the whole map. Answers 1 (done) or 0
# (the bound would be passed: nothing changed).
_PUT_FIELD = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
local size = tonumber(redis.call('HGET', KEYS[1], '\\0size') or '0')
if old then size = size - #ARGV[1] - #old end
if ARGV[4] == '1' then
    size = size + #ARGV[1] + #ARGV[2]
    if size > tonumber(ARGV[3]) then return 0 end
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], '\\0size', size)
else
    redis.call('HDEL', KEYS[1], ARGV[1])
    redis.call('HSET', KEYS[1], '\\0size', size)
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""
_COUNT = """
local value = redis.call('INCR', KEYS[1])
if value == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return value
"""
_SIZE_FIELD: Final = "\0size"

# Only the owner of a claim may release it: a claim that expired and was taken by another
# process meanwhile must not be deleted by the first.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisStore:
    """A store shared by every worker and host that points at the same Redis.

    Keys are ``<prefix>claim:<key>`` (set with ``SET NX PX``, value: this process's token,
    then ``done``), ``<prefix>result:<key>`` (the first answer) and ``<prefix>tokens:<key>``
    (a rate-limit bucket, one Lua script per ``take_token``). Every key expires. A
    waiting duplicate polls the two keys with a short backoff (5 ms, doubling to 50 ms).
    On a Redis Cluster each key carries a hash tag after its kind, a digest of ``<key>``
    (``<prefix>claim:{1a2b3c4d}<key>``), so that every operation touches one slot.

    Each operation has its own ``operation_timeout_seconds``; a slow, unreachable or failing
    Redis raises ``StoreError`` and is never retried here: the caller is a live call. The one
    exception is a slow poll inside ``wait_result``, which polls on until its own deadline.

    Args:
        client: A ``redis.asyncio.Redis`` or ``RedisCluster``; the store owns it and closes
            it in ``aclose``.
        prefix: Put in front of every key, to share one Redis between apps.
        operation_timeout_seconds: Budget of one Redis command.

    Examples:
        >>> from voicehooks import Duplicates, RedisStore, VoiceHooks
        >>> store = RedisStore.from_url("redis://localhost:6379/0")  # connects at startup
        >>> app = VoiceHooks(secret="whsec_example", duplicates=Duplicates(store=store))
    """

    def __init__(
        self,
        client: RedisClient,
        *,
        prefix: str = "voicehooks:",
        operation_timeout_seconds: float = 0.25,
    ) -> None:
        if operation_timeout_seconds <= 0:
            raise ConfigurationError("operation_timeout_seconds must be > 0")
        self.client = client
        self.prefix = prefix
        self._tagged = is_cluster(client)
        if self._tagged:
            from redis.crc import key_slot

            if key_slot(self._key("claim:", "k").encode()) != key_slot(
                self._key("result:", "k").encode()
            ):
                raise ConfigurationError(
                    "on a Redis Cluster the prefix must not hold an empty hash tag ('{}')"
                )
        self.operation_timeout_seconds = operation_timeout_seconds
        self._token = uuid.uuid4().hex  # marks the claims this process holds
        self._put_result = client.register_script(_PUT_RESULT)
        self._release = client.register_script(_RELEASE)
        self._take_token = client.register_script(_TAKE_TOKEN)
        self._put_field = client.register_script(_PUT_FIELD)
        self._count = client.register_script(_COUNT)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = "voicehooks:",
        operation_timeout_seconds: float = 0.25,
    ) -> RedisStore:
        """A store on a client for ``url``: any form ``redis_client`` reads (``redis://``,
        ``rediss://``, ``unix://``, ``redis+sentinel://``, ``redis+cluster://``).

        The client is ``redis_client(url)``'s: it shares this process's pool for ``url``
        with the durable queue, connects in ``open`` (the app's startup) or on first use,
        fails fast (each command, connecting included, within the operation timeout; no
        retries) and lets go of the pool in ``aclose``.

        Raises:
            ConfigurationError: The ``redis`` package is missing, or ``url`` is not a Redis URL.
        """
        return cls(
            redis_client(url), prefix=prefix, operation_timeout_seconds=operation_timeout_seconds
        )

    async def open(self) -> None:
        """Connect and load the scripts, so the first live call pays for neither.

        Raises:
            StoreError: Redis did not answer; the app logs it and starts all the same.
        """
        await self._run("open", self.client.ping())
        for script in (_PUT_RESULT, _RELEASE, _TAKE_TOKEN, _PUT_FIELD, _COUNT):
            await self._run("open", self.client.script_load(script))

    async def claim(self, key: str, ttl_seconds: float) -> bool:
        """Claim ``key`` with ``SET NX PX``; see ``DeliveryStore.claim``."""
        command = self.client.set(
            self._key("claim:", key), self._token, nx=True, px=_milliseconds(ttl_seconds)
        )
        return bool(await self._run("claim", command))

    async def claim_many(self, keys: Sequence[str], ttl_seconds: float) -> list[bool]:
        """A ``SET NX PX`` per key in one pipeline (one round trip; on a Redis Cluster, one
        per node); see ``DeliveryStore.claim_many``."""
        if len(keys) == 1:  # most deliveries carry one call: no pipeline to build
            return [await self.claim(keys[0], ttl_seconds)]
        ttl = _milliseconds(ttl_seconds)
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.set(self._key("claim:", key), self._token, nx=True, px=ttl)
        return [bool(done) for done in await self._run("claim_many", pipe.execute())]

    async def put_result(self, key: str, result: bytes, ttl_seconds: float) -> None:
        """Store ``result`` and mark the claim done, atomically; see ``DeliveryStore``."""
        keys = [self._key("result:", key), self._key("claim:", key)]
        await self._run(
            "put_result", self._put_result(keys=keys, args=[result, _milliseconds(ttl_seconds)])
        )

    async def put_results(self, results: Sequence[tuple[str, bytes]], ttl_seconds: float) -> None:
        """Each result as ``put_result`` stores it, in one pipeline; see ``DeliveryStore``."""
        if len(results) == 1:
            await self.put_result(*results[0], ttl_seconds)
            return
        ttl = _milliseconds(ttl_seconds)
        pipe = self.client.pipeline(transaction=False)
        for key, result in results:
            keys = [self._key("result:", key), self._key("claim:", key)]
            # Queued on the pipeline (redis-py types ``client`` as a connection only).
            await self._put_result(keys=keys, args=[result, ttl], client=pipe)  # type: ignore[arg-type]
        await self._run("put_results", pipe.execute())

    async def wait_result(self, key: str, timeout_seconds: float) -> bytes | None:
        """Poll for ``key``'s result; see ``DeliveryStore.wait_result``."""
        keys = [self._key("result:", key), self._key("claim:", key)]
        delay = 0.005
        with anyio.move_on_after(timeout_seconds):
            while True:
                try:
                    result, claim = await self._run("wait_result", self.client.mget(keys))
                except _Slow:
                    continue  # one slow poll is no reason to give up: the wait has a deadline
                if result is not None:
                    return result if isinstance(result, bytes) else result.encode()
                if claim is None:
                    return None  # released, or expired: the first run gave up
                await anyio.sleep(delay)
                delay = min(delay * 2, 0.05)
        return None

    async def release(self, key: str) -> None:
        """Delete ``key``'s claim if this process holds it; see ``DeliveryStore.release``."""
        await self._run(
            "release", self._release(keys=[self._key("claim:", key)], args=[self._token])
        )

    async def take_token(self, key: str, capacity: int, window_seconds: float) -> float:
        """Take a token of ``key`` atomically; see ``DeliveryStore.take_token``."""
        wait = await self._run(
            "take_token",
            self._take_token(
                keys=[self._key("tokens:", key)],
                args=[capacity, _milliseconds(window_seconds)],
            ),
        )
        return int(wait) / 1000

    async def get_fields(self, key: str) -> dict[str, bytes]:
        """``HGETALL`` of ``<prefix>map:<key>``; see ``DeliveryStore.get_fields``."""
        raw = await self._run("get_fields", self.client.hgetall(self._key("map:", key)))
        fields = {_text(name): _bytes(value) for name, value in raw.items()}
        fields.pop(_SIZE_FIELD, None)
        return fields

    async def put_field(
        self, key: str, name: str, value: bytes | None, ttl_seconds: float, max_bytes: int
    ) -> bool:
        """Set or delete a field in one script; see ``DeliveryStore.put_field``."""
        done = await self._run(
            "put_field",
            self._put_field(
                keys=[self._key("map:", key)],
                args=[
                    name,
                    b"" if value is None else value,
                    max_bytes,
                    "0" if value is None else "1",
                    _milliseconds(ttl_seconds),
                ],
            ),
        )
        return bool(done)

    async def forget(self, key: str) -> None:
        """Delete ``key``'s map, claim and result; see ``DeliveryStore.forget``."""
        names = [self._key(kind, key) for kind in ("map:", "claim:", "result:")]
        await self._run("forget", self.client.delete(*names))

    async def count(self, key: str, ttl_seconds: float) -> int:
        """``INCR`` of ``<prefix>count:<key>``; see ``DeliveryStore.count``."""
        value = await self._run(
            "count",
            self._count(keys=[self._key("count:", key)], args=[_milliseconds(ttl_seconds)]),
        )
        return int(value)

    async def aclose(self) -> None:
        """Close the client; its pool closes with the last client on it."""
        await close_redis_client(self.client)

    def _key(self, kind: str, key: str) -> str:
        # On a cluster the keys of one delivery (its claim, result and map) share a hash tag,
        # so that each operation touches one slot. The tag is a digest, never the key: a key
        # may hold braces (a call id is the sender's text), and a brace in it would end the
        # tag early for one kind and not another.
        if self._tagged:
            return f"{self.prefix}{kind}{{{zlib.crc32(key.encode()):08x}}}{key}"
        return self.prefix + kind + key

    async def ping(self) -> None:
        """Raise ``StoreError`` unless Redis answers a ``PING`` (the readiness probe)."""
        await self._run("ping", self.client.ping())

    async def _run(self, name: str, command: Awaitable[T]) -> T:
        try:
            with anyio.fail_after(self.operation_timeout_seconds):
                return await command
        except TimeoutError:
            raise _Slow(
                f"redis {name} took longer than {self.operation_timeout_seconds} s"
            ) from None
        except Exception as exc:  # redis-py's errors, OSError, and whatever a client raises
            raise StoreError(f"redis {name} failed: {type(exc).__name__}: {exc}") from None


class _Slow(StoreError):
    """A Redis command did not answer within the operation timeout."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _milliseconds(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))
