"""Routing a decoded event to its handlers and turning what they return into the answer.

One method per kind of event, each returning the JSON body to send:

* ``tool-calls``: every call runs concurrently under its deadline, isolated from the others'
  failures; the answer is always the object format, one entry per call, in request order.
* ``assistant-request``: the one handler runs under its budget (4 s by default, the platform
  waits 5 s); a slow, failing or malformed answer becomes ``{}``, the saved configuration.
* ``status-update``/``end-of-call-report``: handlers marked ``run_before_answer`` run now;
  the rest are returned as jobs for the background runner, to start once ``{}`` has been sent.

Handler bugs never reach the sender: they are logged with the event type and call id, shown
to the error hooks, and answered with something safe.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import msgspec

from .background import Job
from .context import fill
from .dedupe import Deduplicator
from .events import AssistantRequest, Event, ToolCall, ToolCalls
from .exceptions import StoreError, ToolError
from .logs import describe
from .responses import (
    AssistantResponse,
    error_result,
    normalize_result,
    results_from_response,
    validate_assistant_answer,
)
from .routing import Handler, Registry
from .running import call_function, call_with_deadline, run_concurrently
from .tools import ArgumentError, Tool

__all__ = ["Dispatcher"]

_log = logging.getLogger("voicehooks")

EMPTY = b"{}"

_FAILED = (
    "The tool {name} failed unexpectedly. Tell the caller it cannot be done right now "
    "and offer to help in another way."
)
_TIMED_OUT = "The tool {name} did not answer in time. Tell the caller it cannot be done right now."
_UNKNOWN = "There is no tool called {name} on this server. Do not call it again."
_NOT_JSON = "The tool {name} returned a result that could not be sent."


class _Entry(msgspec.Struct):
    tool_call_id: str
    result: msgspec.Raw


class _Answer(msgspec.Struct):
    results: list[_Entry]


class Dispatcher:
    """Answers decoded events with the handlers and tools of a ``Registry``."""

    def __init__(
        self,
        registry: Registry,
        *,
        tool_timeout_seconds: float,
        assistant_request_timeout_seconds: float,
        thread_limiter: anyio.CapacityLimiter,
        deduplicator: Deduplicator | None = None,
    ) -> None:
        self.registry = registry
        self.deduplicator = deduplicator
        self.tool_timeout_seconds = tool_timeout_seconds
        self.assistant_request_timeout_seconds = assistant_request_timeout_seconds
        self.limiter = thread_limiter
        self._encode = msgspec.json.Encoder().encode
        self._warned_unknown: set[str] = set()

    # -- tool-calls ---------------------------------------------------------------------

    async def answer_tool_calls(self, event: ToolCalls, jobs: list[Job]) -> bytes:
        """Run every call of ``event`` and return the object-format answer.

        Fire-and-forget tools are added to ``jobs``, for the caller to start after answering.
        """
        calls = event.tool_call_list
        tools = self.registry.tools
        results: list[msgspec.Raw] = [msgspec.Raw(EMPTY)] * len(calls)
        if len(calls) == 1 and calls[0].function.name in tools:
            # The common case: no list of work, no concurrency machinery at all.
            only = tools[calls[0].function.name]
            results[0] = await self._run_tool(only, calls[0], event, jobs)
        else:
            work: list[Callable[[], Coroutine[Any, Any, None]]] = [
                functools.partial(self._run_into, results, i, tool, call, event, jobs)
                for i, call in enumerate(calls)
                if (tool := tools.get(call.function.name)) is not None
            ]
            unclaimed = [i for i, call in enumerate(calls) if call.function.name not in tools]
            if unclaimed:
                work.append(functools.partial(self._answer_unclaimed, results, unclaimed, event))
            try:
                await run_concurrently(work)
            except* StoreError as store_errors:
                # store_failure="reject": the pipeline answers one StoreError with a 503.
                raise _first_leaf(store_errors)  # noqa: B904  (keeps the store fault as cause)
        entries = [_Entry(call.id, result) for call, result in zip(calls, results, strict=True)]
        return self._encode(_Answer(entries))

    async def _run_into(
        self,
        results: list[msgspec.Raw],
        i: int,
        tool: Tool,
        call: ToolCall,
        event: ToolCalls,
        jobs: list[Job],
    ) -> None:
        results[i] = await self._run_tool(tool, call, event, jobs)

    async def _run_tool(
        self, tool: Tool, call: ToolCall, event: ToolCalls, jobs: list[Job]
    ) -> msgspec.Raw:
        once = self.deduplicator
        if once is None or not tool.deduplicate:
            return (await self._execute_tool(tool, call, event, jobs))[0]
        answer = await once.run_tool(
            event, call, self._timeout_of(tool), lambda: self._execute_tool(tool, call, event, jobs)
        )
        if answer is None:
            _log.warning(
                "tool %s (call %s): a duplicate delivery got no result from the first in time",
                tool.name,
                event.call.id,
            )
            return self._raw(error_result(_TIMED_OUT.format(name=tool.name)))
        return answer

    async def _execute_tool(
        self, tool: Tool, call: ToolCall, event: ToolCalls, jobs: list[Job]
    ) -> tuple[msgspec.Raw, bool]:
        """Run ``tool`` once: its answer, and whether a duplicate delivery may be given it.

        ``False`` after an unexpected exception or a timeout: a redelivery may try again.
        """
        try:
            kwargs = tool.bind(call)
        except ArgumentError as exc:
            _log.info("tool %s call=%s: unusable arguments", tool.name, event.call.id)
            return self._raw(error_result(str(exc))), True
        if tool.injections:
            kwargs.update(fill(tool.injections, event, call))
        label = f"tool {tool.name} (call {event.call.id})"
        if tool.fire_and_forget:
            jobs.append(self._background_tool(tool, kwargs, event, label))
            return self._raw(tool.async_response or {"status": "started"}), True
        timeout = self._timeout_of(tool)
        try:
            finished, value = await call_with_deadline(
                tool.function, tool.is_async, kwargs, self.limiter, label, timeout
            )
        except ToolError as exc:
            return self._raw(error_result(str(exc))), True
        except Exception as exc:
            await self._failed(label, exc, event)
            return self._raw(error_result(_FAILED.format(name=tool.name))), False
        if not finished:
            _log.warning("%s timed out after %.1f s", label, timeout)
            return self._raw(error_result(_TIMED_OUT.format(name=tool.name))), False
        try:
            return msgspec.Raw(self._encode(normalize_result(value, call.id))), True
        except (TypeError, ValueError, OverflowError) as exc:
            _log.error(
                "%s returned a %s that cannot be encoded as JSON", label, type(value).__name__
            )
            await self.report(exc, event)
            return self._raw(error_result(_NOT_JSON.format(name=tool.name))), True

    def _timeout_of(self, tool: Tool) -> float:
        return tool.timeout_seconds or self.tool_timeout_seconds

    def _background_tool(
        self, tool: Tool, kwargs: dict[str, Any], event: ToolCalls, label: str
    ) -> Job:
        async def job() -> None:
            try:
                await call_function(tool.function, tool.is_async, kwargs, self.limiter, label)
            except Exception as exc:
                await self._failed(label, exc, event)

        return job

    async def _answer_unclaimed(
        self, results: list[msgspec.Raw], indices: list[int], event: ToolCalls
    ) -> None:
        calls = [event.tool_call_list[i] for i in indices]
        handlers = self.registry.handlers["tool-calls"]
        if not handlers:
            for i, call in zip(indices, calls, strict=True):
                self._warn_unknown(call)
                results[i] = self._raw(error_result(_UNKNOWN.format(name=call.function.name)))
            return
        # Only the raw handler's share of the calls: what no registered tool claims.
        subset = msgspec.structs.replace(event, tool_call_list=calls)
        subset.__dict__.update(event.__dict__)  # keeps .raw: the delivery as it arrived
        ids = [call.id for call in calls]
        handler = handlers[0]
        label = f"tool-calls handler {handler.function.__qualname__} (call {event.call.id})"
        names = ", ".join(c.function.name for c in calls)
        try:
            finished, body = await self._call(handler, subset, label, self.tool_timeout_seconds)
        except ToolError as exc:
            finished, body = True, error_result(str(exc))
        except Exception as exc:
            await self._failed(label, exc, subset)
            finished, body = True, error_result(_FAILED.format(name=names))
        if not finished:
            _log.warning("%s timed out after %.1f s", label, self.tool_timeout_seconds)
            body = error_result(_TIMED_OUT.format(name=names))
        for i, result in zip(indices, results_from_response(body, ids), strict=True):
            try:
                results[i] = msgspec.Raw(self._encode(result))
            except (TypeError, ValueError, OverflowError):
                _log.error("%s returned a result that cannot be encoded as JSON", label)
                results[i] = self._raw(
                    error_result(_NOT_JSON.format(name=event.tool_call_list[i].function.name))
                )

    def _warn_unknown(self, call: ToolCall) -> None:
        name = call.function.name
        if name in self._warned_unknown:
            return
        self._warned_unknown.add(name)
        _log.warning(
            "the model called tool %r, which is not registered. To handle it, add:\n%s",
            name,
            stub_for(call),
        )

    def _raw(self, value: Any) -> msgspec.Raw:
        return msgspec.Raw(self._encode(value))

    # -- assistant-request --------------------------------------------------------------

    async def answer_assistant_request(self, event: AssistantRequest) -> bytes:
        """Run the assistant-request handler under its budget; ``{}`` on any trouble."""
        handlers = self.registry.handlers["assistant-request"]
        if not handlers:
            return EMPTY
        handler = handlers[0]
        label = f"assistant-request handler {handler.function.__qualname__} (call {event.call.id})"
        budget = self.assistant_request_timeout_seconds
        try:
            finished, answer = await self._call(handler, event, label, budget)
        except Exception as exc:
            await self._failed(f"{label}; answering {{}} (saved configuration),", exc, event)
            return EMPTY
        if not finished:
            _log.warning(
                "%s took longer than %.1f s; answering {} (saved configuration)", label, budget
            )
            return EMPTY
        try:
            return self._encode(_assistant_body(answer))
        except (TypeError, ValueError, OverflowError) as exc:
            _log.error("%s returned an unusable answer (%s); answering {}", label, exc)
            return EMPTY

    # -- status-update, end-of-call-report ----------------------------------------------

    async def acknowledge(self, event: Event) -> list[Job]:
        """Run the handlers that must finish before the answer; return the others as jobs.

        A duplicate delivery runs nothing (see ``dedupe``).
        """
        jobs: list[Job] = []
        handlers = self.registry.handlers[event.type]
        once = self.deduplicator
        if handlers and once is not None and not await once.is_first_event(event):
            return jobs
        for handler in handlers:
            if handler.run_before_answer:
                await self._observed(handler, event)
            else:
                jobs.append(self._job(handler, event))
        return jobs

    def _job(self, handler: Handler, event: Event) -> Job:
        async def job() -> None:
            await self._observed(handler, event)

        return job

    async def _observed(self, handler: Handler, event: Event) -> None:
        label = f"{event.type} handler {handler.function.__qualname__} (call {event.call.id})"
        try:
            kwargs = fill(handler.injections, event) if handler.injections else {}
            await call_function(handler.function, handler.is_async, kwargs, self.limiter, label)
        except Exception as exc:
            await self._failed(label, exc, event)

    # -- shared -------------------------------------------------------------------------

    async def _call(
        self, handler: Handler, event: Event, label: str, timeout_seconds: float
    ) -> tuple[bool, Any]:
        kwargs = fill(handler.injections, event) if handler.injections else {}
        return await call_with_deadline(
            handler.function, handler.is_async, kwargs, self.limiter, label, timeout_seconds
        )

    async def _failed(self, label: str, exc: Exception, event: Event) -> None:
        # The message is withheld from the log (it may hold payload values); hooks get it all.
        _log.error("%s raised %s", label, describe(exc))
        await self.report(exc, event)

    async def report(self, exc: BaseException, event: Event) -> None:
        """Show ``exc`` to every error hook; a hook's own failure is logged and swallowed."""
        for hook, is_async in self.registry.error_hooks:
            try:
                if is_async:
                    await hook(exc, event)
                else:
                    hook(exc, event)
            except Exception as exc:
                _log.error("error hook %r raised %s", hook, describe(exc))


def _first_leaf(group: BaseExceptionGroup[StoreError]) -> StoreError:
    first = group.exceptions[0]
    return first if isinstance(first, StoreError) else _first_leaf(first)


def _assistant_body(answer: Any) -> Any:
    if answer is None:
        return {}
    if isinstance(answer, AssistantResponse):
        return answer.body
    return validate_assistant_answer(answer)


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
        for key, value in call.arguments.items()
        if key.isidentifier()
    )
    name = call.function.name
    func = name.replace("-", "_") if name.replace("-", "_").isidentifier() else "tool"
    return (
        f'@app.tool("{name}")\n'
        f"async def {func}({params}) -> dict[str, Any]:\n"
        f'    """Describe what {name} does, for the model."""\n'
        f"    ..."
    )
