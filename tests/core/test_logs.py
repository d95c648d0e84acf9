"""Log formats: the text and JSON formatters, ``voicehooks run``'s config and ``setup()``."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import re
import sys
from collections.abc import Iterator

import pytest

from voicehooks.core.logs import (
    JSONFormatter,
    TextFormatter,
    UnknownNames,
    loggable,
    logging_config,
    masked,
    setup,
)

TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
NAMES = ("", "voicehooks", "uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn.error")


@pytest.fixture
def clean_logging() -> Iterator[None]:
    """Put every logger this file touches back as it was."""
    saved = {
        name: (list(logging.getLogger(name).handlers), logging.getLogger(name).level)
        for name in NAMES
    }
    saved_propagate = {name: logging.getLogger(name).propagate for name in NAMES}
    yield
    for name, (handlers, level) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = saved_propagate[name]


def record(message: str = "answered %s", *args: object, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("voicehooks", logging.INFO, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


NUMBER = "+31612345678"


def failing_record() -> logging.LogRecord:
    try:
        empty: dict[str, str] = {}
        empty[NUMBER]
    except KeyError:
        exc_info = sys.exc_info()
    return logging.LogRecord("app", logging.ERROR, __file__, 1, "lookup failed", (), exc_info)


def test_the_text_format_has_time_level_logger_and_message() -> None:
    line = TextFormatter().format(record("answered %s", "tool-calls"))
    assert re.fullmatch(rf"{TIME} INFO voicehooks: answered tool-calls", line)


def test_the_json_format_has_the_stable_keys_then_the_extras() -> None:
    tools = [{"name": "book", "outcome": "ok"}, {"name": "_unknown", "outcome": "unknown"}]
    line = JSONFormatter().format(
        record(
            "tool-calls call=%s",
            "c-***",
            event="tool-calls",
            call_id="c-***",
            status=200,
            duration_ms=3.2,
            tools=tools,
            color_message="\x1b[1mduplicate for terminals\x1b[0m",
        )
    )
    fields = json.loads(line)
    assert list(fields)[:4] == ["time", "level", "logger", "message"]
    assert re.fullmatch(TIME, fields["time"])
    assert (fields["level"], fields["logger"]) == ("INFO", "voicehooks")
    assert fields["message"] == "tool-calls call=c-***"
    assert fields["tools"] == tools
    assert (fields["status"], fields["duration_ms"], fields["event"]) == (200, 3.2, "tool-calls")
    assert "color_message" not in fields
    assert "\n" not in line


def test_a_json_extra_that_is_not_json_is_written_as_text() -> None:
    fields = json.loads(JSONFormatter().format(record("x", thing=object())))
    assert fields["thing"].startswith("<object object")


@pytest.mark.parametrize("formatter", [TextFormatter(), JSONFormatter()])
def test_an_attached_exception_shows_type_and_traceback_but_not_its_message(
    formatter: logging.Formatter,
) -> None:
    text = formatter.format(failing_record())
    assert "KeyError (message withheld)" in text
    assert "Traceback" in text
    assert NUMBER[1:] not in text


def test_voicehooks_runs_config_formats_every_logger_alike(clean_logging: None) -> None:
    config = logging_config("json", "debug")
    logging.config.dictConfig(config)
    stream = io.StringIO()
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    logging.getLogger("voicehooks").debug("from voicehooks")
    logging.getLogger("myapp.tools").info("from the app")
    logging.getLogger("uvicorn.error").info("from uvicorn")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["logger"], line["level"]) for line in lines] == [
        ("voicehooks", "DEBUG"),
        ("myapp.tools", "INFO"),
        ("uvicorn.error", "INFO"),
    ]


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="'text' or 'json'"):
        logging_config("xml", "info")  # type: ignore[arg-type]


def test_setup_shows_info_lines_once_and_restyles_the_servers_loggers(
    clean_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    uvicorn_stream = io.StringIO()
    logging.getLogger("uvicorn").handlers[:] = [logging.StreamHandler(uvicorn_stream)]
    logging.getLogger("uvicorn").propagate = False
    setup()
    setup(format="json", level="INFO")  # again: replaces, does not add
    logging.getLogger("voicehooks").info("delivered")
    logging.getLogger("voicehooks").debug("not shown")
    logging.getLogger("uvicorn.error").info("Started server process")
    lines = capsys.readouterr().err.splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["delivered"]
    assert json.loads(uvicorn_stream.getvalue())["logger"] == "uvicorn.error"


def test_setup_takes_a_numeric_level(
    clean_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    setup(level=logging.WARNING)
    logging.getLogger("voicehooks").info("hidden")
    logging.getLogger("voicehooks").warning("rejected 401: no signature")
    (line,) = capsys.readouterr().err.splitlines()
    assert re.fullmatch(rf"{TIME} WARNING voicehooks: rejected 401: no signature", line)


def test_setup_does_nothing_where_voicehooks_run_configured_logging_already(
    clean_logging: None,
) -> None:
    logging.config.dictConfig(logging_config("json", "info"))
    (handler,) = logging.getLogger().handlers
    setup(format="text", level="DEBUG")
    assert logging.getLogger().handlers == [handler]
    assert isinstance(handler.formatter, JSONFormatter)
    assert logging.getLogger().level == logging.INFO


# -- text the sender chose -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tool-calls", "tool-calls"),
        ("réservation_日本", "réservation_日本"),  # printable in any script: kept
        ("odd\nERROR voicehooks: forged", "odd\\nERROR voicehooks: forged"),
        ("a\r\nb", "a\\r\\nb"),
        ("nul\x00", "nul\\x00"),
        ("tab\there", "tab\\there"),
        ("\u202eevil\u200f", "\\u202eevil\\u200f"),  # bidirectional marks
        ("line\u2028sep\x85", "line\\u2028sep\\x85"),  # what some viewers break lines on
        ("lone\ud800", "lone\\ud800"),  # unencodable: a handler would fail on it
        ("back\\slash", "back\\\\slash"),  # so an escape the sender typed reads as typed
        ("x" * 128, "x" * 128),
        ("x" * 129, "x" * 128 + "... (1 more characters)"),
        ("\n" * 450_000, "\\n" * 128 + "... (449872 more characters)"),
    ],
)
def test_loggable_escapes_and_cuts_what_the_sender_chose(text: str, expected: str) -> None:
    assert loggable(text) == expected


def test_a_masked_call_id_is_loggable_too() -> None:
    assert masked("call\n+31612345678") == "call\\n+***********"
    long = masked("1234567" + "a" * 300)
    assert long.startswith("*******aaa")
    assert long.endswith("... (179 more characters)")


def test_unknown_names_are_warned_once_each_and_at_most_limit_a_period() -> None:
    now = [0.0]
    names = UnknownNames(max_names=5, limit=2, period_seconds=60, clock=lambda: now[0])
    assert [names.first(n) for n in ("a", "a", "b", "c", "b")] == [True, False, True, False, False]
    now[0] = 60.0
    assert [names.first(n) for n in ("c", "d", "e")] == [True, True, False]
    now[0] = 120.0
    assert [names.first(n) for n in ("e", "f")] == [True, False]  # 5 remembered: no more
    assert len(names.names) == 5


def test_unknown_names_remember_a_long_name_by_what_the_log_shows_of_it() -> None:
    names = UnknownNames()
    assert names.first("x" * 450_000)
    assert not names.first("x" * 450_001)  # the same 128 characters in the log
    assert [len(name) for name in names.names] == [128]


@pytest.mark.parametrize(
    ("call_id", "shown"),
    [
        ("call-+31-6-5501-8342", "call-+**-*-****-****"),  # separators do not hide a number
        ("call (065) 501-8342", "call (***) ***-****"),
        ("call.31.655.018.342", "call.**.***.***.***"),
        ("3f8c2d1e-6b7a-4c59-9e0d-2a1b4c6d8e0f", "3f8c2d1e-6b7a-4c59-9e0d-2a1b4c6d8e0f"),
        ("order-2291-a", "order-2291-a"),
    ],
)
def test_a_call_id_is_masked_in_the_log_line_separators_and_all(call_id: str, shown: str) -> None:
    assert masked(call_id) == shown
