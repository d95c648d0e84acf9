"""Durable mode under chaos, the short variant: ``make chaos`` runs 10,000 deliveries.

Real processes all the way: redis-server with ``appendonly yes``, two ``voicehooks run``
receivers and two ``voicehooks worker`` processes, one of them ``kill -9``-ed every 2 s; Redis
is restarted once. See ``tests/helpers/chaos.py`` for what is checked and why.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import chaos
from tests.helpers.redis_server import require_redis

DELIVERIES = 2000  # at 100 a second: 20 s of sending, ten kills


@pytest.mark.slow
def test_nothing_accepted_is_lost_while_workers_die_and_redis_restarts(tmp_path: Path) -> None:
    require_redis()
    outcome = chaos.run(tmp_path, deliveries=DELIVERIES, rate=100.0, time_limit=90.0)
    table = outcome.table()
    print(table)
    assert outcome.drained, table
    assert outcome.missing == 0, table
    assert outcome.keyed_duplicates == 0, table
    assert (outcome.dead_letters, outcome.left_in_queue) == (0, 0), table
    assert outcome.kills >= 3, table
    assert outcome.redis_restarts == 1, table
    # Nearly everything is accepted: with queue_failure="process" a Redis restart costs no 200.
    assert len(outcome.accepted) >= DELIVERIES * 0.95, table
    for start, end in outcome.rss_mib:
        assert end - start < 30, table  # flat: the receivers keep no work
