"""The ASGI pipeline in-process: configuration, routing, and every bad-input answer."""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.routing import Mount

from voicehooks import CallContext, ConfigurationError, Deadlines, Limits, VoiceHooks
from voicehooks.core.events import StatusUpdate
from voicehooks.testing import WebhookClient, status_update, tool_call, tool_calls

pytestmark = pytest.mark.anyio

SECRET = "whsec_app_tests"


def make_app(**options: Any) -> VoiceHooks:
    return VoiceHooks(secret=SECRET, **options)


# -- configuration -----------------------------------------------------------------------


def test_no_secret_anywhere_is_a_clear_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOICEHOOKS_SECRET", raising=False)
    monkeypatch.delenv("VOICEHOOKS_SECRET_FILE", raising=False)
    with pytest.raises(ConfigurationError, match="VOICEHOOKS_SECRET"):
        VoiceHooks()


def test_unverified_mode_must_be_explicit_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "voicehooks"):
        VoiceHooks(verify_signatures=False)
    assert "verification is OFF" in caplog.text


async def test_unverified_mode_warns_again_at_every_startup(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = VoiceHooks(verify_signatures=False)
    caplog.clear()
    with caplog.at_level(logging.WARNING, "voicehooks"):
        async with WebhookClient(app):
            pass
    assert "verification is OFF" in caplog.text


async def test_secrets_come_from_the_environment_comma_separated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VOICEHOOKS_SECRET", " old-secret , new-secret ,")
    app = VoiceHooks()
    for secret in ("old-secret", "new-secret"):
        response = await WebhookClient(app, secret=secret).post(status_update())
        assert response.status_code == 200
    response = await WebhookClient(app, secret="other").post(status_update())
    assert response.status_code == 401


async def test_secrets_come_from_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("from-file\nsecond\n")
    monkeypatch.delenv("VOICEHOOKS_SECRET", raising=False)
    monkeypatch.setenv("VOICEHOOKS_SECRET_FILE", str(path))
    app = VoiceHooks()
    assert (await WebhookClient(app, secret="second").post(status_update())).status_code == 200


def test_an_unreadable_secret_file_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("VOICEHOOKS_SECRET", raising=False)
    monkeypatch.setenv("VOICEHOOKS_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match="cannot be read"):
        VoiceHooks()


async def test_a_sequence_of_secrets_is_accepted_and_the_match_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = VoiceHooks(secret=["one", "two"])
    with caplog.at_level(logging.DEBUG, "voicehooks"):
        response = await WebhookClient(app, secret="two").post(status_update())
    assert response.status_code == 200
    assert "secret #2 of 2" in caplog.text
    assert "two" not in caplog.text.replace("of 2", "")


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: VoiceHooks(secret=""), "empty"),
        (lambda: VoiceHooks(secret=[" "]), "empty"),
        (lambda: VoiceHooks(secret="s", path="hooks"), "path"),
        (lambda: Limits(max_body_bytes=0), r"Limits\(max_body_bytes=\.\.\.\) must be > 0"),
        (lambda: Deadlines(tool_seconds=0), r"Deadlines\(tool_seconds=\.\.\.\) must be > 0"),
        (lambda: Deadlines(shutdown_grace_seconds=-1), "shutdown_grace_seconds"),
    ],
)
def test_bad_options_fail_at_construction(build: Callable[[], object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        build()


# -- bad input ---------------------------------------------------------------------------

GOOD = msgspec.json.encode(status_update())


@pytest.mark.parametrize(
    ("request_options", "status", "message"),
    [
        ({"method": "GET"}, 405, "method GET is not allowed"),
        ({"method": "PUT"}, 405, "method PUT is not allowed"),
        ({"headers": {"content-type": "text/plain"}}, 415, "application/json"),
        ({"headers": {"content-type": "application/xml"}}, 415, "application/json"),
        ({"headers": {"content-type": "application/json; charset=latin-1"}}, 415, "json"),
        ({"headers": {"content-type": ""}}, 415, "application/json"),
        ({"signed": False}, 401, "missing X-Webhook-Timestamp"),
        ({"headers": {"x-webhook-signature": "sha256=" + "0" * 64}}, 401, "does not match"),
        ({"headers": {"x-webhook-signature": "sha256=abc"}}, 401, "64 hex"),
        ({"headers": {"x-webhook-timestamp": "soon"}}, 401, "whole number"),
        ({"timestamp": 1_000_000_000}, 401, "s old"),
        ({"timestamp": 4_000_000_000}, 401, "in the future"),
        ({"body": b"not json"}, 400, "not valid JSON"),
        (
            {"body": b'{"message": {"type": "tool-calls", "tool_call_list": [{"function": {}}]}}'},
            400,
            "$.message.tool_call_list[0]",
        ),
        ({"body": b'{"message": {"call": {"id": "c1"}}}'}, 400, "does not fit"),
        ({"body": b'{"message": {"type": 7}}'}, 400, "$.message.type"),
        ({"body": b'{"message": []}'}, 400, "$.message"),
        ({"body": b'{"msg": {}}'}, 400, "message"),
        ({"body": b"\xff\xfe"}, 400, "not valid JSON"),
    ],
    ids=[
        "get",
        "put",
        "text-plain",
        "xml",
        "non-utf8-charset",
        "empty-content-type",
        "unsigned",
        "wrong-signature",
        "malformed-signature",
        "non-numeric-timestamp",
        "stale",
        "future",
        "invalid-json",
        "tool-call-without-id",
        "no-type",
        "type-not-a-string",
        "message-not-an-object",
        "no-message",
        "invalid-utf8",
    ],
)
async def test_bad_input_gets_a_precise_status_and_a_json_error(
    request_options: dict[str, Any], status: int, message: str
) -> None:
    client = WebhookClient(make_app(), secret=SECRET)
    body = request_options.pop("body", GOOD)
    response = await client.post(body, **request_options)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert message in error
    assert "Traceback" not in error
    if status == 405:
        assert response.headers["allow"] == "POST"


async def test_json_with_a_utf8_charset_is_json() -> None:
    client = WebhookClient(make_app(), secret=SECRET)
    for content_type in ("application/json; charset=utf-8", 'Application/JSON;Charset="UTF-8"'):
        response = await client.post(GOOD, headers={"content-type": content_type})
        assert response.status_code == 200


async def test_a_body_over_the_limit_is_refused_while_it_streams_in() -> None:
    client = WebhookClient(make_app(limits=Limits(max_body_bytes=1000)), secret=SECRET)
    pieces = [b"x" * 600, b"x" * 600, b"x" * 600]
    response = await client.post(b"", chunks=pieces)
    assert response.status_code == 413
    assert "1000 bytes" in response.json()["error"]


async def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    client = WebhookClient(make_app(limits=Limits(max_body_bytes=1000)), secret=SECRET)
    response = await client.post(GOOD, headers={"content-length": "5000"})
    assert response.status_code == 413


async def test_a_single_chunk_over_the_limit_is_refused() -> None:
    client = WebhookClient(make_app(limits=Limits(max_body_bytes=100)), secret=SECRET)
    assert (await client.post(b"x" * 101)).status_code == 413


async def test_a_body_in_several_chunks_is_reassembled() -> None:
    client = WebhookClient(make_app(), secret=SECRET)
    pieces = [GOOD[:10], GOOD[10:50], GOOD[50:]]
    headers = client.signed_headers(GOOD)
    response = await client.request("POST", "/", pieces, list(headers.items()))
    assert response.status_code == 200


@pytest.mark.parametrize("header", ["x-webhook-signature", "x-webhook-timestamp"])
async def test_repeated_security_headers_are_refused(header: str) -> None:
    client = WebhookClient(make_app(), secret=SECRET)
    headers = list(client.signed_headers(GOOD).items())
    headers.append((header, dict(headers)[header]))
    response = await client.request("POST", "/", [GOOD], headers)
    assert response.status_code == 401
    assert "more than one" in response.json()["error"]


async def test_an_unknown_event_type_is_acknowledged_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = WebhookClient(make_app(), secret=SECRET)
    body = {"message": {"type": "speech-update", "call": {"id": "call-77"}}}
    with caplog.at_level(logging.WARNING, "voicehooks"):
        response = await client.post(body)
    assert (response.status_code, response.json()) == (200, {})
    assert "speech-update" in caplog.text
    assert "call-77" in caplog.text


async def test_rejections_are_logged_with_their_reason(caplog: pytest.LogCaptureFixture) -> None:
    client = WebhookClient(make_app(), secret=SECRET)
    with caplog.at_level(logging.WARNING, "voicehooks"):
        await client.post(GOOD, signed=False)
    assert "rejected 401: missing X-Webhook-Timestamp" in caplog.text


async def test_a_get_on_the_webhook_path_is_a_probe_logged_at_debug_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = WebhookClient(make_app(), secret=SECRET)
    with caplog.at_level(logging.DEBUG, "voicehooks"):
        for method in ("GET", "HEAD"):
            assert (await client.request(method, "/", [], [])).status_code == 405
        assert (await client.request("PUT", "/", [], [])).status_code == 405
    levels = [(r.levelno, r.getMessage()[:12]) for r in caplog.records if "405" in r.getMessage()]
    assert levels == [
        (logging.DEBUG, "rejected 405"),
        (logging.DEBUG, "rejected 405"),
        (logging.WARNING, "rejected 405"),  # not a probe: someone sends the wrong method
    ]


async def test_one_line_per_delivery_with_type_call_status_and_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = WebhookClient(make_app(), secret=SECRET)
    with caplog.at_level(logging.INFO, "voicehooks"):
        await client.post(status_update(call_id="call-line"))
    (record,) = [r for r in caplog.records if "call-line" in r.getMessage()]
    assert record.getMessage().startswith("status-update call=call-line 200 ")
    assert record.getMessage().endswith("ms")


async def test_the_per_delivery_line_is_an_ordinary_record_that_logger_filters_see(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The line is made with makeRecord + handle (no stack walk): it must still name its
    # source, carry its fields, and pass through the logger's own filters.
    seen: list[logging.LogRecord] = []

    def keep(record: logging.LogRecord) -> bool:
        seen.append(record)
        return "call-hidden" not in record.getMessage()

    logger = logging.getLogger("voicehooks")
    logger.addFilter(keep)
    client = WebhookClient(make_app(), secret=SECRET)
    try:
        with caplog.at_level(logging.INFO, "voicehooks"):
            await client.post(status_update(call_id="call-shown"))
            await client.post(status_update(call_id="call-hidden"))
    finally:
        logger.removeFilter(keep)
    (record,) = [r for r in caplog.records if r.getMessage().startswith("status-update")]
    assert "call-shown" in record.getMessage()
    assert record.levelno == logging.INFO
    assert record.name == "voicehooks"
    assert record.funcName == "log_delivery"
    assert record.pathname.endswith("logline.py")
    assert record.lineno > 0
    assert record.call_id == "call-shown"  # type: ignore[attr-defined]
    assert record.outcome == "answered"  # type: ignore[attr-defined]
    assert len([r for r in seen if r.getMessage().startswith("status-update")]) == 2


@pytest.mark.parametrize(
    "messages",
    [
        [{"type": "http.disconnect"}],
        [{"type": "http.request", "body": b"{", "more_body": True}, {"type": "http.disconnect"}],
    ],
    ids=["before-the-body", "in-the-middle-of-the-body"],
)
async def test_a_client_that_disconnects_gets_no_answer(messages: list[dict[str, Any]]) -> None:
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    headers = [(b"content-type", b"application/json")]
    await make_app()(
        {"type": "http", "method": "POST", "path": "/", "headers": headers}, receive, send
    )
    assert sent == []


async def test_an_answer_to_a_vanished_client_is_dropped_quietly() -> None:
    app = make_app()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": GOOD}

    async def send(message: MutableMapping[str, Any]) -> None:
        raise OSError("connection reset")

    client = WebhookClient(app, secret=SECRET)
    headers = [(k.encode(), v.encode()) for k, v in client.signed_headers(GOOD).items()]
    await app({"type": "http", "method": "POST", "path": "/", "headers": headers}, receive, send)


# -- paths, mounting ---------------------------------------------------------------------


async def test_other_paths_are_a_json_404() -> None:
    client = WebhookClient(make_app(path="/voice"), secret=SECRET)
    response = await client.post(GOOD, path="/")
    assert response.status_code == 404
    assert "error" in response.json()
    assert (await client.post(GOOD, path="/voice")).status_code == 200
    assert (await client.post(GOOD, path="/voice/")).status_code == 200


async def test_websockets_are_closed() -> None:
    app = make_app()
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await app({"type": "websocket", "path": "/", "headers": []}, receive, send)
    assert sent[0]["type"] == "websocket.close"


def hooks_with_a_handler() -> tuple[VoiceHooks, list[str]]:
    hooks = make_app()
    seen: list[str] = []

    @hooks.on("status-update")
    async def on_status(event: StatusUpdate) -> None:
        seen.append(event.call.id)

    @hooks.tool
    async def echo(text: str) -> str:
        """Echo the text."""
        return text

    return hooks, seen


@pytest.mark.parametrize("framework", ["starlette", "fastapi"])
async def test_mounted_under_a_path_it_answers_there(framework: str) -> None:
    hooks, seen = hooks_with_a_handler()
    parent: Any
    if framework == "starlette":
        parent = Starlette(routes=[Mount("/hooks/voice", app=hooks)])
    else:
        parent = FastAPI()
        parent.mount("/hooks/voice", hooks)
    client = WebhookClient(parent, secret=SECRET, path="/hooks/voice/")
    response = await client.post(status_update(call_id="mounted-1"))
    assert (response.status_code, response.json()) == (200, {})
    assert seen == ["mounted-1"]  # no lifespan ran: the handler ran in the request's task
    results = await client.call_tools(tool_call("echo", {"text": "hi"}, id="t1"))
    assert results == ["hi"]
    assert (await client.post(GOOD, path="/hooks/voice/other")).status_code == 404
    assert (await client.post(GOOD, path="/hooks/voice/", method="GET")).status_code == 405


async def test_tool_calls_through_the_pipeline_answer_in_the_object_format() -> None:
    hooks, _ = hooks_with_a_handler()
    client = WebhookClient(hooks, secret=SECRET)
    response = await client.post(tool_calls(tool_call("echo", {"text": "a"}, id="t-1")))
    assert response.json() == {"results": [{"tool_call_id": "t-1", "result": "a"}]}


async def test_a_millisecond_timestamp_is_accepted_and_warned_about_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import time as clock

    client = WebhookClient(make_app(), secret=SECRET)
    millis = int(clock.time() * 1000)
    with caplog.at_level(logging.WARNING, "voicehooks"):
        assert (await client.post(GOOD, timestamp=millis)).status_code == 200
        assert (await client.post(GOOD, timestamp=millis)).status_code == 200
    assert caplog.text.count("milliseconds") == 1


async def test_a_bug_inside_voicehooks_is_a_generic_500_without_details(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app()

    async def broken(event: Any) -> Any:
        raise AssertionError("invariant 42 broken")

    monkeypatch.setattr(app.dispatcher, "answer", broken)
    with caplog.at_level(logging.ERROR, "voicehooks"):
        response = await WebhookClient(app, secret=SECRET).post(GOOD)
    assert (response.status_code, response.json()) == (500, {"error": "internal error"})
    assert "internal error while answering" in caplog.text


async def test_a_body_that_does_not_arrive_in_time_is_a_408() -> None:
    app = make_app(deadlines=Deadlines(body_seconds=0.1))
    sent: list[Any] = []
    messages: list[dict[str, Any]] = [{"type": "http.request", "body": b"{", "more_body": True}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await anyio.sleep(30)  # the client stalls
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    client = WebhookClient(app, secret=SECRET)
    headers = [(k.encode(), v.encode()) for k, v in client.signed_headers(GOOD).items()]
    with anyio.fail_after(5):
        await app(
            {"type": "http", "method": "POST", "path": "/", "headers": headers}, receive, send
        )
    assert sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]
    assert b"did not arrive within 0.1 s" in sent[1]["body"]


async def test_during_a_rotation_the_log_names_the_first_secret_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = VoiceHooks(secret=["one", "two"])
    with caplog.at_level(logging.DEBUG, "voicehooks"):
        assert (await WebhookClient(app, secret="one").post(status_update())).status_code == 200
    assert "secret #1 of 2" in caplog.text


# -- rejections and the log --------------------------------------------------------------


def test_every_request_error_has_a_status_on_its_class() -> None:
    import voicehooks.core.exceptions as errors

    def subclasses(cls: type[errors.RequestError]) -> list[type[errors.RequestError]]:
        return [c for sub in cls.__subclasses__() for c in (sub, *subclasses(sub))]

    found = subclasses(errors.RequestError)
    assert {cls.__name__ for cls in found} >= {
        "MethodNotAllowed",
        "UnsupportedMediaType",
        "PayloadTooLarge",
        "RequestTimeout",
        "SignatureError",
        "PayloadError",
        "Unavailable",
    }
    for cls in found:
        assert 400 <= cls.status < 600, cls


async def test_a_post_to_a_path_the_app_does_not_serve_is_logged_as_a_rejection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = WebhookClient(make_app(path="/hooks"), secret=SECRET)
    with caplog.at_level(logging.WARNING, "voicehooks"):
        response = await client.post(msgspec.json.encode(status_update()), path="/hook")
        await client.post(b"", method="GET", path="/favicon.ico", signed=False)
    assert response.status_code == 404
    assert "rejected 404: POST to '/hook', which is not the webhook endpoint" in caplog.text
    assert "favicon" not in caplog.text  # probes by other methods stay quiet


async def test_call_ids_that_embed_a_phone_number_are_masked_in_every_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app()
    call_id = "call-_+31612345678_XqaQ"

    @app.tool
    def fails() -> None:
        """Fails."""
        raise RuntimeError("boom")

    @app.on("status-update")
    def also_fails() -> None:
        raise RuntimeError("boom")

    client = WebhookClient(app, secret=SECRET, raise_exceptions=False)
    with caplog.at_level(logging.DEBUG, "voicehooks"):
        await client.call_tools(tool_call("fails"), tool_call("ghost"), call_id=call_id)
        await client.status_update(call_id=call_id)
        await client.post(tool_calls(tool_call("x"), call_id=call_id, type="transcript"))
    assert "call-_+***********_XqaQ" in caplog.text
    assert "31612345678" not in caplog.text


async def test_the_per_delivery_line_names_each_tool_and_how_it_ended(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app()

    @app.tool
    def ok() -> str:
        """Fine."""
        return "fine"

    @app.tool
    def slow() -> None:
        """Too slow."""
        import time

        time.sleep(0.3)

    app.tools["slow"] = __import__("dataclasses").replace(app.tools["slow"], timeout_seconds=0.05)
    client = WebhookClient(app, secret=SECRET)
    with caplog.at_level(logging.INFO, "voicehooks"):
        await client.call_tools(
            tool_call("ok"), tool_call("slow"), tool_call("not-a-tool"), call_id="c-line"
        )
    (line,) = [r for r in caplog.records if r.getMessage().startswith("tool-calls call=c-line")]
    assert line.getMessage().endswith("tools=ok:ok,slow:timeout,?:unknown")
    assert line.tools == [  # type: ignore[attr-defined]
        {"name": "ok", "outcome": "ok"},
        {"name": "slow", "outcome": "timeout"},
        {"name": "?", "outcome": "unknown"},
    ]
    assert line.status == 200  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("development", "header", "runs", "replays"),
    [
        (False, "bypass-dedupe", 1, [False, False]),  # production: anyone could send it
        (True, "1", 1, [False]),  # a replay, still suppressed as a duplicate
        (True, "bypass-dedupe", 2, [False, True]),
    ],
)
async def test_the_replay_header_is_honoured_in_development_mode_only(
    development: bool, header: str, runs: int, replays: list[bool], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    app.development = development
    seen: list[bool] = []

    @app.tool
    async def book(context: CallContext) -> str:
        """Book once."""
        seen.append(context.is_replay)
        return "booked"

    delivery = tool_calls(tool_call("book", id="tool-1"), call_id="call-1")
    caplog.set_level(logging.INFO, "voicehooks")
    async with WebhookClient(app, secret=SECRET) as client:
        first = await client.post(delivery)
        again = await client.post(delivery, headers={"x-voicehooks-replay": header})
    assert first.content == again.content
    assert len(seen) == runs
    assert seen == replays[:runs]
    replay_lines = [r.getMessage() for r in caplog.records if r.getMessage().endswith("replay")]
    bypass_lines = [
        r.getMessage() for r in caplog.records if "duplicates bypassed" in r.getMessage()
    ]
    assert len(replay_lines) == (development and header == "1")
    assert len(bypass_lines) == (development and header == "bypass-dedupe")


async def test_a_400_names_the_field_but_never_repeats_the_senders_value(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = VoiceHooks(secret=SECRET)
    body = b'{"message": {"type": "' + b"SECRET-VALUE" * 1000 + b'", "call": 5}}'
    with caplog.at_level(logging.DEBUG, "voicehooks"):
        response = await WebhookClient(app, secret=SECRET).post(body)
    assert response.status_code == 400
    assert "$.message" in response.json()["error"]
    assert "SECRET-VALUE" not in response.text
    assert "SECRET-VALUE" not in caplog.text


async def test_a_post_to_another_path_is_logged_on_one_line_cut_and_escaped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = VoiceHooks(secret=SECRET)
    forged = "/x\nERROR voicehooks: forged" + "y" * 500
    with caplog.at_level(logging.WARNING, "voicehooks"):
        response = await WebhookClient(app, secret=SECRET).post(status_update(), path=forged)
    assert response.status_code == 404
    (record,) = [r for r in caplog.records if "rejected 404" in r.getMessage()]
    assert "\n" not in record.getMessage()
    assert len(record.getMessage()) < 400
