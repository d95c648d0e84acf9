"""Answering a ``tool-calls`` delivery: ``ToolCallsAnswerer``, which the dispatcher holds.

Every call runs concurrently under its deadline, isolated from the others' failures, on the
live threads; the answer is always the object format, one entry per call, in request order
(PLATFORM.md 8 rows 12, 13 and 15). A fire-and-forget call is answered at once and becomes a
job; an interim tool that is still running at ``interim_after_seconds`` is answered with its
interim text and its result is delivered into the call later (``voicehooks.live.interim``). A call
to a tool nobody registered gets an error result, or goes to the raw ``tool-calls`` handler.

A fire-and-forget job is admitted by the app's ``JobSink`` before the call is answered
``started``, so that a full queue answers the model with an error instead of losing the job.

What a tool returns. A tool may return any JSON-encodable value or answer in one of the
platform's four formats (PLATFORM.md 4.3). ``normalize_result`` reads a returned value as:

* ``ToolResult(x)``: ``x`` exactly as given, never read as a format;
* a dict whose only key is ``"result"``: the simple format, its value is the result;
* a dict whose only key is ``"error"`` with a string value: the error format;
* a dict whose only key is ``"results"`` with a list value: the object format;
* anything else: the direct format, the value itself.

So a dict with exactly one of those keys is read as a wrapper; wrap it in ``ToolResult`` to
send it literally. ``results_from_response`` runs the other way: given any of the four
response bodies and the call ids, it returns the per-call results (the raw ``tool-calls``
handler's answer; the test client and the CLI read answers with it too).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Final

import anyio
import msgspec

from voicehooks.core.events import Event, ToolCall, ToolCalls, decode_delivery
from voicehooks.core.exceptions import ToolError, Unavailable
from voicehooks.core.injection import CallContext, Providers, fill
from voicehooks.core.logs import UnknownNames, loggable, masked
from voicehooks.core.records import Delivery, ToolOutcome, ToolRun
from voicehooks.core.running import HungThreads, Threads, run_concurrently, within
from voicehooks.live.control import CallControl
from voicehooks.live.interim import Busy
from voicehooks.observe.observers import ObserverSet
from voicehooks.state.dedupe import (
    IN_FLIGHT_MARGIN_SECONDS,
    Deduplicator,
    DeliveryClaims,
    intent_key,
)
from voicehooks.tools.definition import INTERIM_TIMEOUT_SECONDS, ArgumentError, Tool, stub_for
from voicehooks.tools.models import encode_model
from voicehooks.tools.sensitive import Tokens, mask_body
from voicehooks.work.jobs import Job, JobSink

from .routing import Registry

__all__ = [
    "Report",
    "STILL_WORKING",
    "Settle",
    "ToolCallsAnswerer",
    "ToolResult",
    "error_result",
    "normalize_result",
    "results_from_response",
]

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
STILL_WORKING = (
    "The tool {name} is still working on this same request from earlier. Tell the caller it "
    "is in progress. Do not call {name} again for it."
)

# enc_hook: msgspec calls it only for a type it does not know (a pydantic model a tool returns)
_canonical = msgspec.json.Encoder(order="sorted", enc_hook=encode_model).encode

_EMPTY_RAW: Final = msgspec.Raw(b"{}")
_UNDECODED: Final[Any] = object()

Settle = Callable[[msgspec.Raw, bool], Awaitable[None]]
"""Tells a once-per-call tool's intent its real answer, and whether to remember it."""


class _Entry(msgspec.Struct):
    tool_call_id: str
    result: msgspec.Raw


class _Answer(msgspec.Struct):
    results: list[_Entry]


Report = Callable[[BaseException, Event, Threads, "str | None"], Awaitable[None]]
"""Logs a failure of what ``label`` names, if given, and shows it to the app's error hooks
(``Dispatcher.report``)."""


class ToolCallsAnswerer:
    """Answers ``tool-calls`` deliveries with the registry's tools.

    Args:
        registry: The tools, and the raw ``tool-calls`` handler for the calls none claims.
        tool_timeout_seconds: The app-wide tool deadline (a tool may set its own).
        threads: The live threads, for sync tools.
        deduplicator: Once-only processing, or ``None``.
        observers: Told about every tool call.
        sink: Admits fire-and-forget jobs.
        control: The way back into live calls, for interim tools; ``None`` without one.
        provided: How to build injectable values (``LiveCall``, ``CallState``).
        report: Shows a failure to the app's error hooks.
        intents: The single flight of ``once_per_call`` tools, on the app's store.
        tokens: The tokens of ``Sensitive`` arguments.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        tool_timeout_seconds: float,
        threads: Threads,
        deduplicator: Deduplicator | None,
        observers: ObserverSet,
        sink: JobSink,
        control: CallControl | None,
        provided: Providers,
        report: Report,
        intents: Deduplicator,
        tokens: Tokens,
    ) -> None:
        self.registry = registry
        self.tokens = tokens
        self.tool_timeout_seconds = tool_timeout_seconds
        self.live_threads = threads
        self.deduplicator = deduplicator
        self.observers = observers
        self.sink = sink
        self.control = control
        self.provided = provided
        self.report = report
        self.intents = intents
        self._encode = msgspec.json.Encoder(enc_hook=encode_model).encode
        # Tool names the model made up, each warned about once and at most 10 a minute.
        self.unknown_tools = UnknownNames()

    async def answer(self, event: ToolCalls, delivery: Delivery) -> tuple[bytes, list[Job]]:
        """The answer to ``event`` (one result per call, in order) and its fire-and-forget jobs.

        Raises:
            Unavailable: The store failed with ``store_failure="reject"``.
        """
        claims = None
        if self.deduplicator is not None and not delivery.bypass_dedupe:
            covered, wait = self._covered(event)
            if covered:
                claims = await self.deduplicator.claim_calls(event, covered, wait)
        calls = event.tool_call_list
        tools = self.registry.tools
        jobs: list[Job] = []
        try:
            if len(calls) == 1 and calls[0].function.name in tools:
                # The common case: no list of work, no concurrency machinery at all.
                only = calls[0]
                result = await self._tool(
                    tools[only.function.name], only, event, delivery, jobs, claims
                )
                body = self._encode(_Answer([_Entry(only.id, result)]))  # no job with a mask
            else:
                body, jobs = await self._answer_all(event, delivery, jobs, claims)
        except BaseException:
            if claims is not None:
                with anyio.CancelScope(shield=True):  # a cancelled delivery frees its claims
                    await claims.settle(cut=True)
            raise
        if claims is not None:
            await claims.settle()
        return body, jobs

    def _covered(self, event: ToolCalls) -> tuple[list[ToolCall], float]:
        """The calls of ``event`` that duplicate suppression covers, and how long a duplicate
        of one of them may wait for the first answer: the longest of their waits."""
        tools = self.registry.tools
        covered: list[ToolCall] = []
        wait = 0.0
        for call in event.tool_call_list:
            tool = tools.get(call.function.name)
            if tool is not None and tool.deduplicate:
                covered.append(call)
                # A duplicate may wait as long as the platform does; an interim tool's first
                # run answers (with its interim text, at the latest) well within that.
                timeout = (
                    self.tool_timeout_seconds
                    if tool.interim is not None
                    else self._timeout_of(tool)
                )
                if timeout > wait:
                    wait = timeout
        return covered, wait

    async def _answer_all(
        self,
        event: ToolCalls,
        delivery: Delivery,
        jobs: list[Job],
        claims: DeliveryClaims | None,
    ) -> tuple[bytes, list[Job]]:
        """Every call at once; the raw ``tool-calls`` handler for the ones no tool claims."""
        calls = event.tool_call_list
        tools = self.registry.tools
        results: list[msgspec.Raw] = [_EMPTY_RAW] * len(calls)
        work: list[Callable[[], Coroutine[Any, Any, None]]] = [
            functools.partial(
                self._tool_into, results, i, tool, call, event, delivery, jobs, claims
            )
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
        if jobs and delivery.masks and delivery.body is not None:
            # Another call's fire-and-forget job carries the body: not the Sensitive values.
            masked = decode_delivery(mask_body(delivery.body, delivery.masks))
            jobs = [job._replace(event=masked) for job in jobs]
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
        claims: DeliveryClaims | None,
    ) -> None:
        results[i] = await self._tool(tool, call, event, delivery, jobs, claims)

    async def _tool(
        self,
        tool: Tool,
        call: ToolCall,
        event: ToolCalls,
        delivery: Delivery,
        jobs: list[Job],
        claims: DeliveryClaims | None,
    ) -> msgspec.Raw:
        run = ToolRun(tool.name, call.id, True)
        delivery.tools.append(run)
        observers = self.observers
        if observers.active:
            observers.tool_started(delivery, run)
        try:
            execute: Callable[[], Awaitable[tuple[msgspec.Raw, bool | None]]] = (
                functools.partial(self._once, tool, call, event, delivery, jobs, run)
                if tool.once_per_call
                else functools.partial(self._execute, tool, call, event, delivery, jobs, run)
            )
            if tool.sensitive:
                execute = self._masking(tool, call, delivery, execute)
            if claims is None or not tool.deduplicate:
                return (await execute())[0]
            answer = await claims.run(call, execute)
            if answer is None:
                _log.warning(
                    "tool %s (call %s): a duplicate delivery got no result from the first in time",
                    tool.name,
                    masked(event.call.id),
                )
                run.outcome = ToolOutcome.TIMEOUT
                return self.raw(error_result(TIMED_OUT.format(name=tool.name)))
            if not run.outcome:  # answered from the store: the first delivery ran it
                run.outcome = ToolOutcome.DUPLICATE
            return answer
        finally:
            run.end(run.outcome or ToolOutcome.FAILED)
            if observers.active:
                observers.tool_ended(delivery, run)

    def _masking(
        self,
        tool: Tool,
        call: ToolCall,
        delivery: Delivery,
        execute: Callable[[], Awaitable[tuple[msgspec.Raw, bool | None]]],
    ) -> Callable[[], Awaitable[tuple[msgspec.Raw, bool | None]]]:
        """Note the call's ``Sensitive`` values on the delivery, and mask them in the answer
        (so in what is remembered for duplicates) when the tool echoes one."""
        masks = self.tokens.of_arguments(bytes(call.function.arguments), tool.sensitive)
        if not masks:
            return execute
        if delivery.masks is None:
            delivery.masks = {}
        delivery.masks.update(masks)

        async def masked() -> tuple[msgspec.Raw, bool | None]:
            answer, keep = await execute()
            return msgspec.Raw(mask_body(bytes(answer), masks)), keep

        return masked

    async def answer_without_call(
        self, tool: Tool, call: ToolCall, event: ToolCalls, delivery: Delivery, timeout: float
    ) -> msgspec.Raw:
        """Run ``tool`` for a caller that has no platform call around it (an MCP client).

        The same decoding, errors and observation as a ``tool-calls`` delivery, but no
        duplicate suppression (nothing identifies a redelivery) and no jobs: only tools whose
        parameters need no call get here (``voicehooks.mcp.offered``), and an optional
        ``CallContext`` is ``None``. ``event`` is a stand-in without a call, for the error
        hooks and the log labels.
        """
        run = ToolRun(tool.name, call.id, True)
        delivery.tools.append(run)
        observers = self.observers
        if observers.active:
            observers.tool_started(delivery, run)
        try:
            try:
                kwargs = tool.bind(call)
            except ArgumentError as exc:
                return self._unusable(tool, event, run, exc)
            for injection in tool.injections:  # offered tools inject only an optional context
                kwargs[injection.parameter] = None
            answer, _, run.outcome = await self._call_tool(tool, call, event, kwargs, timeout)
            return answer
        finally:
            run.end(run.outcome or ToolOutcome.FAILED)
            if observers.active:
                observers.tool_ended(delivery, run)

    def _unusable(self, tool: Tool, event: Event, run: ToolRun, exc: ArgumentError) -> msgspec.Raw:
        _log.info("%s: unusable arguments", _tool_label(tool, event))
        run.outcome = ToolOutcome.INVALID_ARGUMENTS
        return self.raw(error_result(str(exc)))

    async def _once(
        self,
        tool: Tool,
        call: ToolCall,
        event: ToolCalls,
        delivery: Delivery,
        jobs: list[Job],
        run: ToolRun,
    ) -> tuple[msgspec.Raw, bool | None]:
        """Run a ``once_per_call`` tool once per intent (see ``voicehooks.state.dedupe``).

        The intent is the tool and its canonical arguments (or what its ``key`` returns),
        within the call unless ``key_ttl_seconds`` says otherwise. The first call runs; a
        repeat with another tool-call id gets its answer, waiting for it within its own
        deadline. Only an ``ok`` is remembered; an interim answer holds the claim until the
        late result settles it. Returns what ``_execute`` does, for delivery dedupe.
        """
        try:
            arguments = tool.decode(call)
            intent = (
                arguments
                if tool.key is None
                else tool.key(
                    arguments, CallContext.from_event(event, call, is_replay=delivery.is_replay)
                )
            )
            key = intent_key(
                None if tool.key_ttl_seconds is not None else event.call.id,
                tool.name,
                _canonical(intent),
            )
        except ArgumentError:
            return await self._execute(tool, call, event, delivery, jobs, run)
        except Exception as exc:  # the user's key function, or a key msgspec cannot encode
            await self.report(exc, event, self.live_threads, _tool_label(tool, event) + " key")
            run.outcome = ToolOutcome.FAILED
            return self.raw(error_result(FAILED.format(name=tool.name))), False
        ttl = tool.key_ttl_seconds
        kept: list[bool | None] = []

        async def first() -> tuple[msgspec.Raw, bool | None]:
            if ttl is None:  # a call's own intent: forgotten once its report is handled
                await self.intents.remember_intent(event.call.id, key)
            settle = functools.partial(self.intents.settle, key, event, ttl_seconds=ttl)
            answer, keep = await self._execute(
                tool, call, event, delivery, jobs, run, arguments, settle
            )
            kept.append(keep)
            if run.outcome == ToolOutcome.INTERIM:
                return answer, None  # the late result settles the intent
            return answer, run.outcome == ToolOutcome.OK

        answer = await self.intents.single_flight(
            key,
            event,
            tool.name,
            wait_seconds=self._timeout_of(tool),
            claim_seconds=self._run_timeout_of(tool) + IN_FLIGHT_MARGIN_SECONDS,
            execute=first,
            ttl_seconds=ttl,
            run_if_released=True,
        )
        if kept:  # this call ran the tool
            assert answer is not None  # the first run always has an answer
            return answer, kept[0]
        run.outcome = ToolOutcome.REPEAT
        if answer is not None:
            # Used again: remembered for another intent TTL from now (the issue's "after the
            # last use"), and still listed for the report to forget.
            await self.intents.settle(key, event, answer, True, ttl)
            if ttl is None:
                await self.intents.remember_intent(event.call.id, key)
            return answer, True
        # The first run is still going past this repeat's deadline: never a second run.
        _log.info("%s: repeated while its first run goes on", _tool_label(tool, event))
        still = tool.interim or STILL_WORKING.format(name=tool.name)
        return self.raw(still), False  # a redelivery may still get the real result

    async def _execute(
        self,
        tool: Tool,
        call: ToolCall,
        event: ToolCalls,
        delivery: Delivery,
        jobs: list[Job],
        run: ToolRun,
        arguments: Any = _UNDECODED,
        settle: Settle | None = None,
    ) -> tuple[msgspec.Raw, bool]:
        """Run ``tool`` once: its answer, and whether a duplicate delivery may be given it.

        ``False`` after an unexpected exception or a timeout: a redelivery may try again.
        Sets ``run.outcome``. ``arguments`` are the decoded ones if ``_once`` has them;
        ``settle`` hears an interim tool's late result.
        """
        try:
            if arguments is _UNDECODED:
                kwargs = tool.bind(call)
            else:
                kwargs = {} if arguments is None else msgspec.structs.asdict(arguments)
        except ArgumentError as exc:
            return self._unusable(tool, event, run, exc), True
        if tool.fire_and_forget:
            try:
                await self.sink.admit(event)
            except Unavailable:
                run.outcome = ToolOutcome.OVERLOADED
                return self.raw(error_result(BUSY.format(name=tool.name))), False
            jobs.append(Job(event, "tool:" + call.id, delivery.trace, delivery.is_replay))
            run.outcome = ToolOutcome.STARTED
            return self.raw(tool.async_response or {"status": "started"}), True
        if tool.injections:
            kwargs.update(
                fill(
                    tool.injections,
                    event,
                    call,
                    is_replay=delivery.is_replay,
                    provided=self.provided,
                )
            )
        if tool.interim is not None:
            return await self._with_interim(tool, call, event, kwargs, run, settle)
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
            return self.raw(error_result(str(exc))), True, ToolOutcome.ERROR
        except HungThreads:
            _log.warning(
                "%s: %d earlier calls are still running after their deadline; refusing a new "
                "one instead of starting another thread",
                _tool_label(tool, event),
                tool.fn.abandoned,
            )
            return (
                self.raw(error_result(BUSY.format(name=tool.name))),
                False,
                ToolOutcome.OVERLOADED,
            )
        except Exception as exc:
            await self.report(exc, event, self.live_threads, _tool_label(tool, event))
            return (
                self.raw(error_result(FAILED.format(name=tool.name))),
                False,
                ToolOutcome.FAILED,
            )
        if not finished:
            _log.warning("%s timed out after %.1f s", _tool_label(tool, event), timeout)
            return (
                self.raw(error_result(TIMED_OUT.format(name=tool.name))),
                False,
                ToolOutcome.TIMEOUT,
            )
        try:
            answer = msgspec.Raw(self._encode(normalize_result(value, call.id)))
        except (TypeError, ValueError, OverflowError) as exc:
            label = _tool_label(tool, event)
            kind = type(value).__name__
            _log.error("%s returned a %s that cannot be encoded as JSON", label, kind)
            await self.report(exc, event, self.live_threads, None)
            return (
                self.raw(error_result(NOT_JSON.format(name=tool.name))),
                True,
                ToolOutcome.FAILED,
            )
        return answer, True, ToolOutcome.OK

    async def _with_interim(
        self,
        tool: Tool,
        call: ToolCall,
        event: ToolCalls,
        kwargs: dict[str, Any],
        run: ToolRun,
        settle: Settle | None,
    ) -> tuple[msgspec.Raw, bool]:
        """Answer in time, or with the interim text while the tool goes on (``interim``)."""
        control = self.control
        assert control is not None  # the app makes one when a tool has an interim text
        label = _tool_label(tool, event)
        work = self._call_tool(tool, call, event, kwargs, self._run_timeout_of(tool))

        async def deliver(settled: tuple[msgspec.Raw, bool, str]) -> None:
            answer, _, outcome = settled
            _log.info("%s ended %s after its interim answer; delivering it", label, outcome)
            if settle is not None:  # a repeat from now on gets this result, not the interim
                await settle(answer, outcome == ToolOutcome.OK)
            await control.deliver(event, call.id, tool.name, answer)

        try:
            result = await control.runs.run(work, self._timeout_of(tool), deliver, label)
        except Busy:
            _log.warning("%s refused: too many slow tools are running", label)
            run.outcome = ToolOutcome.OVERLOADED
            return self.raw(error_result(BUSY.format(name=tool.name))), False
        if result is not None:
            answer, keep, run.outcome = result
            return answer, keep
        run.outcome = ToolOutcome.INTERIM
        return self.raw(tool.interim), True

    def _run_timeout_of(self, tool: Tool) -> float:
        """How long the tool itself may run (past its interim answer, for an interim tool)."""
        if tool.interim is not None:
            return tool.timeout_seconds or INTERIM_TIMEOUT_SECONDS
        return self._timeout_of(tool)

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
                results[i] = self.raw(error_result(UNKNOWN.format(name=call.function.name)))
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
                handler.injections, subset, is_replay=delivery.is_replay, provided=self.provided
            )
            budget = self.tool_timeout_seconds
            finished, body = await within(budget, handler.fn.call(self.live_threads, **kwargs))
        except ToolError as exc:
            finished, body, outcome = True, error_result(str(exc)), ToolOutcome.ERROR
        except Exception as exc:
            if not isinstance(exc, HungThreads):
                await self.report(exc, subset, self.live_threads, label)
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
                results[i] = self.raw(error_result(NOT_JSON.format(name=name)))
                run.end(ToolOutcome.FAILED)

    def _warn_unknown(self, call: ToolCall) -> None:
        if self.unknown_tools.first(call.function.name):
            _log.warning(
                "the model called tool '%s', which is not registered. To handle it, add:\n%s",
                loggable(call.function.name),
                stub_for(call),
            )

    def raw(self, value: Any) -> msgspec.Raw:
        """``value`` encoded as JSON, ready to place in an answer."""
        return msgspec.Raw(self._encode(value))


def _tool_label(tool: Tool, event: Event) -> str:
    # A call without a platform call is an MCP client's (answer_without_call).
    where = f"call {masked(event.call.id)}" if event.call.id else "over MCP"
    return f"tool {tool.name} ({where})"


def _first_leaf(group: BaseExceptionGroup[Unavailable]) -> Unavailable:
    first = group.exceptions[0]
    return first if isinstance(first, Unavailable) else _first_leaf(first)


class ToolResult(msgspec.Struct, frozen=True):
    """Send ``value`` as a tool's result exactly as it is, even a dict shaped like a format.

    Examples:
        >>> ToolResult({"error": "not an error, a field called error"}).value
        {'error': 'not an error, a field called error'}
    """

    value: Any


def error_result(message: str) -> dict[str, str]:
    """The per-call error result the platform passes to the model: ``{"error": message}``."""
    return {"error": message}


def normalize_result(value: Any, call_id: str) -> Any:
    """Return the result value a tool's return ``value`` stands for, for the call ``call_id``.

    An object-format answer (``{"results": [...]}``) is searched for ``call_id``; if it has no
    entry for it but holds exactly one, that one is taken.
    """
    if type(value) is dict and len(value) == 1:
        # A one-key dict is the only shape that can be a wrapper; anything else is direct.
        if "result" in value:
            return value["result"]
        error = value.get("error")
        if isinstance(error, str):
            return error_result(error)
        results = value.get("results")
        if isinstance(results, list):
            return _result_for(results, call_id, len(results) == 1)
    if type(value) is ToolResult:
        return value.value
    return value


def results_from_response(body: Any, call_ids: Sequence[str]) -> list[Any]:
    """Split a tool-calls response body in any of the four formats into per-call results.

    Args:
        body: The decoded JSON answer.
        call_ids: The ids of the calls the answer is for, in request order.

    Returns:
        One result per id, in the same order. An id the answer does not cover gets an error
        result saying so.

    Examples:
        >>> results_from_response({"results": [{"tool_call_id": "a", "result": 1}]}, ["a"])
        [1]
        >>> results_from_response({"error": "down"}, ["a", "b"])
        [{'error': 'down'}, {'error': 'down'}]
    """
    if isinstance(body, dict) and len(body) == 1:
        if isinstance(body.get("error"), str):
            return [error_result(body["error"])] * len(call_ids)
        results = body.get("results")
        if isinstance(results, list):
            return [_result_for(results, i, len(call_ids) == 1) for i in call_ids]
    if len(call_ids) == 1:
        return [normalize_result(body, call_ids[0])]
    message = "The answer did not say which call this result belongs to."
    return [error_result(message)] * len(call_ids)


def _result_for(results: list[Any], call_id: str, single: bool) -> Any:
    for entry in results:
        if isinstance(entry, dict) and entry.get("tool_call_id") == call_id:
            return entry.get("result")
    if single and len(results) == 1 and isinstance(results[0], dict):
        return results[0].get("result")
    return error_result("The answer had no result for this call.")
