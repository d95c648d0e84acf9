"""The PostgreSQL queue's tables and statements, by name (``voicehooks.work.pgqueue`` runs them).

Kept apart so the queue's module reads as its contract. Every statement is one round trip
and one transaction; where several rows change together (an entry and the queue's length,
a letter leaving ``dead`` and entering ``jobs``) they change in one statement of data-
modifying ``WITH`` clauses, which commit or fail together.
"""

from __future__ import annotations

from typing import Final

__all__ = ["QUEUE_SCHEMA", "statements"]

_TRIM_BATCH: Final = 100  # dead letters past their age deleted per bury

QUEUE_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS {s}.queues (name text PRIMARY KEY, length bigint NOT NULL)",
    "CREATE TABLE IF NOT EXISTS {s}.jobs (id bigserial PRIMARY KEY, queue text NOT NULL, "
    "body bytea NOT NULL, attempts integer NOT NULL DEFAULT 0, consumer text, "
    "touched_at timestamptz, created_at timestamptz NOT NULL DEFAULT now())",
    "CREATE INDEX IF NOT EXISTS jobs_unread ON {s}.jobs (queue, id) WHERE consumer IS NULL",
    "CREATE INDEX IF NOT EXISTS jobs_held ON {s}.jobs (queue, touched_at) "
    "WHERE consumer IS NOT NULL",
    "CREATE TABLE IF NOT EXISTS {s}.dead (id bigserial PRIMARY KEY, queue text NOT NULL, "
    "body bytea NOT NULL, reason text NOT NULL, attempts integer NOT NULL, "
    "failed_at timestamptz NOT NULL, original_id bigint NOT NULL)",
    "CREATE INDEX IF NOT EXISTS dead_queue ON {s}.dead (queue, id)",
)


def statements(s: str) -> dict[str, str]:
    """Every statement of a queue in schema ``s`` (quoted), by name."""
    take = (
        "UPDATE {s}.jobs SET consumer = %(c)s, attempts = {attempts}, touched_at = now() "
        "WHERE id IN (SELECT id FROM {s}.jobs WHERE queue = %(q)s AND {which} "
        "ORDER BY id LIMIT %(n)s FOR UPDATE SKIP LOCKED) RETURNING id, body, attempts"
    )
    return {
        "create": f"INSERT INTO {s}.queues (name, length) VALUES (%(q)s, 0) "
        "ON CONFLICT (name) DO NOTHING",
        "length": f"SELECT length FROM {s}.queues WHERE name = %(q)s",
        # The length goes up only if the entries fit; they are inserted only if it went up.
        # The bodies go as one binary array (%b): as text they would travel as hex.
        "enqueue": f"WITH room AS (UPDATE {s}.queues SET length = length + %(n)s "
        "WHERE name = %(q)s AND length + %(n)s <= %(max)s RETURNING length), "
        f"added AS (INSERT INTO {s}.jobs (queue, body) "
        "SELECT %(q)s, body FROM room, unnest(%(bodies)b::bytea[]) AS body) "
        "SELECT (SELECT length FROM room), "
        f"(SELECT length FROM {s}.queues WHERE name = %(q)s), "
        "(SELECT pg_notify(%(channel)s, '') FROM room)",
        "read": take.format(s=s, attempts="1", which="consumer IS NULL"),
        "claim": take.format(
            s=s,
            attempts="attempts + 1",
            which="consumer IS NOT NULL "
            "AND touched_at <= now() - %(idle)s * interval '1 millisecond'",
        ),
        "touch": f"UPDATE {s}.jobs SET touched_at = now() "
        "WHERE queue = %(q)s AND consumer = %(c)s AND id = ANY(%(ids)s)",
        "retry": f"UPDATE {s}.jobs SET attempts = attempts + 1, touched_at = now(), "
        "consumer = %(c)s WHERE queue = %(q)s AND id = %(id)s RETURNING attempts",
        "ack": f"WITH gone AS (DELETE FROM {s}.jobs WHERE queue = %(q)s AND id = ANY(%(ids)s) "
        f"RETURNING 1) UPDATE {s}.queues SET length = length - (SELECT count(*) FROM gone) "
        "WHERE name = %(q)s AND EXISTS (SELECT 1 FROM gone)",
        # The letter is made from the deleted row: an entry acknowledged meanwhile is not
        # buried. The trims see the letters as they were before this one.
        "bury": f"WITH gone AS (DELETE FROM {s}.jobs WHERE queue = %(q)s AND id = %(id)s "
        "RETURNING id, body), "
        f"buried AS (INSERT INTO {s}.dead (queue, body, reason, attempts, failed_at, "
        "original_id) SELECT %(q)s, body, %(reason)s, %(attempts)s, now(), id FROM gone), "
        f"counted AS (UPDATE {s}.queues SET length = length - 1 "
        "WHERE name = %(q)s AND EXISTS (SELECT 1 FROM gone)) "
        f"DELETE FROM {s}.dead WHERE queue = %(q)s AND (id <= (SELECT id FROM {s}.dead "
        "WHERE queue = %(q)s ORDER BY id DESC OFFSET %(max)s - 1 LIMIT 1) "
        f"OR id IN (SELECT id FROM {s}.dead WHERE queue = %(q)s "
        "AND failed_at < now() - %(age)s * interval '1 second' "
        f"ORDER BY id LIMIT {_TRIM_BATCH})) "
        "RETURNING failed_at < now() - %(age)s * interval '1 second'",
        # The same bounds without a new letter: the newest max_dead stay.
        "trim_dead": f"DELETE FROM {s}.dead WHERE queue = %(q)s AND (id <= (SELECT id FROM "
        f"{s}.dead WHERE queue = %(q)s ORDER BY id DESC OFFSET %(max)s LIMIT 1) "
        f"OR id IN (SELECT id FROM {s}.dead WHERE queue = %(q)s "
        "AND failed_at < now() - %(age)s * interval '1 second' "
        f"ORDER BY id LIMIT {_TRIM_BATCH * 10})) "
        "RETURNING failed_at < now() - %(age)s * interval '1 second'",
        "holds": f"SELECT EXISTS (SELECT 1 FROM {s}.jobs WHERE queue = %(q)s AND consumer = %(c)s)",
        "stats": "SELECT count(*) FILTER (WHERE consumer IS NULL), "
        f"count(*) FILTER (WHERE consumer IS NOT NULL), "
        f"(SELECT count(*) FROM {s}.dead WHERE queue = %(q)s), "
        f"(SELECT extract(epoch FROM now() - min(failed_at)) FROM {s}.dead WHERE queue = %(q)s) "
        f"FROM {s}.jobs WHERE queue = %(q)s",
        "consumers": "SELECT consumer, count(*), "
        "extract(epoch FROM now() - max(touched_at)) "
        f"FROM {s}.jobs WHERE queue = %(q)s AND consumer IS NOT NULL "
        "GROUP BY consumer ORDER BY consumer",
        "dead": "SELECT id, body, reason, attempts, extract(epoch FROM failed_at), original_id "
        f"FROM {s}.dead WHERE queue = %(q)s ORDER BY id LIMIT %(n)s",
        "dead_count": f"SELECT count(*) FROM {s}.dead WHERE queue = %(q)s",
        # Locks the queue's row first, so the room it reads is the room it fills.
        "requeue": f"WITH free AS (SELECT greatest(%(max)s - length, 0) AS n FROM {s}.queues "
        "WHERE name = %(q)s FOR UPDATE), "
        f"picked AS (SELECT id FROM {s}.dead WHERE queue = %(q)s "
        "AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s)) "
        "ORDER BY id LIMIT least(%(n)s, (SELECT n FROM free)) FOR UPDATE SKIP LOCKED), "
        f"moved AS (DELETE FROM {s}.dead WHERE id IN (SELECT id FROM picked) "
        "RETURNING id, body), "
        f"added AS (INSERT INTO {s}.jobs (queue, body) "
        "SELECT %(q)s, body FROM moved ORDER BY id), "
        f"counted AS (UPDATE {s}.queues SET length = length + (SELECT count(*) FROM moved) "
        "WHERE name = %(q)s RETURNING length) "
        "SELECT (SELECT count(*) FROM moved), (SELECT length FROM counted), "
        "(SELECT n FROM free), "
        f"(SELECT count(*) FROM {s}.dead WHERE queue = %(q)s "
        "AND (%(ids)s::bigint[] IS NULL OR id = ANY(%(ids)s)))",
    }
