"""End-of-call reports stored in SQLite, in the background, by a sync handler.

What it shows:

* Acknowledge first, work after. The platform gets its ``200 {}`` as soon as the report is
  verified and decoded; ``store_report`` runs afterwards, as background work the app owns.
  At shutdown the app waits for handlers in flight (``Deadlines.shutdown_grace_seconds``)
  before the lifespan's teardown closes the database.
* A sync handler. ``sqlite3`` blocks, so the handler is a plain ``def``: voicehooks runs sync
  handlers in a worker thread, never on the event loop. A lock serialises writers.
* The app's ``lifespan=``: the database is opened at startup and closed at shutdown, and the
  handlers find it on ``app.state``.
* Duplicates. The same report delivered twice runs the handler once (duplicate suppression
  is on by default), and ``ON CONFLICT DO NOTHING`` on the call id is the second line of
  defence should the platform ever send a changed report for the same call.

What is stored: the call id, when and why the call ended, its duration, the summary, the
analysis and the number of transcript messages. The transcript itself and the caller's
number are personal data; store them only if you need them, and never log them.

Run it:

    VOICEHOOKS_SECRET=whsec_dev_only REPORTS_DB=reports.sqlite3 \\
        voicehooks run examples/reports_sqlite.py

and in another shell, with the same ``VOICEHOOKS_SECRET``:

    voicehooks send end-of-call-report
    sqlite3 reports.sqlite3 'SELECT call_id, duration_seconds, end_reason FROM reports'
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from voicehooks import EndOfCallReport, VoiceHooks

SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    call_id          TEXT PRIMARY KEY,
    ended_at         TEXT,
    end_reason       TEXT,
    duration_seconds INTEGER,
    summary          TEXT,
    analysis         TEXT,
    message_count    INTEGER NOT NULL
)
"""


class Reports:
    """The reports table, safe to use from several worker threads."""

    def __init__(self, path: str) -> None:
        # check_same_thread=False: handlers run in anyio's worker threads, not the one that
        # opened the connection; the lock makes sure only one of them uses it at a time.
        self.connection = sqlite3.connect(path, check_same_thread=False)
        self.lock = threading.Lock()
        with self.lock, self.connection:
            self.connection.execute(SCHEMA)

    def save(self, report: EndOfCallReport) -> None:
        """Insert ``report``; a second report for the same call is ignored."""
        ended_at = report.ended_at or report.timestamp
        row = (
            report.call.id,
            ended_at.isoformat() if ended_at is not None else None,
            report.end_reason,
            report.duration_seconds,
            report.summary,
            json.dumps(report.analysis) if report.analysis is not None else None,
            len(report.messages),
        )
        with self.lock, self.connection:  # one transaction, committed on leaving
            self.connection.execute(
                "INSERT INTO reports VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (call_id) DO NOTHING",
                row,
            )

    def close(self) -> None:
        """Close the connection."""
        with self.lock:
            self.connection.close()


@asynccontextmanager
async def lifespan(app: VoiceHooks) -> AsyncIterator[None]:
    # Opening a local SQLite file takes microseconds; a network database would be opened
    # with its async driver here instead.
    reports = Reports(os.environ.get("REPORTS_DB", "reports.sqlite3"))
    app.state.reports = reports
    try:
        yield
    finally:
        # Runs after the background handlers have drained: none of them is mid-write.
        reports.close()


app = VoiceHooks(lifespan=lifespan)  # secret(s) from VOICEHOOKS_SECRET


@app.on("end-of-call-report")
def store_report(event: EndOfCallReport) -> None:
    """Store the report. Sync, so it runs in a worker thread, after the 200 was sent."""
    reports: Reports = app.state.reports
    reports.save(event)
