"""What the inspector shows: the recent deliveries, their log lines, and who is watching.

``RecentDeliveries`` is an observer. It keeps the last ``capacity`` deliveries (a ring: the
oldest is forgotten when a new one arrives; at most ``capacity`` times the app's
``max_body_bytes`` of bodies, a few MB with real traffic), each with the log lines emitted
while it was handled (at most ``MAX_LOG_LINES``, then one line saying how many more were left
out), and
tells each live page (a server-sent-events subscriber, at most ``MAX_WATCHERS``) that a new
one arrived. A page that does not keep up is disconnected rather than buffered for: the
browser reconnects and reloads the list.

The list survives the reloads of ``voicehooks dev``: ``save`` writes it to a file (mode 0600)
when the server process stops, and ``load`` reads it back in the next one, ids included, so a
delivery can be replayed after the fix that reloaded the code. The file holds what the ring
holds, personal data included; ``voicehooks dev`` deletes it when it exits.

Log lines are captured by a handler on the ``voicehooks`` logger and the root logger (so the
app's own ``logging.getLogger(__name__)`` lines come along), attributed to the delivery
through a context variable set when it starts: tools, sync functions in worker threads and
the background handlers it causes all inherit it. Each line is masked by the same detector
as the event (``masking``) when it is captured, so neither the page nor the history file
holds what the app logged of a caller's number.
"""

from __future__ import annotations

import contextvars
import itertools
import logging
import os
from collections import deque
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Final

import anyio
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from voicehooks.observe import Delivery, Observer, ToolRun
from voicehooks.observe.recording import REPLAY_HEADER, SIGNED_HEADERS

from .masking import mask_phone_numbers

__all__ = ["MAX_LOG_LINES", "MAX_WATCHERS", "Entry", "RecentDeliveries"]

MAX_LOG_LINES: Final = 200
MAX_LOG_LINE_CHARS: Final = 2000
MAX_WATCHERS: Final = 32
REPLAY_OF_HEADER: Final = b"x-voicehooks-replay-of"

_current: contextvars.ContextVar[Entry | None] = contextvars.ContextVar(
    "voicehooks_inspector_entry", default=None
)


@dataclass
class Entry:
    """One delivery as the inspector shows it."""

    id: int
    delivery: Delivery
    replay_of: int | None = None
    logs: list[str] = field(default_factory=list)
    left_out: int = 0  # log lines past MAX_LOG_LINES

    @property
    def tools(self) -> list[ToolRun]:
        """The delivery's tool calls, with their outcome and time."""
        return self.delivery.tools

    @property
    def signed_headers(self) -> dict[str, str]:
        """The headers the signature covers (the others are not kept)."""
        return {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in self.delivery.headers
            if name in SIGNED_HEADERS or name == REPLAY_HEADER
        }


class RecentDeliveries(Observer):
    """The last ``capacity`` deliveries, newest last, and the pages watching for new ones."""

    def __init__(self, capacity: int = 200) -> None:
        self.capacity = capacity
        self._entries: deque[Entry] = deque()
        self._by_id: dict[int, Entry] = {}
        self._ids = itertools.count(1)
        self._watchers: set[MemoryObjectSendStream[int]] = set()
        self._capture = _Capture()

    # -- observer --

    def delivery_started(self, delivery: Delivery) -> None:
        """Start collecting the delivery's log lines."""
        entry = Entry(next(self._ids), delivery)
        for name, value in delivery.headers:
            if name == REPLAY_OF_HEADER and value.isdigit():
                entry.replay_of = int(value)
        _current.set(entry)

    def delivery_answered(self, delivery: Delivery) -> None:
        """Keep the delivery and tell the watching pages."""
        entry = _current.get()
        if entry is None or entry.delivery is not delivery:  # started before we were installed
            entry = Entry(next(self._ids), delivery)
        self._entries.append(entry)
        self._by_id[entry.id] = entry
        if len(self._entries) > self.capacity:
            del self._by_id[self._entries.popleft().id]
        for watcher in list(self._watchers):
            try:
                watcher.send_nowait(entry.id)
            except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                self._watchers.discard(watcher)  # too slow or gone: it reconnects and reloads
                watcher.close()

    # -- reading --

    def newest_first(self) -> list[Entry]:
        """Every kept delivery, newest first."""
        return list(reversed(self._entries))

    def get(self, entry_id: int) -> Entry | None:
        """The delivery with this id, if it is still kept."""
        return self._by_id.get(entry_id)

    def replays_of(self, entry_id: int) -> list[Entry]:
        """The kept replays of a delivery, newest first."""
        return [entry for entry in self.newest_first() if entry.replay_of == entry_id]

    # -- watching --

    def watch(self) -> AbstractContextManager[MemoryObjectReceiveStream[int]] | None:
        """A stream of new delivery ids for one page, for a ``with`` block; ``None`` when
        ``MAX_WATCHERS`` pages already watch."""
        if len(self._watchers) >= MAX_WATCHERS:
            return None
        send, receive = anyio.create_memory_object_stream[int](64)
        self._watchers.add(send)
        return self._watching(send, receive)

    @contextmanager
    def _watching(
        self, send: MemoryObjectSendStream[int], receive: MemoryObjectReceiveStream[int]
    ) -> Iterator[MemoryObjectReceiveStream[int]]:
        try:
            yield receive
        finally:
            self._watchers.discard(send)
            send.close()
            receive.close()

    def close_watchers(self) -> None:
        """End every page's stream (at shutdown)."""
        for watcher in self._watchers:
            watcher.close()
        self._watchers.clear()

    # -- surviving a reload --

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the kept deliveries to ``path`` (replaced; mode 0600)."""
        encode = msgspec.json.Encoder().encode
        lines = b"".join(encode(_Saved.of(entry)) + b"\n" for entry in self._entries)
        temporary = f"{os.fspath(path)}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(lines)
        os.replace(temporary, path)

    def load(self, path: str | os.PathLike[str]) -> None:
        """Take back what ``save`` wrote; a missing or unreadable file leaves the list empty."""
        decoder = msgspec.json.Decoder(_Saved)
        try:
            with open(path, "rb") as file:
                saved = [decoder.decode(line) for line in file if line.strip()]
        except (OSError, msgspec.DecodeError):
            return
        for item in saved[-self.capacity :]:
            entry = item.entry()
            self._entries.append(entry)
            self._by_id[entry.id] = entry
        if saved:
            self._ids = itertools.count(max(item.id for item in saved) + 1)

    # -- log capture --

    def capture_logs(self) -> None:
        """Attribute log lines to the delivery being handled (idempotent)."""
        for logger in (logging.getLogger("voicehooks"), logging.getLogger()):
            if self._capture not in logger.handlers:
                logger.addHandler(self._capture)

    def stop_capturing_logs(self) -> None:
        """Undo ``capture_logs``."""
        for logger in (logging.getLogger("voicehooks"), logging.getLogger()):
            logger.removeHandler(self._capture)


class _Capture(logging.Handler):
    """Appends each log record to the current delivery's lines, bounded."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self._last: logging.LogRecord | None = None

    def emit(self, record: logging.LogRecord) -> None:
        entry = _current.get()
        # A record that propagates from the voicehooks logger to the root one arrives twice.
        if entry is None or record is self._last:
            return
        self._last = record
        if len(entry.logs) >= MAX_LOG_LINES:
            entry.left_out += 1
            return
        try:
            text = record.getMessage()
        except Exception:  # a bad format string in someone's log call
            text = str(record.msg)
        # The app's own lines may hold what a caller said: masked like the event, when captured.
        line = f"{record.levelname:<7} {record.name}: {mask_phone_numbers(text)}"
        entry.logs.append(line[:MAX_LOG_LINE_CHARS])


class _Saved(msgspec.Struct, array_like=True):
    """One entry as ``save`` writes it. Bytes travel as latin-1 text: lossless for any body."""

    id: int
    replay_of: int | None
    logs: list[str]
    left_out: int
    received_at: float
    headers: list[tuple[str, str]]
    body: str | None
    event_type: str | None
    call_id: str | None
    status: int
    outcome: str
    answer: str
    duration_seconds: float
    is_replay: bool
    bypass_dedupe: bool
    tools: list[tuple[str, str, bool, str, float]]
    transport: str = "webhook"

    @classmethod
    def of(cls, entry: Entry) -> _Saved:
        d = entry.delivery
        return cls(
            entry.id,
            entry.replay_of,
            entry.logs,
            entry.left_out,
            d.received_at,
            list(entry.signed_headers.items()),
            d.body.decode("latin-1") if d.body is not None else None,
            d.event_type,
            d.call_id,
            d.status,
            d.outcome,
            d.answer.decode("latin-1"),
            d.duration_seconds,
            d.is_replay,
            d.bypass_dedupe,
            [
                (r.name, r.tool_call_id, r.registered, r.outcome, r.duration_seconds)
                for r in d.tools
            ],
            d.transport,
        )

    def entry(self) -> Entry:
        delivery = Delivery(
            [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers], self.transport
        )
        delivery.received_at = self.received_at
        delivery.body = self.body.encode("latin-1") if self.body is not None else None
        delivery.event_type, delivery.call_id = self.event_type, self.call_id
        delivery.status, delivery.outcome = self.status, self.outcome
        delivery.answer = self.answer.encode("latin-1")
        delivery.duration_seconds = self.duration_seconds
        delivery.is_replay, delivery.bypass_dedupe = self.is_replay, self.bypass_dedupe
        for name, tool_call_id, registered, outcome, seconds in self.tools:
            run = ToolRun(name, tool_call_id, registered)
            run.outcome, run.duration_seconds = outcome, seconds
            delivery.tools.append(run)
        return Entry(self.id, delivery, self.replay_of, self.logs, self.left_out)
