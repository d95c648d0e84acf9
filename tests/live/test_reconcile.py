"""voicehooks.live.reconcile on its own: which calls are fetched, when, and reconciled only once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import msgspec
import pytest

from voicehooks import (
    Background,
    ConfigurationError,
    EndOfCallReport,
    MemoryStore,
    Platform,
    StatusUpdate,
    VoiceHooks,
)
from voicehooks.core.events import call_scope, decode_delivery
from voicehooks.live.api import PlatformClient
from voicehooks.live.reconcile import Reconciler, Reconciliation, report_body
from voicehooks.testing import FakePlatform, WebhookClient
from voicehooks.work.durable import queue_from_url
from voicehooks.work.jobs import decode_job

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def platform() -> FakePlatform:
    return FakePlatform()


@pytest.fixture
async def api(platform: FakePlatform) -> AsyncIterator[PlatformClient]:
    async with PlatformClient(
        api_key=platform.api_key, base_url=platform.base_url, transport=platform.transport()
    ) as client:
        yield client


class Dispatched:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    async def __call__(self, body: bytes) -> bool:
        self.bodies.append(msgspec.json.decode(body))
        return True


def reconciler(
    api: PlatformClient, store: MemoryStore, dispatched: Dispatched, clock: Clock, **settings: Any
) -> Reconciler:
    return Reconciler(
        api, store, dispatched, Reconciliation(after_seconds=600, **settings), clock=clock
    )


async def test_an_ended_call_without_a_report_is_reconciled_once_after_the_wait(
    api: PlatformClient, platform: FakePlatform
) -> None:
    clock, store, dispatched = Clock(), MemoryStore(), Dispatched()
    first = reconciler(api, store, dispatched, clock)
    second = reconciler(api, store, dispatched, clock)  # another worker, same store
    platform.end_call(
        "c-1", duration_seconds=42, summary="Booked a repair.", end_reason="user_hangup"
    )
    first.seen("c-1")
    second.seen("c-1")
    clock.now += 599
    assert await first.sweep() == 0
    assert platform.requests == []  # not due yet: nothing fetched
    clock.now += 2
    assert await first.sweep() + await second.sweep() == 1
    (body,) = dispatched.bodies
    assert body["message"]["type"] == "end-of-call-report"
    assert body["message"]["reconciled"] is True
    assert body["message"]["call"] == {"id": "c-1", "type": "", "status": "ended"}
    assert body["message"]["duration_seconds"] == 42
    assert body["message"]["end_reason"] == "user_hangup"
    assert len(first) == len(second) == 0


async def test_a_call_whose_report_came_is_not_fetched(
    api: PlatformClient, platform: FakePlatform
) -> None:
    clock, store, dispatched = Clock(), MemoryStore(), Dispatched()
    here = reconciler(api, store, dispatched, clock)
    elsewhere = reconciler(api, store, dispatched, clock)
    platform.end_call("c-2")
    here.seen("c-2")
    elsewhere.seen("c-2")
    await here.reported("c-2")  # the report reached this worker
    clock.now += 601
    assert await here.sweep() == 0
    assert await elsewhere.sweep() == 0  # fetched, but the claim says it was reported
    assert dispatched.bodies == []
    assert len(platform.requests) == 1


async def test_a_live_call_is_looked_at_again_later_and_a_seen_call_waits_again(
    api: PlatformClient, platform: FakePlatform
) -> None:
    clock, store, dispatched = Clock(), MemoryStore(), Dispatched()
    worker = reconciler(api, store, dispatched, clock)
    platform.add_call("c-3")  # in progress
    worker.seen("c-3")
    clock.now += 601
    assert await worker.sweep() == 0
    assert len(worker) == 1
    clock.now += 300
    worker.seen("c-3")  # a new delivery: the wait starts again
    clock.now += 301
    assert await worker.sweep() == 0
    assert len(platform.requests) == 1
    platform.end_call("c-3")
    clock.now += 300
    assert await worker.sweep() == 1


async def test_fetch_failures_are_retried_then_given_up_and_unknown_calls_dropped(
    api: PlatformClient, platform: FakePlatform
) -> None:
    clock, store, dispatched = Clock(), MemoryStore(), Dispatched()
    worker = reconciler(api, store, dispatched, clock, interval_seconds=60)
    worker.seen("unknown")
    clock.now += 601
    assert await worker.sweep() == 0
    assert len(worker) == 0  # 404: nothing to reconcile
    worker.seen("c-4")
    platform.end_call("c-4")
    platform.fail_next(3, status=400)  # a 4xx is not retried by the client: one request each
    clock.now += 601
    for _ in range(2):
        assert await worker.sweep() == 0
        assert len(worker) == 1  # tried again at a later sweep
        clock.now += 61
    assert await worker.sweep() == 0
    assert len(worker) == 0  # the third failure gives up
    assert dispatched.bodies == []


async def test_memory_and_fetches_are_bounded(
    api: PlatformClient, platform: FakePlatform, caplog: pytest.LogCaptureFixture
) -> None:
    clock, store, dispatched = Clock(), MemoryStore(), Dispatched()
    worker = reconciler(api, store, dispatched, clock, max_calls=3, max_fetches=2)
    for n in range(5):
        platform.end_call(f"c-{n}")
        worker.seen(f"c-{n}")
    assert len(worker) == 3
    assert sum("will not be reconciled" in r.getMessage() for r in caplog.records) == 2
    clock.now += 601
    assert await worker.sweep() == 2
    assert await worker.sweep() == 1
    assert [b["message"]["call"]["id"] for b in dispatched.bodies] == ["c-2", "c-3", "c-4"]


def test_a_report_body_takes_the_calls_fields_and_decodes_as_a_report() -> None:
    call = {
        "id": "c-9",
        "type": "inbound_phone_call",
        "status": "ended",
        "started_at": "2026-01-01T10:00:00Z",
        "ended_at": "2026-01-01T10:05:00Z",
        "transcript": [{"role": "user", "content": "hello"}],
        "customer": {"number": "+31600000000"},
    }
    event = decode_delivery(report_body("c-9", call))
    assert isinstance(event, EndOfCallReport)
    assert event.call.id == "c-9"
    assert event.customer.number == "+31600000000"
    assert len(event.messages) == 1


@pytest.mark.parametrize(
    "settings",
    [{"after_seconds": 0}, {"interval_seconds": -1}, {"max_calls": 0}, {"max_fetches": 0}],
)
def test_settings_are_checked(settings: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        Reconciliation(**settings)


# -- in the app --------------------------------------------------------------------------


async def test_the_app_runs_its_report_handlers_on_a_reconciled_call() -> None:
    platform = FakePlatform()
    app = VoiceHooks(
        secret="whsec_reconcile",
        platform=Platform(
            api=platform.client(),
            reconcile=Reconciliation(after_seconds=0.2, interval_seconds=0.05),
        ),
    )
    reports: list[EndOfCallReport] = []

    @app.on("end-of-call-report")
    async def store(event: EndOfCallReport) -> None:
        reports.append(event)

    platform.end_call("lost", duration_seconds=12, summary="Ordered a bike.")
    platform.end_call("reported")
    async with WebhookClient(app, secret="whsec_reconcile") as client:
        await client.status_update("ended", call_id="lost")
        await client.status_update("ended", call_id="reported")
        await client.end_of_call_report(call_id="reported")
        with anyio.fail_after(5):
            while len(reports) < 2:
                await anyio.sleep(0.02)
        await anyio.sleep(0.3)  # room for a second reconciliation, which must not come
        await client.wait_for_background()
    real, reconciled = sorted(reports, key=lambda report: report.reconciled)
    assert (real.call.id, real.reconciled) == ("reported", False)
    assert (reconciled.call.id, reconciled.reconciled) == ("lost", True)
    assert reconciled.summary == "Ordered a bike."
    assert [r.path for r in platform.requests] == ["/api/v1/calls/lost"]


# -- the seams with the rest of the app -----------------------------------------------------


def reconciling_app(platform: FakePlatform, **settings: Any) -> tuple[VoiceHooks, list[str]]:
    """An app that reconciles through ``platform``; its report handler records call ids."""
    app = VoiceHooks(
        secret="whsec_reconcile",
        platform=Platform(
            api=platform.client(),
            reconcile=Reconciliation(after_seconds=0.01, interval_seconds=3600),
        ),
        **settings,
    )
    handled: list[str] = []

    @app.on("end-of-call-report")
    async def store(event: EndOfCallReport) -> None:
        handled.append(event.call.id)

    return app, handled


async def test_a_report_refused_503_leaves_its_call_to_be_reconciled() -> None:
    platform = FakePlatform()
    release = anyio.Event()
    app, _ = reconciling_app(platform, background=Background(max_queued_jobs=1))

    @app.on("status-update")
    async def slow(event: StatusUpdate) -> None:
        await release.wait()  # holds the one place in the queue

    platform.end_call("refused")
    async with WebhookClient(app, secret="whsec_reconcile") as client:
        await client.status_update("in-progress", call_id="holder")
        refused = await client.end_of_call_report(call_id="refused")
        assert refused.status_code == 503
        release.set()
        await client.wait_for_background()
        assert app.reconciler is not None
        assert await app.reconciler.sweep() == 0  # "refused" was never seen: nothing to do
        # The refused report did not take the call's claim: a later report or a sweep can.
        assert await app.call_control.store.claim("report:" + call_scope("refused"), 60)


async def test_a_reconciled_report_goes_to_the_durable_queue_not_the_receiver(
    backend_url: str,
) -> None:
    platform = FakePlatform()
    queue = queue_from_url(backend_url)
    app, handled = reconciling_app(platform, background=Background(queue=queue))
    platform.end_call("lost", summary="Ordered a bike.")
    async with WebhookClient(app, secret="whsec_reconcile") as client:
        await client.status_update("ended", call_id="lost")
        await anyio.sleep(0.02)  # past after_seconds
        assert app.reconciler is not None
        assert await app.reconciler.sweep() == 1
        await client.wait_for_background()
    assert handled == []  # nothing ran in the receiver
    await queue.open()
    (entry,) = await queue.read("test", 10, 0.01)
    job, _ = decode_job(entry.data)
    assert job.target.endswith("store")
    assert isinstance(job.event, EndOfCallReport)
    assert (job.event.call.id, job.event.reconciled) == ("lost", True)
    await queue.aclose()


async def test_a_reconciled_report_the_queue_refuses_is_not_counted_and_comes_again(
    backend_url: str,
) -> None:
    platform = FakePlatform()
    queue = queue_from_url(backend_url, max_length=1)
    app, _ = reconciling_app(platform, background=Background(queue=queue))
    platform.end_call("lost")
    async with WebhookClient(app, secret="whsec_reconcile") as client:
        await client.end_of_call_report(call_id="fills-the-queue")
        await client.status_update("ended", call_id="lost")
        await anyio.sleep(0.02)
        assert app.reconciler is not None
        assert await app.reconciler.sweep() == 0  # refused: not reconciled
        assert len(app.reconciler) == 1  # looked at again later
        await queue.open()
        await queue.ack([entry.id for entry in await queue.read("test", 10, 0.01)])
        app.reconciler._calls["lost"] = (0.0, 0)  # due now
        assert await app.reconciler.sweep() == 1  # its claim was given back
    await queue.aclose()
