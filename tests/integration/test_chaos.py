"""Durable mode under chaos, the short variant: ``make chaos`` and ``make chaos-postgres`` run
10,000 deliveries.

Real processes all the way: redis-server with ``appendonly yes`` or a PostgreSQL cluster, two
``voicehooks run`` receivers and two ``voicehooks worker`` processes, one of them ``kill
-9``-ed every 2 s; the server is restarted once. See ``tests/helpers/chaos.py`` for what is
checked and why.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import chaos
from tests.helpers.postgres_server import require_postgres
from tests.helpers.redis_server import require_redis

DELIVERIES = {"redis": 2000, "postgres": 800}  # at 100 a second: 20 s (8 s) of sending


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["redis", "postgres"])
def test_nothing_accepted_is_lost_while_workers_die_and_the_server_restarts(
    tmp_path: Path, backend: str
) -> None:
    require_redis() if backend == "redis" else require_postgres()
    deliveries = DELIVERIES[backend]
    outcome = chaos.run(
        tmp_path, deliveries=deliveries, rate=100.0, time_limit=90.0, backend=backend
    )
    table = outcome.table()
    print(table)
    assert outcome.drained, table
    assert outcome.missing == 0, table
    assert outcome.keyed_duplicates == 0, table
    assert (outcome.dead_letters, outcome.left_in_queue) == (0, 0), table
    assert outcome.kills >= 3, table
    assert outcome.server_restarts == 1, table
    # Nearly everything is accepted: with queue_failure="process" a restart costs no 200.
    assert len(outcome.accepted) >= deliveries * 0.95, table
    for start, end in outcome.rss_mib:
        assert end - start < 30, table  # flat: the receivers keep no work
