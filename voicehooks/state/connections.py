"""Redis connections: the one client factory, and one connection pool per URL.

``redis_client(url)`` is the one way voicehooks makes a Redis client: the duplicate store
(``voicehooks.state.stores``) and the durable queue (``voicehooks.work.queue``) on the same
URL share one connection pool in a process, which closes with the last of them
(``close_redis_client``).

One URL names a whole topology, so that one environment variable configures it:

* ``redis://`` and ``rediss://`` (TLS): one server, or a proxy in front of several;
  ``unix://`` a local socket.
* ``redis+sentinel://[[user]:password@]host:26379,host:26379/service[/db]``: the master
  of ``service`` as Sentinel names it, found again after a failover. The form is the one
  Redis-Sentinel-Url, LangChain, RedisVL and Prefect's docket read; kombu's
  ``sentinel://a;sentinel://b`` puts the service name outside the URL, where one variable
  cannot carry it.
* ``redis+cluster://[[user]:password@]host:port,host:port/``: a Redis Cluster, found from
  any of the listed nodes. The store and the queue give their keys hash tags there
  (``is_cluster``), so that each of their operations touches one slot.

``rediss+sentinel://`` and ``rediss+cluster://`` are the same over TLS. Query parameters
are redis-py's connection options (``ssl_cert_reqs``, ``ssl_ca_certs``, ``ssl_certfile``,
``ssl_keyfile``, ``ssl_check_hostname``, ``socket_keepalive``, ...), applied to every data
node; ``sentinel_username`` and ``sentinel_password`` authenticate to the Sentinels, which
otherwise get no credentials (over TLS they share the ``ssl_*`` options).
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeAlias
from urllib.parse import parse_qsl, urlencode, urlsplit

from voicehooks.core.exceptions import ConfigurationError

if TYPE_CHECKING:
    from redis.asyncio import ConnectionPool, Redis
    from redis.asyncio.cluster import RedisCluster
    from redis.asyncio.sentinel import Sentinel

    RedisClient: TypeAlias = Redis | RedisCluster
else:
    RedisClient: TypeAlias = Any

__all__ = ["RedisClient", "close_redis_client", "is_cluster", "redis_client"]

# Pools this process shares, by URL and event loop, least recently asked for first. Past the
# bound the oldest entry is forgotten: its clients keep their pool and still close it, and
# the next client for its URL gets a new one. A process normally has one or two URLs.
_MAX_SHARED_POOLS: Final = 16
_shared: OrderedDict[tuple[str, asyncio.AbstractEventLoop | None], _SharedPool] = OrderedDict()
_owners: weakref.WeakKeyDictionary[Any, _SharedPool] = weakref.WeakKeyDictionary()

_SCHEMES: Final = ("redis", "rediss", "unix")
_TOPOLOGIES: Final = ("", "sentinel", "cluster")
_DEFAULT_PORTS: Final = {"sentinel": 26379, "cluster": 6379}
# Files a TLS option names: a missing one is a mistake in the URL, said at startup.
_FILE_OPTIONS: Final = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
_SENTINEL_OPTIONS: Final = ("sentinel_username", "sentinel_password")
# How long one Sentinel may take to say who the master is before the next one is asked.
_SENTINEL_TIMEOUT_SECONDS: Final = 0.5
_SYNTAX: Final = (
    "redis[s]://[[user]:password@]host[:port][/db], "
    "redis[s]+sentinel://[[user]:password@]host:port,host:port/service[/db] or "
    "redis[s]+cluster://[[user]:password@]host:port,host:port/"
)


class _SharedPool:
    """One connection pool and the clients open on it; the last one to close closes it.

    The clients are held weakly: one dropped without ``close_redis_client`` (a constructor
    that raised after it was made) must not keep the pool open after the others closed. A
    cluster client is its own pool (a pool per node, and the map of slots), so its users
    share the one client and are counted instead.
    """

    __slots__ = ("cluster", "cluster_users", "key", "pool", "sentinel", "users")

    def __init__(
        self,
        key: tuple[str, asyncio.AbstractEventLoop | None],
        pool: ConnectionPool | None = None,
        *,
        sentinel: Sentinel | None = None,
        cluster: RedisCluster | None = None,
    ) -> None:
        self.key = key
        self.pool = pool
        self.sentinel = sentinel
        self.cluster = cluster
        self.cluster_users = 0
        self.users: weakref.WeakSet[Redis] = weakref.WeakSet()

    def client(self) -> RedisClient:
        if self.cluster is not None:
            self.cluster_users += 1
            return self.cluster
        from redis.asyncio import Redis

        client = Redis(connection_pool=self.pool)
        self.users.add(client)
        return client

    def release(self, client: RedisClient) -> bool:
        """Forget ``client``; whether it was the last."""
        if self.cluster is not None:
            self.cluster_users = max(0, self.cluster_users - 1)
            return self.cluster_users == 0
        self.users.discard(client)  # type: ignore[arg-type]
        return not self.users

    async def aclose(self) -> None:
        try:
            if self.pool is not None:
                await self.pool.aclose()
            if self.cluster is not None:
                await self.cluster.aclose()
        finally:
            if self.sentinel is not None:
                await self.sentinel.aclose()
                # After a failover, Sentinel.aclose (redis-py 8.2) leaves its clients'
                # connections open; disconnecting their pools closes them.
                for client in self.sentinel.sentinels:
                    await client.connection_pool.disconnect()


def redis_client(url: str) -> RedisClient:
    """A client for ``url`` on this process's one connection pool for it.

    The store and the durable queue both get theirs here, so one Redis URL costs one pool
    however many users it has. Close the client with ``close_redis_client``: the pool stays
    open until its last client closes. A pool's connections belong to the event loop that
    opened them, so clients made in different running loops get different pools. The URL
    forms are in the module docstring.

    The pool never resends a command (no retries): a command whose connection broke may
    have run, and running it again could add a queue entry twice or make a claim look taken.
    (A cluster's redirections, ``MOVED`` and ``ASK``, are followed: the command did not run.)
    A pooled connection that went stale (a Redis restart) is found out before it is lent.
    Connecting has no timeout of its own: every user runs each command, connecting
    included, under its own operation timeout.

    Raises:
        ConfigurationError: The ``redis`` package is missing, ``url`` is not a Redis URL, or
            a TLS option names a file that does not exist (the message holds nothing of the
            URL: it may carry a password).
    """
    try:
        import redis.asyncio  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            "the Redis store and queue need the redis package: pip install 'voicehooks[redis]'"
        ) from None
    target = _parse(url)
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None  # made before the server's loop runs, as an app made at import is
    key = (url, loop)
    shared = _shared.get(key)
    if shared is None:
        shared = _shared[key] = target.connect(key)
        if len(_shared) > _MAX_SHARED_POOLS:
            _shared.popitem(last=False)
    else:
        _shared.move_to_end(key)
    client = shared.client()
    _owners[client] = shared
    return client


async def close_redis_client(client: RedisClient) -> None:
    """Close ``client``, and its pool if no other client is open on it.

    A client that ``redis_client`` did not make is closed as redis-py closes it. Closing
    again is harmless, and closes again what a closed client opened since (as redis-py's
    own ``aclose`` does): it still disconnects the pool unless another client is open on it.
    A cluster's users share one client, so there each close counts one user out.
    """
    shared = _owners.get(client)
    if shared is None:
        await client.aclose()
        return
    if shared.cluster is None:
        await client.aclose()
    if shared.release(client):
        if _shared.get(shared.key) is shared:
            del _shared[shared.key]
        await shared.aclose()


def is_cluster(client: RedisClient) -> bool:
    """Whether ``client`` talks to a Redis Cluster, where the keys of one operation must
    share a hash slot."""
    try:
        from redis.asyncio.cluster import RedisCluster
    except ImportError:  # pragma: no cover - the client itself came from the package
        return False
    return isinstance(client, RedisCluster)


# -- the URL -----------------------------------------------------------------------------


@dataclass
class _Target:
    """What a URL names: a topology, its hosts, and redis-py's connection options."""

    topology: str
    options: dict[str, Any]
    hosts: list[tuple[str, int]] = field(default_factory=list)
    service: str = ""
    sentinel_options: dict[str, Any] = field(default_factory=dict)

    def connect(self, key: tuple[str, asyncio.AbstractEventLoop | None]) -> _SharedPool:
        from redis.asyncio import ConnectionPool
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        no_retries = Retry(NoBackoff(), 0)
        if self.topology == "cluster":
            from redis.asyncio.cluster import ClusterNode, RedisCluster

            options = dict(self.options)
            options.pop("db", None)
            if options.pop("connection_class", None) is not None:
                options["ssl"] = True
            cluster = RedisCluster(
                startup_nodes=[ClusterNode(host, port) for host, port in self.hosts],
                retry=no_retries,
                **options,
            )
            return _SharedPool(key, cluster=cluster)
        if self.topology == "sentinel":
            from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

            options = dict(self.options)
            ssl = options.pop("connection_class", None) is not None
            sentinel_options = {
                "socket_timeout": _SENTINEL_TIMEOUT_SECONDS,
                "socket_connect_timeout": _SENTINEL_TIMEOUT_SECONDS,
                **self.sentinel_options,
            }
            if ssl:
                sentinel_options["ssl"] = True
                sentinel_options.update(
                    (name, value) for name, value in options.items() if name.startswith("ssl_")
                )
            sentinel = Sentinel(self.hosts, sentinel_kwargs=sentinel_options)
            pool = SentinelConnectionPool(  # type: ignore[no-untyped-call]
                self.service, sentinel, ssl=ssl, retry=no_retries, **options
            )
            return _SharedPool(key, pool, sentinel=sentinel)
        return _SharedPool(key, ConnectionPool(retry=no_retries, **self.options))


def _parse(url: str) -> _Target:
    from redis.asyncio.connection import parse_url

    scheme, separator, _ = url.partition("://")
    base, _, topology = scheme.lower().partition("+")
    if (
        not separator
        or base not in _SCHEMES
        or topology not in _TOPOLOGIES
        or (base == "unix" and topology)
    ):
        raise ConfigurationError(
            "not a Redis URL: it must start with redis://, rediss://, unix://, "
            f"redis[s]+sentinel:// or redis[s]+cluster:// ({_SYNTAX})"
        )
    try:
        if not topology:
            target = _Target("", dict(parse_url(url)))
        else:
            target = _parse_topology(url, base, topology, parse_url)
    except ValueError:
        # Nothing of the URL or of the parser's message: a password with '/', '?' or '#'
        # ends the host part early, and the parser quotes a piece of it as the "port".
        raise ConfigurationError(
            f"the Redis URL does not parse ({_SYNTAX}); percent-encode a password's reserved "
            "characters: / %2F, ? %3F, # %23, @ %40, : %3A, , %2C"
        ) from None
    for name in _FILE_OPTIONS:
        path = target.options.get(name)
        if path is not None and not os.path.isfile(path):
            raise ConfigurationError(
                f"the Redis URL's {name} names no file this process can read: give the path "
                "of the PEM file"
            )
    return target


def _parse_topology(url: str, base: str, topology: str, parse_url: Any) -> _Target:
    parts = urlsplit(url)
    credentials, _, hostlist = parts.netloc.rpartition("@")
    hosts = [_host_port(item, _DEFAULT_PORTS[topology]) for item in hostlist.split(",")]
    query = parse_qsl(parts.query)
    sentinel_options = {
        name.removeprefix("sentinel_"): value for name, value in query if name in _SENTINEL_OPTIONS
    }
    query = [(name, value) for name, value in query if name not in _SENTINEL_OPTIONS]
    segments = [segment for segment in parts.path.split("/") if segment]
    service = ""
    if topology == "sentinel":
        if not segments or len(segments) > 2:
            raise ValueError("a Sentinel URL names its service")
        service, segments = segments[0], segments[1:]
    elif segments and segments != ["0"]:
        raise ValueError("a cluster has database 0 only")
    # redis-py reads the options, the credentials and the database of a one-host URL.
    single = f"{base}://{credentials + '@' if credentials else ''}{hostlist.split(',')[0]}"
    single += "/" + "/".join(segments) + ("?" + urlencode(query) if query else "")
    options = dict(parse_url(single))
    options.pop("host", None)
    options.pop("port", None)
    return _Target(topology, options, hosts, service, sentinel_options)


def _host_port(item: str, default_port: int) -> tuple[str, int]:
    item = item.strip()
    if item.startswith("["):  # an IPv6 address
        host, _, rest = item[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = item.partition(":")
    if not host:
        raise ValueError("a host is missing")
    return host, int(port) if port else default_port
