"""The per-delivery line: written straight to a plain handler's stream, and the same text as
through the logging module."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from voicehooks.core.logline import log_delivery
from voicehooks.core.logs import JSONFormatter, SetupHandler, TextFormatter
from voicehooks.core.records import Delivery, ToolRun


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers.clear()
    root.setLevel(logging.INFO)
    try:
        yield root
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def _delivery() -> Delivery:
    delivery = Delivery([])
    delivery.event_type, delivery.call_id = "tool-calls", "call-_+31612345678_x"
    delivery.status, delivery.outcome, delivery.duration_seconds = 200, "answered", 0.00123
    run = ToolRun.__new__(ToolRun)
    run.name, run.registered, run.outcome = "check_order", True, "ok"
    delivery.tools.append(run)
    return delivery


def _written(root: logging.Logger, handler: logging.StreamHandler[io.StringIO]) -> str:
    root.addHandler(handler)
    try:
        log_delivery(_delivery())
    finally:
        root.removeHandler(handler)
    return handler.stream.getvalue()


def _without_time(line: str) -> str:
    return re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", "T", line)


@pytest.mark.parametrize("formatter", [TextFormatter, JSONFormatter])
@pytest.mark.parametrize("kind", [logging.StreamHandler, SetupHandler])
def test_the_direct_line_is_the_line_logging_writes(
    root: logging.Logger,
    formatter: type[logging.Formatter],
    kind: type[logging.StreamHandler[io.StringIO]],
) -> None:
    direct = kind(io.StringIO())
    direct.setFormatter(formatter())
    through_logging = kind(io.StringIO())
    through_logging.setFormatter(formatter())
    through_logging.addFilter(lambda record: True)  # a filter must see a record: no shortcut

    line = _written(root, direct)

    assert _without_time(line) == _without_time(_written(root, through_logging))
    assert line.endswith("\n")
    assert line.count("\n") == 1
    assert "31612345678" not in line
    if formatter is TextFormatter:
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO voicehooks: tool-calls "
            r"call=call-_\+\*{11}_x 200 1\.2ms tools=check_order:ok\n",
            line,
        )
    else:
        fields = json.loads(line)
        assert fields["tools"] == [{"name": "check_order", "outcome": "ok"}]
        assert fields["duration_ms"] == 1.23


def test_a_second_handler_gets_a_record_and_the_first_the_same_text(
    root: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(TextFormatter())
    with caplog.at_level(logging.INFO, "voicehooks"):
        line = _written(root, handler)
    (record,) = caplog.records
    assert record.funcName == "log_delivery"
    assert record.call_id == "call-_+***********_x"  # type: ignore[attr-defined]
    assert line.endswith(record.getMessage() + "\n")


def test_a_handler_above_info_writes_nothing(root: logging.Logger) -> None:
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(TextFormatter())
    handler.setLevel(logging.WARNING)
    assert _written(root, handler) == ""


def test_a_formatter_of_the_users_gets_its_record(root: logging.Logger) -> None:
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(logging.Formatter("%(levelname)s|%(call_id)s"))
    assert _written(root, handler) == "INFO|call-_+***********_x\n"


class _Broken(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError("disk full")


def test_a_stream_that_fails_is_the_handlers_error_not_the_callers(
    root: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler: logging.StreamHandler[io.StringIO] = logging.StreamHandler(_Broken())
    handler.setFormatter(TextFormatter())
    errors: list[logging.LogRecord] = []
    monkeypatch.setattr(handler, "handleError", errors.append)
    _written(root, handler)
    (record,) = errors
    assert record.getMessage().startswith("tool-calls call=")
