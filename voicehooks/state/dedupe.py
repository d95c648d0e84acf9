"""Once-only processing: a duplicate delivery is answered without running anything again.

The platform documents neither retries nor delivery ids (PLATFORM.md 8 rows 1-2), so the
identity of a delivery is derived from what it carries:

* A **tool call** is its (call id, tool call id). The first delivery claims it, runs the tool
  and stores the encoded result; a duplicate answers that same result, waiting for it while
  the first still runs, within the tool's deadline (past it: the timeout error result).
* A **status-update** or **end-of-call-report** is a digest of its identity: event type, call
  id, call status and the event's own time (``message.timestamp``, milliseconds). A duplicate
  is acknowledged with ``{}`` and its handlers do not run. The signature headers are not part
  of it, so a re-signed redelivery and an exact replay inside the tolerance window are both
  duplicates, and so is a redelivery whose JSON was re-serialised. PLATFORM.md 8 row 1
  recommends these fields; the event time keeps two real events of one call apart. A digest
  of the whole body would identify the same deliveries, but hashing a 30 KB report costs as
  much as verifying its signature.
* An **assistant-request** is never deduplicated: it only reads configuration and must be
  answered within 5 s, so answering a replay again is harmless and waiting on a store is not.

What is kept: a result, a ``ToolError``, unusable arguments and a fire-and-forget tool's
immediate answer are stored and answered to every duplicate. A tool that raised an unexpected
exception or ran out of time is released, so a redelivery may try it again (a tool that can
fail *after* its side effect should raise ``ToolError`` or be idempotent).

A store that fails or is slow never blocks a live call: with ``store_failure="process"`` (the
default) the delivery is processed as if it were the first and an error is logged; with
``"reject"`` it is answered 503, for senders that retry and tools that must not run twice.
A tool call the store already named a duplicate is never run again: if its first result
cannot be fetched, it is answered with the timeout error result (or 503 with ``"reject"``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, Literal, TypeAlias

import anyio
import msgspec

from voicehooks.core.events import Event, ToolCall, ToolCalls, event_key, tool_key
from voicehooks.core.exceptions import Unavailable
from voicehooks.core.logs import masked

from .callstate import call_scope
from .stores import DeliveryStore

__all__ = [
    "INTENT_PREFIX",
    "IN_FLIGHT_MARGIN_SECONDS",
    "Deduplicator",
    "DeliveryClaims",
    "Execute",
    "StoreFailure",
    "intent_key",
]

_log = logging.getLogger("voicehooks")

StoreFailure: TypeAlias = Literal["process", "reject"]
"""What to do with a delivery when the store cannot say whether it is a duplicate."""

# A claim outlives the tool's deadline by this much, so that a process that dies mid-call
# leaves no claim behind for longer than a redelivery would wait anyway.
IN_FLIGHT_MARGIN_SECONDS: Final = 5.0

_UNAVAILABLE: Final = "the duplicate-delivery store is unavailable; deliver again later"

Execute = Callable[[], Awaitable[tuple[msgspec.Raw, bool | None]]]
"""Runs a tool once: returns its encoded answer and whether to keep it for duplicates
(``None``: not yet, ``Deduplicator.settle`` will say)."""

INTENT_PREFIX: Final = "intent:"
"""The keys of once-per-intent tools (``intent_key``); delivery keys never start so."""


# A call's list of its intents' keys; past this size an intent is not listed, and simply
# expires with its TTL (each name is an intent key: about 60 bytes, so about 1,000 intents).
_MAX_INTENT_LIST_BYTES: Final = 64 * 1024


def _intents_of(call_id: str) -> str:
    return INTENT_PREFIX + "list:" + call_scope(call_id)


def intent_key(scope: str | None, tool: str, canonical: bytes) -> str:
    """The single-flight key of one intent: ``tool`` called with ``canonical`` arguments.

    ``scope`` is the call id (hashed here: it may embed the caller's number), or ``None``
    for an intent remembered across calls (its ``canonical`` form says what scopes it).
    """
    digest = hashlib.blake2b(digest_size=16)
    digest.update(b"" if scope is None else scope.encode())
    digest.update(b"\0" + tool.encode() + b"\0" + canonical)
    return INTENT_PREFIX + ("app:" if scope is None else "call:") + digest.hexdigest()


class Deduplicator:
    """Claims deliveries in a ``DeliveryStore`` and answers duplicates from it.

    Args:
        store: Where claims and results live.
        ttl_seconds: How long a delivery is remembered once handled.
        store_failure: ``"process"`` or ``"reject"`` (503) when the store fails.
    """

    def __init__(
        self, store: DeliveryStore, *, ttl_seconds: float, store_failure: StoreFailure
    ) -> None:
        self.store = store
        self.ttl_seconds = ttl_seconds
        self.store_failure = store_failure

    async def release_event(self, event: Event) -> None:
        """Give back ``event``'s claim: its delivery was refused after it was claimed, and its
        redelivery must not be taken for a duplicate."""
        try:
            await self.store.release(event_key(event))
        except Exception as exc:  # the store's own trouble; its claim expires in time
            _log.warning("releasing a refused delivery's claim failed: %s", exc)

    async def is_first_event(self, event: Event) -> bool:
        """Claim an informational delivery; ``False`` if it was seen before.

        Raises:
            Unavailable: The store failed and ``store_failure`` is ``"reject"``.
        """
        try:
            first = await self.store.claim(event_key(event), self.ttl_seconds)
        except Exception as exc:
            self._fault(exc, event, "processing the delivery anyway")
            return True
        if not first:
            _log.info("duplicate %s (call %s) acknowledged; handlers not run", *_label(event))
        return first

    async def claim_calls(
        self, event: ToolCalls, calls: Sequence[ToolCall], wait_seconds: float
    ) -> DeliveryClaims:
        """Claim ``calls`` of ``event`` in one store operation; see ``DeliveryClaims``.

        ``wait_seconds`` is how long a duplicate of one of them waits for its first run's
        answer, and with ``IN_FLIGHT_MARGIN_SECONDS`` how long the claims hold: the longest
        wait among the calls, since their answers are stored together.

        Raises:
            Unavailable: The store failed and ``store_failure`` is ``"reject"``.
        """
        keys: dict[str, str] = {}  # a loop, not a comprehension: no frame of its own on 3.11
        for call in calls:
            keys[call.id] = tool_key(event.call.id, call.id)
        distinct = list(keys.values())  # one key per tool call id, however often it comes
        try:
            firsts = await self.store.claim_many(distinct, wait_seconds + IN_FLIGHT_MARGIN_SECONDS)
        except Exception as exc:
            self._fault(exc, event, "processing the delivery anyway")
            return DeliveryClaims(self, event, keys, None, wait_seconds, repeated=False)
        return DeliveryClaims(
            self,
            event,
            keys,
            dict(zip(distinct, firsts, strict=True)),
            wait_seconds,
            repeated=len(keys) < len(calls),
        )

    async def single_flight(
        self,
        key: str,
        event: Event,
        name: str,
        *,
        wait_seconds: float,
        claim_seconds: float,
        execute: Execute,
        ttl_seconds: float | None = None,
        run_if_released: bool = False,
    ) -> msgspec.Raw | None:
        """Run ``execute`` once for ``key`` across every process sharing the store.

        The first caller claims ``key`` for ``claim_seconds`` and runs ``execute``; every
        caller that comes while the claim holds waits up to ``wait_seconds`` for the first
        one's answer. What ``execute`` says of its answer decides what the others get:
        ``True`` stores it (for ``ttl_seconds``, default the deduplicator's), ``False``
        releases the claim (the next caller runs again), ``None`` keeps the claim until
        ``settle`` gives the real answer (a slow tool answered with its interim text).
        Once-per-intent tools
        (``voicehooks.pipeline.toolcalls``) are both this one flight. With
        ``run_if_released``, a later caller that got no answer claims ``key`` once more and
        runs if the first run let go of it (it failed: the model's retry may run again).

        Returns:
            The answer, or ``None`` for a later caller whose first run gave none in time (or
            whose result the store failed to fetch).

        Raises:
            Unavailable: The store failed and ``store_failure`` is ``"reject"``.
        """
        store = self.store
        try:
            first = await store.claim(key, claim_seconds)
        except Exception as exc:
            self._fault(exc, event, "processing the delivery anyway")
            return (await execute())[0]
        if not first:
            result = await self._wait(key, event, name, wait_seconds)
            if result is not None or not run_if_released:
                return result
            # No answer: the first run either goes on, or failed and let go of the key; then
            # this caller is the model's retry and runs (if no other retry claimed it first).
            try:
                first = await store.claim(key, claim_seconds)
            except Exception as exc:
                self._fault(exc, event, "answering without running again")
                return None
            if not first:
                return None
        try:
            answer, keep = await execute()
        except BaseException:
            # Cancelled (shutdown): free the claim so that a redelivery is not refused.
            with anyio.CancelScope(shield=True):
                try:
                    await store.release(key)
                except Exception as exc:
                    _settle_failed(exc, event)
            raise
        if keep is not None:
            await self.settle(key, event, answer, keep, ttl_seconds)
        return answer

    async def _wait(
        self, key: str, event: Event, name: str, wait_seconds: float
    ) -> msgspec.Raw | None:
        _log.info(
            "%s tool call %s (call %s): answering the first run's result",
            "repeated" if key.startswith(INTENT_PREFIX) else "duplicate",
            name,
            masked(event.call.id),
        )
        try:
            result = await self.store.wait_result(key, wait_seconds)
        except Exception as exc:
            # Known to be a duplicate: never run it again, even with store_failure="process".
            self._fault(exc, event, "answering the duplicate without the first result")
            return None
        return None if result is None else msgspec.Raw(result)

    async def remember_intent(self, call_id: str, key: str) -> None:
        """List ``key``, a call-scoped intent of ``call_id``, so that ``forget_intents`` can
        drop it when the call's report is handled; refreshes the list's expiry too."""
        try:
            await self.store.put_field(
                _intents_of(call_id), key, b"", self.ttl_seconds, _MAX_INTENT_LIST_BYTES
            )
        except Exception as exc:  # it expires with its TTL all the same
            _log.warning("could not list an intent of call %s: %s", masked(call_id), exc)

    async def forget_intents(self, call_id: str) -> None:
        """Drop the remembered answers of ``call_id``'s intents: the call has ended."""
        listed = _intents_of(call_id)
        try:
            for key in await self.store.get_fields(listed):
                await self.store.forget(key)
            await self.store.forget(listed)
        except Exception as exc:  # they expire with their TTL all the same
            _log.warning("could not forget the intents of call %s: %s", masked(call_id), exc)

    async def settle(
        self,
        key: str,
        event: Event,
        answer: msgspec.Raw,
        keep: bool,
        ttl_seconds: float | None = None,
    ) -> None:
        """Store ``answer`` for ``key``'s later callers (``keep``), or release the claim."""
        try:
            if keep:
                ttl = self.ttl_seconds if ttl_seconds is None else ttl_seconds
                await self.store.put_result(key, bytes(answer), ttl)
            else:
                await self.store.release(key)
        except Exception as exc:
            _settle_failed(exc, event)  # the answer exists already: it is sent all the same

    def _fault(self, exc: Exception, event: Event, fallback: str) -> None:
        rejecting = self.store_failure == "reject"
        _log.error(
            "duplicate-delivery store failed for %s (call %s): %s: %s; %s",
            *_label(event),
            type(exc).__name__,
            exc,
            "answering 503" if rejecting else fallback,
        )
        if rejecting:
            raise Unavailable(_UNAVAILABLE) from exc


class DeliveryClaims:
    """The tool calls of one ``tool-calls`` delivery, claimed in one store operation
    (``Deduplicator.claim_calls``) and settled in one.

    A call this delivery claimed runs (``run``); a call another delivery claimed first waits
    for that one's answer. The answers to keep are stored together by ``settle``, once the
    delivery's answer is known: a duplicate waits for them all, as the platform does for the
    first delivery's answer. ``settle`` also lets go of the claims of calls that failed (a
    redelivery may run them again) or never ended (the delivery was cancelled).
    """

    __slots__ = (
        "_answers",
        "_claimed",
        "_event",
        "_keys",
        "_local",
        "_once",
        "_released",
        "wait_seconds",
    )

    def __init__(
        self,
        once: Deduplicator,
        event: ToolCalls,
        keys: dict[str, str],
        claimed: dict[str, bool] | None,
        wait_seconds: float,
        *,
        repeated: bool,
    ) -> None:
        self._once = once
        self._event = event
        self._keys = keys  # tool call id -> its store key
        self._claimed = claimed  # None: the store failed, every call runs, none is stored
        self.wait_seconds = wait_seconds
        self._answers: list[tuple[str, bytes]] = []  # to store
        self._released: list[str] = []  # ran and failed: a redelivery may run them again
        # A tool call id the delivery carries twice: its second call gets the first's answer.
        self._local: dict[str, asyncio.Future[msgspec.Raw | None]] | None = {} if repeated else None

    async def run(self, call: ToolCall, execute: Execute) -> msgspec.Raw | None:
        """Run ``execute`` for ``call`` if this delivery claimed it; else the first run's
        answer, or ``None`` when none came in time (or the store failed to fetch it).

        Raises:
            Unavailable: Fetching the first answer failed and ``store_failure`` is
                ``"reject"``.
        """
        claimed = self._claimed
        if claimed is None:
            return (await execute())[0]
        key = self._keys[call.id]
        local = self._local
        if local is not None:
            if key in local:  # the same id earlier in this delivery
                return await asyncio.shield(local[key])
            local[key] = asyncio.get_running_loop().create_future()
        answer: msgspec.Raw | None
        if claimed[key]:
            ran, keep = await execute()
            if keep:
                self._answers.append((key, bytes(ran)))
            elif keep is not None:
                self._released.append(key)
            answer = ran
        else:
            answer = await self._once._wait(key, self._event, call.function.name, self.wait_seconds)
        if local is not None:
            local[key].set_result(answer)
        return answer

    async def settle(self, *, cut: bool = False) -> None:
        """Store the answers to keep in one operation, and release the claims of calls that
        failed; with ``cut`` (the delivery was cancelled) also of calls that never ended."""
        released = self._released
        if cut and self._claimed is not None:
            ended = {key for key, _ in self._answers}.union(released)
            released = [k for k, mine in self._claimed.items() if mine and k not in ended]
        answers = self._answers
        if not (answers or released):
            return
        store = self._once.store
        try:
            if answers:
                await store.put_results(answers, self._once.ttl_seconds)
            for key in released:
                await store.release(key)
        except Exception as exc:  # the answer exists already: it is sent all the same
            _settle_failed(exc, self._event)


def _settle_failed(exc: Exception, event: Event) -> None:
    _log.error(
        "duplicate-delivery store failed recording %s (call %s): %s: %s",
        *_label(event),
        type(exc).__name__,
        exc,
    )


def _label(event: Event) -> tuple[str, str]:
    return event.type, masked(event.call.id)
