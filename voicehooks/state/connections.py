"""Redis connections: the one client factory, and one connection pool per URL.

``redis_client(url)`` is the one way voicehooks makes a Redis client: the duplicate store
(``voicehooks.state.stores``) and the durable queue (``voicehooks.work.queue``) on the same
URL share one connection pool in a process, which closes with the last of them
(``close_redis_client``).
"""

from __future__ import annotations

import asyncio
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Final

from voicehooks.core.exceptions import ConfigurationError

if TYPE_CHECKING:
    from redis.asyncio import ConnectionPool, Redis

__all__ = ["close_redis_client", "redis_client"]

# Pools this process shares, by URL and event loop, least recently asked for first. Past the
# bound the oldest entry is forgotten: its clients keep their pool and still close it, and
# the next client for its URL gets a new one. A process normally has one or two URLs.
_MAX_SHARED_POOLS: Final = 16
_shared: OrderedDict[tuple[str, asyncio.AbstractEventLoop | None], _SharedPool] = OrderedDict()
_owners: weakref.WeakKeyDictionary[Redis, _SharedPool] = weakref.WeakKeyDictionary()


class _SharedPool:
    """One connection pool and the clients open on it; the last one to close closes it.

    The clients are held weakly: one dropped without ``close_redis_client`` (a constructor
    that raised after it was made) must not keep the pool open after the others closed.
    """

    __slots__ = ("key", "pool", "users")

    def __init__(
        self, key: tuple[str, asyncio.AbstractEventLoop | None], pool: ConnectionPool
    ) -> None:
        self.key = key
        self.pool = pool
        self.users: weakref.WeakSet[Redis] = weakref.WeakSet()


def redis_client(url: str) -> Redis:
    """A client for ``url`` on this process's one connection pool for it.

    The store and the durable queue both get theirs here, so one Redis URL costs one pool
    however many users it has. Close the client with ``close_redis_client``: the pool stays
    open until its last client closes. A pool's connections belong to the event loop that
    opened them, so clients made in different running loops get different pools.

    The pool never resends a command (no retries): a command whose connection broke may
    have run, and running it again could add a queue entry twice or make a claim look taken.
    A pooled connection that went stale (a Redis restart) is found out before it is lent.
    Connecting has no timeout of its own: every user runs each command, connecting
    included, under its own operation timeout.

    Raises:
        ConfigurationError: The ``redis`` package is missing, or ``url`` is not a Redis URL
            (the message holds nothing of the URL: it may carry a password).
    """
    try:
        from redis.asyncio import ConnectionPool, Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
    except ImportError:
        raise ConfigurationError(
            "the Redis store and queue need the redis package: pip install 'voicehooks[redis]'"
        ) from None
    if url.partition("://")[0].lower() not in ("redis", "rediss", "unix"):
        raise ConfigurationError(
            "not a Redis URL: it must start with redis://, rediss:// or unix://"
        )
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None  # made before the server's loop runs, as an app made at import is
    key = (url, loop)
    shared = _shared.get(key)
    if shared is None:
        try:
            pool = ConnectionPool.from_url(url, retry=Retry(NoBackoff(), 0))
        except ValueError:
            # Nothing of the URL or of the parser's message: a password with '/', '?' or '#'
            # ends the host part early, and the parser quotes a piece of it as the "port".
            raise ConfigurationError(
                "the Redis URL does not parse (redis://[[user]:password@]host[:port][/db]); "
                "percent-encode a password's reserved characters: / %2F, ? %3F, # %23, "
                "@ %40, : %3A"
            ) from None
        shared = _shared[key] = _SharedPool(key, pool)
        if len(_shared) > _MAX_SHARED_POOLS:
            _shared.popitem(last=False)
    else:
        _shared.move_to_end(key)
    client = Redis(connection_pool=shared.pool)
    shared.users.add(client)
    _owners[client] = shared
    return client


async def close_redis_client(client: Redis) -> None:
    """Close ``client``, and its pool if no other client is open on it.

    A client that ``redis_client`` did not make is closed as redis-py closes it. Closing
    again is harmless, and closes again what a closed client opened since (as redis-py's
    own ``aclose`` does): it still disconnects the pool unless another client is open on it.
    """
    shared = _owners.get(client)
    await client.aclose()
    if shared is None:
        return
    shared.users.discard(client)
    if not shared.users:
        if _shared.get(shared.key) is shared:
            del _shared[shared.key]
        await shared.pool.aclose()
