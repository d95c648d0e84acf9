"""Reaching back into a live call: ``LiveCall``, the per-call command limit, late results.

The platform takes at most 10 call-control commands per minute per call and answers the 11th
with 429 (PLATFORM.md §7). voicehooks keeps that limit rather than hitting it:

* ``CommandLimiter`` paces every command attempt through a token bucket kept in the app's
  duplicate store (``DeliveryStore.take_token``), so the limit holds across every worker that
  shares the store (Redis) and within one process otherwise (memory). Each token comes back
  one window after it was taken, 5 % late: the platform counts arrival times, and a command
  that travelled slower than the one before it must not land inside the platform's window.
  A command that finds no token waits for one while its deadline allows, else it raises
  ``RateLimited``; a store fault lets the command go unpaced (the 429 is the backstop).
* ``LateResults`` delivers the results of tools that answered with an interim text: each is
  claimed once in the store (a duplicate delivery or a second worker never sends it again),
  queued per call, and everything queued for a call when a token comes free goes out as one
  ``inject-context`` with ``trigger_response: true``. What cannot be delivered (the call
  ended, no token before the deadline, the API failing) goes to the app's
  ``on_undelivered_result`` hooks and a log line, never to an exception.
* ``LiveCall`` is what a handler or tool gets by annotation: commands bound to its call.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import anyio

from .api import CallEnded, PlatformAPIError, PlatformClient, RateLimited, masked
from .exceptions import ConfigurationError, StoreError
from .logs import describe
from .stores import DeliveryStore

__all__ = ["CommandLimit", "CommandLimiter", "LateResult", "LateResults", "LiveCall"]

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


class CommandLimiter:
    """Paces call-control commands per call through the store's token buckets.

    Args:
        store: Where the buckets live; the app's duplicate store.
        limit: The limit to keep.
    """

    def __init__(self, store: DeliveryStore, limit: CommandLimit = CommandLimit()) -> None:
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
                    "control:" + call_id, self.limit.commands, window
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


@dataclass(frozen=True, slots=True)
class LateResult:
    """A tool result that arrived after its call was answered with an interim text.

    Attributes:
        call_id: The call it belongs to.
        tool_call_id: The tool call it answers.
        tool: The tool's name.
        text: The text to inject (the tool's result as the model will read it).
        reason: Why it was not delivered: ``"call_ended"``, ``"rate_limited"`` (no slot
            before the deadline), ``"failed"`` (the API refused or failed), ``"overloaded"``
            (too many results waiting), or ``None`` while it has not failed.
    """

    call_id: str
    tool_call_id: str
    tool: str
    text: str
    reason: str | None = None


UndeliveredHook = Callable[[LateResult], Awaitable[None]]


@dataclass(slots=True)
class _Pending:
    result: LateResult
    done: anyio.Event = field(default_factory=anyio.Event)
    reason: str | None = None


class LateResults:
    """Delivers late tool results into their calls: once, merged per call, within the limit.

    Args:
        api: The platform client (paced by a ``CommandLimiter``).
        store: Where the once-only claims live; the app's duplicate store.
        undelivered: Called with each result that could not be delivered.
        deadline_seconds: How long a result may wait for its slot and its sending; long
            enough by default for a token to come back at 10 per minute.
        max_pending: Results waiting in this process at most; one more is undelivered
            (``"overloaded"``) at once.
        claim_ttl_seconds: How long a delivered result is remembered against a second send.
    """

    def __init__(
        self,
        api: PlatformClient,
        store: DeliveryStore,
        undelivered: UndeliveredHook,
        *,
        deadline_seconds: float = 90.0,
        max_pending: int = 1000,
        claim_ttl_seconds: float = 3600.0,
    ) -> None:
        self.api = api
        self.store = store
        self.undelivered = undelivered
        self.deadline_seconds = deadline_seconds
        self.max_pending = max_pending
        self.claim_ttl_seconds = claim_ttl_seconds
        self._queues: dict[str, list[_Pending]] = {}
        self._senders: set[str] = set()
        self._pending = 0

    async def deliver(self, result: LateResult) -> bool:
        """Deliver ``result`` (or hand it to the undelivered hook); ``True`` once it is sent.

        Returns ``False`` as well when another process or an earlier delivery already claimed
        it: it is then sent by that one, not again.
        """
        try:
            first = await self.store.claim(
                f"late:{result.call_id}:{result.tool_call_id}", self.claim_ttl_seconds
            )
        except StoreError as exc:
            _log.error("late result claim failed, sending it unclaimed: %s", exc)
            first = True
        if not first:
            _log.info(
                "late result of %s for call %s was already claimed; not sent again",
                result.tool,
                masked(result.call_id),
            )
            return False
        if self._pending >= self.max_pending:
            await self._give_up([_Pending(result)], "overloaded")
            return False
        pending = _Pending(result)
        self._queues.setdefault(result.call_id, []).append(pending)
        self._pending += 1
        if result.call_id not in self._senders:
            # This task becomes the call's sender: it sends what is queued, batch by batch,
            # until the queue is empty. Later results for the call just wait in the queue.
            self._senders.add(result.call_id)
            try:
                await self._send_all(result.call_id)
            finally:
                self._senders.discard(result.call_id)
        await pending.done.wait()
        return pending.reason is None

    async def _send_all(self, call_id: str) -> None:
        queue = self._queues[call_id]
        while queue:
            batch: list[_Pending] = []
            merged = functools.partial(_take_merged, queue, batch)
            reason: str | None = None
            try:
                await self.api.control(call_id, merged, deadline_seconds=self.deadline_seconds)
            except CallEnded:
                reason = "call_ended"
            except RateLimited:
                reason = "rate_limited"
            except PlatformAPIError:
                reason = "failed"
            except BaseException:
                if not batch:  # cancelled before sending: the whole queue stays undelivered
                    batch.extend(queue)
                    queue.clear()
                self._settle(batch, "failed")
                raise
            if not batch:  # never got as far as sending: what is queued now shares the fate
                batch.extend(queue)
                queue.clear()
            self._settle(batch, reason)
            if reason is not None:
                await self._give_up(batch, reason)
            else:
                _log.info(
                    "late result(s) delivered to call %s: %d merged", masked(call_id), len(batch)
                )
        del self._queues[call_id]

    def _settle(self, batch: list[_Pending], reason: str | None) -> None:
        for pending in batch:
            pending.reason = reason
            pending.done.set()
        self._pending -= len(batch)

    async def _give_up(self, batch: list[_Pending], reason: str) -> None:
        for pending in batch:
            result = pending.result
            _log.warning(
                "late result of %s for call %s not delivered: %s",
                result.tool,
                masked(result.call_id),
                reason,
            )
            try:
                await self.undelivered(
                    LateResult(
                        masked(result.call_id),
                        result.tool_call_id,
                        result.tool,
                        result.text,
                        reason,
                    )
                )
            except Exception as exc:
                _log.error("on_undelivered_result hook raised %s", describe(exc))


def _take_merged(queue: list[_Pending], batch: list[_Pending]) -> dict[str, Any]:
    # Called once the command's slot is free: whatever queued up while it waited goes too.
    batch.extend(queue)
    queue.clear()
    return {
        "type": "inject-context",
        "content": merge(p.result for p in batch),
        "trigger_response": True,
    }


def merge(results: Iterable[LateResult]) -> str:
    """The ``inject-context`` content for one or more late results, one line each."""
    return "\n".join(f"Result of the tool {r.tool}: {r.text}" for r in results)
