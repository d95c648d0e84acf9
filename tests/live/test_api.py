"""PlatformClient against FakePlatform: commands, typed errors, retries, budgets, secrecy."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.servers import free_port
from voicehooks import ConfigurationError
from voicehooks.core.environment import API_KEY, API_KEY_FILE, API_URL
from voicehooks.live.api import (
    DEFAULT_API_URL,
    CallEnded,
    OutcomeUnknown,
    PlatformAPIError,
    PlatformClient,
    PlatformUnavailable,
    RateLimited,
    Unauthorized,
    resolve_api_key,
)
from voicehooks.testing import FakePlatform

pytestmark = pytest.mark.anyio

KEY = "vh-SECRET-api-key-0451"


def client_for(platform: FakePlatform, **options: Any) -> PlatformClient:
    return PlatformClient(
        api_key=platform.api_key,
        base_url=platform.base_url,
        transport=platform.transport(),
        **options,
    )


@pytest.fixture
def platform() -> FakePlatform:
    return FakePlatform(api_key=KEY)


@pytest.fixture
async def api(platform: FakePlatform) -> AsyncIterator[PlatformClient]:
    async with client_for(platform) as client:
        yield client


async def test_each_command_reaches_the_call_with_bearer_auth(
    api: PlatformClient, platform: FakePlatform
) -> None:
    assert await api.inject_context("c-1", "stock: 4", trigger_response=True) == {"success": True}
    await api.say("c-1", "Goodbye", end_after=True)
    await api.transfer("c-1", "+31201234567", message="Putting you through")
    await api.end_call("c-1")
    bodies = [r.body for r in platform.accepted("c-1")]
    assert bodies == [
        {"type": "inject-context", "content": "stock: 4", "trigger_response": True},
        {"type": "say", "content": "Goodbye", "end_after": True},
        {"type": "transfer", "destination": "+31201234567", "message": "Putting you through"},
        {"type": "end-call"},
    ]
    for request in platform.received():
        assert request.headers["authorization"] == f"Bearer {KEY}"
        assert request.headers["content-type"] == "application/json"
        assert request.path == "/api/v1/calls/c-1/control"


async def test_reads_a_call_and_an_assistant(api: PlatformClient, platform: FakePlatform) -> None:
    platform.add_call("c-2", status="ended", ended_at="2026-01-01T00:00:00Z")
    platform.add_assistant("a-1", {"name": "Desk", "llm_config": {"tools": []}})
    call = await api.get_call("c-2")
    assert call["status"] == "ended"
    assert (await api.get_assistant("a-1"))["name"] == "Desk"
    with pytest.raises(PlatformAPIError) as caught:
        await api.get_call("nope")
    assert caught.value.status == 404
    assert type(caught.value) is PlatformAPIError


async def test_a_call_id_is_escaped_in_the_path(
    api: PlatformClient, platform: FakePlatform
) -> None:
    await api.say("a/b c", "hi")
    assert platform.received()[-1].path == "/api/v1/calls/a%2Fb%20c/control"


@pytest.mark.parametrize("shape", ["sdk", "codes"])
@pytest.mark.parametrize("ended_status", [400, 404, 409])
async def test_a_command_for_an_ended_call_is_call_ended(shape: str, ended_status: int) -> None:
    platform = FakePlatform(api_key=KEY, error_shape=shape, ended_status=ended_status)  # type: ignore[arg-type]
    platform.end_call("c-3")
    async with client_for(platform) as api:
        with pytest.raises(CallEnded) as caught:
            await api.say("c-3", "hello?")
    assert caught.value.status == ended_status
    assert caught.value.code == "call_not_active"
    assert caught.value.detail == "Call is not active"
    assert len(platform.received()) == 1  # not retried


@pytest.mark.parametrize("shape", ["sdk", "codes"])
async def test_a_wrong_key_is_unauthorized_and_not_retried(shape: str) -> None:
    platform = FakePlatform(api_key=KEY, error_shape=shape)  # type: ignore[arg-type]
    async with PlatformClient(
        api_key="wrong", base_url=platform.base_url, transport=platform.transport()
    ) as api:
        with pytest.raises(Unauthorized) as caught:
            await api.inject_context("c-4", "x")
    assert caught.value.status == 401
    assert caught.value.code == "unauthorized"
    assert "wrong" not in str(caught.value)
    assert len(platform.requests) == 1


async def test_a_read_answered_5xx_is_retried_until_it_succeeds(
    api: PlatformClient, platform: FakePlatform
) -> None:
    platform.add_call("c-5")
    platform.fail_next(2, status=503)
    started = time.monotonic()
    await api.get_call("c-5")
    elapsed = time.monotonic() - started
    assert [r.status for r in platform.requests] == [503, 503, 200]
    assert elapsed >= 0.25 + 0.5  # the two pauses: 0.25 s, then 0.5 s


async def test_retries_stop_at_max_attempts(platform: FakePlatform) -> None:
    platform.fail_next(5, status=502)
    async with client_for(platform, max_attempts=2) as api:
        with pytest.raises(PlatformUnavailable) as caught:
            await api.get_call("c-6")
    assert caught.value.status == 502
    assert len(platform.requests) == 2


async def test_retry_after_is_honoured(api: PlatformClient, platform: FakePlatform) -> None:
    platform.fail_next(1, status=429, retry_after=1)
    started = time.monotonic()
    await api.say("c-7", "hello")
    assert time.monotonic() - started >= 1.0
    assert [r.status for r in platform.received()] == [429, 200]


async def test_a_retry_after_past_the_deadline_gives_up_at_once(platform: FakePlatform) -> None:
    platform.fail_next(1, status=429, retry_after=30)
    async with client_for(platform, deadline_seconds=2) as api:
        started = time.monotonic()
        with pytest.raises(RateLimited) as caught:
            await api.say("c-8", "hello")
    assert time.monotonic() - started < 1.0
    assert caught.value.retry_after_seconds == 30
    assert len(platform.received()) == 1


@pytest.mark.parametrize("shape", ["sdk", "codes"])
async def test_the_platforms_own_429_is_rate_limited_with_its_retry_after(shape: str) -> None:
    platform = FakePlatform(api_key=KEY, error_shape=shape, commands_per_window=1)  # type: ignore[arg-type]
    async with client_for(platform, deadline_seconds=1) as api:
        await api.say("c-9", "one")
        with pytest.raises(RateLimited) as caught:
            await api.say("c-9", "two")
    assert caught.value.status == 429
    assert caught.value.code == "rate_limit_exceeded"
    assert caught.value.retry_after_seconds == 60


async def test_an_answer_slower_than_the_attempt_timeout_is_unavailable_and_a_command_is_not_resent(
    platform: FakePlatform,
) -> None:
    platform.delay_seconds = 1.0
    async with client_for(platform, timeout_seconds=0.2, deadline_seconds=3) as api:
        with pytest.raises(OutcomeUnknown):
            await api.say("c-10", "hello")
    # The platform may have acted on it: a control command is not sent a second time.
    assert len(platform.requests) == 1


async def test_a_slow_read_is_retried(platform: FakePlatform) -> None:
    platform.delay_seconds = 1.0
    async with client_for(platform, timeout_seconds=0.2, deadline_seconds=1.5) as api:
        with pytest.raises(PlatformUnavailable):
            await api.get_call("c-11")
    assert len(platform.requests) >= 2


async def test_a_refused_connection_is_retried_then_unavailable() -> None:
    port = free_port()  # nothing listens there
    async with PlatformClient(
        api_key=KEY, base_url=f"http://127.0.0.1:{port}/api/v1", deadline_seconds=3
    ) as api:
        started = time.monotonic()
        with pytest.raises(PlatformUnavailable) as caught:
            await api.say("c-12", "hello")
    assert time.monotonic() - started >= 0.25 + 0.5  # three attempts, two pauses
    assert caught.value.status is None
    assert "ConnectError" in str(caught.value)


# -- a control command is never sent twice when its effect is unknown ---------------------


class Between(httpx.AsyncBaseTransport):
    """Between the client and the fake: ``refuse`` requests fail before they leave (the fake
    never sees them); ``lose`` answers are lost after the fake acted on their request."""

    def __init__(self, platform: FakePlatform, *, refuse: int = 0, lose: int = 0) -> None:
        self.inner = platform.transport()
        self.refuse = refuse
        self.lose = lose
        self.attempts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        if self.refuse:
            self.refuse -= 1
            raise httpx.ConnectError("connection refused", request=request)
        response = await self.inner.handle_async_request(request)
        if self.lose:
            self.lose -= 1
            await response.aclose()
            raise httpx.ReadTimeout("the answer never came", request=request)
        return response


def client_between(platform: FakePlatform, transport: Between) -> PlatformClient:
    return PlatformClient(api_key=KEY, base_url=platform.base_url, transport=transport)


def merged_inject_context(api: PlatformClient) -> Awaitable[dict[str, Any]]:
    # As LateResults sends it: the command is built once its slot is free.
    command = {"type": "inject-context", "content": "4 in stock", "trigger_response": True}
    return api.control("c-20", lambda: command)


COMMANDS: dict[str, Callable[[PlatformClient], Awaitable[dict[str, Any]]]] = {
    "say": lambda api: api.say("c-20", "Your parcel left the depot"),
    "transfer": lambda api: api.transfer("c-20", "+31201234567"),
    "end-call": lambda api: api.end_call("c-20", "Goodbye"),
    "inject-context": merged_inject_context,
}


def fail_once(platform: FakePlatform, failure: str) -> Between:
    """Make the next request fail as ``failure`` says; the transport to send it through."""
    if failure == "connect-error":
        return Between(platform, refuse=1)
    if failure == "read-timeout":
        return Between(platform, lose=1)
    if failure == "429-with-retry-after":
        platform.fail_next(1, status=429, retry_after=0.01)
    else:
        platform.fail_next(1, status=int(failure))  # 502, 503 or 504, without Retry-After
    return Between(platform)


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("failure", ["502", "503", "504", "read-timeout"])
async def test_a_command_whose_effect_is_unknown_is_sent_once_and_says_so(
    failure: str, command: str
) -> None:
    platform = FakePlatform(api_key=KEY)
    transport = fail_once(platform, failure)
    async with client_between(platform, transport) as api:
        with pytest.raises(OutcomeUnknown) as caught:
            await COMMANDS[command](api)
    # A gateway may answer 502/504 after the platform acted; a lost answer certainly may.
    assert len(platform.received()) == 1
    assert transport.attempts == 1
    assert caught.value.status == (None if failure == "read-timeout" else int(failure))
    assert isinstance(caught.value, PlatformUnavailable)  # what callers caught before
    assert "may have been carried out" in str(caught.value)


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("failure", ["connect-error", "429-with-retry-after"])
async def test_a_command_that_cannot_have_been_carried_out_is_retried(
    failure: str, command: str
) -> None:
    platform = FakePlatform(api_key=KEY)
    transport = fail_once(platform, failure)
    async with client_between(platform, transport) as api:
        assert await COMMANDS[command](api) == {"success": True}
    assert transport.attempts == 2
    assert len(platform.accepted("c-20")) == 1


@pytest.mark.parametrize(
    ("status", "retry_after", "error"),
    [(429, None, RateLimited), (503, 1, PlatformUnavailable), (500, None, OutcomeUnknown)],
    ids=["429-without-retry-after", "503-with-retry-after", "500"],
)
async def test_a_command_is_retried_only_on_connect_errors_and_429_with_retry_after(
    status: int, retry_after: float | None, error: type[PlatformAPIError]
) -> None:
    platform = FakePlatform(api_key=KEY)
    platform.fail_next(3, status=status, retry_after=retry_after)
    async with client_for(platform) as api:
        with pytest.raises(error) as caught:
            await api.say("c-21", "hello")
    assert type(caught.value) is error
    assert len(platform.received()) == 1


@pytest.mark.parametrize(
    "failure", ["502", "503", "504", "read-timeout", "connect-error", "429-with-retry-after"]
)
async def test_a_read_is_retried_after_any_failure_that_may_pass(failure: str) -> None:
    platform = FakePlatform(api_key=KEY)
    platform.add_call("c-22")
    transport = fail_once(platform, failure)
    async with client_between(platform, transport) as api:
        assert (await api.get_call("c-22"))["id"] == "c-22"
    assert transport.attempts == 2


async def test_a_deadline_bounds_every_attempt(platform: FakePlatform) -> None:
    platform.delay_seconds = 5.0
    async with client_for(platform, timeout_seconds=10, deadline_seconds=0.5) as api:
        started = time.monotonic()
        with pytest.raises(PlatformUnavailable):
            await api.get_call("c-13")
    assert time.monotonic() - started < 2.0


async def test_other_4xx_are_plain_platform_errors_without_retry(platform: FakePlatform) -> None:
    async with client_for(platform) as api:
        with pytest.raises(PlatformAPIError) as caught:
            await api.control("c-14", {"type": "dance"})
    assert caught.value.status == 422
    assert caught.value.code == "invalid_command"
    assert len(platform.requests) == 1


async def test_a_client_opens_itself_on_first_use_and_closes_idempotently(
    platform: FakePlatform,
) -> None:
    api = client_for(platform)
    states = [api.is_open]
    platform.add_call("c")
    assert (await api.get_call("c"))["id"] == "c"  # no lifespan opened it: opened now
    states.append(api.is_open)
    await api.open()  # idempotent
    await api.aclose()
    await api.aclose()
    states.append(api.is_open)
    assert states == [False, True, False]


# -- configuration -----------------------------------------------------------------------


def test_a_missing_key_names_both_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(API_KEY, raising=False)
    monkeypatch.delenv(API_KEY_FILE, raising=False)
    with pytest.raises(ConfigurationError, match=f"{API_KEY}.*{API_KEY_FILE}"):
        resolve_api_key()


def test_the_key_comes_from_the_environment_or_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(API_KEY, f"  {KEY}\n")
    assert resolve_api_key() == KEY
    assert resolve_api_key("explicit") == "explicit"
    monkeypatch.delenv(API_KEY)
    path = tmp_path / "key"
    path.write_text(KEY + "\n")
    monkeypatch.setenv(API_KEY_FILE, str(path))
    assert resolve_api_key() == KEY
    monkeypatch.setenv(API_KEY_FILE, str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match=API_KEY_FILE) as caught:
        resolve_api_key()
    assert KEY not in str(caught.value)


async def test_opening_without_a_key_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(API_KEY, raising=False)
    monkeypatch.delenv(API_KEY_FILE, raising=False)
    with pytest.raises(ConfigurationError, match=API_KEY):
        await PlatformClient().open()


def test_the_base_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(API_URL, raising=False)
    assert PlatformClient().base_url == DEFAULT_API_URL
    monkeypatch.setenv(API_URL, "http://127.0.0.1:9999/api/v1/")
    assert PlatformClient().base_url == "http://127.0.0.1:9999/api/v1"


@pytest.mark.parametrize("url", ["ftp://files.example.com/api", "api.example.com/v1", "::::"])
async def test_an_unusable_base_url_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match="VOICEHOOKS_API_URL") as caught:
        await PlatformClient(api_key=KEY, base_url=url).open()
    assert KEY not in str(caught.value)


@pytest.mark.parametrize(
    "option", ["timeout_seconds", "connect_timeout_seconds", "deadline_seconds", "max_attempts"]
)
def test_budgets_must_be_positive(option: str) -> None:
    options: dict[str, Any] = {option: 0}
    with pytest.raises(ConfigurationError, match=option):
        PlatformClient(**options)


# -- secrecy -----------------------------------------------------------------------------


async def test_neither_the_key_nor_a_command_is_ever_logged(
    caplog: pytest.LogCaptureFixture, platform: FakePlatform
) -> None:
    content = "CONTENT-the-caller-ordered-7-umbrellas"
    caplog.set_level(logging.DEBUG)
    platform.fail_next(1, status=429, retry_after=0.01)
    platform.end_call("ended")
    async with client_for(platform) as api:
        await api.inject_context("c-15", content, trigger_response=True)
        with pytest.raises(CallEnded) as caught:
            await api.say("ended", content)
    rest_id = "call-_+31612345678_XqaQ"  # REST call ids may embed the caller's number
    platform.fail_next(1, status=502)
    async with PlatformClient(
        api_key=KEY, base_url=platform.base_url, transport=platform.transport()
    ) as api:
        with pytest.raises(OutcomeUnknown) as unknown:
            await api.transfer(rest_id, "+31600000000", message=content)
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)  # httpx did log
    assert any("again in" in r.getMessage() for r in caplog.records)  # and so did the retry
    for record in caplog.records:
        text = record.getMessage() + repr(record.args)
        assert KEY not in text
        assert content not in text
        assert "+31600000000" not in text
        assert "31612345678" not in text
    for error in (caught.value, unknown.value):
        assert KEY not in str(error)
        assert content not in str(error)
        assert "31612345678" not in str(error)
