"""The PostgreSQL store: what ``RedisStore`` keeps, in four tables of a schema of your choice.

For teams that run PostgreSQL and not Redis (``pip install 'voicehooks[postgres]'``,
``VOICEHOOKS_STORE_URL=postgresql://...``). Every operation is one statement, so one round
trip, and atomic the way the Redis scripts are:

* **claims** (``claim``, ``put_result``, ``wait_result``, ``release``): one row per key with
  its owner's token, its result and when it expires. A claim is ``INSERT ... ON CONFLICT DO
  UPDATE ... WHERE expires_at <= now()``: the first caller, or the first after the row
  expired, gets a row back. A waiting duplicate polls the row (5 ms, doubling to 50 ms).
* **tokens** (``take_token``): one row per bucket holding the times of the tokens still
  out; one upsert drops those a window old, takes one if fewer than the capacity are out,
  and answers the wait otherwise, on the server's clock, as the Lua script does on Redis's.
* **maps** (``get_fields``, ``put_field``): a call's fields as one ``jsonb`` object (values
  in base64) and their size; ``put_field`` is a function of the schema, one call, that locks
  the row, checks the bound and writes.
* **counters** (``count``).

Every row has an ``expires_at``; reads ignore expired rows, and a sweep the store owns
deletes them every ``sweep_every_seconds`` in batches of 1,000 (``FOR UPDATE SKIP LOCKED``,
so several processes sweeping at once do not queue behind each other), so no request pays
for it and a large backlog is worked off over several sweeps.

The schema is made on first use (``open``, or the first operation), under an advisory lock
so that processes starting together do not race, and its version is kept in
``schema_version`` so that a later release can migrate it.
"""

from __future__ import annotations

import base64
import logging
import math
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

import anyio

from voicehooks.core.exceptions import ConfigurationError, StoreError
from voicehooks.core.tasks import TaskOwner

from .pgpool import PostgresPool, postgres_pool

if TYPE_CHECKING:
    from psycopg import AsyncConnection
    from psycopg_pool import AsyncConnectionPool

__all__ = [
    "MISSING_TABLE_STATES",
    "SETUP_SECONDS",
    "PostgresStore",
    "SchemaOwner",
    "describe_error",
    "ensure_schema",
    "guarded",
    "quoted_schema",
    "run_statement",
]

_log = logging.getLogger("voicehooks")

T = TypeVar("T")

SETUP_SECONDS: Final = 5.0
"""Budget of ``open`` (the app's startup): connecting and making the schema. Made later, by
a first operation (the server was down at startup), it has that operation's timeout."""

MISSING_TABLE_STATES: Final = frozenset({"42P01", "3F000", "42883"})
"""SQLSTATEs of a missing table, schema or function: the schema is made again."""
_MISSING: Final = MISSING_TABLE_STATES

_SCHEMA_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_STORE_VERSION: Final = 1
_SWEEP_BATCH: Final = 1000
_SWEEP_BATCHES: Final = 20  # per table and sweep: at most 20,000 rows, then the next sweep


def quoted_schema(schema: str) -> str:
    """``schema`` as a quoted identifier, after checking it is a plain lower-case name.

    Raises:
        ConfigurationError: It is not (letters, digits and ``_``, at most 63, not a digit first).
    """
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ConfigurationError(
            f"schema {schema!r} is not a plain PostgreSQL name: use lower-case letters, "
            "digits and _ (at most 63), not starting with a digit"
        )
    return f'"{schema}"'


async def ensure_schema(
    connection: AsyncConnection[Any],
    schema: str,
    component: str,
    version: int,
    statements: Sequence[str],
) -> None:
    """Make ``schema`` and ``component``'s tables unless ``schema_version`` says they exist.

    One transaction under an advisory lock on the schema's name: two processes that start
    together make it once. A schema made by a newer release is refused, never changed.

    Raises:
        ConfigurationError: ``schema_version`` holds a newer version of ``component``.
    """
    quoted = quoted_schema(schema)
    async with connection.transaction():
        await connection.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s))", [f"voicehooks schema {schema}"]
        )
        await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
        await connection.execute(
            f"CREATE TABLE IF NOT EXISTS {quoted}.schema_version "
            "(component text PRIMARY KEY, version integer NOT NULL)"
        )
        cursor = await connection.execute(
            f"SELECT version FROM {quoted}.schema_version WHERE component = %s", [component]
        )
        row = await cursor.fetchone()
        if row is not None and row[0] > version:
            raise ConfigurationError(
                f"the {component} tables in schema {schema} are version {row[0]}, made by a "
                f"newer voicehooks; this one knows version {version}"
            )
        if row is None or row[0] < version:
            for statement in statements:
                await connection.execute(statement.format(s=quoted))
            await connection.execute(
                f"INSERT INTO {quoted}.schema_version (component, version) VALUES (%s, %s) "
                "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                [component, version],
            )


async def run_statement(
    pool: PostgresPool, statement: str, params: Sequence[Any] | dict[str, Any]
) -> list[tuple[Any, ...]]:
    """Run one statement on a pooled connection; its rows (``[]`` for none)."""
    async with pool.connection() as connection:
        cursor = await connection.execute(statement, params)
        return await cursor.fetchall() if cursor.description is not None else []


_TABLES: Final = ("claims", "maps", "counters", "tokens")

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS {s}.claims (key text PRIMARY KEY, owner text NOT NULL, "
    "result bytea, expires_at timestamptz NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {s}.maps (key text PRIMARY KEY, fields jsonb NOT NULL, "
    "size integer NOT NULL, expires_at timestamptz NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {s}.counters (key text PRIMARY KEY, value bigint NOT NULL, "
    "expires_at timestamptz NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {s}.tokens (key text PRIMARY KEY, taken timestamptz[] NOT NULL, "
    "granted boolean NOT NULL, expires_at timestamptz NOT NULL)",
    *(
        f"CREATE INDEX IF NOT EXISTS {table}_expires_at ON {{s}}.{table} (expires_at)"
        for table in _TABLES
    ),
    # One field of a call's map within its size bound (the Lua script's twin). The row is
    # made (expired, empty) if missing, so that FOR UPDATE has a row to lock: two first
    # writes then queue on the primary key instead of racing.
    """CREATE OR REPLACE FUNCTION {s}.put_field(
        k text, n text, v bytea, ttl_ms bigint, max_bytes integer) RETURNS boolean
    LANGUAGE plpgsql AS $$
    DECLARE
        f jsonb;
        total integer;
        old text;
    BEGIN
        INSERT INTO {s}.maps (key, fields, size, expires_at) VALUES (k, '{{}}', 0, now())
        ON CONFLICT (key) DO NOTHING;
        SELECT CASE WHEN m.expires_at > now() THEN m.fields ELSE '{{}}' END,
               CASE WHEN m.expires_at > now() THEN m.size ELSE 0 END
        INTO f, total FROM {s}.maps AS m WHERE m.key = k FOR UPDATE;
        old := f ->> n;
        IF old IS NOT NULL THEN
            total := total - octet_length(n) - octet_length(decode(old, 'base64'));
        END IF;
        IF v IS NOT NULL THEN
            total := total + octet_length(n) + octet_length(v);
            IF total > max_bytes THEN
                RETURN false;
            END IF;
            f := f || jsonb_build_object(n, encode(v, 'base64'));
        ELSE
            f := f - n;
        END IF;
        UPDATE {s}.maps SET fields = f, size = total,
            expires_at = now() + ttl_ms * interval '1 millisecond'
        WHERE key = k;
        RETURN true;
    END $$""",
)

_MS: Final = "%s * interval '1 millisecond'"

# The tokens still out: taken less than a window ago, oldest first.
_LIVE: Final = (
    "ARRAY(SELECT t FROM unnest(b.taken) AS t "
    "WHERE t > now() - %(window)s * interval '1 millisecond' ORDER BY t)"
)


class PostgresStore:
    """A store shared by every worker and host that points at the same PostgreSQL.

    See the module docstring for the tables. Each operation has its own
    ``operation_timeout_seconds``; a slow, unreachable or failing server raises
    ``StoreError`` and is never retried here, as with Redis.

    Args:
        pool: A hold on a connection pool (``postgres_pool(url)``) or a
            ``psycopg_pool.AsyncConnectionPool`` of your own (autocommit connections); the
            store closes it in ``aclose`` (a shared pool: when its last user closes).
        schema: The schema of the tables, made on first use.
        operation_timeout_seconds: Budget of one statement.
        sweep_every_seconds: How often expired rows are deleted.

    Examples:
        >>> from voicehooks import Duplicates, PostgresStore, VoiceHooks
        >>> store = PostgresStore.from_url("postgresql://localhost/app")  # connects at startup
        >>> app = VoiceHooks(secret="whsec_example", duplicates=Duplicates(store=store))
    """

    def __init__(
        self,
        pool: PostgresPool | AsyncConnectionPool,
        *,
        schema: str = "voicehooks",
        operation_timeout_seconds: float = 0.25,
        sweep_every_seconds: float = 60.0,
    ) -> None:
        if operation_timeout_seconds <= 0 or sweep_every_seconds <= 0:
            raise ConfigurationError(
                "operation_timeout_seconds and sweep_every_seconds must be > 0"
            )
        self.pool = pool if isinstance(pool, PostgresPool) else postgres_pool("", pool=pool)
        self.schema = schema
        self.operation_timeout_seconds = operation_timeout_seconds
        self.sweep_every_seconds = sweep_every_seconds
        self._token = uuid.uuid4().hex  # marks the claims this process holds
        self.ready = False
        self._tasks = TaskOwner(grace_seconds=0.0)
        self._sweeping = False
        s = quoted_schema(schema)
        self._claim = (
            f"INSERT INTO {s}.claims AS c (key, owner, result, expires_at) "
            f"VALUES (%s, %s, NULL, now() + {_MS}) ON CONFLICT (key) DO UPDATE SET "
            "owner = excluded.owner, result = NULL, expires_at = excluded.expires_at "
            "WHERE c.expires_at <= now() RETURNING 1"
        )
        self._put_result = (
            f"INSERT INTO {s}.claims AS c (key, owner, result, expires_at) "
            f"VALUES (%s, '', %s, now() + {_MS}) ON CONFLICT (key) DO UPDATE SET "
            "owner = '', result = excluded.result, expires_at = excluded.expires_at"
        )
        # The batch forms: one statement for a delivery's calls (keys are distinct, as an
        # upsert may touch a row once per statement).
        self._claim_many = (
            f"INSERT INTO {s}.claims AS c (key, owner, result, expires_at) "
            f"SELECT k, %s, NULL, now() + {_MS} FROM unnest(%s::text[]) AS k "
            "ON CONFLICT (key) DO UPDATE SET "
            "owner = excluded.owner, result = NULL, expires_at = excluded.expires_at "
            "WHERE c.expires_at <= now() RETURNING key"
        )
        self._put_results = (
            f"INSERT INTO {s}.claims AS c (key, owner, result, expires_at) "
            f"SELECT k, '', r, now() + {_MS} FROM unnest(%s::text[], %s::bytea[]) AS t(k, r) "
            "ON CONFLICT (key) DO UPDATE SET "
            "owner = '', result = excluded.result, expires_at = excluded.expires_at"
        )
        self._poll = f"SELECT result, expires_at > now() FROM {s}.claims WHERE key = %s"
        self._release = f"DELETE FROM {s}.claims WHERE key = %s AND owner = %s"
        self._take_token = (
            f"INSERT INTO {s}.tokens AS b (key, taken, granted, expires_at) "
            "VALUES (%(key)s, ARRAY[now()], true, now() + %(window)s * interval '1 millisecond') "
            "ON CONFLICT (key) DO UPDATE SET "
            f"taken = CASE WHEN cardinality({_LIVE}) < %(capacity)s "
            f"THEN {_LIVE} || now() ELSE {_LIVE} END, "
            f"granted = cardinality({_LIVE}) < %(capacity)s, "
            "expires_at = now() + %(window)s * interval '1 millisecond' "
            "RETURNING CASE WHEN granted THEN 0 ELSE greatest(1, ceil(1000 * extract(epoch FROM "
            "taken[1] + %(window)s * interval '1 millisecond' - now()))) END"
        )
        self._get_fields = f"SELECT fields FROM {s}.maps WHERE key = %s AND expires_at > now()"
        self._put_field = f"SELECT {s}.put_field(%s, %s, %s, %s, %s)"
        self._forget = (
            f"WITH gone AS (DELETE FROM {s}.maps WHERE key = %s) "
            f"DELETE FROM {s}.claims WHERE key = %s"
        )
        self._count = (
            f"INSERT INTO {s}.counters AS c (key, value, expires_at) VALUES (%s, 1, now() + {_MS}) "
            "ON CONFLICT (key) DO UPDATE SET "
            "value = CASE WHEN c.expires_at > now() THEN c.value + 1 ELSE 1 END, "
            "expires_at = CASE WHEN c.expires_at > now() THEN c.expires_at "
            "ELSE excluded.expires_at END RETURNING value"
        )
        self._sweeps = [
            f"DELETE FROM {s}.{table} WHERE key IN (SELECT key FROM {s}.{table} "
            f"WHERE expires_at <= now() LIMIT {_SWEEP_BATCH} FOR UPDATE SKIP LOCKED)"
            for table in _TABLES
        ]

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        schema: str = "voicehooks",
        operation_timeout_seconds: float = 0.25,
        sweep_every_seconds: float = 60.0,
    ) -> PostgresStore:
        """A store on this process's pool for ``url`` (``postgresql://`` or ``postgres://``),
        shared with a durable queue on the same URL; it connects in ``open`` or on first use.

        Raises:
            ConfigurationError: psycopg is missing, or ``url`` is not a PostgreSQL URL.
        """
        return cls(
            postgres_pool(url),
            schema=schema,
            operation_timeout_seconds=operation_timeout_seconds,
            sweep_every_seconds=sweep_every_seconds,
        )

    async def open(self) -> None:
        """Connect, make the tables unless they exist, and start the sweep.

        Raises:
            StoreError: PostgreSQL did not answer; the app logs it and starts all the same.
        """
        if not self._sweeping:
            self._sweeping = True
            self._tasks.spawn_service(self._sweep_forever())
        await self._run("open", lambda: anyio.sleep(0), SETUP_SECONDS)

    async def claim(self, key: str, ttl_seconds: float) -> bool:
        """Claim ``key`` with one upsert; see ``DeliveryStore.claim``."""
        rows = await self._rows("claim", self._claim, [key, self._token, _ms(ttl_seconds)])
        return bool(rows)

    async def claim_many(self, keys: Sequence[str], ttl_seconds: float) -> list[bool]:
        """Claim every key with one upsert; see ``DeliveryStore.claim_many``."""
        if len(keys) == 1:
            return [await self.claim(keys[0], ttl_seconds)]
        params = [self._token, _ms(ttl_seconds), list(keys)]
        claimed = {row[0] for row in await self._rows("claim_many", self._claim_many, params)}
        return [key in claimed for key in keys]

    async def put_result(self, key: str, result: bytes, ttl_seconds: float) -> None:
        """Store ``result`` and mark the claim done; see ``DeliveryStore.put_result``."""
        await self._rows("put_result", self._put_result, [key, result, _ms(ttl_seconds)])

    async def put_results(self, results: Sequence[tuple[str, bytes]], ttl_seconds: float) -> None:
        """Store every result with one upsert; see ``DeliveryStore.put_results``."""
        if len(results) == 1:
            await self.put_result(*results[0], ttl_seconds)
            return
        keys = [key for key, _ in results]
        values = [result for _, result in results]
        await self._rows("put_results", self._put_results, [_ms(ttl_seconds), keys, values])

    async def wait_result(self, key: str, timeout_seconds: float) -> bytes | None:
        """Poll for ``key``'s result; see ``DeliveryStore.wait_result``.

        The deadline is checked between polls rather than imposed on one: a statement
        cancelled halfway costs its connection (psycopg closes it), and a new one costs a
        server process. A poll may so end up to one operation timeout past the deadline.
        """
        delay = 0.005
        deadline = time.monotonic() + timeout_seconds
        while True:
            try:
                rows = await self._rows("wait_result", self._poll, [key])
            except _Slow:
                rows = None  # one slow poll is no reason to give up: the wait has a deadline
            if rows is not None:
                if not rows or not rows[0][1]:
                    return None  # released, or expired: the first run gave up
                if rows[0][0] is not None:
                    return bytes(rows[0][0])
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            await anyio.sleep(min(delay, left))
            delay = min(delay * 2, 0.05)

    async def release(self, key: str) -> None:
        """Delete ``key``'s claim if this process holds it; see ``DeliveryStore.release``."""
        await self._rows("release", self._release, [key, self._token])

    async def take_token(self, key: str, capacity: int, window_seconds: float) -> float:
        """Take a token of ``key`` in one statement; see ``DeliveryStore.take_token``."""
        params = {"key": key, "capacity": capacity, "window": _ms(window_seconds)}
        rows = await self._rows("take_token", self._take_token, params)
        return int(rows[0][0]) / 1000

    async def get_fields(self, key: str) -> dict[str, bytes]:
        """The fields of ``key``; see ``DeliveryStore.get_fields``."""
        rows = await self._rows("get_fields", self._get_fields, [key])
        if not rows:
            return {}
        return {name: base64.b64decode(value) for name, value in rows[0][0].items()}

    async def put_field(
        self, key: str, name: str, value: bytes | None, ttl_seconds: float, max_bytes: int
    ) -> bool:
        """Set or delete a field with one function call; see ``DeliveryStore.put_field``."""
        params = [key, name, value, _ms(ttl_seconds), max_bytes]
        rows = await self._rows("put_field", self._put_field, params)
        return bool(rows[0][0])

    async def forget(self, key: str) -> None:
        """Delete ``key``'s map, claim and result; see ``DeliveryStore.forget``."""
        await self._rows("forget", self._forget, [key, key])

    async def count(self, key: str, ttl_seconds: float) -> int:
        """Count one more for ``key``; see ``DeliveryStore.count``."""
        rows = await self._rows("count", self._count, [key, _ms(ttl_seconds)])
        return int(rows[0][0])

    async def sweep(self) -> int:
        """Delete expired rows, at most 20,000 per table; how many went."""
        deleted = 0
        for statement in self._sweeps:
            for _ in range(_SWEEP_BATCHES):
                count = await self._run("sweep", lambda s=statement: self._execute(s))  # type: ignore[misc]
                deleted += count
                if count < _SWEEP_BATCH:
                    break
        return deleted

    async def ping(self) -> None:
        """Raise ``StoreError`` unless PostgreSQL answers (the readiness probe)."""
        await self._rows("ping", "SELECT 1", [])

    async def aclose(self) -> None:
        """Stop the sweep and let go of the pool; it closes with its last user."""
        await self._tasks.drain()
        self._sweeping = False
        self.ready = False  # used again: it takes a pool again
        await self.pool.aclose()

    async def _sweep_forever(self) -> None:
        while True:
            await anyio.sleep(self.sweep_every_seconds)
            try:
                await self.sweep()
            except StoreError as exc:
                _log.debug("sweeping expired rows failed: %s", exc)

    async def _execute(self, statement: str) -> int:
        async with self.pool.connection() as connection:
            cursor = await connection.execute(statement)
            return cursor.rowcount

    async def _rows(
        self, name: str, statement: str, params: Sequence[Any] | dict[str, Any]
    ) -> list[tuple[Any, ...]]:
        return await self._run(name, lambda: run_statement(self.pool, statement, params))

    async def _run(
        self, name: str, operation: Callable[[], Awaitable[T]], setup_seconds: float = 0.0
    ) -> T:
        return await guarded(self, name, operation, setup_seconds, slow=_Slow, failed=StoreError)

    async def make_schema(self) -> None:
        """Open the pool and make the store's tables unless they exist (``guarded``)."""
        await self.pool.open()
        async with self.pool.connection() as connection:
            await ensure_schema(connection, self.schema, "store", _STORE_VERSION, _SCHEMA)


class SchemaOwner(Protocol):
    """A PostgreSQL store or queue, as ``guarded`` runs its statements."""

    ready: bool
    """Whether its schema is known to exist (made, or found) since it last failed."""
    operation_timeout_seconds: float

    async def make_schema(self) -> None:
        """Open the pool and make what is missing."""
        ...


async def guarded(
    owner: SchemaOwner,
    name: str,
    operation: Callable[[], Awaitable[T]],
    setup_seconds: float,
    *,
    slow: type[Exception],
    failed: type[Exception],
) -> T:
    """Run ``operation`` for ``owner`` within its operation timeout, after making its schema
    if it is not known to exist (within ``setup_seconds`` when longer: ``open`` gives the
    schema longer than a statement gets).

    Raises:
        slow: Past the timeout (a ``failed`` of its own, for the store's store_failure).
        failed: The server refused or could not be reached (the message names the error's
            kind, never a value); a table the server lost is made again on the next call.
        ConfigurationError: As it came (psycopg missing, a wrong URL).
    """
    try:
        if not owner.ready:
            with anyio.fail_after(max(owner.operation_timeout_seconds, setup_seconds)):
                await owner.make_schema()
            owner.ready = True
        with anyio.fail_after(owner.operation_timeout_seconds):
            return await operation()
    except TimeoutError:
        raise slow(
            f"postgres {name} took longer than {owner.operation_timeout_seconds} s"
        ) from None
    except ConfigurationError:
        raise
    except Exception as exc:  # psycopg's errors, the pool's, OSError
        if getattr(exc, "sqlstate", None) in _MISSING:
            owner.ready = False  # the server lost the tables: made again on the next call
        raise failed(f"postgres {name} failed: {describe_error(exc)}") from None


class _Slow(StoreError):
    """A statement did not answer within the operation timeout."""


def describe_error(exc: BaseException) -> str:
    """The type and first line of a database error: never a DETAIL line, which may quote
    the values of a row."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))
