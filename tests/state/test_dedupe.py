"""Duplicate deliveries run once: tool calls, informational events, opt-outs, store faults."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import msgspec
import pytest
import redis.asyncio

from tests.helpers.redis_server import RedisServer
from tests.helpers.stores import BrokenStore
from voicehooks import (
    ConfigurationError,
    Deadlines,
    DeliveryStore,
    Duplicates,
    MemoryStore,
    RedisStore,
    ToolError,
    VoiceHooks,
)
from voicehooks.core.events import (
    EndOfCallReport,
    StatusUpdate,
    decode_delivery,
    event_key,
    tool_key,
)
from voicehooks.exceptions import StoreError
from voicehooks.state.dedupe import Deduplicator
from voicehooks.state.stores import store_from_url
from voicehooks.testing import (
    WebhookClient,
    assistant_request,
    end_of_call_report,
    status_update,
    tool_call,
    tool_calls,
)

pytestmark = pytest.mark.anyio

SECRET = "whsec_dedupe_tests"
ARGUMENT = "Tuesday 09:30 with Anneke"  # never to appear in a log line


@pytest.fixture(params=["memory", "redis", "postgres"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[DeliveryStore]:
    """Each behaviour holds for every store."""
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        url = server.url
    else:
        url = request.getfixturevalue("postgres_url")
    shared = store_from_url(url)
    await shared.open()  # as an app's startup does
    yield shared
    await shared.aclose()


def encode(payload: dict[str, Any]) -> bytes:
    return msgspec.json.encode(payload)


def booking_app(**options: Any) -> tuple[VoiceHooks, list[str]]:
    """An app whose ``book`` tool records each run and answers something unique."""
    app = VoiceHooks(secret=SECRET, **options)
    runs: list[str] = []

    @app.tool
    async def book(slot: str) -> dict[str, str]:
        """Book an appointment slot."""
        runs.append(slot)
        return {"booked": slot, "reference": uuid.uuid4().hex}

    return app, runs


def booking(tool_call_id: str = "tc-1", call_id: str = "call-1") -> bytes:
    return encode(
        tool_calls(tool_call("book", {"slot": ARGUMENT}, id=tool_call_id), call_id=call_id)
    )


# -- tool calls --------------------------------------------------------------------------


async def test_a_re_signed_tool_call_runs_once_and_both_answers_are_equal(
    store: DeliveryStore,
) -> None:
    app, runs = booking_app(duplicates=Duplicates(store=store))
    body = booking()
    now = int(time.time())
    async with WebhookClient(app, secret=SECRET) as client:
        first = await client.post(body, timestamp=now)
        second = await client.post(body, timestamp=now + 30)
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.content == second.content
    assert runs == [ARGUMENT]


async def test_an_exact_replay_inside_the_tolerance_window_is_a_duplicate() -> None:
    app, runs = booking_app()
    client = WebhookClient(app, secret=SECRET)
    body = booking()
    headers = client.signed_headers(body)
    answers = [await client.post(body, signed=False, headers=headers) for _ in range(2)]
    assert answers[0].status_code == 200
    assert answers[0].content == answers[1].content
    assert runs == [ARGUMENT]


async def test_other_tool_calls_and_other_calls_are_not_duplicates() -> None:
    app, runs = booking_app()
    client = WebhookClient(app, secret=SECRET)
    for body in (booking(), booking(tool_call_id="tc-2"), booking(call_id="call-2")):
        assert (await client.post(body)).status_code == 200
    assert len(runs) == 3


async def test_ids_with_colons_cannot_collide() -> None:
    assert tool_key("a:b", "c") != tool_key("a", "b:c")


async def test_each_call_of_a_multi_call_delivery_runs_once() -> None:
    app, runs = booking_app()
    client = WebhookClient(app, secret=SECRET)

    def calls(*ids: str) -> bytes:
        return encode(
            tool_calls(*(tool_call("book", {"slot": i}, id=i) for i in ids), call_id="call-multi")
        )

    first = (await client.post(calls("a", "b"))).json()["results"]
    second = (await client.post(calls("b", "c"))).json()["results"]
    assert sorted(runs) == ["a", "b", "c"]
    assert second[0] == first[1]


class CountingStore(MemoryStore):
    """Counts the store operations a delivery makes."""

    def __init__(self) -> None:
        super().__init__()
        self.operations: list[str] = []

    async def claim(self, key: str, ttl_seconds: float) -> bool:
        self.operations.append("claim")
        return await super().claim(key, ttl_seconds)

    async def claim_many(self, keys: Sequence[str], ttl_seconds: float) -> list[bool]:
        self.operations.append(f"claim_many {len(keys)}")
        return await super().claim_many(keys, ttl_seconds)

    async def put_result(self, key: str, result: bytes, ttl_seconds: float) -> None:
        self.operations.append("put_result")
        await super().put_result(key, result, ttl_seconds)

    async def put_results(self, results: Sequence[tuple[str, bytes]], ttl_seconds: float) -> None:
        self.operations.append(f"put_results {len(results)}")
        await super().put_results(results, ttl_seconds)


async def test_a_multi_call_delivery_claims_and_stores_its_calls_in_one_operation_each() -> None:
    store = CountingStore()
    app, runs = booking_app(duplicates=Duplicates(store=store))
    body = encode(
        tool_calls(*(tool_call("book", {"slot": i}, id=i) for i in "abc"), call_id="call-batch")
    )
    client = WebhookClient(app, secret=SECRET)
    first = await client.post(body)
    assert store.operations == ["claim_many 3", "put_results 3"]
    again = await client.post(body)  # a redelivery: answered from the store, nothing runs
    assert again.content == first.content
    assert sorted(runs) == ["a", "b", "c"]
    assert store.operations[2] == "claim_many 3"
    assert "put_results" not in " ".join(store.operations[3:])  # nothing new to keep


async def test_a_tool_call_id_twice_in_one_delivery_runs_once_and_both_get_its_answer(
    store: DeliveryStore,
) -> None:
    app, runs = booking_app(duplicates=Duplicates(store=store))
    body = encode(
        tool_calls(
            tool_call("book", {"slot": "9"}, id="same"),
            tool_call("book", {"slot": "9"}, id="same"),
            call_id="call-twice",
        )
    )
    with anyio.fail_after(5):
        results = (await WebhookClient(app, secret=SECRET).post(body)).json()["results"]
    assert runs == ["9"]
    assert results[0] == results[1]
    assert results[0]["result"]["booked"] == "9"


async def test_a_cancelled_multi_call_delivery_keeps_what_finished_and_frees_the_rest() -> None:
    app = VoiceHooks(secret=SECRET)
    started = anyio.Event()
    runs: list[str] = []

    @app.tool
    async def book(slot: str) -> str:
        """Hang on slot "slow", the first time."""
        runs.append(slot)
        if slot == "slow" and runs.count("slow") == 1:
            started.set()
            await anyio.sleep(30)
        return f"booked {slot}"

    body = encode(
        tool_calls(
            tool_call("book", {"slot": "fast"}, id="f"),
            tool_call("book", {"slot": "slow"}, id="s"),
            call_id="call-cut",
        )
    )
    client = WebhookClient(app, secret=SECRET)  # no lifespan: the request runs in our task
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(client.post, body)
            await started.wait()
            group.cancel_scope.cancel()  # as a server shutting down would
        results = (await client.post(body)).json()["results"]
    assert [r["result"] for r in results] == ["booked fast", "booked slow"]
    assert runs == ["fast", "slow", "slow"]  # the finished call was kept, not run again


async def test_a_concurrent_duplicate_waits_for_the_first_result(store: DeliveryStore) -> None:
    app = VoiceHooks(secret=SECRET, duplicates=Duplicates(store=store))
    started, finish = anyio.Event(), anyio.Event()
    runs: list[str] = []

    @app.tool
    async def book(slot: str) -> dict[str, str]:
        """Book slowly."""
        runs.append(slot)
        started.set()
        await finish.wait()
        return {"booked": slot, "reference": uuid.uuid4().hex}

    body = booking()
    answers: dict[str, bytes] = {}
    async with WebhookClient(app, secret=SECRET) as client:

        async def send(name: str) -> None:
            answers[name] = (await client.post(body)).content

        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(send, "first")
                await started.wait()
                group.start_soon(send, "second")
                group.start_soon(send, "third")
                await anyio.sleep(0.2)  # long enough for both to reach the store
                assert answers == {}  # the duplicates wait rather than run or answer
                finish.set()
    assert answers["first"] == answers["second"] == answers["third"]
    assert runs == [ARGUMENT]


async def test_a_tool_error_is_kept_and_answered_again() -> None:
    app = VoiceHooks(secret=SECRET)
    runs: list[int] = []

    @app.tool
    async def book(slot: str) -> None:
        """Refuse."""
        runs.append(1)
        raise ToolError("That slot is taken.")

    client = WebhookClient(app, secret=SECRET)
    answers = [await client.post(booking()) for _ in range(2)]
    assert answers[0].content == answers[1].content
    assert b"That slot is taken." in answers[0].content
    assert runs == [1]


async def test_an_unexpected_exception_is_released_so_a_redelivery_runs_again() -> None:
    app = VoiceHooks(secret=SECRET)
    runs: list[int] = []

    @app.tool
    async def book(slot: str) -> str:
        """Fail the first time."""
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("database went away")
        return "booked"

    client = WebhookClient(app, secret=SECRET, raise_exceptions=False)
    first = (await client.post(booking())).json()["results"][0]["result"]
    second = (await client.post(booking())).json()["results"][0]["result"]
    assert "error" in first
    assert second == "booked"
    assert len(runs) == 2


async def test_a_timeout_is_released_and_a_waiting_duplicate_answers_the_timeout() -> None:
    app = VoiceHooks(secret=SECRET, deadlines=Deadlines(tool_seconds=0.3))
    runs: list[int] = []

    @app.tool
    async def book(slot: str) -> str:
        """Hang the first time."""
        runs.append(1)
        if len(runs) == 1:
            await anyio.sleep(30)
        return "booked"

    body = booking()
    answers: list[Any] = []
    async with WebhookClient(app, secret=SECRET) as client:

        async def send() -> None:
            answers.append((await client.post(body)).json()["results"][0]["result"])

        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(send)
                await anyio.sleep(0.1)
                group.start_soon(send)
        assert len(answers) == 2
        assert all("did not answer in time" in answer["error"] for answer in answers)
        retried = (await client.post(body)).json()["results"][0]["result"]
    assert retried == "booked"
    assert len(runs) == 2


async def test_a_cancelled_run_is_released() -> None:
    app = VoiceHooks(secret=SECRET)
    started = anyio.Event()
    runs: list[int] = []

    @app.tool
    async def book(slot: str) -> str:
        """Hang the first time."""
        runs.append(1)
        if len(runs) == 1:
            started.set()
            await anyio.sleep(30)
        return "booked"

    client = WebhookClient(app, secret=SECRET)  # no lifespan: the request runs in our task
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(client.post, booking())
            await started.wait()
            group.cancel_scope.cancel()  # as a server shutting down would
        answer = (await client.post(booking())).json()["results"][0]["result"]
    assert answer == "booked"
    assert len(runs) == 2


async def test_a_cancelled_run_whose_release_fails_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = VoiceHooks(secret=SECRET, duplicates=Duplicates(store=WriteOnlyFailure()))
    started = anyio.Event()

    @app.tool
    async def book(slot: str) -> str:
        """Hang."""
        started.set()
        await anyio.sleep(30)
        return "booked"

    client = WebhookClient(app, secret=SECRET)
    with caplog.at_level(logging.ERROR, logger="voicehooks"), anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(client.post, booking())
            await started.wait()
            group.cancel_scope.cancel()
    assert "failed recording tool-calls (call call-1): StoreError: disk full" in caplog.text


async def test_events_are_identified_by_type_call_status_and_time_not_by_bytes() -> None:
    once = Deduplicator(MemoryStore(), ttl_seconds=60, store_failure="process")
    payload = end_of_call_report(call_id="call-1")["message"]
    compact = msgspec.json.decode(encode(payload), type=EndOfCallReport)
    pretty = msgspec.json.decode(
        msgspec.json.format(encode(payload), indent=4), type=EndOfCallReport
    )
    later = msgspec.json.decode(
        encode({**payload, "timestamp": "2030-01-01T00:00:00.000Z"}), type=EndOfCallReport
    )
    other_call = msgspec.json.decode(
        encode({**payload, "call": {**payload["call"], "id": "call-2"}}), type=EndOfCallReport
    )
    assert await once.is_first_event(compact)
    assert not await once.is_first_event(pretty)  # the same event, re-serialised
    assert await once.is_first_event(later)
    assert await once.is_first_event(other_call)
    assert event_key(compact) == event_key(pretty) != event_key(later)


async def test_a_fire_and_forget_tool_is_claimed_before_it_starts() -> None:
    app = VoiceHooks(secret=SECRET)
    runs: list[str] = []

    @app.tool(fire_and_forget=True, async_response="On it.")
    async def notify(slot: str) -> None:
        """Send a notification."""
        runs.append(slot)

    body = encode(tool_calls(tool_call("notify", {"slot": "x"}, id="tc-1"), call_id="call-1"))
    async with WebhookClient(app, secret=SECRET) as client:
        answers = [await client.post(body) for _ in range(3)]
        await client.wait_for_background()
    assert answers[0].content == answers[1].content == answers[2].content
    assert runs == ["x"]


# -- informational events ----------------------------------------------------------------


async def test_the_same_end_of_call_report_twice_runs_its_handlers_once(
    store: DeliveryStore,
) -> None:
    app = VoiceHooks(secret=SECRET, duplicates=Duplicates(store=store))
    after: list[str] = []
    before: list[str] = []

    @app.on("end-of-call-report")
    async def save(report: EndOfCallReport) -> None:
        after.append(report.call.id)

    @app.on("end-of-call-report", run_before_answer=True)
    async def count(report: EndOfCallReport) -> None:
        before.append(report.call.id)

    body = encode(end_of_call_report(call_id="call-9"))
    now = int(time.time())
    async with WebhookClient(app, secret=SECRET) as client:
        answers = [await client.post(body, timestamp=now + i) for i in range(3)]
        await client.wait_for_background()
    assert [(a.status_code, a.content) for a in answers] == [(200, b"{}")] * 3
    assert after == before == ["call-9"]


async def test_different_status_updates_of_one_call_all_run() -> None:
    app = VoiceHooks(secret=SECRET)
    seen: list[str] = []

    @app.on("status-update", run_before_answer=True)
    async def track(event: StatusUpdate) -> None:
        seen.append(event.status)

    client = WebhookClient(app, secret=SECRET)
    for status, at in [("in-progress", "12:00:00.000"), ("ended", "12:01:35.120")]:
        stamp = f"2025-12-31T{at}Z"
        await client.post(status_update(status, call_id="call-3", timestamp=stamp))
    # The same status again, at another moment, is another event.
    await client.post(
        status_update("ended", call_id="call-3", timestamp="2025-12-31T12:01:35.121Z")
    )
    await client.post(status_update("in-progress", call_id="call-4"))
    assert seen == ["in-progress", "ended", "ended", "in-progress"]


async def test_an_event_without_handlers_costs_no_claim() -> None:
    store = MemoryStore()
    app = VoiceHooks(secret=SECRET, duplicates=Duplicates(store=store))
    client = WebhookClient(app, secret=SECRET)
    assert (await client.post(end_of_call_report())).status_code == 200
    assert len(store) == 0


async def test_assistant_requests_are_answered_every_time() -> None:
    app = VoiceHooks(secret=SECRET)
    runs: list[int] = []

    @app.on("assistant-request")
    async def configure() -> dict[str, Any]:
        runs.append(1)
        return {"assistant": {"first_message": "Hello"}}

    client = WebhookClient(app, secret=SECRET)
    body = encode(assistant_request(call_id="call-5"))
    for _ in range(2):
        assert (await client.post(body)).json() == {"assistant": {"first_message": "Hello"}}
    assert runs == [1, 1]


# -- opting out --------------------------------------------------------------------------


async def test_an_app_can_opt_out() -> None:
    app, runs = booking_app(duplicates=None)
    assert app.store is None
    seen: list[str] = []
    app.add_handler("end-of-call-report", lambda: seen.append("x"), run_before_answer=True)
    client = WebhookClient(app, secret=SECRET)
    report = encode(end_of_call_report(call_id="call-1"))
    for _ in range(2):
        await client.post(booking())
        await client.post(report)
    assert len(runs) == 2
    assert seen == ["x", "x"]


async def test_a_tool_can_opt_out() -> None:
    app, runs = booking_app()
    pings: list[int] = []

    @app.tool(deduplicate=False)
    async def ping() -> int:
        """Cheap and harmless to repeat."""
        pings.append(1)
        return len(pings)

    client = WebhookClient(app, secret=SECRET)
    ping_body = encode(tool_calls(tool_call("ping", id="tc-p"), call_id="call-1"))
    answers = [(await client.post(ping_body)).json() for _ in range(2)]
    for _ in range(2):
        await client.post(booking())
    assert [a["results"][0]["result"] for a in answers] == [1, 2]
    assert len(runs) == 1
    assert [r.note for r in app.routes() if r.name == "ping"] == ["not deduplicated"]


def test_configuration_mistakes_fail_at_construction() -> None:
    with pytest.raises(ConfigurationError, match="store_failure"):
        VoiceHooks(secret=SECRET, duplicates=Duplicates(store_failure="ignore"))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="ttl_seconds"):
        VoiceHooks(secret=SECRET, duplicates=Duplicates(ttl_seconds=0))


async def test_voicehooks_redis_url_selects_the_redis_store(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VOICEHOOKS_REDIS_URL", "redis://127.0.0.1:1/0")
    app = VoiceHooks(secret=SECRET)
    assert isinstance(app.store, RedisStore)
    await app.store.aclose()


# -- store faults ------------------------------------------------------------------------


class WriteOnlyFailure(MemoryStore):
    """Claims work; recording the outcome fails."""

    async def put_result(self, key: str, result: bytes, ttl_seconds: float) -> None:
        raise StoreError("disk full")

    async def put_results(self, results: Sequence[tuple[str, bytes]], ttl_seconds: float) -> None:
        raise StoreError("disk full")

    async def release(self, key: str) -> None:
        raise StoreError("disk full")


class BlindWaiter(MemoryStore):
    """Claims work; fetching a stored result fails."""

    async def wait_result(self, key: str, timeout_seconds: float) -> bytes | None:
        raise StoreError("connection lost")


def assert_no_payload(caplog: pytest.LogCaptureFixture) -> None:
    assert ARGUMENT not in caplog.text
    assert "+316" not in caplog.text  # the factories' phone numbers


@pytest.mark.parametrize("error", [StoreError("redis claim failed"), RuntimeError("bug")])
async def test_a_failing_store_still_answers_and_logs_an_error(
    caplog: pytest.LogCaptureFixture, error: Exception
) -> None:
    app, _ = booking_app(duplicates=Duplicates(store=BrokenStore(error)))
    seen: list[int] = []
    app.add_handler("end-of-call-report", lambda: seen.append(1), run_before_answer=True)
    client = WebhookClient(app, secret=SECRET)
    with caplog.at_level(logging.INFO, logger="voicehooks"):
        answer = await client.post(booking())
        report = await client.post(end_of_call_report())
    assert answer.status_code == 200
    assert answer.json()["results"][0]["result"]["booked"] == ARGUMENT
    assert (report.status_code, seen) == (200, [1])
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 2
    assert all("processing the delivery anyway" in r.getMessage() for r in failures)
    assert_no_payload(caplog)


@pytest.mark.parametrize(
    "payload",
    [
        tool_calls(tool_call("book", {"slot": ARGUMENT})),
        tool_calls(tool_call("book", {"slot": ARGUMENT}), tool_call("book", {"slot": "2"})),
        end_of_call_report(),
    ],
    ids=["one-call", "two-calls", "report"],
)
async def test_store_failure_reject_answers_503(
    caplog: pytest.LogCaptureFixture, payload: dict[str, Any]
) -> None:
    app, runs = booking_app(
        duplicates=Duplicates(store=BrokenStore(StoreError("down")), store_failure="reject")
    )
    app.add_handler("end-of-call-report", lambda: runs.append("report"), run_before_answer=True)
    client = WebhookClient(app, secret=SECRET)
    with caplog.at_level(logging.INFO, logger="voicehooks"):
        response = await client.post(payload)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": "the duplicate-delivery store is unavailable; deliver again later"
    }
    assert runs == []
    assert "answering 503" in caplog.text
    assert_no_payload(caplog)


@pytest.mark.parametrize("store_failure", ["process", "reject"])
async def test_a_known_duplicate_is_never_run_again_when_its_result_cannot_be_fetched(
    caplog: pytest.LogCaptureFixture, store_failure: Any
) -> None:
    app, runs = booking_app(duplicates=Duplicates(store=BlindWaiter(), store_failure=store_failure))
    client = WebhookClient(app, secret=SECRET)
    assert (await client.post(booking())).status_code == 200
    with caplog.at_level(logging.ERROR, logger="voicehooks"):
        duplicate = await client.post(booking())
    assert runs == [ARGUMENT]
    if store_failure == "process":
        assert duplicate.status_code == 200
        assert "did not answer in time" in duplicate.json()["results"][0]["result"]["error"]
        assert "answering the duplicate without the first result" in caplog.text
    else:
        assert duplicate.status_code == 503
    assert "StoreError: connection lost" in caplog.text


async def test_failing_to_record_a_result_still_answers_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, _ = booking_app(duplicates=Duplicates(store=WriteOnlyFailure(), store_failure="reject"))
    client = WebhookClient(app, secret=SECRET)
    with caplog.at_level(logging.ERROR, logger="voicehooks"):
        answer = await client.post(booking())
    assert answer.status_code == 200
    assert answer.json()["results"][0]["result"]["booked"] == ARGUMENT
    assert "failed recording tool-calls (call call-1): StoreError: disk full" in caplog.text


async def test_the_lifespan_closes_the_store_and_survives_its_failure(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = BrokenStore(StoreError("already gone"))
    app = VoiceHooks(secret=SECRET, duplicates=Duplicates(store=store))
    with caplog.at_level(logging.WARNING, logger="voicehooks"):
        async with WebhookClient(app, secret=SECRET):
            closed = [store.closed]
    closed.append(store.closed)
    assert closed == [False, True]
    assert "closing the duplicate-delivery store failed: already gone" in caplog.text


# -- with a real Redis -------------------------------------------------------------------


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def test_every_key_written_for_deliveries_expires(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis
) -> None:
    app, _ = booking_app(
        duplicates=Duplicates(store=RedisStore.from_url(redis_server.url), ttl_seconds=600)
    )
    app.add_handler("end-of-call-report", lambda: None)
    report = encode(end_of_call_report(call_id="call-1"))
    async with WebhookClient(app, secret=SECRET) as client:
        await client.post(booking())
        await client.post(report)
    keys = sorted(await redis_client.keys("*"))
    assert keys == sorted(
        [
            f"voicehooks:claim:{tool_key('call-1', 'tc-1')}".encode(),
            f"voicehooks:result:{tool_key('call-1', 'tc-1')}".encode(),
            f"voicehooks:claim:{event_key(decode_delivery(report))}".encode(),
        ]
    )
    for key in keys:
        assert 590 < await redis_client.ttl(key) <= 600


async def test_an_in_flight_claim_expires_shortly_after_the_tool_deadline(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis
) -> None:
    app = VoiceHooks(
        secret=SECRET, duplicates=Duplicates(store=RedisStore.from_url(redis_server.url))
    )
    ttls: list[int] = []

    @app.tool(timeout_seconds=2)
    async def book(slot: str) -> str:
        """Look at the claim while running."""
        ttls.append(await redis_client.ttl(f"voicehooks:claim:{tool_key('call-1', 'tc-1')}"))
        return "ok"

    async with WebhookClient(app, secret=SECRET) as client:
        await client.post(booking())
    assert len(ttls) == 1
    assert 5 < ttls[0] <= 7  # the 2 s deadline plus a 5 s margin


@pytest.mark.parametrize("store_failure", ["process", "reject"])
async def test_redis_stopped_mid_test_deliveries_are_still_answered(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture, store_failure: Any
) -> None:
    store = RedisStore.from_url(redis_server.url)
    app, runs = booking_app(duplicates=Duplicates(store=store, store_failure=store_failure))
    async with WebhookClient(app, secret=SECRET) as client:
        assert (await client.post(booking())).status_code == 200
        redis_server.stop()
        with caplog.at_level(logging.ERROR, logger="voicehooks"), anyio.fail_after(5):
            second = await client.post(booking(tool_call_id="tc-2"))
    if store_failure == "process":
        assert second.status_code == 200
        assert second.json()["results"][0]["result"]["booked"] == ARGUMENT
        assert len(runs) == 2
    else:
        assert second.status_code == 503
        assert len(runs) == 1
    assert "redis claim failed: ConnectionError" in caplog.text
    assert_no_payload(caplog)


async def test_a_frozen_redis_costs_a_delivery_no_more_than_the_operation_timeout(
    redis_server: RedisServer,
) -> None:
    store = RedisStore.from_url(redis_server.url, operation_timeout_seconds=0.2)
    app, runs = booking_app(duplicates=Duplicates(store=store))
    async with WebhookClient(app, secret=SECRET) as client:
        await client.post(booking())
        redis_server.pause()
        started = time.perf_counter()
        answer = await client.post(booking(tool_call_id="tc-2"))
        elapsed = time.perf_counter() - started
        redis_server.resume()
    assert answer.status_code == 200
    assert len(runs) == 2
    # The claim times out after 0.2 s and the call runs unguarded: far inside its 8 s.
    assert elapsed < 2.0


async def _post_concurrently(clients: list[WebhookClient], body: bytes, count: int) -> list[bytes]:
    answers: list[bytes] = []

    async def send(client: WebhookClient) -> None:
        answers.append((await client.post(body)).content)

    async with anyio.create_task_group() as group:
        for i in range(count):
            group.start_soon(send, clients[i % len(clients)])
    return answers


async def test_two_apps_sharing_a_store_run_a_tool_call_once(backend_url: str) -> None:
    """Two app instances stand in for two processes: they share nothing but the server."""
    runs: list[str] = []
    apps = []
    for _ in range(2):
        app = VoiceHooks(secret=SECRET, duplicates=Duplicates(store=store_from_url(backend_url)))

        @app.tool
        async def book(slot: str) -> dict[str, str]:
            """Book slowly enough for every duplicate to arrive meanwhile."""
            runs.append(slot)
            await anyio.sleep(0.2)
            return {"booked": slot, "reference": uuid.uuid4().hex}

        apps.append(app)
    clients = [WebhookClient(app, secret=SECRET) for app in apps]
    async with clients[0], clients[1]:
        with anyio.fail_after(10):
            answers = await _post_concurrently(clients, booking(), 6)
    assert len(set(answers)) == 1
    assert runs == [ARGUMENT]


# -- the one single flight, as once-per-intent tools use it --------------------------------


def _event() -> Any:
    return decode_delivery(
        msgspec.json.encode(tool_calls(tool_call("book", {}), call_id="+31612345678-call"))
    )


async def test_intent_keys_hash_the_call_id_and_tell_scopes_apart() -> None:
    from voicehooks.state.dedupe import intent_key

    in_call = intent_key("+31612345678-call", "book", b'{"slot":"9"}')
    assert "31612345678" not in in_call
    assert in_call.startswith("intent:call:")
    assert intent_key(None, "book", b'{"slot":"9"}').startswith("intent:app:")
    assert in_call != intent_key("+31612345678-call", "pay", b'{"slot":"9"}')


class FlakyStore(MemoryStore):
    """Claims once, then fails: a store that goes away between a wait and a second claim."""

    def __init__(self) -> None:
        super().__init__()
        self.claims = 0

    async def claim(self, key: str, ttl_seconds: float) -> bool:
        self.claims += 1
        if self.claims > 2:
            raise StoreError("gone")
        return await super().claim(key, ttl_seconds)


async def test_a_later_caller_whose_second_claim_fails_answers_without_running() -> None:
    store = FlakyStore()
    once = Deduplicator(store, ttl_seconds=60, store_failure="process")
    event = _event()
    assert await store.claim("intent:k", 60)  # someone else runs it
    ran: list[int] = []

    async def execute() -> tuple[msgspec.Raw, bool | None]:
        ran.append(1)
        return msgspec.Raw(b'"x"'), True

    async def let_go() -> None:
        await anyio.sleep(0.05)
        await store.release("intent:k")

    async with anyio.create_task_group() as group:
        group.start_soon(let_go)
        answer = await once.single_flight(
            "intent:k",
            event,
            "book",
            wait_seconds=1,
            claim_seconds=5,
            execute=execute,
            run_if_released=True,
        )
    assert answer is None
    assert ran == []


async def test_a_later_caller_runs_when_the_first_let_go_and_waits_when_another_took_over() -> None:
    store = MemoryStore()
    once = Deduplicator(store, ttl_seconds=60, store_failure="process")
    event = _event()

    async def execute() -> tuple[msgspec.Raw, bool | None]:
        return msgspec.Raw(b'"ran"'), True

    async def retake() -> None:  # the first lets go and another retry takes it at once
        await anyio.sleep(0.05)
        await store.release("intent:k")
        await store.claim("intent:k", 60)

    assert await store.claim("intent:k", 60)
    async with anyio.create_task_group() as group:
        group.start_soon(retake)
        answer = await once.single_flight(
            "intent:k",
            event,
            "book",
            wait_seconds=0.2,
            claim_seconds=5,
            execute=execute,
            run_if_released=True,
        )
    assert answer is None  # still going elsewhere: never a second run here
    await store.release("intent:k")
    assert await store.claim("intent:k", 60)

    async def let_go() -> None:
        await anyio.sleep(0.05)
        await store.release("intent:k")

    async with anyio.create_task_group() as group:
        group.start_soon(let_go)
        answer = await once.single_flight(
            "intent:k",
            event,
            "book",
            wait_seconds=1,
            claim_seconds=5,
            execute=execute,
            run_if_released=True,
        )
    assert answer == msgspec.Raw(b'"ran"')
