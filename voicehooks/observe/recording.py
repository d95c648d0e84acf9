"""Recordings: every verified delivery appended to a JSON-lines file, for ``voicehooks replay``.

``voicehooks run --record FILE`` (and ``dev``) installs a ``Recorder``, an observer. Each
delivery that passed the signature check becomes one line: the body, the headers the
signature covers, the answer, the status, the outcome and the timing of the
delivery and of each tool::

    {"v": 1, "received_at": 1767182400.12, "event": "tool-calls", "call_id": "c-1",
     "headers": {"content-type": "application/json", "x-webhook-timestamp": "1767182400",
                 "x-webhook-event": "tool-calls"},
     "body": "{\"message\": …}", "status": 200, "outcome": "answered", "answer": "…",
     "duration_ms": 1.3, "is_replay": false,
     "tools": [{"name": "check_repair_status", "id": "tool_1", "outcome": "ok", "ms": 0.4}],
     "redacted": true}

Personal data is redacted by default (``voicehooks.privacy.redact_json``): the body's
transcripts, summary, analysis and every other string, the answer and the call id hold
``[card]``, ``[phone]``, ... instead. A redacted body no longer matches its signature, so
the line keeps no ``x-webhook-signature`` and ``voicehooks replay`` signs it again
(``--resign``). ``Recorder(raw=True)`` (``--record-raw``, ``Privacy(record_raw=True)``)
keeps everything as received; each line says which it is (``"redacted": true``), and the
recorder logs a warning when it starts. Redaction runs in the writer thread, off the loop.

The file is created readable by its owner only (mode 0600; an existing file that others can
read is used but warned about): a raw recording holds phone numbers, transcripts, tool
arguments and results, and redaction does not find names. Keep it out of version control
and delete it when done.

The event loop never touches the disk. ``delivery_answered`` puts the record on a queue that a
writer thread owns; the thread encodes, appends and flushes. The queue is bounded by the bytes
it holds (``max_pending_bytes``, 16 MiB by default): when the disk is slower than the traffic
and the queue is full, new records are dropped, counted (``dropped``) and a warning is logged
once per run of drops; answers are never delayed. ``close()`` (also run at interpreter exit)
drains what is queued, within two seconds.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import stat
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import msgspec

from voicehooks.core.logs import describe
from voicehooks.core.records import Delivery

from .observers import Observer

__all__ = ["REPLAY_HEADER", "RecordedTool", "Recorder", "Recording", "read_recording"]

_log = logging.getLogger("voicehooks")

SIGNED_HEADERS: Final = frozenset(
    {b"content-type", b"x-webhook-event", b"x-webhook-timestamp", b"x-webhook-signature"}
)
"""The headers a recording keeps: the ones the signature check and the routing read."""

REPLAY_HEADER: Final = b"x-voicehooks-replay"
"""Marks a replayed delivery (``1``) or asks to run it despite duplicate suppression
(``bypass-dedupe``). Only an app in development mode (``voicehooks dev``) honours it: in
production anyone could send it."""


class RecordedTool(msgspec.Struct, frozen=True):
    """One tool call of a recorded delivery."""

    name: str
    id: str
    outcome: str
    ms: float


class Recording(msgspec.Struct, frozen=True, kw_only=True):
    """One line of a recording file."""

    v: int = 1
    received_at: float
    event: str
    call_id: str | None
    headers: dict[str, str]
    body: str
    status: int
    outcome: str
    answer: str
    duration_ms: float
    is_replay: bool = False
    tools: list[RecordedTool] = []
    redacted: bool = False


_STOP: Final = object()


class Recorder(Observer):
    """An observer that appends each verified delivery to ``path`` (see the module docstring).

    Args:
        path: The JSON-lines file; created with mode 0600, appended to if it exists.
        max_pending_bytes: How many bytes of records may wait for the disk; past it, records
            are dropped (and counted in ``dropped``) rather than the event loop waiting.
        raw: Keep personal data as received instead of redacting it (logged as a warning).
        languages: The languages whose spoken numbers redaction reads.

    Raises:
        OSError: The file cannot be opened for appending.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_pending_bytes: int = 16 << 20,
        raw: bool = False,
        languages: Sequence[str] = ("en", "nl"),
    ) -> None:
        self.path = Path(path)
        self.raw = raw
        self.languages = tuple(languages)
        if raw:
            _log.warning(
                "recording to %s WITHOUT redaction (--record-raw): card numbers, phone "
                "numbers and transcripts are written as received",
                self.path,
            )
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if os.fstat(fd).st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            _log.warning(
                "the recording %s can be read by other users; it holds personal data "
                "(chmod 600 it)",
                self.path,
            )
        self._fd = fd
        self.max_pending_bytes = max_pending_bytes
        self.dropped = 0
        self.written = 0
        self._pending_bytes = 0
        self._behind = False
        self._lock = threading.Lock()  # guards _pending_bytes between the loop and the writer
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._encoder = msgspec.json.Encoder()
        self._thread = threading.Thread(target=self._write, name="voicehooks-recorder", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def delivery_answered(self, delivery: Delivery) -> None:
        """Queue the delivery's record; a rejected or undecoded delivery is not recorded, nor
        an MCP call (a replay sends webhook deliveries)."""
        if delivery.body is None or delivery.event_type is None or delivery.transport != "webhook":
            return
        if 400 <= delivery.status < 500:  # rejected: not verified, or not a delivery at all
            return
        size = len(delivery.body) + len(delivery.answer)
        with self._lock:
            fits = self._pending_bytes + size <= self.max_pending_bytes
            if fits:
                self._pending_bytes += size
            else:
                self.dropped += 1
            first_drop = not fits and not self._behind
            self._behind = not fits
        if fits:
            # Every field is final once answered: the writer thread builds the line from it.
            self._queue.put((size, delivery))
        elif first_drop:
            _log.warning(
                "recording to %s falls behind (the disk is slower than the traffic); "
                "deliveries are left out of it until it catches up",
                self.path,
            )

    def close(self) -> None:
        """Write what is queued (waiting at most two seconds), then close the file."""
        if not self._thread.is_alive():
            return
        self._queue.put(_STOP)
        self._thread.join(timeout=2.0)
        atexit.unregister(self.close)

    def _write(self) -> None:
        try:
            while True:
                item = self._queue.get()
                batch = [item]
                while not self._queue.empty():  # write what piled up with one flush
                    batch.append(self._queue.get())
                stop = any(entry is _STOP for entry in batch)
                done = [entry for entry in batch if entry is not _STOP]
                lines = []
                for _, delivery in done:
                    try:
                        record = _record(delivery, None if self.raw else self.languages)
                        lines.append(self._encoder.encode(record) + b"\n")
                    except Exception as exc:  # a bug here must not stop the recording
                        _log.error("recording a delivery failed: %s", describe(exc))
                try:
                    self._append(b"".join(lines))
                    self.written += len(lines)
                except OSError as exc:
                    _log.error("writing the recording %s failed: %s", self.path, exc.strerror)
                with self._lock:
                    self._pending_bytes -= sum(size for size, _ in done)
                if stop:
                    return
        finally:
            os.close(self._fd)

    def _append(self, data: bytes) -> None:
        # One write(2) per batch on an O_APPEND file: processes that record to the same file
        # (``--workers``) do not interleave within a line.
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]


def _record(delivery: Delivery, languages: tuple[str, ...] | None) -> Recording:
    """The line of ``delivery``; redacted in ``languages`` unless they are ``None``."""
    assert delivery.body is not None
    assert delivery.event_type is not None
    headers = {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in delivery.headers
        if name in SIGNED_HEADERS
    }
    body, answer, call_id = delivery.body, delivery.answer, delivery.call_id
    if languages is not None:
        # Imported here, in the writer thread: the detector is never on the request path.
        from voicehooks.privacy import redact, redact_body

        # The signature was of the body as received: a redacted body is signed again on replay.
        headers.pop("x-webhook-signature", None)
        body = redact_body(body, languages=languages)
        answer = redact_body(answer, languages=languages) if answer else answer
        call_id = redact(call_id, languages=languages) if call_id else call_id
    return Recording(
        received_at=round(delivery.received_at, 3),
        event=delivery.event_type,
        call_id=call_id,
        headers=headers,
        body=body.decode("utf-8", "replace"),  # verified JSON: valid UTF-8
        status=delivery.status,
        outcome=delivery.outcome,
        answer=answer.decode("utf-8", "replace"),
        duration_ms=round(delivery.duration_seconds * 1000, 3),
        is_replay=delivery.is_replay,
        tools=[
            RecordedTool(
                run.name, run.tool_call_id, run.outcome, round(run.duration_seconds * 1000, 3)
            )
            for run in delivery.tools
        ],
        redacted=languages is not None,
    )


def read_recording(path: str | os.PathLike[str]) -> Iterator[Recording]:
    """The recordings in ``path``, in order.

    Raises:
        ValueError: A line is not a recording; the message gives its number.
    """
    decoder = msgspec.json.Decoder(Recording)
    with open(path, "rb") as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                yield decoder.decode(line)
            except msgspec.DecodeError as exc:
                raise ValueError(f"{path}:{number}: not a recording: {exc}") from None
