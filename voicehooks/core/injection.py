"""What a user function receives, chosen by its annotations.

A handler or tool asks for things by annotating its parameters: the typed event (or its base
``Event``), a ``CallContext``, for tools the single ``ToolCall``, and any type a higher layer
made injectable (``LiveCall``: commands into the live call). Parameter *names* never matter.
``CallContext | None`` says the function also works without a call: a webhook delivery still
fills it, and a caller that has no call (an MCP client, ``voicehooks.mcp``) passes ``None``.
The plan is made once, at registration; a request only fills it in. How the function is then
called (threads, deadlines) is ``running``'s business.

The core knows no injectable type of the layers above it: ``injectable(LiveCall)`` is called
where ``LiveCall`` is defined, and whoever fills a plan passes how to build each such value.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import msgspec

from .events import Event, ToolCall, delivery_id

__all__ = ["CallContext", "Injection", "Providers", "fill", "injectable", "plan_injections"]

T = TypeVar("T", bound=type)

_injectable: set[type] = set()

Providers = Mapping[type, Callable[[Event], Any]]
"""How to build each injectable type's value for an event (``fill``'s ``provided``)."""


def injectable(cls: T) -> T:
    """Let user functions ask for ``cls`` by annotation; ``fill`` is then given its provider."""
    _injectable.add(cls)
    return cls


class CallContext(msgspec.Struct, frozen=True):
    """The call an event belongs to, for handlers and tools that do not need the whole event.

    Annotate a parameter with ``CallContext`` to receive it.

    ``delivery_id`` is stable across redeliveries of the same work (the same tool call, or the
    same informational event): a ready idempotency key for side effects. ``attempt`` counts
    runs of background work from 1 (durable mode retries); ``is_replay`` is true for a
    delivery replayed from the development inspector.
    """

    call_id: str
    call_type: str
    call_status: str
    customer_number: str | None
    phone_number: str | None
    assistant_metadata: dict[str, Any]
    delivery_id: str = ""
    attempt: int = 1
    is_replay: bool = False

    @classmethod
    def from_event(
        cls,
        event: Event,
        tool_call: ToolCall | None = None,
        *,
        attempt: int = 1,
        is_replay: bool = False,
    ) -> CallContext:
        """Build the context of ``event``'s call (and of ``tool_call``, for a tool)."""
        call = event.call
        return cls(
            call_id=call.id,
            call_type=call.type,
            call_status=call.status,
            customer_number=event.customer.number,
            phone_number=event.phone_number.number,
            assistant_metadata=event.metadata,
            delivery_id=delivery_id(event, tool_call),
            attempt=attempt,
            is_replay=is_replay,
        )


Source = Literal["event", "context", "tool_call", "provided"]


@dataclass(frozen=True, slots=True)
class Injection:
    """One parameter filled from the request rather than from the model's arguments.

    ``provided`` is the injectable type of a ``"provided"`` source.
    """

    parameter: str
    source: Source
    provided: type | None = None
    optional: bool = False  # ``CallContext | None``: the function works without a call


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
        optional = _is_optional_context(annotation)
        source = "context" if optional else _source_of(annotation, event_type, tool)
        if source is not None:
            provided = annotation if source == "provided" else None
            injections.append(Injection(parameter.name, source, provided, optional))
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
    if annotation in _injectable:
        return "provided"
    if tool and annotation is ToolCall:
        return "tool_call"
    if issubclass(annotation, Event) and issubclass(event_type, annotation):
        return "event"
    return None


def _is_optional_context(annotation: Any) -> bool:
    """``CallContext | None`` (or ``Optional[CallContext]``), and no other union."""
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return False
    return set(typing.get_args(annotation)) == {CallContext, type(None)}


def _explain(
    function: str, parameter: str, annotation: Any, event_type: type[Event], tool: bool
) -> str:
    names = sorted(cls.__name__ for cls in _injectable)
    wanted = ", ".join(
        [event_type.__name__, "CallContext", *names, *(["ToolCall"] if tool else [])]
    )
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
    *,
    attempt: int = 1,
    is_replay: bool = False,
    provided: Providers,
) -> dict[str, Any]:
    """Build the keyword arguments for ``injections`` from one request.

    ``provided`` builds the value of each injectable type (see ``injectable``).
    """
    kwargs: dict[str, Any] = {}
    for injection in injections:
        if injection.source == "event":
            kwargs[injection.parameter] = event
        elif injection.source == "context":
            kwargs[injection.parameter] = CallContext.from_event(
                event, tool_call, attempt=attempt, is_replay=is_replay
            )
        elif injection.provided is not None:
            kwargs[injection.parameter] = provided[injection.provided](event)
        else:
            kwargs[injection.parameter] = tool_call
    return kwargs
