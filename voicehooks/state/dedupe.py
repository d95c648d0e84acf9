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

import hashlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final, Literal, TypeAlias

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

    def run_tool(
        self, event: ToolCalls, call: ToolCall, timeout_seconds: float, execute: Execute
    ) -> Coroutine[Any, Any, msgspec.Raw | None]:
        """Run ``execute`` unless ``call`` ran before; a duplicate gets the first answer.

        ``single_flight``'s coroutine itself, not one more frame around it: every tool call
        of every delivery takes this path.

        Returns:
            The answer, or ``None`` for a duplicate whose first run gave none in time (or
            whose result the store failed to fetch).

        Raises:
            Unavailable: The store failed and ``store_failure`` is ``"reject"``.
        """
        return self.single_flight(
            tool_key(event.call.id, call.id),
            event,
            call.function.name,
            wait_seconds=timeout_seconds,
            claim_seconds=timeout_seconds + IN_FLIGHT_MARGIN_SECONDS,
            execute=execute,
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
        Delivery dedupe (``run_tool``) and once-per-intent tools
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


def _settle_failed(exc: Exception, event: Event) -> None:
    _log.error(
        "duplicate-delivery store failed recording %s (call %s): %s: %s",
        *_label(event),
        type(exc).__name__,
        exc,
    )


def _label(event: Event) -> tuple[str, str]:
    return event.type, masked(event.call.id)
