"""The app of the durable-mode tests: every side effect lands in ``$DURABLE_EFFECTS_DIR``.

Receivers (``voicehooks run``) and workers (``voicehooks worker``) of several processes share
the directory:

* ``runs.log``: a naive side effect, first thing in every run: one line appended with
  ``O_APPEND`` in one ``write`` (lines never mix), ``<kind> <call id> <delivery id> <attempt>
  <pid>``. A run repeated after a crash shows up twice.
* ``once/<kind>-<digest of delivery id>``: the same side effect keyed on
  ``CallContext.delivery_id`` (created with ``O_EXCL``): repeats cannot duplicate it.
* ``done.log``: ``<kind> <call id>``, the last thing a run does: the run finished.

``DURABLE_HANDLER_SECONDS`` is how long a run works between its side effects and its end (so
that a ``kill -9`` lands mid-job); a call id containing ``flaky`` fails its first attempt.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from pathlib import Path

import anyio

from voicehooks import CallContext, EndOfCallReport, StatusUpdate, VoiceHooks

app = VoiceHooks(secret=os.environ.get("VOICEHOOKS_SECRET") or "whsec_durable_tests")
SECONDS = float(os.environ.get("DURABLE_HANDLER_SECONDS", "0"))


def append(name: str, line: str) -> None:
    path = Path(os.environ.get("DURABLE_EFFECTS_DIR", ".")) / name
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())  # one write: lines of several processes never mix
    finally:
        os.close(fd)


def record(kind: str, context: CallContext) -> None:
    """Both side effects of one run: the naive log line and the keyed file."""
    directory = Path(os.environ.get("DURABLE_EFFECTS_DIR", "."))
    append("runs.log", f"{kind} {context.call_id} {context.delivery_id} {context.attempt}\n")
    digest = hashlib.sha256(context.delivery_id.encode()).hexdigest()[:32]
    # Done before: the delivery id makes the repeat harmless.
    with contextlib.suppress(FileExistsError):
        os.close(os.open(directory / "once" / f"{kind}-{digest}", os.O_CREAT | os.O_EXCL))


@app.on("end-of-call-report")
async def save_report(report: EndOfCallReport, context: CallContext) -> None:
    """Async, as a CRM client would be."""
    record("report", context)
    await anyio.sleep(SECONDS)
    if "flaky" in report.call.id and context.attempt == 1:
        raise ConnectionError("the CRM is down")
    append("done.log", f"report {context.call_id}\n")


@app.on("status-update")
def track_status(update: StatusUpdate, context: CallContext) -> None:
    """Sync, in a worker thread."""
    record("status", context)
    time.sleep(SECONDS)
    append("done.log", f"status {context.call_id}\n")
