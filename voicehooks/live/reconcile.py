"""Reports that never came: fetch the call, and hand it to the report handlers as a report.

The platform documents no retries (PLATFORM.md 1.8): an ``end-of-call-report`` lost to a
deploy or a network fault is simply gone, and with it the transcript and the analysis.
With ``Platform(reconcile=Reconciliation())`` every worker remembers the calls it saw
(tool calls and status updates) and when it last saw each. A call that has had no report
``after_seconds`` after it was last seen (its ``ended`` status update included) is fetched
with ``GET /calls/{id}``; once that says the call ended, the call becomes an
``EndOfCallReport`` with ``reconciled=True`` and goes through the app like any report: its
handlers' jobs go to the same ``JobSink`` (the durable queue, in durable mode). A report the
sink refuses (a full queue) is not counted as reconciled: its claim is given back and the
call is looked at again later, as is a call still live.

Only a delivery answered 200 is noted (``note``): one refused with 503 changed nothing, and
its redelivery is noted then.

Once across workers: the first report for a call, real or reconciled, claims
``report:<call id>`` in the app's store (Redis, when several workers share it), so a worker
whose report went to another worker does not reconcile it, and two workers never both do.
A real report that arrives after its call was reconciled still runs the handlers (the
platform's copy is the better one): ``event.reconciled`` tells the two apart.

Bounded: at most ``max_calls`` calls are remembered (the oldest goes first, and is then never
reconciled), and one sweep fetches at most ``max_fetches`` calls, so reconciliation stays
well inside the API's 100 requests per minute per key.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import anyio
import msgspec

from voicehooks.core.events import AssistantRequest, EndOfCallReport, Event, call_scope
from voicehooks.core.exceptions import ConfigurationError, StoreError
from voicehooks.core.logs import describe, masked
from voicehooks.core.tasks import TaskOwner
from voicehooks.state.stores import DeliveryStore

from .api import PlatformAPIError, PlatformClient

__all__ = ["Reconciler", "Reconciliation", "report_body"]

_log = logging.getLogger("voicehooks")

LIVE_STATUSES: Final = frozenset({"queued", "ringing", "connecting", "dialing", "in-progress"})
_CLAIM_TTL_SECONDS: Final = 86_400.0
_MAX_FAILURES: Final = 3
_REPORT_FIELDS: Final = (
    "duration_seconds",
    "summary",
    "messages",
    "analysis",
    "recording_url",
    "started_at",
    "ended_at",
    "end_reason",
)


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """When to fetch a call whose ``end-of-call-report`` has not come.

    Args:
        after_seconds: How long after a call was last seen (or ended) to look for it.
        interval_seconds: How often each worker looks.
        max_calls: Calls each worker remembers at most.
        max_fetches: Calls fetched per look at most.
    """

    after_seconds: float = 600.0
    interval_seconds: float = 60.0
    max_calls: int = 10_000
    max_fetches: int = 20

    def __post_init__(self) -> None:
        if min(self.after_seconds, self.interval_seconds) <= 0:
            raise ConfigurationError("Reconciliation needs after_seconds and interval_seconds > 0")
        if self.max_calls < 1 or self.max_fetches < 1:
            raise ConfigurationError("Reconciliation needs max_calls and max_fetches >= 1")


class Reconciler:
    """One worker's memory of the calls it saw, and the sweep that reconciles them.

    Args:
        api: The platform client.
        store: The app's store, for the once-only claims.
        dispatch: Hands a report body to the app like a delivery; ``False`` if it was refused.
        settings: When and how much.
        clock: Monotonic seconds; injectable.
    """

    def __init__(
        self,
        api: PlatformClient,
        store: DeliveryStore,
        dispatch: Callable[[bytes], Awaitable[bool]],
        settings: Reconciliation,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = api
        self.store = store
        self.dispatch = dispatch
        self.settings = settings
        self._clock = clock
        # call id -> (when to look, failed fetches so far); ordered by when to look.
        self._calls: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._calls)

    async def note(self, event: Event) -> None:
        """``event``'s delivery was answered 200: a report claims its call, anything else
        marks the call as seen."""
        if isinstance(event, EndOfCallReport):
            if not event.reconciled:
                await self.reported(event.call.id)
        elif not isinstance(event, AssistantRequest):
            self.seen(event.call.id)

    def seen(self, call_id: str) -> None:
        """A delivery for ``call_id`` arrived: look for its report ``after_seconds`` from now."""
        if not call_id:
            return
        calls = self._calls
        calls[call_id] = (self._clock() + self.settings.after_seconds, 0)
        calls.move_to_end(call_id)
        if len(calls) > self.settings.max_calls:
            dropped, _ = calls.popitem(last=False)
            _log.warning(
                "reconciliation remembers %d calls at most; call %s will not be reconciled",
                self.settings.max_calls,
                masked(dropped),
            )

    async def reported(self, call_id: str) -> None:
        """The report for ``call_id`` arrived here: claim it for every worker, forget the call."""
        self._calls.pop(call_id, None)
        try:
            await self.store.claim("report:" + call_scope(call_id), _CLAIM_TTL_SECONDS)
        except StoreError as exc:
            _log.warning("could not mark call %s as reported: %s", masked(call_id), exc)

    async def sweep(self) -> int:
        """Look at the calls that are due; return how many were reconciled."""
        now = self._clock()
        due: list[tuple[str, int]] = []
        for call_id, (at, failures) in self._calls.items():
            if at > now or len(due) >= self.settings.max_fetches:
                break
            due.append((call_id, failures))
        reconciled = 0
        for call_id, failures in due:
            del self._calls[call_id]
            try:
                call = await self.api.get_call(call_id)
            except PlatformAPIError as exc:
                if exc.status == 404 or failures + 1 >= _MAX_FAILURES:
                    _log.warning("call %s not reconciled: %s", masked(call_id), type(exc).__name__)
                else:  # try again at the next sweep
                    self._calls[call_id] = (now + self.settings.interval_seconds, failures + 1)
                continue
            if str(call.get("status", "")) in LIVE_STATUSES and not call.get("ended_at"):
                self._calls[call_id] = (now + self.settings.after_seconds, 0)
                continue
            try:
                first = await self.store.claim("report:" + call_scope(call_id), _CLAIM_TTL_SECONDS)
            except StoreError as exc:
                _log.warning("reconciliation of call %s skipped: %s", masked(call_id), exc)
                self._calls[call_id] = (now + self.settings.interval_seconds, failures)
                continue
            if not first:
                continue  # its report came (to another worker), or another worker reconciled
            if not await self.dispatch(report_body(call_id, call)):
                await self._refused(call_id, now, failures)
                continue
            _log.info("call %s had no end-of-call-report: reconciled from the API", masked(call_id))
            reconciled += 1
        return reconciled

    async def _refused(self, call_id: str, now: float, failures: int) -> None:
        _log.warning("reconciled report of call %s refused; trying again later", masked(call_id))
        self._calls[call_id] = (now + self.settings.interval_seconds, failures)
        try:
            await self.store.release("report:" + call_scope(call_id))
        except StoreError as exc:  # its claim expires in a day; until then it is not retried
            _log.warning("could not give back the claim of call %s: %s", masked(call_id), exc)

    def start(self, tasks: TaskOwner) -> None:
        """Sweep in the background until ``tasks`` drains (the app's lifespan)."""
        tasks.spawn_service(self.run())

    async def run(self) -> None:
        """Sweep every ``interval_seconds`` until cancelled."""
        while True:
            await anyio.sleep(self.settings.interval_seconds)
            try:
                await self.sweep()
            except Exception as exc:  # a bug here must not end reconciliation for good
                _log.error("reconciliation sweep failed: %s", describe(exc))


def report_body(call_id: str, call: dict[str, Any]) -> bytes:
    """An ``end-of-call-report`` delivery body built from a ``GET /calls/{id}`` call object."""
    message: dict[str, Any] = {
        "type": "end-of-call-report",
        "reconciled": True,
        "call": {
            "id": str(call.get("id") or call_id),
            "type": str(call.get("type") or ""),
            "status": str(call.get("status") or ""),
        },
    }
    if call.get("pipeline") is not None:
        message["call"]["pipeline"] = call["pipeline"]
    if call.get("ended_at"):
        message["timestamp"] = call["ended_at"]
    for name in ("customer", "phone_number", "assistant"):
        if isinstance(call.get(name), dict):
            message[name] = call[name]
    for name in _REPORT_FIELDS:
        if call.get(name) is not None:
            message[name] = call[name]
    if "messages" not in message and isinstance(call.get("transcript"), list):
        message["messages"] = call["transcript"]
    return msgspec.json.encode({"message": message})
