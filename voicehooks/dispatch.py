"""Answering a decoded delivery with the app's handlers and tools, and running its jobs.

``Dispatcher.answer(delivery)`` is the one entry point, for every event type; it returns the
JSON body to send and the jobs to run after sending it:

* ``tool-calls``: see ``voicehooks.toolcalls``, the half of the dispatcher that answers them.
* ``assistant-request``: the one handler runs under its budget (4 s by default, the platform
  waits 5 s); a slow, failing or malformed answer becomes ``{}``, the saved configuration.
* ``status-update``/``end-of-call-report``: each handler becomes a job; one marked
  ``run_before_answer`` is run at once, before the answer.

``Dispatcher.run_job(job)`` runs one job on the background threads under the background
deadline, in this process's runner or a durable-queue worker alike.

Handler bugs never reach the sender: they are logged with the event type and call id (never
the exception's message), shown to the error hooks, and answered with something safe. Every
tool call leaves a ``ToolRun`` on its ``Delivery``, every job a ``JobRun``, for the log line
and the observers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

import anyio
import msgspec

from .background import Job, body_size
from .context import fill
from .dedupe import Deduplicator
from .events import AssistantRequest, EndOfCallReport, Event, ToolCalls
from .exceptions import ToolError
from .live import CallControl
from .logs import UnknownNames, describe, masked
from .observers import (
    Delivery,
    DeliveryOutcome,
    JobOutcome,
    JobRun,
    ObserverSet,
)
from .reconcile import Reconciler
from .responses import (
    AssistantResponse,
    error_result,
    normalize_result,
    validate_assistant_answer,
)
from .routing import Registry
from .running import HungThreads, Threads, UserFunction, within
from .toolcalls import BUSY, FAILED, NOT_JSON, TIMED_OUT, ToolCallsDispatch
from .tools import ArgumentError, Tool

__all__ = ["Dispatcher"]

_log = logging.getLogger("voicehooks")

EMPTY: Final = b"{}"

_HOOK_BUDGET_SECONDS: Final = 2.0  # an error hook must not hold up an answer for long


class Dispatcher(ToolCallsDispatch):
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
        deduplicator: Deduplicator | None = None,
        observers: ObserverSet | None = None,
    ) -> None:
        self.registry = registry
        self.deduplicator = deduplicator
        self.tool_timeout_seconds = tool_timeout_seconds
        self.assistant_request_timeout_seconds = assistant_request_timeout_seconds
        self.background_timeout_seconds = background_timeout_seconds
        self.live_threads = live_threads
        self.background_threads = background_threads
        self.observers = observers if observers is not None else ObserverSet()
        # Refuses a delivery whose jobs would not fit; the app points it at its job queue.
        self.admit: Callable[[int], None] = _admit_all
        self._encode = msgspec.json.Encoder().encode
        # Names the sender made up, each warned about once and at most 10 a minute.
        self.unknown_tools = UnknownNames()
        self.unknown_events = UnknownNames()
        # The way back into live calls: LiveCall parameters, late results. The app sets it.
        self.control: CallControl | None = None
        self.reconciler: Reconciler | None = None  # set when the app reconciles reports

    async def answer(self, delivery: Delivery) -> tuple[bytes, list[Job]]:
        """The body to answer ``delivery.event`` with, and the jobs to run once it is sent.

        Raises:
            Unavailable: The delivery cannot be taken now (a full queue, or a failing store
                with ``store_failure="reject"``); nothing of it was accepted.
        """
        event = delivery.event
        kind = type(event)
        if self.reconciler is not None and event is not None:
            await self._note_for_reconciliation(event)
        if kind is ToolCalls:
            assert isinstance(event, ToolCalls)
            return await self._tool_calls(event, delivery)
        if kind is AssistantRequest:
            assert isinstance(event, AssistantRequest)
            return await self._assistant_request(event), []
        assert event is not None
        return EMPTY, await self._informational(event, delivery)

    async def _note_for_reconciliation(self, event: Event) -> None:
        reconciler = self.reconciler
        assert reconciler is not None
        if isinstance(event, EndOfCallReport):
            if not event.reconciled:
                await reconciler.reported(event.call.id)
        elif not isinstance(event, AssistantRequest):
            reconciler.seen(event.call.id)

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
                fill(handler.injections, event, control=self.control) if handler.injections else {}
            )
            finished, answer = await within(budget, handler.fn.call(self.live_threads, **kwargs))
        except Exception as exc:
            label = handler.label(event)
            if isinstance(exc, HungThreads):
                _log.warning("%s has hung threads; answering {} (saved configuration)", label)
            else:
                await self._failed(
                    f"{label}; answering {{}} (saved configuration),", exc, event, self.live_threads
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

    async def _informational(self, event: Event, delivery: Delivery) -> list[Job]:
        """The delivery's jobs; ``run_before_answer`` ones are run here and now.

        A duplicate delivery runs nothing (see ``dedupe``); a delivery whose jobs would not
        fit the queue is refused before it is claimed, so that its redelivery is not a
        "duplicate".
        """
        handlers = self.registry.handlers[event.type]
        if not handlers:
            return []
        for handler in handlers:
            if not handler.run_before_answer:  # some of its work will wait in the queue
                self.admit(body_size(event))
                break
        once = None if delivery.bypass_dedupe else self.deduplicator
        if once is not None and not await once.is_first_event(event):
            delivery.outcome = DeliveryOutcome.DUPLICATE
            return []
        jobs: list[Job] = []
        for handler in handlers:
            job = Job(event, handler.target, delivery.trace, delivery.is_replay)
            if handler.run_before_answer:
                await self.run_job(job)
            else:
                jobs.append(job)
        return jobs

    # -- jobs ---------------------------------------------------------------------------

    async def run_job(self, job: Job, attempt: int = 1, attempts_left: int | None = None) -> str:
        """Run ``job`` to its end on the background threads; return its ``JobOutcome``.

        Failures are logged and shown to the error hooks; only cancellation propagates
        (after the job is named in the log as cut). ``attempts_left`` is durable mode's count
        of runs still allowed after this one: observers then see a failure or timeout as
        ``RETRYING`` (some left) or ``DEAD`` (none); the return value stays what happened.
        """
        event = job.event
        prepared = self._prepare(job, attempt)
        if prepared is None:
            return JobOutcome.FAILED
        fn, kwargs = prepared
        observers = self.observers
        run = None  # the record exists only for observers
        if observers.active:
            run = JobRun(event.type, event.call.id, fn.name, job.delivery_id, attempt, job.trace)
            observers.job_started(run)
        outcome = JobOutcome.FAILED
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
            if injecting is not None:
                said = error_result(BUSY.format(name=injecting.name))
        except Exception as exc:
            await self._failed(_job_label(job, fn), exc, event, self.background_threads)
            if injecting is not None:
                said = error_result(FAILED.format(name=injecting.name))
        finally:
            if run is not None:
                run.end(_observed(outcome, attempts_left))
                observers.job_ended(run)
        if injecting is not None and said is not None:
            await self._inject_job_result(job, injecting, said)
        return outcome

    def _injecting_tool(self, job: Job) -> Tool | None:
        if self.control is None:
            return None
        call = job.tool_call
        tool = self.registry.tools.get(call.function.name) if call is not None else None
        return tool if tool is not None and tool.inject_result else None

    async def _inject_job_result(self, job: Job, tool: Tool, said: Any) -> None:
        try:
            answer = self._raw(said)
        except (TypeError, ValueError, OverflowError):
            _log.error("%s returned a result that cannot be encoded as JSON", tool.name)
            answer = self._raw(error_result(NOT_JSON.format(name=tool.name)))
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
                    control=self.control,
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
                control=self.control,
            )
        )
        return tool.fn, kwargs

    # -- failures -----------------------------------------------------------------------

    async def _failed(self, label: str, exc: Exception, event: Event, threads: Threads) -> None:
        # The message is withheld from the log (it may hold payload values); hooks get it all.
        _log.error("%s raised %s", label, describe(exc))
        await self.report(exc, event, threads)

    async def report(self, exc: BaseException, event: Event, threads: Threads) -> None:
        """Show ``exc`` to every error hook, each within a short budget.

        A hook's own failure is logged and swallowed; a sync hook runs on ``threads``.
        """
        for hook in self.registry.error_hooks:
            try:
                finished, _ = await within(_HOOK_BUDGET_SECONDS, hook.call(threads, exc, event))
            except Exception as failure:
                _log.error("error hook %s raised %s", hook.name, describe(failure))
            else:
                if not finished:
                    budget = _HOOK_BUDGET_SECONDS
                    _log.error("error hook %s took longer than %.0f s", hook.name, budget)


def _observed(outcome: str, attempts_left: int | None) -> str:
    if attempts_left is None or outcome not in (JobOutcome.FAILED, JobOutcome.TIMEOUT):
        return outcome
    return JobOutcome.RETRYING if attempts_left > 0 else JobOutcome.DEAD


def _admit_all(size: int) -> None:
    """The admission of a dispatcher that no app has pointed at its queue: no bound."""


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
