"""The test kit users build their suites on: the signed client and the clock.

The factories that build the deliveries are tested in ``test_factories.py``.
"""

from __future__ import annotations

import doctest
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import msgspec
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

import voicehooks.testing
import voicehooks.testing.client
import voicehooks.testing.factories
from voicehooks import (
    AssistantRequest,
    AssistantResponse,
    Deadlines,
    EndOfCallReport,
    StatusUpdate,
    ToolCall,
    ToolError,
    ToolResult,
    VoiceHooks,
)
from voicehooks.core.signing import Verifier
from voicehooks.testing import (
    ManualClock,
    WebhookClient,
    end_of_call_report,
    status_update,
    tool_call,
)

pytestmark = pytest.mark.anyio

SECRET = "whsec_testing_kit"


def test_the_docstring_examples_run() -> None:
    modules = (voicehooks.testing, voicehooks.testing.client, voicehooks.testing.factories)
    results = [doctest.testmod(m, optionflags=doctest.ELLIPSIS) for m in modules]
    assert sum(r.attempted for r in results) >= 8
    assert sum(r.failed for r in results) == 0


# -- signing -----------------------------------------------------------------------------


async def test_the_client_signs_as_the_platform_does() -> None:
    clock = ManualClock(1767182400)
    client = WebhookClient(VoiceHooks(secret=SECRET), secret=SECRET, clock=clock)
    body = msgspec.json.encode(status_update())
    headers = client.signed_headers(body, event="status-update")
    assert headers["x-webhook-timestamp"] == "1767182400"
    assert headers["x-webhook-event"] == "status-update"
    verifier = Verifier([SECRET], clock=clock)
    sent = (headers["x-webhook-timestamp"], headers["x-webhook-signature"])
    assert verifier.verify(body, *sent) == 0


async def test_the_client_takes_the_apps_first_secret_before_the_environments(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VOICEHOOKS_SECRET", " first , second")
    only_second = VoiceHooks(secret="second")
    assert (await WebhookClient(only_second).status_update()).status_code == 200
    from_environment = VoiceHooks()  # reads the same variable: signs with "first"
    assert WebhookClient(from_environment).secret == "first"
    assert WebhookClient(VoiceHooks(verify_signatures=False)).secret == "first"


async def test_without_any_secret_the_client_sends_unsigned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VOICEHOOKS_SECRET", raising=False)
    client = WebhookClient(VoiceHooks(verify_signatures=False))
    assert client.secret is None
    assert "x-webhook-signature" not in client.signed_headers(b"{}")
    assert (await client.status_update()).status_code == 200


async def test_the_event_header_names_the_payload_type() -> None:
    seen: list[str | None] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = dict(scope["headers"])
        seen.append(headers.get(b"x-webhook-event", b"").decode() or None)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    client = WebhookClient(app, secret=SECRET)
    await client.post(end_of_call_report())
    await client.post(b"not json")
    assert seen == ["end-of-call-report", None]


async def test_a_response_carries_httpx_s_names() -> None:
    response = await WebhookClient(VoiceHooks(secret=SECRET), secret="wrong").status_update()
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert response.content == response.text.encode()
    assert response.json() == msgspec.json.decode(response.content)
    assert "signature" in response.json()["error"]


@pytest.mark.parametrize(("seconds", "status"), [(0, 200), (300, 200), (301, 401), (-301, 401)])
async def test_a_shared_manual_clock_tests_the_freshness_window(seconds: int, status: int) -> None:
    clock = ManualClock()
    app = VoiceHooks(secret=SECRET)
    assert app.verifier is not None
    app.verifier.clock = clock  # the app reads the clock when the request arrives
    client = WebhookClient(app, secret=SECRET, clock=clock)
    body = status_update()
    headers = client.signed_headers(msgspec.json.encode(body))
    clock.advance(seconds)  # the app reads the clock when the request arrives
    response = await client.post(msgspec.json.encode(body), headers=headers)
    assert response.status_code == status


# -- event helpers -----------------------------------------------------------------------


def tool_app() -> VoiceHooks:
    app = VoiceHooks(secret=SECRET)

    @app.tool
    async def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @app.tool
    def refuse(reason: str) -> None:
        """Always refuses."""
        raise ToolError(reason)

    @app.tool
    async def literal(call: ToolCall) -> ToolResult:
        """Returns a dict shaped like a wrapper, literally."""
        return ToolResult({"error": call.id})

    return app


async def test_call_tool_returns_the_normalized_result() -> None:
    client = WebhookClient(tool_app(), secret=SECRET)
    assert await client.call_tool("add", a=2, b=3) == 5
    assert await client.call_tool("refuse", reason="No.") == {"error": "No."}
    assert "'b' is missing" in (await client.call_tool("add", a=1))["error"]
    assert "no tool called nope" in (await client.call_tool("nope"))["error"]


async def test_call_tools_answers_each_call_in_order_with_the_envelope_given() -> None:
    client = WebhookClient(tool_app(), secret=SECRET)
    results = await client.call_tools(
        tool_call("literal", id="tool_b"),
        tool_call("add", {"a": 1, "b": 1}),
        call_id="call-9",
    )
    assert results == [{"error": "tool_b"}, 2]


async def test_a_refused_delivery_is_an_assertion_that_says_why() -> None:
    client = WebhookClient(tool_app(), secret="not-the-apps")
    with pytest.raises(AssertionError, match=r"tool-calls answered 401.*secret"):
        await client.call_tool("add", a=1, b=2)
    with pytest.raises(AssertionError, match="assistant-request answered 401"):
        await client.assistant_request()


async def test_assistant_request_returns_the_decoded_answer() -> None:
    app = VoiceHooks(secret=SECRET)
    seen: list[str | None] = []

    @app.on("assistant-request")
    async def answer(event: AssistantRequest) -> AssistantResponse:
        seen.append(event.customer.number)
        return AssistantResponse.reject("Closed.")

    answer_body = await WebhookClient(app, secret=SECRET).assistant_request(customer_number=None)
    assert answer_body == {"error": "Closed."}
    assert seen == [None]


# -- lifespan and background work --------------------------------------------------------


async def test_async_with_runs_the_lifespan_and_answers_before_background_work() -> None:
    events: list[str] = []
    release = anyio.Event()

    @asynccontextmanager
    async def lifespan(app: VoiceHooks) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    app = VoiceHooks(secret=SECRET, lifespan=lifespan)

    @app.on("end-of-call-report")
    async def store(event: EndOfCallReport) -> None:
        await release.wait()
        events.append(f"stored {event.call.id}")

    async with WebhookClient(app, secret=SECRET) as client:
        response = await client.end_of_call_report(call_id="call-1")
        assert response.status_code == 200
        assert events == ["startup"]  # answered while the handler still waits
        release.set()
        await client.wait_for_background()
        assert events == ["startup", "stored call-1"]
    assert events == ["startup", "stored call-1", "shutdown"]


async def test_without_async_with_a_request_runs_to_its_end() -> None:
    app = VoiceHooks(secret=SECRET)
    stored: list[str] = []

    @app.on("status-update")
    async def track(event: StatusUpdate) -> None:
        await anyio.sleep(0.01)
        stored.append(event.call.id)

    client = WebhookClient(app, secret=SECRET)
    await client.status_update(call_id="call-2")
    assert stored == ["call-2"]
    await client.wait_for_background(timeout_seconds=0.01)  # nothing left: returns at once


async def test_wait_for_background_names_what_is_still_running() -> None:
    app = VoiceHooks(secret=SECRET, deadlines=Deadlines(shutdown_grace_seconds=0))

    @app.on("status-update")
    async def stuck() -> None:
        await anyio.sleep_forever()

    async with WebhookClient(app, secret=SECRET) as client:
        await client.status_update(call_id="call-stuck")
        with pytest.raises(TimeoutError, match="call-stuck"):
            await client.wait_for_background(timeout_seconds=0.05)


async def test_wait_for_background_finds_an_app_mounted_in_starlette() -> None:
    hooks = VoiceHooks(secret=SECRET)
    stored: list[str] = []

    @hooks.on("status-update")
    async def track(event: StatusUpdate) -> None:
        await anyio.sleep(0.02)
        stored.append(event.call.id)

    @asynccontextmanager
    async def lifespan(parent: Starlette) -> AsyncIterator[None]:
        async with hooks.lifespan():
            yield

    parent = Starlette(routes=[Mount("/hooks", hooks)], lifespan=lifespan)
    async with WebhookClient(parent, secret=SECRET, path="/hooks/") as client:
        assert (await client.status_update(call_id="call-m")).status_code == 200
        await client.wait_for_background()
        assert stored == ["call-m"]


async def test_a_failing_startup_raises_with_the_cause_and_leaves_nothing_running() -> None:
    @asynccontextmanager
    async def lifespan(app: VoiceHooks) -> AsyncIterator[None]:
        if app.path == "/":
            raise OSError("database unreachable")
        yield

    client = WebhookClient(VoiceHooks(secret=SECRET, lifespan=lifespan), secret=SECRET)
    with pytest.raises(RuntimeError, match="startup failed: OSError: database unreachable"):
        await client.__aenter__()
    assert client._group is None
    assert (await client.status_update()).status_code == 200  # usable without a lifespan


async def test_an_assertion_inside_async_with_surfaces_as_itself() -> None:
    stopped: list[str] = []

    @asynccontextmanager
    async def lifespan(app: VoiceHooks) -> AsyncIterator[None]:
        yield
        stopped.append("teardown")

    client = WebhookClient(VoiceHooks(secret=SECRET, lifespan=lifespan), secret=SECRET)
    with pytest.raises(AssertionError, match="the user's own check") as caught:
        async with client:
            raise AssertionError("the user's own check")
    assert caught.type is AssertionError  # not an ExceptionGroup around it
    assert stopped == ["teardown"]  # the app was shut down all the same


async def test_a_failing_teardown_surfaces_as_itself() -> None:
    @asynccontextmanager
    async def lifespan(app: VoiceHooks) -> AsyncIterator[None]:
        yield
        raise OSError("pool would not close")

    client = WebhookClient(VoiceHooks(secret=SECRET, lifespan=lifespan), secret=SECRET)
    with pytest.raises(OSError, match="pool would not close"):
        async with client:
            pass


async def test_a_cancelled_block_stops_the_app_and_stays_cancelled() -> None:
    app = VoiceHooks(secret=SECRET, deadlines=Deadlines(shutdown_grace_seconds=0.1))

    @app.on("status-update")
    async def stuck() -> None:
        await anyio.sleep_forever()

    with anyio.move_on_after(5) as outer, anyio.CancelScope() as scope:
        async with WebhookClient(app, secret=SECRET) as client:
            await client.status_update()
            scope.cancel()
            await anyio.sleep_forever()
    assert scope.cancelled_caught
    assert not outer.cancelled_caught


# -- raise_exceptions --------------------------------------------------------------------


def buggy_app() -> VoiceHooks:
    app = VoiceHooks(secret=SECRET)

    @app.tool
    async def lookup(order_number: str) -> str:
        """A tool with a bug for one input and a polite refusal for another."""
        if order_number == "refused":
            raise ToolError("No such order.")
        return {"WO-1": "ready"}[order_number]

    @app.on("end-of-call-report")
    def store(event: EndOfCallReport) -> None:
        raise ZeroDivisionError("a bug after the answer")

    return app


async def test_a_bug_in_a_tool_fails_the_test_as_itself() -> None:
    app = buggy_app()
    async with WebhookClient(app, secret=SECRET) as client:
        assert await client.call_tool("lookup", order_number="WO-1") == "ready"
        assert await client.call_tool("lookup", order_number="refused") == {
            "error": "No such order."
        }
        with pytest.raises(KeyError, match="WO-2") as caught:
            await client.call_tool("lookup", order_number="WO-2")
        assert caught.traceback[-1].name == "lookup"  # the tool's own line, not the client's
    assert app.error_hooks == []  # the client watches without changing the app


async def test_a_bug_after_the_answer_is_raised_by_wait_for_background_or_the_block() -> None:
    async with WebhookClient(buggy_app(), secret=SECRET) as client:
        assert (await client.end_of_call_report()).status_code == 200
        with pytest.raises(ZeroDivisionError, match="a bug after the answer"):
            await client.wait_for_background()
        await client.wait_for_background()  # raised once, then forgotten
    with pytest.raises(ZeroDivisionError, match="a bug after the answer"):
        async with WebhookClient(buggy_app(), secret=SECRET) as client:
            await client.end_of_call_report()


async def test_without_a_lifespan_a_bug_after_the_answer_is_raised_by_the_call() -> None:
    app = buggy_app()
    with pytest.raises(ZeroDivisionError):
        await WebhookClient(app, secret=SECRET).end_of_call_report()
    assert app.error_hooks == []


async def test_several_bugs_raise_the_first_and_name_the_others() -> None:
    app = buggy_app()
    client = WebhookClient(app, secret=SECRET)
    calls = [tool_call("lookup", {"order_number": n}) for n in ("X", "WO-1", "refused", "Y")]
    with pytest.raises(KeyError, match="X") as caught:
        await client.call_tools(*calls)
    assert caught.value.__notes__ == ["(the app raised 1 more: KeyError)"]


async def test_the_apps_own_error_hooks_still_see_the_bug() -> None:
    app = buggy_app()
    seen: list[str] = []

    @app.on_error
    def tracker(exc: BaseException, event: object) -> None:
        seen.append(type(exc).__name__)

    with pytest.raises(KeyError):
        await WebhookClient(app, secret=SECRET).call_tool("lookup", order_number="?")
    assert seen == ["KeyError"]
    assert [hook.function for hook in app.error_hooks] == [tracker]


async def test_a_mounted_app_is_watched_too() -> None:
    hooks = buggy_app()
    parent = Starlette(routes=[Mount("/hooks", hooks)])
    client = WebhookClient(parent, secret=SECRET, path="/hooks/")
    with pytest.raises(KeyError):
        await client.call_tool("lookup", order_number="?")


async def test_raise_exceptions_false_answers_as_in_production() -> None:
    app = buggy_app()
    async with WebhookClient(app, secret=SECRET, raise_exceptions=False) as client:
        assert app.error_hooks == []
        result = await client.call_tool("lookup", order_number="WO-2")
        assert "failed unexpectedly" in result["error"]
        assert (await client.end_of_call_report()).status_code == 200
        await client.wait_for_background()


async def test_a_failing_startup_leaves_no_hook_behind() -> None:
    @asynccontextmanager
    async def lifespan(app: VoiceHooks) -> AsyncIterator[None]:
        if app.path == "/":
            raise OSError("database unreachable")
        yield

    app = VoiceHooks(secret=SECRET, lifespan=lifespan)
    with pytest.raises(RuntimeError, match="startup failed"):
        async with WebhookClient(app, secret=SECRET):
            pass
    assert app.error_hooks == []


async def test_the_client_reads_the_secret_file_as_the_app_does(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("whsec_from_file\nwhsec_older\n")
    monkeypatch.delenv("VOICEHOOKS_SECRET", raising=False)
    monkeypatch.setenv("VOICEHOOKS_SECRET_FILE", str(secret_file))
    app = VoiceHooks()  # reads the same file
    client = WebhookClient(app)
    assert client.secret == "whsec_from_file"
    assert (await client.status_update()).status_code == 200


def test_manual_clock_starts_now_and_moves_only_when_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("time.time", lambda: 1000.7)
    clock = ManualClock()
    assert clock() == clock() == 1000.0  # whole seconds, like the platform's timestamps
    clock.advance(-0.5)
    assert clock() == 999.5


async def test_a_raw_app_sees_the_body_then_a_disconnect_after_its_answer() -> None:
    received: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        received.append(await receive())
        await send({"type": "http.response.start", "status": 500, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})
        received.append(await receive())

    client = WebhookClient(app, secret=SECRET)
    with pytest.raises(AssertionError, match=r"tool-calls answered 500: b'\{\}'$"):
        await client.call_tool("anything")
    assert [message["type"] for message in received] == ["http.request", "http.disconnect"]
    assert received[0]["more_body"] is False


async def test_an_app_that_never_answers_is_an_error() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()

    with pytest.raises(RuntimeError, match="the app returned without answering"):
        await WebhookClient(app, secret=SECRET).status_update()


async def test_without_secret_the_client_signs_with_the_apps_own_first_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VOICEHOOKS_SECRET", raising=False)
    monkeypatch.delenv("VOICEHOOKS_SECRET_FILE", raising=False)
    app = VoiceHooks(secret=["whsec_first", "whsec_second"])
    client = WebhookClient(app)
    assert client.secret == "whsec_first"
    assert (await client.status_update()).status_code == 200


async def test_a_401_for_a_missing_signature_says_the_client_has_no_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VOICEHOOKS_SECRET", raising=False)
    monkeypatch.delenv("VOICEHOOKS_SECRET_FILE", raising=False)
    app = VoiceHooks(secret="whsec_app")
    unsigned = WebhookClient(app)
    unsigned.secret = None  # as a client of an app it could not read would be
    with pytest.raises(AssertionError, match="the client sent no signature"):
        await unsigned.call_tool("anything")
    with pytest.raises(AssertionError, match="not one the app accepts"):
        await WebhookClient(app, secret="whsec_other").call_tool("anything")
