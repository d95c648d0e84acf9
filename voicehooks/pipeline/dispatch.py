"""Answering a decoded delivery with the app's handlers and tools, and running its jobs.

``Dispatcher.answer(delivery)`` is the one entry point, for every event type; it returns the
JSON body to send and the jobs this process runs once it is sent (``Dispatcher.start``):

* ``tool-calls``: its ``ToolCallsAnswerer`` (``voicehooks.pipeline.toolcalls``).
* ``assistant-request``: the one handler runs under its budget (4 s by default, the platform
  waits 5 s); a slow, failing or malformed answer becomes ``{}``, the saved configuration.
* ``status-update``/``end-of-call-report``: each handler becomes a job; one marked
  ``run_before_answer`` is run at once, before the answer.

Jobs go to the app's ``JobSink`` (``voicehooks.work.jobs``): it admits the delivery before
anything with a side effect happens (the duplicate claim, a ``run_before_answer`` handler) and
takes the jobs before the answer. A delivery refused there changed nothing, so its redelivery
runs everything once.

``Dispatcher.run_job(job)`` runs one job on the background threads under the background
deadline, in this process's runner or a durable-queue worker alike, and returns its
``JobRun``: how it ended and, for a failure, the exception's type.

Handler bugs never reach the sender: they are logged with the event type and call id (never
the exception's message), shown to the error hooks, and answered with something safe. Every
tool call leaves a ``ToolRun`` on its ``Delivery``, every job a ``JobRun``, for the log line
and the observers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any, Final

import anyio
import msgspec

from voicehooks.core.events import AssistantRequest, Event, ToolCalls, decode_delivery
from voicehooks.core.exceptions import ToolError, Unavailable
from voicehooks.core.injection import Providers, fill
from voicehooks.core.logs import UnknownNames, describe, masked
from voicehooks.core.records import Delivery, DeliveryOutcome, JobOutcome, JobRun
from voicehooks.core.running import HungThreads, Threads, UserFunction, run_hooks, within
from voicehooks.live.control import CallControl, LiveCall
from voicehooks.observe.observers import ObserverSet
from voicehooks.state.callstate import MAX_BYTES, TTL_SECONDS, CallState, call_scope
from voicehooks.state.dedupe import Deduplicator
from voicehooks.tools.definition import ArgumentError, Tool
from voicehooks.tools.sensitive import Tokens
from voicehooks.work.jobs import Job, JobSink, event_body
from voicehooks.work.runner import BackgroundRunner

from .assistant import AssistantResponse, validate_assistant_answer
from .routing import Registry
from .toolcalls import (
    BUSY,
    FAILED,
    NOT_JSON,
    TIMED_OUT,
    ToolCallsAnswerer,
    error_result,
    normalize_result,
)

__all__ = ["EMPTY", "Dispatcher", "redacted_event", "watched_failures"]

_log = logging.getLogger("voicehooks")

EMPTY: Final = b"{}"

watched_failures: ContextVar[list[BaseException] | None] = ContextVar(
    "voicehooks_watched_failures", default=None
)
"""The test kit's window on failures (``WebhookClient(raise_exceptions=True)``): while it holds
a list, every failure reported in that context is added to it. Tasks and jobs a request starts
inherit it, so the app itself is never changed to watch it."""


class Dispatcher:
    """Answers decoded deliveries with the handlers and tools of a ``Registry``.

    Args:
        registry: The handlers, tools and error hooks.
        tool_timeout_seconds: The app-wide tool deadline (a tool may set its own).
        assistant_request_timeout_seconds: The assistant-request handler's budget.
        background_timeout_seconds: Each job's deadline; ``None`` for none.
        live_threads: Threads for sync tools and the assistant-request handler.
        background_threads: Threads for sync handlers that run after the answer.
        deduplicator: Once-only processing, or ``None``.
        observers: Told about every tool call and job.
        sink: Where jobs go: the runner, or the durable queue.
        runner: Runs the jobs the sink leaves to this process.
        control: The way back into live calls: ``LiveCall`` parameters, late results.
        intents: The single flight of ``once_per_call`` tools, on the app's store.
        call_state_max_bytes: The bound of each call's ``CallState``.
        call_state_ttl_seconds: How long a call's ``CallState`` outlives its last write.
        tokens: The tokens of ``Sensitive`` tool arguments.
        redact_languages: Handlers get events redacted in these languages (``Privacy.
            redact_handlers``); ``None``: the real event.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        tool_timeout_seconds: float,
        assistant_request_timeout_seconds: float,
        background_timeout_seconds: float | None,
        live_threads: Threads,
        background_threads: Threads,
        deduplicator: Deduplicator | None,
        observers: ObserverSet,
        sink: JobSink,
        runner: BackgroundRunner,
        control: CallControl | None,
        intents: Deduplicator,
        call_state_max_bytes: int = MAX_BYTES,
        call_state_ttl_seconds: float = TTL_SECONDS,
        tokens: Tokens | None = None,
        redact_languages: tuple[str, ...] | None = None,
    ) -> None:
        self.registry = registry
        self.deduplicator = deduplicator
        self.assistant_request_timeout_seconds = assistant_request_timeout_seconds
        self.background_timeout_seconds = background_timeout_seconds
        self.live_threads = live_threads
        self.background_threads = background_threads
        self.observers = observers
        self.sink = sink
        self.runner = runner
        self.control = control
        self.intents = intents
        self.call_state_max_bytes = call_state_max_bytes
        self.call_state_ttl_seconds = call_state_ttl_seconds
        self.provided: Providers = {LiveCall: self._live_call, CallState: self._call_state}
        self._encode = msgspec.json.Encoder().encode
        self.tool_calls = ToolCallsAnswerer(
            registry,
            tool_timeout_seconds=tool_timeout_seconds,
            threads=live_threads,
            deduplicator=deduplicator,
            observers=observers,
            sink=sink,
            control=control,
            provided=self.provided,
            report=self.report,
            intents=intents,
            tokens=tokens if tokens is not None else Tokens(),
        )
        self.redact_languages = redact_languages
        # Event types the sender made up, each warned about once and at most 10 a minute.
        self.unknown_events = UnknownNames()

    async def answer(self, delivery: Delivery) -> tuple[bytes, Sequence[Job]]:
        """The body to answer ``delivery.event`` with, and the jobs to run here once it is sent.

        Raises:
            Unavailable: The delivery cannot be taken now (a full queue, or a failing store
                with ``store_failure="reject"``); nothing of it was accepted.
        """
        event = delivery.event
        kind = type(event)
        if kind is ToolCalls:
            assert isinstance(event, ToolCalls)
            body, jobs = await self.tool_calls.answer(event, delivery)
            # A live call's answers are never refused: its sink keeps or runs the jobs here.
            return body, (await self.sink.accept(jobs) if jobs else jobs)
        if kind is AssistantRequest:
            assert isinstance(event, AssistantRequest)
            return await self._assistant_request(event), ()
        assert event is not None
        return EMPTY, await self._informational(event, delivery)

    async def start(self, jobs: Sequence[Job]) -> None:
        """Run ``jobs`` (``answer``'s, once the answer is sent) in this process."""
        await self.runner.submit(jobs, self.run_job)

    def _live_call(self, event: Event) -> LiveCall:
        if self.control is None:
            raise RuntimeError("a LiveCall parameter needs the app's call control")
        return self.control.live_call(event.call.id)

    def call_state(self, call_id: str) -> CallState:
        """The ``CallState`` of ``call_id``, on the app's store."""
        return CallState(
            self.intents.store,
            call_id,
            max_bytes=self.call_state_max_bytes,
            ttl_seconds=self.call_state_ttl_seconds,
        )

    def _call_state(self, event: Event) -> CallState:
        return self.call_state(event.call.id)

    async def _after_report(self, event: Event) -> None:
        """Clear the call's state once the last of its report's handlers has finished.

        The handlers may run in several processes (durable workers): each one that ends
        counts in the store, and the one that makes the count whole clears the state.
        """
        expected = len(self.registry.handlers["end-of-call-report"])
        scope = call_scope(event.call.id)
        try:
            # One handler, the usual case, needs no count: it is the last to finish.
            ended = (
                expected
                if expected == 1
                else await self.intents.store.count("reports:" + scope, self.call_state_ttl_seconds)
            )
            if ended >= expected:
                await self.call_state(event.call.id).clear()
                await self.intents.forget_intents(event.call.id)
        except Exception as exc:  # the state expires in time all the same
            _log.warning(
                "clearing the call state of call %s failed: %s", masked(event.call.id), exc
            )

    # -- assistant-request --------------------------------------------------------------

    async def _assistant_request(self, event: AssistantRequest) -> bytes:
        """Run the assistant-request handler under its budget; ``{}`` on any trouble."""
        handlers = self.registry.handlers["assistant-request"]
        if not handlers:
            return EMPTY
        handler = handlers[0]
        budget = self.assistant_request_timeout_seconds
        try:
            kwargs = (
                fill(handler.injections, event, provided=self.provided)
                if handler.injections
                else {}
            )
            finished, answer = await within(budget, handler.fn.call(self.live_threads, **kwargs))
        except Exception as exc:
            label = handler.label(event)
            if isinstance(exc, HungThreads):
                _log.warning("%s has hung threads; answering {} (saved configuration)", label)
            else:
                await self.report(
                    exc, event, self.live_threads, f"{label}; answering {{}} (saved configuration),"
                )
            return EMPTY
        if not finished:
            _log.warning(
                "%s took longer than %.1f s; answering {} (saved configuration)",
                handler.label(event),
                budget,
            )
            return EMPTY
        try:
            return self._encode(_assistant_body(answer))
        except (TypeError, ValueError, OverflowError) as exc:
            _log.error(
                "%s returned an unusable answer (%s); answering {}",
                handler.label(event),
                exc,
            )
            return EMPTY

    # -- status-update, end-of-call-report ----------------------------------------------

    async def _informational(self, event: Event, delivery: Delivery) -> Sequence[Job]:
        """The delivery's jobs for this process; ``run_before_answer`` ones run here and now.

        A duplicate delivery runs nothing (see ``dedupe``). The sink admits the delivery
        before it is claimed, so that a refused one is no "duplicate" when it comes again;
        if the sink then refuses its jobs after all, the claim is given back.
        """
        handlers = self.registry.handlers[event.type]
        if not handlers:
            return ()
        if not all(handler.run_before_answer for handler in handlers):
            await self.sink.admit(event)  # some of its work will wait in the queue
        once = None if delivery.bypass_dedupe else self.deduplicator
        if once is not None and not await once.is_first_event(event):
            delivery.outcome = DeliveryOutcome.DUPLICATE
            return ()
        if self.redact_languages is not None:  # before the queue: it never holds the data
            # About 0.6 ms per KB of pure Python: in a thread, so the loop gets its turns.
            event = await anyio.to_thread.run_sync(redacted_event, event, self.redact_languages)
        jobs: list[Job] = []
        for handler in handlers:
            job = Job(event, handler.target, delivery.trace, delivery.is_replay)
            if handler.run_before_answer:
                await self.run_job(job)
            else:
                jobs.append(job)
        if not jobs:
            return ()
        try:
            return await self.sink.accept(jobs)
        except Unavailable:
            if once is not None:
                await once.release_event(event)
            raise

    # -- jobs ---------------------------------------------------------------------------

    async def run_job(self, job: Job, attempt: int = 1, attempts_left: int | None = None) -> JobRun:
        """Run ``job`` to its end on the background threads; return how it ended.

        Failures are logged, shown to the error hooks and named in ``JobRun.failure`` (the
        exception's type); only cancellation propagates (after the job is named in the log
        as cut). ``attempts_left`` is durable mode's count of runs still allowed after this
        one: a failure or timeout then ends ``RETRYING`` (some left) or ``DEAD`` (none).
        """
        event = job.event
        prepared = self._prepare(job, attempt)
        if prepared is None:
            run = JobRun(event.type, event.call.id, job.target, "", attempt, job.trace)
            run.end(JobOutcome.FAILED, "NotRegistered")
            return run
        fn, kwargs = prepared
        observers = self.observers
        run = JobRun(event.type, event.call.id, fn.name, job.delivery_id, attempt, job.trace)
        if observers.active:
            observers.job_started(run)
        outcome = JobOutcome.FAILED
        failure = ""
        timeout = self.background_timeout_seconds  # labels are built only for a log line
        # A fire-and-forget tool with inject_result has its outcome spoken into the call.
        injecting = self._injecting_tool(job) if job.target.startswith("tool:") else None
        said: Any = None
        try:
            work = fn.call(self.background_threads, **kwargs)
            if timeout is None:
                value = await work
                outcome = JobOutcome.DONE
            else:
                finished, value = await within(timeout, work)
                if finished:
                    outcome = JobOutcome.DONE
                else:
                    label = _job_label(job, fn)
                    _log.error("%s did not finish within %.1f s; given up", label, timeout)
                    outcome = JobOutcome.TIMEOUT
            if injecting is not None:
                said = (
                    normalize_result(value, job.target[5:])
                    if outcome == JobOutcome.DONE
                    else error_result(TIMED_OUT.format(name=injecting.name))
                )
        except anyio.get_cancelled_exc_class():
            outcome = JobOutcome.CUT
            _log.error("background %s was cut short", _job_label(job, fn))
            raise
        except ToolError as exc:
            if injecting is None:
                label = _job_label(job, fn)
                _log.info("%s raised ToolError after its answer was sent; nobody hears it", label)
            else:
                said = error_result(str(exc))
            outcome = JobOutcome.DONE
        except HungThreads:
            _log.error("%s not run: earlier runs still hold hung threads", _job_label(job, fn))
            failure = HungThreads.__qualname__
            if injecting is not None:
                said = error_result(BUSY.format(name=injecting.name))
        except Exception as exc:
            failure = type(exc).__qualname__
            await self.report(exc, event, self.background_threads, _job_label(job, fn))
            if injecting is not None:
                said = error_result(FAILED.format(name=injecting.name))
        finally:
            run.end(_observed(outcome, attempts_left), failure or _failure_of(outcome))
            if observers.active:
                observers.job_ended(run)
        if (
            event.type == "end-of-call-report"
            and run.outcome != JobOutcome.RETRYING
            and self.registry.keeps_call_state
        ):
            await self._after_report(event)
        if injecting is not None and said is not None:
            await self._inject_job_result(job, injecting, said)
        return run

    def _injecting_tool(self, job: Job) -> Tool | None:
        if self.control is None:
            return None
        call = job.tool_call
        tool = self.registry.tools.get(call.function.name) if call is not None else None
        return tool if tool is not None and tool.inject_result else None

    async def _inject_job_result(self, job: Job, tool: Tool, said: Any) -> None:
        try:
            answer = self.tool_calls.raw(said)
        except (TypeError, ValueError, OverflowError):
            _log.error("%s returned a result that cannot be encoded as JSON", tool.name)
            answer = self.tool_calls.raw(error_result(NOT_JSON.format(name=tool.name)))
        if self.control is not None:
            await self.control.deliver(job.event, job.target[5:], tool.name, answer)

    def _prepare(self, job: Job, attempt: int) -> tuple[UserFunction, dict[str, Any]] | None:
        event, target = job.event, job.target
        if target.startswith("tool:"):
            return self._prepare_tool(job, attempt)
        for handler in self.registry.handlers[event.type]:
            if handler.target == target:
                if not handler.injections:
                    return handler.fn, {}
                kwargs = fill(
                    handler.injections,
                    event,
                    attempt=attempt,
                    is_replay=job.is_replay,
                    provided=self.provided,
                )
                return handler.fn, kwargs
        _log.error(
            "no %s handler %s is registered (any more): job for call %s not run",
            event.type,
            target.removeprefix("handler:"),
            masked(event.call.id),
        )
        return None

    def _prepare_tool(self, job: Job, attempt: int) -> tuple[UserFunction, dict[str, Any]] | None:
        event = job.event
        call = job.tool_call
        tool = self.registry.tools.get(call.function.name) if call is not None else None
        if call is None or tool is None:
            _log.error(
                "fire-and-forget job %s for call %s names no registered tool",
                job.target,
                masked(event.call.id),
            )
            return None
        try:
            kwargs = tool.bind(call)
        except ArgumentError:
            return None  # refused when it was answered; a redelivered job finds it so again
        kwargs.update(
            fill(
                tool.injections,
                event,
                call,
                attempt=attempt,
                is_replay=job.is_replay,
                provided=self.provided,
            )
        )
        return tool.fn, kwargs

    # -- failures -----------------------------------------------------------------------

    async def report(
        self, exc: BaseException, event: Event, threads: Threads, label: str | None = None
    ) -> None:
        """Log a failure of what ``label`` names (if given) and show ``exc`` to every error
        hook, each within a short budget (``run_hooks``).

        The message is withheld from the log (it may hold payload values); hooks get it all.
        A hook's own failure is logged and swallowed; a sync hook runs on ``threads``.
        """
        if label is not None:
            _log.error("%s raised %s", label, describe(exc))
        watched = watched_failures.get()
        if watched is not None:
            watched.append(exc)
        await run_hooks(self.registry.error_hooks, threads, "error hook", exc, event)


def _observed(outcome: str, attempts_left: int | None) -> str:
    if attempts_left is None or outcome not in (JobOutcome.FAILED, JobOutcome.TIMEOUT):
        return outcome
    return JobOutcome.RETRYING if attempts_left > 0 else JobOutcome.DEAD


def _failure_of(outcome: str) -> str:
    return "" if outcome == JobOutcome.DONE else outcome


def _job_label(job: Job, fn: UserFunction) -> str:
    event = job.event
    what = fn.name if job.target.startswith("tool:") else f"{event.type} handler {fn.name}"
    return f"{what} (call {masked(event.call.id)})"


def _assistant_body(answer: Any) -> Any:
    if answer is None:
        return {}
    if isinstance(answer, AssistantResponse):
        return answer.body
    return validate_assistant_answer(answer)


def redacted_event(event: Event, languages: tuple[str, ...]) -> Event:
    """``event`` decoded again from its body with personal data redacted, for handlers
    (``Privacy.redact_handlers``). The call id stays: call state, the live call and the
    delivery's identity are keyed by it (it is hashed in every store key).
    """
    from voicehooks.privacy import redact_json  # only with the switch: not on the request path

    redacted = redact_json(msgspec.json.decode(event_body(event)), languages=languages)
    redacted["message"]["call"]["id"] = event.call.id
    return decode_delivery(msgspec.json.encode(redacted))
