"""What a user function receives, chosen by its annotations, and how it is called.

A handler or tool asks for things by annotating its parameters: the typed event (or its base
``Event``), a ``CallContext``, and for tools the single ``ToolCall``. Parameter *names* never
matter. The plan is made once, at registration; a request only fills it in.

Sync functions run in a worker thread through anyio with the caller's capacity limiter, never
on the event loop. Detection happens once, at registration.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import typing
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import anyio.to_thread
import msgspec

from .events import Event, ToolCall
from .logs import describe

__all__ = [
    "CallContext",
    "Injection",
    "call_function",
    "call_with_deadline",
    "is_async_callable",
    "plan_injections",
]

_log = logging.getLogger("voicehooks")


class CallContext(msgspec.Struct, frozen=True):
    """The call an event belongs to, for handlers and tools that do not need the whole event.

    Annotate a parameter with ``CallContext`` to receive it.
    """

    call_id: str
    call_type: str
    call_status: str
    customer_number: str | None
    phone_number: str | None
    assistant_metadata: dict[str, Any]

    @classmethod
    def from_event(cls, event: Event) -> CallContext:
        """Build the context of ``event``'s call."""
        call = event.call
        return cls(
            call_id=call.id,
            call_type=call.type,
            call_status=call.status,
            customer_number=event.customer.number,
            phone_number=event.phone_number.number,
            assistant_metadata=event.metadata,
        )


Source = Literal["event", "context", "tool_call"]


@dataclass(frozen=True, slots=True)
class Injection:
    """One parameter filled from the request rather than from the model's arguments."""

    parameter: str
    source: Source


def plan_injections(
    function: Callable[..., Any],
    event_type: type[Event],
    *,
    tool: bool,
) -> tuple[tuple[Injection, ...], dict[str, inspect.Parameter], dict[str, Any]]:
    """Sort ``function``'s parameters into injections and (for tools) model arguments.

    Returns:
        The injections, the remaining parameters and their resolved annotations.

    Raises:
        TypeError: A parameter cannot be satisfied; the message says how to fix it.
    """
    name = getattr(function, "__qualname__", repr(function))
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception as exc:  # NameError and friends from unresolvable string annotations
        raise TypeError(f"cannot resolve the annotations of {name}: {exc}") from exc
    try:
        parameters = inspect.signature(function).parameters.values()
    except ValueError:  # some builtins and C callables do not expose one
        raise TypeError(f"cannot read the signature of {name}; wrap it in a def") from None
    injections: list[Injection] = []
    arguments: dict[str, inspect.Parameter] = {}
    for parameter in parameters:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            raise TypeError(f"{name} takes *{parameter.name}; list each parameter explicitly")
        if parameter.kind is parameter.POSITIONAL_ONLY:
            raise TypeError(f"{name}: parameter {parameter.name!r} must not be positional-only")
        annotation = hints.get(parameter.name, inspect.Parameter.empty)
        source = _source_of(annotation, event_type, tool)
        if source is not None:
            injections.append(Injection(parameter.name, source))
        elif tool and annotation is not inspect.Parameter.empty:
            arguments[parameter.name] = parameter
        else:
            raise TypeError(_explain(name, parameter.name, annotation, event_type, tool))
    return tuple(injections), arguments, hints


def _source_of(annotation: Any, event_type: type[Event], tool: bool) -> Source | None:
    if not isinstance(annotation, type):
        return None
    if annotation is CallContext:
        return "context"
    if tool and annotation is ToolCall:
        return "tool_call"
    if issubclass(annotation, Event) and issubclass(event_type, annotation):
        return "event"
    return None


def _explain(
    function: str, parameter: str, annotation: Any, event_type: type[Event], tool: bool
) -> str:
    wanted = f"{event_type.__name__}, CallContext" + (", ToolCall" if tool else "")
    if annotation is inspect.Parameter.empty:
        what = "has no annotation"
    else:
        what = f"is annotated {getattr(annotation, '__name__', annotation)!r}"
    hint = "; a tool argument needs a type" if tool else ""
    return (
        f"{function}: parameter {parameter!r} {what}. "
        f"Annotate it with one of {wanted} to have it filled in{hint}."
    )


def fill(
    injections: tuple[Injection, ...],
    event: Event,
    tool_call: ToolCall | None = None,
) -> dict[str, Any]:
    """Build the keyword arguments for ``injections`` from one request."""
    kwargs: dict[str, Any] = {}
    for injection in injections:
        if injection.source == "event":
            kwargs[injection.parameter] = event
        elif injection.source == "context":
            kwargs[injection.parameter] = CallContext.from_event(event)
        else:
            kwargs[injection.parameter] = tool_call
    return kwargs


def is_async_callable(function: Any) -> bool:
    """Whether calling ``function`` returns an awaitable (sees through ``functools.partial``)."""
    while isinstance(function, functools.partial):
        function = function.func
    if inspect.iscoroutinefunction(function):
        return True
    # A callable object: look at its __call__ method.
    return not inspect.isroutine(function) and inspect.iscoroutinefunction(type(function).__call__)


async def call_function(
    function: Callable[..., Any],
    is_async: bool,
    kwargs: Mapping[str, Any],
    limiter: anyio.CapacityLimiter,
    label: str,
) -> Any:
    """Call a user function: awaited if async, in a worker thread if sync.

    A sync function cannot be interrupted. If the awaiting side is cancelled (a deadline or
    shutdown) the thread is abandoned: it runs to its end, and what it returns or raises then
    is logged and discarded.
    """
    if is_async:
        result: Awaitable[Any] = function(**kwargs)
        return await result
    abandoned = False

    def run() -> Any:
        try:
            value = function(**kwargs)
        except Exception as exc:
            if abandoned:
                _log.error("%s raised after it was abandoned: %s", label, describe(exc))
            raise
        if abandoned:
            _log.warning("%s finished after it was abandoned; its result was discarded", label)
        return value

    try:
        return await anyio.to_thread.run_sync(run, limiter=limiter, abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():
        abandoned = True
        raise


async def call_with_deadline(
    function: Callable[..., Any],
    is_async: bool,
    kwargs: Mapping[str, Any],
    limiter: anyio.CapacityLimiter,
    label: str,
    timeout_seconds: float,
) -> tuple[bool, Any]:
    """Call a user function under a deadline; return ``(True, value)`` or ``(False, None)``.

    On asyncio an async function's first step runs at once, the way Python 3.12's eager tasks
    start: one that answers without ever waiting (a cache hit, a computation) needs no timer,
    and arming one costs several microseconds on a busy loop's timer heap. Only a function
    that suspends gets a deadline, and it is an ``asyncio.timeout`` rather than an anyio
    cancel scope because it is entered after the function's first step: anyio scopes must
    nest strictly, and that step may have opened scopes or task groups of its own.
    """
    if not is_async:
        with anyio.move_on_after(timeout_seconds):
            return True, await call_function(function, False, kwargs, limiter, label)
        return False, None
    try:
        asyncio.current_task()
    except RuntimeError:  # another anyio backend (trio): the plain structured way
        with anyio.move_on_after(timeout_seconds):
            return True, await function(**kwargs)
        return False, None
    coroutine: Coroutine[Any, Any, Any] = function(**kwargs)
    try:
        suspended_at = coroutine.send(None)
    except StopIteration as finished:
        return True, finished.value
    deadline = asyncio.timeout(timeout_seconds)
    try:
        async with deadline:
            return True, await _Resume(coroutine, suspended_at)
    except TimeoutError:
        if deadline.expired():
            return False, None
        raise  # the function's own TimeoutError


class _Resume:
    """Awaits a coroutine that has already run up to its first suspension.

    It hands what the coroutine yielded to the event loop, then relays what the loop sends or
    throws (a cancellation included) until the coroutine returns: the same protocol ``await``
    follows, picked up one step late.
    """

    __slots__ = ("_coroutine", "_yielded")

    def __init__(self, coroutine: Coroutine[Any, Any, Any], yielded: Any) -> None:
        self._coroutine = coroutine
        self._yielded = yielded

    def __await__(self) -> Generator[Any, Any, Any]:
        coroutine, yielded = self._coroutine, self._yielded
        while True:
            try:
                sent = yield yielded
            except BaseException as thrown:
                try:
                    yielded = coroutine.throw(thrown)
                except StopIteration as finished:
                    return finished.value
            else:
                try:
                    yielded = coroutine.send(sent)
                except StopIteration as finished:
                    return finished.value
