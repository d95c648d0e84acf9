"""voicehooks.pipeline.routing: decorators used in the wrong form fail at import, naming the fix."""

from __future__ import annotations

from typing import Any

import pytest

from voicehooks import (
    ConfigurationError,
    EndOfCallReport,
    StatusUpdate,
    VoiceHooks,
)
from voicehooks.core.events import EVENT_NAMES, AnyEvent


def test_a_bare_on_decorator_fails_at_import_and_names_the_fix() -> None:
    app = VoiceHooks(verify_signatures=False)
    with pytest.raises(ConfigurationError, match=r'@app.on\("end-of-call-report"\)'):

        @app.on  # type: ignore[arg-type]  # the mistake under test
        async def store(event: Any) -> None: ...

    assert app.routes() == []


def test_on_without_an_event_name_fails_the_same_way() -> None:
    app = VoiceHooks(verify_signatures=False)
    with pytest.raises(ConfigurationError, match="needs the event name"):
        app.on()


def test_a_called_on_error_decorator_fails_and_says_to_drop_the_parentheses() -> None:
    app = VoiceHooks(verify_signatures=False)
    with pytest.raises(ConfigurationError, match="without parentheses"):
        app.on_error()


def test_an_error_hook_can_be_removed() -> None:
    app = VoiceHooks(verify_signatures=False)

    def hook(exc: BaseException, event: object) -> None: ...

    app.add_error_hook(hook)
    assert [fn.function for fn in app.error_hooks] == [hook]
    app.remove_error_hook(hook)
    app.remove_error_hook(hook)  # removing twice is harmless
    assert app.error_hooks == []


def test_event_names_come_from_the_event_union() -> None:
    import typing

    assert list(EVENT_NAMES) == [event.type for event in typing.get_args(AnyEvent)]
    assert list(EVENT_NAMES) == list(
        typing.get_args(__import__("voicehooks.core.events").core.events.EventName)
    )


def test_a_handler_names_its_background_target_by_module_and_qualname() -> None:
    app = VoiceHooks(verify_signatures=False)

    @app.on("status-update")
    async def on_status() -> None: ...

    (handler,) = app.handlers["status-update"]
    assert handler.target == f"handler:{__name__}:{on_status.__qualname__}"


# -- registration ------------------------------------------------------------------------


async def never(event: EndOfCallReport) -> None: ...


def untyped(event) -> None:  # type: ignore[no-untyped-def]
    ...


def test_handlers_fail_at_registration_with_a_fix() -> None:
    app = VoiceHooks(verify_signatures=False)
    with pytest.raises(ConfigurationError, match="unknown event 'call-ended'"):
        app.on("call-ended")(lambda: None)  # type: ignore[arg-type]  # the runtime check
    with pytest.raises(
        ConfigurationError, match=r"annotated 'EndOfCallReport'.*StatusUpdate, CallContext"
    ):
        app.add_handler("status-update", never)
    with pytest.raises(ConfigurationError, match="'event' has no annotation"):
        app.add_handler("status-update", untyped)
    with pytest.raises(ConfigurationError, match="not callable"):
        app.add_handler("status-update", 42)  # type: ignore[arg-type]


def test_routes_list_every_registration() -> None:
    app = VoiceHooks(verify_signatures=False)
    app.on("status-update", run_before_answer=True)(never_status)

    @app.tool(fire_and_forget=True)
    def ping() -> None:
        """Ping."""

    rows = [(r.kind, r.name, r.function.split(":")[1], r.note) for r in app.routes()]
    assert rows == [
        ("event", "status-update", "never_status", "before answer"),
        ("tool", "ping", "test_routes_list_every_registration.<locals>.ping", "fire-and-forget"),
    ]


def never_status(event: StatusUpdate) -> None: ...
