"""Reaching back into a live call: ``LiveCall``, the per-call command limit, ``CallControl``.

The platform takes at most 10 call-control commands per minute per call and answers the 11th
with 429 (PLATFORM.md §7). voicehooks keeps that limit rather than hitting it:
``CommandLimiter`` paces every command attempt through a token bucket kept in the app's
duplicate store (``DeliveryStore.take_token``), so the limit holds across every worker that
shares the store (Redis) and within one process otherwise (memory). Each token comes back one
window after it was taken, 5 % late: the platform counts arrival times, and a command that
travelled slower than the one before it must not land inside the platform's window. A
command that finds no token waits for one while its deadline allows, else it raises
``RateLimited``; a store fault lets the command go unpaced (the 429 is the backstop).

``LiveCall`` is what a handler or tool gets by annotation: the commands, bound to its call.
``CallControl`` is the app's one way back into its calls: the API client, its limiter, the
late results of slow tools and the runs that produce them (``voicehooks.live.interim``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import anyio
import msgspec

from voicehooks.core.events import call_scope
from voicehooks.core.exceptions import ConfigurationError, StoreError
from voicehooks.core.injection import injectable
from voicehooks.core.logs import describe, masked
from voicehooks.core.running import Threads, UserFunction, run_hooks
from voicehooks.core.tasks import TaskOwner
from voicehooks.state.stores import DeliveryStore, MemoryStore

from .api import PlatformClient, RateLimited
from .interim import InterimRuns, LateResult, LateResults

if TYPE_CHECKING:
    from voicehooks.core.events import Event

__all__ = [
    "CallControl",
    "CommandLimit",
    "CommandLimiter",
    "DEFAULT_COMMAND_LIMIT",
    "LiveCall",
]

_log = logging.getLogger("voicehooks")

_LATE: Final = 1.05  # tokens come back 5 % after their window (see the module docstring)


@dataclass(frozen=True, slots=True)
class CommandLimit:
    """The platform's call-control limit: ``commands`` per ``window_seconds`` per call.

    Change it only to match a platform that documents another limit, or in tests, together
    with ``FakePlatform(window_seconds=...)``.
    """

    commands: int = 10
    window_seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.commands < 1 or self.window_seconds <= 0:
            raise ConfigurationError("CommandLimit needs commands >= 1 and window_seconds > 0")


DEFAULT_COMMAND_LIMIT: Final = CommandLimit()
"""The documented limit: 10 call-control commands per 60 s per call."""


class CommandLimiter:
    """Paces call-control commands per call through the store's token buckets.

    Args:
        store: Where the buckets live; the app's duplicate store.
        limit: The limit to keep.
    """

    def __init__(self, store: DeliveryStore, limit: CommandLimit = DEFAULT_COMMAND_LIMIT) -> None:
        self.store = store
        self.limit = limit
        self._warned = False

    async def acquire(self, call_id: str, deadline: float) -> None:
        """Return when a command for ``call_id`` may go; see ``api.CommandPacer``.

        Raises:
            RateLimited: No token comes back before ``deadline`` (monotonic seconds).
        """
        window = self.limit.window_seconds * _LATE
        while True:
            try:
                wait = await self.store.take_token(
                    "control:" + call_scope(call_id), self.limit.commands, window
                )
            except StoreError as exc:
                if not self._warned:
                    self._warned = True
                    _log.warning("call-control pacing is off while the store fails: %s", exc)
                return
            if wait <= 0:
                return
            if time.monotonic() + wait > deadline:
                raise RateLimited(
                    f"no call-control slot for call {masked(call_id)} before the deadline "
                    f"({self.limit.commands} per {self.limit.window_seconds:g} s)",
                    retry_after_seconds=wait,
                )
            await anyio.sleep(wait)


@injectable
class LiveCall:
    """Call-control commands for the call a handler or tool is serving.

    Annotate a parameter with ``LiveCall`` to receive one; the app then needs an API key
    (``VOICEHOOKS_API_KEY``) at startup. Commands keep the platform's limit of 10 per minute
    per call, waiting for a free slot up to the client's deadline (5 s).

    Raises (every method):
        CallEnded: The call is no longer live.
        RateLimited: No slot before the deadline, or the platform said 429 throughout.
        Unauthorized: The API key is refused.
        PlatformUnavailable: The platform failed or did not answer within the deadline.
        OutcomeUnknown: A ``PlatformUnavailable`` after which the command may still have been
            carried out (a gateway error, a timeout); it was not sent again.

    Example:
        >>> from voicehooks import LiveCall, VoiceHooks
        >>> app = VoiceHooks(verify_signatures=False)
        >>> @app.tool
        ... async def escalate(reason: str, call: LiveCall) -> str:
        ...     '''Hand the caller to a person.'''
        ...     await call.transfer("+31201234567", message="I'll put you through now.")
        ...     return "transferring"
    """

    __slots__ = ("_api", "call_id")

    def __init__(self, call_id: str, api: PlatformClient) -> None:
        self.call_id = call_id
        self._api = api

    def __repr__(self) -> str:
        return f"LiveCall({self.call_id!r})"

    async def inject_context(self, text: str, trigger_response: bool = False) -> None:
        """Add ``text`` to the model's context; with ``trigger_response`` it speaks about it."""
        await self._api.inject_context(self.call_id, text, trigger_response)

    async def say(self, text: str, end_after: bool = False) -> None:
        """Have the assistant say ``text`` verbatim; hang up afterwards if ``end_after``."""
        await self._api.say(self.call_id, text, end_after)

    async def transfer(self, number: str, message: str | None = None) -> None:
        """Transfer the call to ``number``, after saying ``message`` if given."""
        await self._api.transfer(self.call_id, number, message)

    async def end(self, message: str | None = None) -> None:
        """End the call, after saying ``message`` if given."""
        await self._api.end_call(self.call_id, message)


class CallControl:
    """The app's way back into its live calls; ``VoiceHooks`` makes one (``app.call_control``).

    Args:
        api: The platform client; a ``PlatformClient()`` from the environment if ``None``.
            Unless it has a pacer already, it is paced by a ``CommandLimiter`` on ``store``.
        store: Where rate-limit tokens and once-only claims live (a ``MemoryStore`` if
            ``None``: the app does not deduplicate).
        limit: The per-call command limit to keep.
        hooks: The app's ``on_undelivered_result`` hooks (the registry's own list).
        threads: Where sync hooks run.
        tasks: The app's task owner, for slow tools that go on after their interim answer.
    """

    def __init__(
        self,
        api: PlatformClient | None,
        store: DeliveryStore | None,
        limit: CommandLimit,
        hooks: list[UserFunction],
        threads: Threads,
        tasks: TaskOwner,
    ) -> None:
        self.store = store if store is not None else MemoryStore()
        self.api = api if api is not None else PlatformClient()
        if self.api.pacer is None:
            self.api.pacer = CommandLimiter(self.store, limit)
        self.late = LateResults(self.api, self.store, self._undelivered)
        self.runs = InterimRuns(tasks)
        self._hooks = hooks
        self._threads = threads
        self._warned_xai = False

    @property
    def in_flight(self) -> list[str]:
        """A label for every slow tool still running after its interim answer."""
        return self.runs.in_flight

    def live_call(self, call_id: str) -> LiveCall:
        """The commands for ``call_id``."""
        return LiveCall(call_id, self.api)

    @asynccontextmanager
    async def running(self, needed: bool) -> AsyncIterator[None]:
        """Open the client for the block (if ``needed``) and close it after.

        Raises:
            ConfigurationError: ``needed`` and no API key; the message names the variable.
        """
        if needed:
            await self.api.open()
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                await self.api.aclose()

    async def deliver(
        self, event: Event, tool_call_id: str, tool: str, answer: msgspec.Raw
    ) -> None:
        """Speak ``answer`` (a tool's encoded result) into ``event``'s call, once; never raises."""
        if event.call.pipeline == "xai_realtime" and not self._warned_xai:
            self._warned_xai = True
            _log.warning(
                "injecting a late result into an xai_realtime call: the platform documents "
                "inject-context as unreliable on that pipeline"
            )
        value = msgspec.json.decode(answer)
        text = value if isinstance(value, str) else bytes(answer).decode()
        try:
            await self.late.deliver(LateResult(event.call.id, tool_call_id, tool, text))
        except Exception as exc:  # a bug here must not end the task that owns the run
            _log.error("delivering a late result of %s failed: %s", tool, describe(exc))

    async def _undelivered(self, result: LateResult) -> None:
        await run_hooks(self._hooks, self._threads, "undelivered-result hook", result)
