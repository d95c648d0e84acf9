"""Answering a ``tool-calls`` delivery: the tool-calls half of the dispatcher.

Every call runs concurrently under its deadline, isolated from the others' failures, on the
live threads; the answer is always the object format, one entry per call, in request order
(PLATFORM.md 8 rows 12, 13 and 15). A fire-and-forget call is answered at once and becomes a
job; an interim tool that is still running at ``interim_after_seconds`` is answered with its
interim text and its result is delivered into the call later (``voicehooks.interim``). A call
to a tool nobody registered gets an error result, or goes to the raw ``tool-calls`` handler.

``ToolCallsDispatch`` is a base class of ``Dispatcher`` rather than an object of its own: both
halves share the dispatcher's state (threads, store, observers, the way into live calls), and
a request that answers at once should not pay for one more indirection per call.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final

import msgspec

from .background import Job, body_size
from .context import fill
from .dedupe import Deduplicator
from .events import Event, ToolCall, ToolCalls
from .exceptions import ToolError, Unavailable
from .interim import Busy
from .live import CallControl
from .logs import UnknownNames, loggable, masked
from .observers import Delivery, ObserverSet, ToolOutcome, ToolRun
from .responses import error_result, normalize_result, results_from_response
from .routing import Registry
from .running import HungThreads, Threads, run_concurrently, within
from .tools import INTERIM_TIMEOUT_SECONDS, ArgumentError, Tool

__all__ = ["ToolCallsDispatch", "stub_for"]

_log = logging.getLogger("voicehooks")

# What the model hears when a call cannot be answered with a result.
FAILED = (
    "The tool {name} failed unexpectedly. Tell the caller it cannot be done right now "
    "and offer to help in another way."
)
TIMED_OUT = "The tool {name} did not answer in time. Tell the caller it cannot be done right now."
UNKNOWN = "There is no tool called {name} on this server. Do not call it again."
NOT_JSON = "The tool {name} returned a result that could not be sent."
BUSY = "The tool {name} cannot be started right now. Tell the caller it cannot be done now."

_EMPTY_RAW: Final = msgspec.Raw(b"{}")


class _Entry(msgspec.Struct):
    tool_call_id: str
    result: msgspec.Raw


class _Answer(msgspec.Struct):
    results: list[_Entry]


class ToolCallsDispatch:
    """Answers ``tool-calls`` deliveries; ``Dispatcher`` sets the state it reads."""

    registry: Registry
    deduplicator: Deduplicator | None
    tool_timeout_seconds: float
    live_threads: Threads
    observers: ObserverSet
    admit: Callable[[int], None]
    control: CallControl | None
    _encode: Callable[[Any], bytes]
    unknown_tools: UnknownNames

    if TYPE_CHECKING:  # provided by Dispatcher, which also reports background failures

        async def _failed(
            self, label: str, exc: Exception, event: Event, threads: Threads
        ) -> None: ...

        async def report(self, exc: BaseException, event: Event, threads: Threads) -> None: ...

    async def _tool_calls(self, event: ToolCalls, delivery: Delivery) -> tuple[bytes, list[Job]]:
        calls = event.tool_call_list
        tools = self.registry.tools
        jobs: list[Job] = []
        if len(calls) == 1 and calls[0].function.name in tools:
            # The common case: no list of work, no concurrency machinery at all.
            only = calls[0]
            result = await self._tool(tools[only.function.name], only, event, delivery, jobs)
            return self._encode(_Answer([_Entry(only.id, result)])), jobs
        results: list[msgspec.Raw] = [_EMPTY_RAW] * len(calls)
        work: list[Callable[[], Coroutine[Any, Any, None]]] = [
            functools.partial(self._tool_into, results, i, tool, call, event, delivery, jobs)
            for i, call in enumerate(calls)
            if (tool := tools.get(call.function.name)) is not None
        ]
        unclaimed = [i for i, call in enumerate(calls) if call.function.name not in tools]
        if unclaimed:
            work.append(functools.partial(self._unclaimed, results, unclaimed, event, delivery))
        try:
            await run_concurrently(work)
        except* Unavailable as refused:
            # store_failure="reject": the pipeline answers one Unavailable with a 503.
            raise _first_leaf(refused)  # noqa: B904  (keeps the store fault as cause)
        entries = [_Entry(call.id, result) for call, result in zip(calls, results, strict=True)]
        return self._encode(_Answer(entries)), jobs

    async def _tool_into(
        self,
        results: list[msgspec.Raw],
        i: int,
        tool: Tool,
        call: ToolCall,
        event: ToolCalls,
        delivery: Delivery,
        jobs: list[Job],
    ) -> None:
        results[i] = await self._tool(tool, call, event, delivery, jobs)

    async def _tool(
        self, tool: Tool, call: ToolCall, event: ToolCalls, delivery: Delivery, jobs: list[Job]
    ) -> msgspec.Raw:
        run = ToolRun(tool.name, call.id, True)
        delivery.tools.append(run)
        observers = self.observers
        if observers.active:
            observers.tool_started(delivery, run)
        try:
            once = None if delivery.bypass_dedupe else self.deduplicator
            if once is None or not tool.deduplicate:
                return (await self._execute(tool, call, event, delivery, jobs, run))[0]
            answer = await once.run_tool(
                event,
                call,
                # A duplicate may wait as long as the platform does; an interim tool's first
                # run answers (with its interim text, at the latest) well within that.
                self.tool_timeout_seconds if tool.interim is not None else self._timeout_of(tool),
                lambda: self._execute(tool, call, event, delivery, jobs, run),
            )
            if answer is None:
                _log.warning(
                    "tool %s (call %s): a duplicate delivery got no result from the first in time",
                    tool.name,
                    masked(event.call.id),
                )
                run.outcome = ToolOutcome.TIMEOUT
                return self._raw(error_result(TIMED_OUT.format(name=tool.name)))
            if not run.outcome:  # answered from the store: the first delivery ran it
                run.outcome = ToolOutcome.DUPLICATE
            return answer
        finally:
            run.end(run.outcome or ToolOutcome.FAILED)
            if observers.active:
                observers.tool_ended(delivery, run)

    async def _execute(
        self,
        tool: Tool,
        call: ToolCall,
        event: ToolCalls,
        delivery: Delivery,
        jobs: list[Job],
        run: ToolRun,
    ) -> tuple[msgspec.Raw, bool]:
        """Run ``tool`` once: its answer, and whether a duplicate delivery may be given it.

        ``False`` after an unexpected exception or a timeout: a redelivery may try again.
        Sets ``run.outcome``.
        """
        try:
            kwargs = tool.bind(call)
        except ArgumentError as exc:
            _log.info("tool %s call=%s: unusable arguments", tool.name, masked(event.call.id))
            run.outcome = ToolOutcome.INVALID_ARGUMENTS
            return self._raw(error_result(str(exc))), True
        if tool.fire_and_forget:
            try:
                self.admit(body_size(event))
            except Unavailable:
                run.outcome = ToolOutcome.OVERLOADED
                return self._raw(error_result(BUSY.format(name=tool.name))), False
            jobs.append(Job(event, "tool:" + call.id, delivery.trace, delivery.is_replay))
            run.outcome = ToolOutcome.STARTED
            return self._raw(tool.async_response or {"status": "started"}), True
        if tool.injections:
            kwargs.update(
                fill(
                    tool.injections, event, call, is_replay=delivery.is_replay, control=self.control
                )
            )
        if tool.interim is not None:
            return await self._with_interim(tool, call, event, kwargs, run)
        answer, keep, run.outcome = await self._call_tool(
            tool, call, event, kwargs, self._timeout_of(tool)
        )
        return answer, keep

    async def _call_tool(
        self, tool: Tool, call: ToolCall, event: ToolCalls, kwargs: dict[str, Any], timeout: float
    ) -> tuple[msgspec.Raw, bool, str]:
        """Call ``tool`` under ``timeout``: its answer, whether a duplicate may be given it,
        and its ``ToolOutcome``."""
        try:
            finished, value = await within(timeout, tool.fn.call(self.live_threads, **kwargs))
        except ToolError as exc:
            return self._raw(error_result(str(exc))), True, ToolOutcome.ERROR
        except HungThreads:
            _log.warning(
                "%s: %d earlier calls are still running after their deadline; refusing a new "
                "one instead of starting another thread",
                _tool_label(tool, event),
                tool.fn.abandoned,
            )
            return (
                self._raw(error_result(BUSY.format(name=tool.name))),
                False,
                ToolOutcome.OVERLOADED,
            )
        except Exception as exc:
            await self._failed(_tool_label(tool, event), exc, event, self.live_threads)
            return (
                self._raw(error_result(FAILED.format(name=tool.name))),
                False,
                ToolOutcome.FAILED,
            )
        if not finished:
            _log.warning("%s timed out after %.1f s", _tool_label(tool, event), timeout)
            return (
                self._raw(error_result(TIMED_OUT.format(name=tool.name))),
                False,
                ToolOutcome.TIMEOUT,
            )
        try:
            answer = msgspec.Raw(self._encode(normalize_result(value, call.id)))
        except (TypeError, ValueError, OverflowError) as exc:
            label = _tool_label(tool, event)
            kind = type(value).__name__
            _log.error("%s returned a %s that cannot be encoded as JSON", label, kind)
            await self.report(exc, event, self.live_threads)
            return (
                self._raw(error_result(NOT_JSON.format(name=tool.name))),
                True,
                ToolOutcome.FAILED,
            )
        return answer, True, ToolOutcome.OK

    async def _with_interim(
        self, tool: Tool, call: ToolCall, event: ToolCalls, kwargs: dict[str, Any], run: ToolRun
    ) -> tuple[msgspec.Raw, bool]:
        """Answer in time, or with the interim text while the tool goes on (``interim``)."""
        control = self.control
        assert control is not None  # the app makes one when a tool has an interim text
        label = _tool_label(tool, event)
        work = self._call_tool(
            tool, call, event, kwargs, tool.timeout_seconds or INTERIM_TIMEOUT_SECONDS
        )

        async def deliver(settled: tuple[msgspec.Raw, bool, str]) -> None:
            answer, _, outcome = settled
            _log.info("%s ended %s after its interim answer; delivering it", label, outcome)
            await control.deliver(event, call.id, tool.name, answer)

        try:
            result = await control.runs.run(work, self._timeout_of(tool), deliver, label)
        except Busy:
            _log.warning("%s refused: too many slow tools are running", label)
            run.outcome = ToolOutcome.OVERLOADED
            return self._raw(error_result(BUSY.format(name=tool.name))), False
        if result is not None:
            answer, keep, run.outcome = result
            return answer, keep
        run.outcome = ToolOutcome.INTERIM
        return self._raw(tool.interim), True

    def _timeout_of(self, tool: Tool) -> float:
        """How long the platform waits for this tool's answer (an interim one included)."""
        if tool.interim is not None:
            return min(tool.interim_after_seconds, self.tool_timeout_seconds)
        return tool.timeout_seconds or self.tool_timeout_seconds

    async def _unclaimed(
        self, results: list[msgspec.Raw], indices: list[int], event: ToolCalls, delivery: Delivery
    ) -> None:
        calls = [event.tool_call_list[i] for i in indices]
        runs = [ToolRun(call.function.name, call.id, False) for call in calls]
        delivery.tools.extend(runs)
        handlers = self.registry.handlers["tool-calls"]
        if not handlers:
            for i, call, run in zip(indices, calls, runs, strict=True):
                self._warn_unknown(call)
                results[i] = self._raw(error_result(UNKNOWN.format(name=call.function.name)))
                run.end(ToolOutcome.UNKNOWN)
            return
        # Only the raw handler's share of the calls: what no registered tool claims.
        subset = msgspec.structs.replace(event, tool_call_list=calls)
        subset.__dict__.update(event.__dict__)  # keeps .raw: the delivery as it arrived
        ids = [call.id for call in calls]
        handler = handlers[0]
        label = handler.label(event)
        names = ", ".join(call.function.name for call in calls)
        outcome = ToolOutcome.OK
        try:
            kwargs = fill(
                handler.injections, subset, is_replay=delivery.is_replay, control=self.control
            )
            budget = self.tool_timeout_seconds
            finished, body = await within(budget, handler.fn.call(self.live_threads, **kwargs))
        except ToolError as exc:
            finished, body, outcome = True, error_result(str(exc)), ToolOutcome.ERROR
        except Exception as exc:
            if not isinstance(exc, HungThreads):
                await self._failed(label, exc, subset, self.live_threads)
            finished, body = True, error_result(FAILED.format(name=names))
            outcome = ToolOutcome.FAILED
        if not finished:
            _log.warning("%s timed out after %.1f s", label, self.tool_timeout_seconds)
            body, outcome = error_result(TIMED_OUT.format(name=names)), ToolOutcome.TIMEOUT
        for i, result, run in zip(indices, results_from_response(body, ids), runs, strict=True):
            try:
                results[i] = msgspec.Raw(self._encode(result))
                run.end(outcome)
            except (TypeError, ValueError, OverflowError):
                _log.error("%s returned a result that cannot be encoded as JSON", label)
                name = event.tool_call_list[i].function.name
                results[i] = self._raw(error_result(NOT_JSON.format(name=name)))
                run.end(ToolOutcome.FAILED)

    def _warn_unknown(self, call: ToolCall) -> None:
        if self.unknown_tools.first(call.function.name):
            _log.warning(
                "the model called tool '%s', which is not registered. To handle it, add:\n%s",
                loggable(call.function.name),
                stub_for(call),
            )

    def _raw(self, value: Any) -> msgspec.Raw:
        return msgspec.Raw(self._encode(value))


def _tool_label(tool: Tool, event: Event) -> str:
    return f"tool {tool.name} (call {masked(event.call.id)})"


def _first_leaf(group: BaseExceptionGroup[Unavailable]) -> Unavailable:
    first = group.exceptions[0]
    return first if isinstance(first, Unavailable) else _first_leaf(first)


def stub_for(call: ToolCall) -> str:
    """A ready-to-paste ``@app.tool`` stub for a call no tool claims.

    Built from the argument *names* and JSON types only: values can be personal data.
    """
    kinds = {
        bool: "bool",
        int: "int",
        float: "float",
        str: "str",
        list: "list[Any]",
        dict: "dict[str, Any]",
    }
    params = ", ".join(
        f"{key}: {kinds.get(type(value), 'Any')}"
        for key, value in list(call.arguments.items())[:20]
        if key.isidentifier()
    )
    name = loggable(call.function.name)
    func = name.replace("-", "_") if name.replace("-", "_").isidentifier() else "tool"
    return (
        f'@app.tool("{name}")\n'
        f"async def {func}({params}) -> dict[str, Any]:\n"
        f'    """Describe what {name} does, for the model."""\n'
        f"    ..."
    )
