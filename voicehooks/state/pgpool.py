"""One psycopg connection pool per PostgreSQL URL, as ``connections`` has one Redis pool.

``postgres_pool(url)`` is the one way voicehooks reaches PostgreSQL: the store
(``voicehooks.state.postgres``) and the durable queue (``voicehooks.work.pgqueue``) on the
same URL hold one pool in a process, which closes with the last hold to let go. Both URL
forms are accepted, ``postgresql://`` and ``postgres://`` (``is_postgres_url``).
"""

from __future__ import annotations

import asyncio
import select
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final

from voicehooks.core.exceptions import ConfigurationError

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

__all__ = ["PostgresPool", "is_postgres_url", "postgres_pool"]

# Pools this process shares, by URL and event loop; past the bound the oldest is forgotten
# (its holds keep it and still close it), as in ``connections``.
_MAX_SHARED_POOLS: Final = 16
_MAX_POSTGRES_CONNECTIONS: Final = 10
_RECONNECT_SECONDS: Final = 3.0
_pg_shared: OrderedDict[tuple[str, asyncio.AbstractEventLoop | None], _SharedPostgres] = (
    OrderedDict()
)


class _SharedPostgres:
    """One psycopg pool and the holds on it; the last hold to close closes it."""

    __slots__ = ("key", "lock", "opened", "pool", "users")

    def __init__(
        self, key: tuple[str, asyncio.AbstractEventLoop | None], pool: AsyncConnectionPool
    ) -> None:
        self.key = key
        self.pool = pool
        self.opened = False
        self.lock = asyncio.Lock()
        self.users: weakref.WeakSet[PostgresPool] = weakref.WeakSet()


class PostgresPool:
    """One user's hold on this process's psycopg pool for a URL (``postgres_pool``).

    The store and the queue each hold one; the pool opens with the first ``open`` and closes
    with the last ``aclose``. ``pool`` is the ``psycopg_pool.AsyncConnectionPool`` itself.
    """

    def __init__(self, shared: _SharedPostgres, url: str = "") -> None:
        self._shared = shared
        self._url = url
        self.pool = shared.pool
        shared.users.add(self)

    async def open(self) -> None:
        """Open the pool unless it is open; connections are made in the background.

        A hold that was closed takes a pool again (the shared one for its URL, perhaps a new
        one), as a closed Redis client reconnects when used again.
        """
        if self not in self._shared.users and self._url:
            self._shared = _shared_postgres(self._url)
            self.pool = self._shared.pool
            self._shared.users.add(self)
        shared = self._shared
        if not shared.opened:
            async with shared.lock:
                if not shared.opened:
                    await shared.pool.open(wait=False)
                    shared.opened = True

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        """A pooled connection that is still connected, for the block.

        One the server closed (a restart, an idle timeout) left its socket readable; it is
        closed, so the pool drops it, and the next is taken: found without a round trip,
        and without the pool's own check, which waits a second between tries.
        """
        for _ in range(_MAX_POSTGRES_CONNECTIONS):
            async with self.pool.connection() as connection:
                if _still_connected(connection):
                    yield connection
                    return
                await connection.close()
        async with self.pool.connection() as connection:  # a new one, made just now
            yield connection

    async def aclose(self) -> None:
        """Let go of the pool; closing it when no other hold is open. Idempotent."""
        shared = self._shared
        if self not in shared.users:
            return
        shared.users.discard(self)
        if not shared.users:
            if _pg_shared.get(shared.key) is shared:
                del _pg_shared[shared.key]
            await shared.pool.close()


def postgres_pool(url: str, *, pool: AsyncConnectionPool | None = None) -> PostgresPool:
    """A hold on this process's one psycopg pool for ``url`` (``postgresql://``, ``postgres://``).

    The store and the durable queue on the same URL share one pool, as they share one Redis
    pool; it opens on first use and closes with its last hold. With ``pool`` (a pool of your
    own) the hold owns that pool alone. Connections are autocommit; take them with
    ``PostgresPool.connection``, which skips those the server closed.

    Raises:
        ConfigurationError: The ``psycopg`` packages are missing, or ``url`` is not a
            PostgreSQL URL (the message holds nothing of the URL).
    """
    if pool is not None:
        return PostgresPool(_SharedPostgres(("", None), pool))
    return PostgresPool(_shared_postgres(url), url)


def _shared_postgres(url: str) -> _SharedPostgres:
    try:
        from psycopg_pool import AsyncConnectionPool
    except ImportError:
        raise ConfigurationError(
            "the PostgreSQL store and queue need psycopg: pip install 'voicehooks[postgres]'"
        ) from None
    if not is_postgres_url(url):
        raise ConfigurationError(
            "not a PostgreSQL URL: it must start with postgresql:// or postgres://"
        )
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    key = (url, loop)
    shared = _pg_shared.get(key)
    if shared is None:
        made = AsyncConnectionPool(
            url,
            open=False,
            min_size=1,
            max_size=_MAX_POSTGRES_CONNECTIONS,
            kwargs={"autocommit": True},
            # The pool reconnects in the background with a backoff doubling from 1 s until
            # it gives up, and a request then starts a fresh attempt: giving up soon keeps
            # the wait after an outage (a restart) to a few seconds, not minutes.
            reconnect_timeout=_RECONNECT_SECONDS,
        )
        shared = _pg_shared[key] = _SharedPostgres(key, made)
        if len(_pg_shared) > _MAX_SHARED_POOLS:
            _pg_shared.popitem(last=False)
    else:
        _pg_shared.move_to_end(key)
    return shared


def is_postgres_url(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL server (``postgresql://`` or ``postgres://``)."""
    return url.partition("://")[0].lower() in ("postgresql", "postgres")


def _still_connected(connection: AsyncConnection[Any]) -> bool:
    # An idle autocommit connection has nothing to read unless the server closed it.
    if connection.closed or connection.broken:
        return False
    readable, _, _ = select.select([connection.fileno()], [], [], 0)
    return not readable
