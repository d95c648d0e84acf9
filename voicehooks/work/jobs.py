"""The job: one piece of work after the answer, its one serialized form, and where it goes.

Informational events (``status-update``, ``end-of-call-report``) are acknowledged first and
their handlers run afterwards; so do fire-and-forget tools. Each such piece of work is a
``Job``: plain data (the event, which handler or tool call, a trace carrier), so that the same
job can run here or be written to the durable queue (``encode_job``) and run by a worker
(``decode_job``). ``Dispatcher.run_job`` runs one and returns its ``JobRun``.

A delivery's jobs go to the app's ``JobSink``, one of two:

* ``BackgroundRunner`` (``voicehooks.work.runner``): this process runs them after the answer;
* ``DurableSink`` (``voicehooks.work.durable``): they are in Redis before the answer, for
  ``voicehooks worker`` processes.

The dispatcher asks the sink to ``admit`` a delivery before anything with a side effect (the
duplicate claim, a ``run_before_answer`` handler), and hands it the jobs with ``accept`` before
the answer; what ``accept`` returns runs in this process after the answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple, Protocol

import msgspec

from voicehooks.core.events import Event, ToolCall, decode_delivery, delivery_id
from voicehooks.core.records import JobRun

__all__ = [
    "Job",
    "JobSink",
    "RunJob",
    "UnreadableJob",
    "body_size",
    "decode_job",
    "encode_job",
    "event_body",
    "job_key",
]


class Job(NamedTuple):
    """One piece of after-the-answer work.

    A named tuple: made for every background handler of every delivery, and a tuple is the
    cheapest immutable value to make (a frozen dataclass costs several times as much).

    Attributes:
        event: The delivery's event; its original body travels with it.
        target: ``"handler:<module>:<qualname>"`` for an event handler, or
            ``"tool:<tool call id>"`` for a fire-and-forget tool call of a ``tool-calls``.
        trace: The trace-context carrier of the delivery that caused it.
        is_replay: The delivery was replayed from the development inspector.
    """

    event: Event
    target: str
    trace: Mapping[str, str] = MappingProxyType({})
    is_replay: bool = False

    @property
    def tool_call(self) -> ToolCall | None:
        """The fire-and-forget call a ``tool:`` job runs; ``None`` for a handler's job."""
        if not self.target.startswith("tool:"):
            return None
        tool_call_id = self.target[5:]
        calls: list[ToolCall] = getattr(self.event, "tool_call_list", [])
        for call in calls:
            if call.id == tool_call_id:
                return call
        return None

    @property
    def delivery_id(self) -> str:
        """Stable across redeliveries: the id of the tool call, or of the event."""
        return delivery_id(self.event, self.tool_call)

    @property
    def size(self) -> int:
        """What the job holds in memory, as far as the bounds count it: its body's bytes."""
        return body_size(self.event)


def body_size(event: Event) -> int:
    """The bytes of the body ``event`` was decoded from (0 for an event made in code)."""
    body: bytes | None = event.__dict__.get("_body")
    return len(body) if body is not None else 0


def job_key(job: Job) -> str:
    """The duplicate-store key that marks ``job`` done (or taken by a receiver)."""
    return f"job:{job.delivery_id}:{job.target}"


class _Wire(msgspec.Struct, array_like=True, frozen=True):
    """A job on the wire: the stream entry's one field, as msgpack.

    ``body`` is the exact bytes whose signature was verified; the worker decodes them again.
    """

    body: bytes
    target: str
    trace: dict[str, str] = {}
    enqueued_at: float = 0.0
    is_replay: bool = False


_encode_wire = msgspec.msgpack.Encoder().encode
_decode_wire = msgspec.msgpack.Decoder(_Wire).decode


def encode_job(job: Job, enqueued_at: float) -> bytes:
    """The bytes the durable queue stores for ``job``."""
    return _encode_wire(
        _Wire(event_body(job.event), job.target, dict(job.trace), enqueued_at, job.is_replay)
    )


def decode_job(data: bytes) -> tuple[Job, float]:
    """Inverse of ``encode_job``: the job and when it was enqueued (Unix time).

    Raises:
        msgspec.DecodeError: ``data`` is not a job (written by something else), or its body
            is no longer a delivery this version can read.
    """
    wire = _decode_wire(data)
    job = Job(decode_delivery(wire.body), wire.target, wire.trace, wire.is_replay)
    return job, wire.enqueued_at


class UnreadableJob(ValueError):
    """Queue bytes that are no job this process can read, and never will be.

    Not voicehooks's, sealed with a key this process does not hold, or tampered with: no
    further attempt can change that, so a worker dead-letters such an entry at once, with the
    message as its reason. The message names the cause, never the bytes.
    """


def event_body(event: Event) -> bytes:
    """The bytes the delivery arrived as; an event built in code is encoded as a delivery."""
    body: bytes | None = event.__dict__.get("_body")
    return body if body is not None else msgspec.json.encode({"message": event})


class RunJob(Protocol):
    """``Dispatcher.run_job``: runs ``job`` to its end and returns its run.

    ``attempt`` counts from 1; ``attempts_left`` is durable mode's count of runs still
    allowed after this one (``None`` elsewhere).
    """

    async def __call__(
        self, job: Job, attempt: int = 1, attempts_left: int | None = None
    ) -> JobRun: ...


class JobSink(Protocol):
    """Where a delivery's jobs go: this process's runner, or the durable queue."""

    async def admit(self, event: Event) -> None:
        """Refuse ``event``'s delivery before anything of it is accepted.

        Raises:
            Unavailable: No room (503 with ``Retry-After``), or no way to keep the jobs.
        """
        ...

    async def accept(self, jobs: Sequence[Job]) -> Sequence[Job]:
        """Take one delivery's ``jobs`` before its answer; return those to run here after it.

        Raises:
            Unavailable: The jobs could not be taken; nothing of them was kept.
        """
        ...
