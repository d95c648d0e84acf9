"""The registry: which functions answer which events and tools.

Each decorator is sugar over one ``add_*`` primitive, and each primitive validates what it is
given when it is given it: an unknown event name, a parameter the app cannot fill, an argument
type that cannot become a JSON Schema, a duplicate tool name or a second assistant-request
handler raises ``ConfigurationError`` at import time, never during a call.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, Unpack, overload

from voicehooks.core.events import EVENT_NAMES, Event, EventName
from voicehooks.core.exceptions import ConfigurationError
from voicehooks.core.injection import Injection, plan_injections
from voicehooks.core.logs import masked
from voicehooks.core.running import UserFunction
from voicehooks.live.control import LiveCall
from voicehooks.state.callstate import CallState
from voicehooks.tools.definition import Tool, ToolOptions, UnknownArguments

__all__ = ["ErrorHook", "Handler", "Registry", "Route", "UndeliveredHook"]

F = TypeVar("F", bound=Callable[..., Any])

UndeliveredHook = Callable[[Any], Any]
"""``hook(result: LateResult)``, sync or async: a late tool result that could not be spoken."""

ErrorHook = Callable[[BaseException, Event], Any]
"""``hook(exception, event)``, sync or async: sees every handler and tool exception."""

_INFORMATIONAL = ("status-update", "end-of-call-report")


@dataclass(frozen=True, slots=True)
class Handler:
    """A function registered for an event."""

    event: str
    fn: UserFunction
    injections: tuple[Injection, ...]
    run_before_answer: bool
    target: str
    """How a background job names this handler: ``handler:<module>:<qualname>``."""

    @property
    def function(self) -> Callable[..., Any]:
        """The user's function."""
        return self.fn.function

    def label(self, event: Event) -> str:
        """How the log names this handler at work on ``event`` (the call id masked)."""
        return f"{event.type} handler {self.fn.name} (call {masked(event.call.id)})"


@dataclass(frozen=True, slots=True)
class Route:
    """One row of ``Registry.routes()``: what is registered and the function it goes to."""

    kind: str  # "event" or "tool"
    name: str
    function: str
    note: str = ""


class Registry:
    """Handlers, tools and error hooks of one app. ``VoiceHooks`` is a ``Registry``."""

    def __init__(self) -> None:
        self.handlers: dict[str, list[Handler]] = {name: [] for name in EVENT_NAMES}
        self.tools: dict[str, Tool] = {}
        self.unknown_arguments: UnknownArguments = "ignore"
        """The tools' policy for arguments their definition lacks, unless a tool sets its own."""
        self.error_hooks: list[UserFunction] = []
        self.undelivered_hooks: list[UserFunction] = []
        # Whether a registration keeps state per call (a CallState parameter, a once_per_call
        # tool): only then does a report's end clear any, so an app without pays nothing.
        self.keeps_call_state = False

    # -- events -------------------------------------------------------------------------

    def add_handler(
        self, event: EventName, function: Callable[..., Any], *, run_before_answer: bool = False
    ) -> Handler:
        """Register ``function`` for ``event``.

        ``status-update`` and ``end-of-call-report`` handlers run after the 200 is sent, as
        background work the app owns; ``run_before_answer=True`` runs one before answering
        instead. An ``assistant-request`` handler (one at most) returns the answer. A
        ``tool-calls`` handler receives the calls no registered tool claims.

        Args:
            event: One of ``assistant-request``, ``tool-calls``, ``status-update``,
                ``end-of-call-report``.
            function: Sync or async; parameters annotated with the event type, ``Event`` or
                ``CallContext`` are filled in.
            run_before_answer: For informational events: run before the 200 goes out.

        Examples:
            >>> from voicehooks import VoiceHooks
            >>> app = VoiceHooks(verify_signatures=False)
            >>> def on_status() -> None: ...
            >>> app.add_handler("status-update", on_status).event
            'status-update'
        """
        event_type = EVENT_NAMES.get(event)
        name = getattr(function, "__qualname__", repr(function))
        if event_type is None:
            raise ConfigurationError(
                f"{name}: unknown event {event!r}; use one of {', '.join(EVENT_NAMES)}"
            )
        if not callable(function):
            raise ConfigurationError(f"{name!r} is not callable")
        if event == "assistant-request" and self.handlers[event]:
            first = self.handlers[event][0].function.__qualname__
            raise ConfigurationError(
                f"{name}: {first} already answers assistant-request; an inbound call gets one "
                "configuration, so register one handler and branch inside it"
            )
        if run_before_answer and event not in _INFORMATIONAL:
            raise ConfigurationError(
                f"{name}: run_before_answer applies to {' and '.join(_INFORMATIONAL)}; "
                f"{event} handlers always run before the answer"
            )
        try:
            injections, _, _ = plan_injections(function, event_type, tool=False)
        except TypeError as exc:
            raise ConfigurationError(str(exc)) from None
        handler = Handler(
            event,
            UserFunction(function),
            injections,
            run_before_answer,
            "handler:" + _qualified(function),
        )
        self.handlers[event].append(handler)
        self._note_call_state(injections)
        return handler

    def on(
        self, event: EventName | None = None, /, *, run_before_answer: bool = False
    ) -> Callable[[F], F]:
        """Decorator form of ``add_handler``.

        Examples:
            >>> from voicehooks import VoiceHooks
            >>> from voicehooks.core.events import StatusUpdate
            >>> app = VoiceHooks(verify_signatures=False)
            >>> @app.on("status-update")
            ... async def on_status(event: StatusUpdate) -> None: ...
        """
        if event is None or callable(event):
            # A bare @app.on would otherwise register nothing and replace the function.
            name = getattr(event, "__qualname__", "the handler")
            raise ConfigurationError(
                f'@app.on needs the event name: write @app.on("end-of-call-report") above '
                f"{name} (one of {', '.join(EVENT_NAMES)})"
            )

        def register(function: F) -> F:
            self.add_handler(event, function, run_before_answer=run_before_answer)
            return function

        return register

    # -- tools --------------------------------------------------------------------------

    def add_tool(
        self, function: Callable[..., Any], name: str | None = None, **options: Unpack[ToolOptions]
    ) -> Tool:
        """Register ``function`` as the tool ``name`` (default: the function's name).

        Parameters annotated ``ToolCalls``, ``ToolCall`` or ``CallContext`` are filled in;
        the others are the model's arguments, decoded and validated against their types.

        Args:
            function: Sync or async. Its docstring's first paragraph is the description and
                its Google-style ``Args:`` lines describe the parameters.
            name: The name the model calls.
            **options: The tool's options, below (``ToolOptions``).

        Other Parameters:
            description (str | None): Overrides the docstring.
            timeout_seconds (float | None): This tool's deadline; the app's
                ``tool_timeout_seconds`` if None.
            fire_and_forget (bool): The platform's ``async: true``: answer at once, run
                afterwards.
            async_response (str | None): With ``fire_and_forget``, what the assistant says
                meanwhile.
            url (str | None): This tool's own webhook URL in ``tool_definitions``.
            deduplicate (bool): ``False`` runs a redelivered call again instead of answering
                it with the first run's result; no effect when the app does not deduplicate.
            interim (str | None): What this call answers if the tool has not finished after
                ``interim_after_seconds``; the tool keeps running (deadline
                ``timeout_seconds``, default 60 s) and its result is spoken into the call
                with ``inject-context`` when it ends. Needs the platform API key.
            interim_after_seconds (float): When to answer with ``interim`` (default 5 s,
                below 10).
            inject_result (bool): With ``fire_and_forget``, speak the result into the call
                too.
            unknown_arguments (str): ``"ignore"`` drops arguments the definition does not
                have; ``"forbid"`` answers the model an error naming the nearest parameter.
                Default: the app's ``unknown_arguments``.
            once_per_call (bool): Run once per intent: within one call, a call whose
                arguments (decoded and coerced, compared in a canonical form) equal an
                earlier call's gets the earlier answer, whatever its tool-call id, and a
                repeat while the first still runs waits for it. Only successes are
                remembered. For tools that book, pay, order, send or create.
            key (Callable | None): With ``once_per_call``, what defines the intent instead of
                all the arguments: ``key(arguments, context)`` gets the argument Struct (or
                ``None`` without arguments) and the ``CallContext``, and returns any
                msgspec-encodable value, e.g. ``(args.date, args.time)``.
            key_ttl_seconds (float | None): With ``key``, remember the intent beyond the
                call, for this long: the key alone (not the call) then says what is the
                same intent, so include what scopes it, e.g. ``context.customer_number``.

        Examples:
            >>> from voicehooks import VoiceHooks
            >>> app = VoiceHooks(verify_signatures=False)
            >>> def status(order_number: str) -> dict[str, str]:
            ...     '''Return a repair's status.'''
            ...     return {"status": "ready"}
            >>> app.add_tool(status).name
            'status'
        """
        options.setdefault("unknown_arguments", self.unknown_arguments)
        try:
            tool = Tool.from_function(function, name, **options)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(str(exc)) from None
        existing = self.tools.get(tool.name)
        if existing is not None:
            raise ConfigurationError(
                f"tool {tool.name!r} is already registered to {existing.function.__qualname__}; "
                "pick another name with @app.tool('other_name')"
            )
        self.tools[tool.name] = tool
        self._note_call_state(tool.injections, tool.once_per_call)
        return tool

    @overload
    def tool(self, function: F, /) -> F: ...
    @overload
    def tool(
        self, name: str | None = None, /, **options: Unpack[ToolOptions]
    ) -> Callable[[F], F]: ...
    def tool(
        self, name: str | Callable[..., Any] | None = None, /, **options: Unpack[ToolOptions]
    ) -> Any:
        """Decorator form of ``add_tool``; usable bare (``@app.tool``) or called.

        Examples:
            >>> from voicehooks import VoiceHooks
            >>> app = VoiceHooks(verify_signatures=False)
            >>> @app.tool("check_repair_status")
            ... async def status(order_number: str) -> dict[str, str]:
            ...     '''Return the repair status for a work order number.'''
            ...     return {"status": "ready for pickup"}
        """
        if callable(name):
            self.add_tool(name, **options)
            return name

        def register(function: F) -> F:
            self.add_tool(function, name, **options)
            return function

        return register

    def tool_definitions(self, url: str | None = None) -> list[dict[str, Any]]:
        """The registered tools as the assistant's ``llm_config.tools[]`` entries.

        Args:
            url: The URL the platform should call, used for tools without their own.
        """
        return [tool.definition(url) for tool in self.tools.values()]

    # -- errors -------------------------------------------------------------------------

    def add_error_hook(self, hook: ErrorHook) -> ErrorHook:
        """Call ``hook(exception, event)`` for every exception a handler or tool raises.

        For error trackers. ``ToolError`` is an answer, not a failure, and is not reported.
        A hook's own exception is logged and swallowed.
        """
        if not callable(hook):
            raise ConfigurationError(f"{hook!r} is not callable")
        if len(inspect.signature(hook).parameters) != 2:
            raise ConfigurationError("an error hook takes two arguments: (exception, event)")
        self.error_hooks.append(UserFunction(hook))
        return hook

    def remove_error_hook(self, hook: ErrorHook) -> None:
        """Unregister ``hook``; nothing happens if it is not registered."""
        self.error_hooks[:] = [fn for fn in self.error_hooks if fn.function is not hook]

    def on_error(self, hook: F | None = None, /) -> F:
        """Decorator form of ``add_error_hook``.

        Examples:
            >>> from voicehooks import VoiceHooks
            >>> app = VoiceHooks(verify_signatures=False)
            >>> @app.on_error
            ... def report(exc: BaseException, event: object) -> None: ...
        """
        if hook is None:
            raise ConfigurationError("write @app.on_error without parentheses")
        self.add_error_hook(hook)
        return hook

    def add_undelivered_result_hook(self, hook: UndeliveredHook) -> UndeliveredHook:
        """Call ``hook(result)`` for each late tool result that could not be delivered.

        ``result`` is a ``LateResult``: the call, the tool, the text and why (``reason``:
        ``"call_ended"``, ``"rate_limited"``, ``"failed"``, ``"overloaded"``). Sync or async;
        its own exception is logged and swallowed.
        """
        if not callable(hook):
            raise ConfigurationError(f"{hook!r} is not callable")
        if len(inspect.signature(hook).parameters) != 1:
            raise ConfigurationError("an undelivered-result hook takes one argument: (result)")
        self.undelivered_hooks.append(UserFunction(hook))
        return hook

    def on_undelivered_result(self, hook: F) -> F:
        """Decorator form of ``add_undelivered_result_hook``.

        Example:
            >>> from voicehooks import LateResult, VoiceHooks
            >>> app = VoiceHooks(verify_signatures=False)
            >>> @app.on_undelivered_result
            ... async def call_back(result: LateResult) -> None: ...
        """
        self.add_undelivered_result_hook(hook)
        return hook

    def _note_call_state(self, injections: tuple[Injection, ...], once: bool = False) -> None:
        if once or any(injection.provided is CallState for injection in injections):
            self.keeps_call_state = True

    @property
    def uses_call_control(self) -> bool:
        """Whether a registration needs the platform API: a ``LiveCall`` parameter, or a tool
        whose result may be spoken into the call later."""
        functions = [h.injections for hs in self.handlers.values() for h in hs]
        functions += [t.injections for t in self.tools.values()]
        return any(t.delivers_late for t in self.tools.values()) or any(
            i.provided is LiveCall for injections in functions for i in injections
        )

    # -- listing ------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        """Everything registered, events first, in registration order."""
        rows = [
            Route(
                "event",
                event,
                _qualified(h.function),
                "before answer" if h.run_before_answer else "",
            )
            for event, handlers in self.handlers.items()
            for h in handlers
        ]
        rows += [
            Route(
                "tool",
                t.name,
                _qualified(t.function),
                ", ".join(
                    note
                    for note, applies in (
                        ("fire-and-forget", t.fire_and_forget),
                        (f"interim after {t.interim_after_seconds:g} s", t.interim is not None),
                        ("result injected", t.inject_result),
                        ("not deduplicated", not t.deduplicate),
                        ("once per call", t.once_per_call),
                    )
                    if applies
                ),
            )
            for t in self.tools.values()
        ]
        return rows


def _qualified(function: Callable[..., Any]) -> str:
    module = getattr(function, "__module__", None) or "?"
    return f"{module}:{getattr(function, '__qualname__', repr(function))}"
