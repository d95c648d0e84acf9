"""Slow tools: an interim answer now, the real result into the live call when it is ready.

``InterimRuns.run(work, interim_after_seconds, deliver)`` starts ``work`` (a tool call under
its own, longer deadline, already turned into its answer) and waits for it at most
``interim_after_seconds``. In time, its answer is the answer. Past that, ``run`` says so (the
caller answers with the interim text) while ``work`` goes on; when it ends, ``deliver`` gets
its answer.

A run that may outlive its request needs a task of its own from its very first step: a
started coroutine cannot move to another task, because the scopes it opened (an anyio cancel
scope in an HTTP client, an ``asyncio.timeout``) belong to the task they were opened in. On
Python 3.12 and later the task starts eagerly: a tool that answers without suspending
finishes inside the task's constructor, with no trip through the event loop and no timer. On
3.11 the task's first step takes one turn of the loop, which the caller waits for before it
arms a timer. A timer is armed only for a run that is still going after its first step.
The tasks belong to the app's ``TaskOwner``, which drains them at shutdown with every other
background task; ``InterimRuns`` keeps at most ``max_runs`` of them, and a run cut short names
itself in the log.

``LateResults`` delivers what those runs (and fire-and-forget tools with ``inject_result``)
produce after their answer: each result is claimed once in the store (a duplicate delivery or
a second worker never sends it again), queued per call, and everything queued for a call when
its rate-limit slot comes goes out as one ``inject-context`` with ``trigger_response: true``.
What cannot be delivered (the call ended, no slot before the deadline, the API failing) goes
to the app's ``on_undelivered_result`` hooks and a log line, never to an exception.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import anyio

from voicehooks.core.events import call_scope
from voicehooks.core.exceptions import StoreError
from voicehooks.core.logs import describe, masked
from voicehooks.core.running import within
from voicehooks.core.tasks import EAGER, TaskOwner
from voicehooks.state.stores import DeliveryStore

from .api import CallEnded, OutcomeUnknown, PlatformAPIError, PlatformClient, RateLimited

__all__ = ["Busy", "InterimRuns", "LateResult", "LateResults", "UndeliveredHook", "merge"]

_log = logging.getLogger("voicehooks")

T = TypeVar("T")


class Busy(Exception):
    """``InterimRuns`` already owns ``max_runs`` runs."""


class _Run:
    __slots__ = ("label", "late")

    def __init__(self, label: str) -> None:
        self.label = label
        self.late = False  # set once the caller has answered with the interim text


class InterimRuns:
    """The tool runs that may outlive their answer, as tasks of the app's owner.

    Args:
        tasks: The app's task owner, which drains them at shutdown.
        max_runs: Runs going at once; ``run`` raises ``Busy`` past it.
    """

    def __init__(self, tasks: TaskOwner, *, max_runs: int = 1000) -> None:
        self.tasks = tasks
        self.max_runs = max_runs
        self._runs: dict[asyncio.Task[Any], _Run] = {}

    def __len__(self) -> int:
        return len(self._runs)

    @property
    def in_flight(self) -> list[str]:
        """The label of every run still going."""
        return [state.label for state in self._runs.values()]

    async def run(
        self,
        work: Coroutine[Any, Any, T],
        interim_after_seconds: float,
        deliver: Callable[[T], Awaitable[None]],
        label: str,
    ) -> T | None:
        """``work``'s answer if it ends within ``interim_after_seconds``; else ``None``, and
        ``deliver(answer)`` once it ends.

        ``work`` must neither raise nor return ``None``: it is a tool call already turned
        into its answer. If the caller is cancelled while it waits (the request went away),
        the answer is delivered late as well, so it is not lost.

        Raises:
            Busy: ``max_runs`` runs are owned already; ``work`` is closed, never started.
        """
        if len(self._runs) >= self.max_runs:
            work.close()
            raise Busy(label)
        state = _Run(label)
        task = self.tasks.spawn(self._own(work, state, deliver), eager=True)
        if not task.done():
            self._runs[task] = state
            task.add_done_callback(self._forget)
        try:
            if not task.done() and not EAGER:
                # 3.11 starts the task at the loop's next turn: give it that turn before
                # arming a timer, so a tool that answers without suspending costs no timer.
                await asyncio.sleep(0)
            if task.done():  # answered without suspending: no timer at all
                return task.result()
            finished, _ = await within(interim_after_seconds, asyncio.shield(task))
        except BaseException:
            if not task.done():
                state.late = True
            raise
        # The task may have ended in the very iteration the timer fired: then it is in time.
        if not finished and not task.done():
            state.late = True  # nothing awaits between the check and this: no race
            return None
        return task.result()

    async def _own(
        self, work: Coroutine[Any, Any, T], state: _Run, deliver: Callable[[T], Awaitable[None]]
    ) -> T:
        try:
            answer = await work
        except asyncio.CancelledError:  # only the owner's drain cancels a run: shutdown
            _log.error("shutdown: %s was cut short; its result is lost", state.label)
            raise
        if state.late:
            await deliver(answer)
        return answer

    def _forget(self, task: asyncio.Task[Any]) -> None:
        del self._runs[task]


@dataclass(frozen=True, slots=True)
class LateResult:
    """A tool result that arrived after its call was answered with an interim text.

    Attributes:
        call_id: The call it belongs to, unmasked (it may embed the caller's number: log
            it through ``voicehooks.core.logs.masked``).
        tool_call_id: The tool call it answers.
        tool: The tool's name.
        text: The text to inject (the tool's result as the model will read it).
        reason: Why it was not delivered: ``"call_ended"``, ``"rate_limited"`` (no slot
            before the deadline), ``"failed"`` (the API refused or failed),
            ``"outcome_unknown"`` (sent, but the answer was lost or came from a gateway: it
            may have been spoken, and it was not sent again), ``"overloaded"`` (too many
            results waiting), or ``None`` while it has not failed.
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
                f"late:{call_scope(result.call_id)}:{result.tool_call_id}", self.claim_ttl_seconds
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
            except OutcomeUnknown:
                reason = "outcome_unknown"
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
                # The real call id: the hook is how the app reaches the caller again. Only
                # the log line above is masked.
                await self.undelivered(replace(result, reason=reason))
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
