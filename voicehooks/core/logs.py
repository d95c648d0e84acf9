"""Log lines that never carry payload values, and how they look under any server.

Everything voicehooks logs goes to the ``voicehooks`` logger: one INFO line per delivery
(event type, masked call id, status, milliseconds, each tool and how it ended), a WARNING per
rejection, an ERROR per failure in user code. ``voicehooks run`` shows it with time, level
and logger name (``--log-format text|json``); under any other server one line does the same::

    import voicehooks.core.logs

    voicehooks.core.logs.setup()  # or setup(format="json", level="INFO")

An exception's message is data: ``KeyError(customer_number)`` puts a phone number in it. So
failures are logged with the exception's type and where it was raised, and the message is
withheld (``describe``); both formatters here print an attached ``exc_info`` the same way,
whoever logged it. Error hooks still receive the exception object itself, for trackers like
Sentry that keep data under their own access control. One process may show the messages:
``voicehooks dev`` on loopback, whose console and inspector only the developer reads, calls
``reveal_messages()`` in its server process; nothing else does.

A call id is opaque, and the platform's REST ids embed the caller's number
(``call-_+316…``, PLATFORM.md §2), so every call id is logged through ``masked``.

Any other text the sender chose (an unknown event type, a tool name the model made up) goes
into a log line through ``loggable``: a newline in it would otherwise start a line of its own
that a reader cannot tell from ours (``...\\nERROR voicehooks: ...``), and its length is the
sender's to choose. ``masked`` applies it too. Warnings that the sender can trigger at will
go through ``UnknownNames`` (each name once, then a ``Throttle``), so that no sender can fill
the log.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, Final, Literal

import msgspec

__all__ = [
    "JSONFormatter",
    "LogFormat",
    "TextFormatter",
    "Throttle",
    "UnknownNames",
    "describe",
    "duration",
    "loggable",
    "logging_config",
    "masked",
    "reveal_messages",
    "setup",
    "timestamp",
]

LogFormat = Literal["text", "json"]

# 7 or more digits, one or two separators between them allowed ("+31-6-5501-8342").
_PHONE_LIKE = re.compile(r"\d(?:[-. ()/]{0,2}\d){6,}")
# Every match of _PHONE_LIKE lies in such a run; searching for one first does not backtrack.
_CANDIDATE = re.compile(r"[\d\-. ()/]{7,}")
_DIGIT = re.compile(r"\d")

# What every LogRecord has; anything else on a record came through ``extra=``.
_STANDARD: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName", "color_message"}  # uvicorn's colored duplicate
)
# The servers' own loggers, which ``setup`` restyles when a server configured them already.
_SERVER_LOGGERS: Final = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "gunicorn.error",
    "gunicorn.access",
)
_encode = msgspec.json.Encoder(enc_hook=str).encode
_LOGGABLE_CHARS: Final = 128


def duration(seconds: float) -> str:
    """A bound in seconds as people say it, for messages.

    Examples:
        >>> duration(604800), duration(7200), duration(90)
        ('7 days', '2 hours', '90 s')
    """
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds:g} s"


def loggable(text: str, limit: int = _LOGGABLE_CHARS) -> str:
    """``text``, which the sender chose, made fit for one log line.

    Characters that are not printable (newlines and other control characters, bidirectional
    marks, lone surrogates) and backslashes are escaped as in a Python string literal, so the
    text stays on its line and reads unambiguously; past ``limit`` characters it is cut, and
    the cut says how much was left out. Text that needs neither is returned as it is.

    Examples:
        >>> loggable("end-of-call-report")
        'end-of-call-report'
        >>> print(loggable("odd\\nERROR voicehooks: forged"))
        odd\\nERROR voicehooks: forged
        >>> loggable("x" * 300, limit=4)
        'xxxx... (296 more characters)'
    """
    if len(text) <= limit and text.isprintable() and "\\" not in text:
        return text
    kept = "".join(map(_escaped, text[:limit]))
    return kept if len(text) <= limit else f"{kept}... ({len(text) - limit} more characters)"


def _escaped(character: str) -> str:
    if character.isprintable() and character != "\\":
        return character
    return character.encode("unicode_escape").decode("ascii")


def masked(call_id: str | None) -> str:
    """``call_id`` with every run of 7 or more digits starred out, separators between them
    allowed, for the log (``loggable``).

    Examples:
        >>> masked("call-_+31612345678_XqaQ")
        'call-_+***********_XqaQ'
        >>> masked("call-+31-6-5501-8342")
        'call-+**-*-****-****'
        >>> masked("3f8c2d1e-6b7a-4c59")
        '3f8c2d1e-6b7a-4c59'
    """
    if call_id is None:
        return "-"
    return _masked(call_id)


@functools.lru_cache(maxsize=4096)  # a call's deliveries repeat its id; bounded, thread-safe
def _masked(call_id: str) -> str:
    if _CANDIDATE.search(call_id) is None:  # no run of 7 digits and separators: the usual id
        return loggable(call_id)
    # Only inside the runs: a UUID has two or three, and _PHONE_LIKE over the whole id
    # backtracks at every digit (measured: 2.3 µs an id, against 1.7 µs this way).
    return loggable(_CANDIDATE.sub(_star_phone_like, call_id))


def _star_phone_like(run: re.Match[str]) -> str:
    return _PHONE_LIKE.sub(_star_digits, run.group())


def _star_digits(match: re.Match[str]) -> str:
    return _DIGIT.sub("*", match.group())  # every digit ("\d"): other scripts' too


class Throttle:
    """Allows at most ``limit`` events per ``period_seconds``; counts the ones it refused.

    Examples:
        >>> throttle = Throttle(limit=2, period_seconds=60)
        >>> [throttle.allow() for _ in range(3)]
        [True, True, False]
        >>> throttle.refused
        1
    """

    __slots__ = ("_clock", "_count", "_window_started", "limit", "period_seconds", "refused")

    def __init__(
        self,
        *,
        limit: int,
        period_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.period_seconds = period_seconds
        self._clock = clock
        self._window_started = clock()
        self._count = 0
        self.refused = 0

    def allow(self) -> bool:
        """Whether one more event may be logged now."""
        now = self._clock()
        if now - self._window_started >= self.period_seconds:
            self._window_started, self._count = now, 0
        if self._count < self.limit:
            self._count += 1
            return True
        self.refused += 1
        return False

    def take_refused(self) -> int:
        """How many were refused since the last call; resets the count."""
        refused, self.refused = self.refused, 0
        return refused


class UnknownNames:
    """Which names the sender made up (tool names, event types) are worth a warning now.

    Each name is warned about once, and at most ``limit`` names per ``period_seconds`` (a
    ``Throttle``); at most ``max_names`` are remembered, by as many characters as ``loggable``
    shows, and once that many were warned about, no more are.

    Examples:
        >>> names = UnknownNames(limit=2, period_seconds=60)
        >>> [names.first(name) for name in ("a", "a", "b", "c")]
        [True, False, True, False]
    """

    __slots__ = ("max_names", "names", "throttle")

    def __init__(
        self,
        *,
        max_names: int = 128,
        limit: int = 10,
        period_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_names = max_names
        self.names: set[str] = set()
        self.throttle = Throttle(limit=limit, period_seconds=period_seconds, clock=clock)

    def first(self, name: str) -> bool:
        """Whether to warn about ``name`` now: its first sighting, within the budget."""
        key = name[:_LOGGABLE_CHARS]
        if key in self.names or len(self.names) >= self.max_names:
            return False
        if not self.throttle.allow():
            return False
        self.names.add(key)
        return True


_revealed = False  # reveal_messages(): voicehooks dev on loopback only


def reveal_messages() -> None:
    """From now on, ``describe`` shows exceptions whole (messages, chained ones too) in this
    process: for ``voicehooks dev`` on loopback, where the developer is the only reader."""
    global _revealed
    _revealed = True


def describe(exc: BaseException) -> str:
    """The exception's type and traceback, without its message or its chained messages.

    After ``reveal_messages()`` (``voicehooks dev`` on loopback): the whole traceback as
    Python prints it, messages included.

    Examples:
        >>> number = "+31600000000"
        >>> try:
        ...     {}[number]
        ... except KeyError as exc:
        ...     text = describe(exc)
        >>> text.splitlines()[0]
        'KeyError (message withheld)'
        >>> "+31600000000" in text
        False
    """
    if _revealed:
        return "".join(traceback.format_exception(exc)).rstrip("\n")
    lines = [f"{type(exc).__qualname__} (message withheld)", "Traceback (most recent call last):"]
    for frame in traceback.extract_tb(exc.__traceback__):
        lines.append(f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}')
        if frame.line:
            lines.append(f"    {frame.line}")
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if cause is not None:
        lines.append(f"  caused by {type(cause).__qualname__}")
    return "\n".join(lines)


def timestamp(created: float) -> str:
    """``created`` (seconds since the epoch) in ISO 8601, UTC, with milliseconds: sortable,
    and the same on every host.

    Example:
        >>> timestamp(1.5)
        '1970-01-01T00:00:01.500Z'
    """
    global _last_second
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    last = _last_second  # one tuple, read and replaced whole: threads may log at once
    if last[0] != seconds:  # strftime is most of the cost, and lines come many a second
        last = _last_second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{last[1]}.{millis:03d}Z"


_last_second: tuple[int, str] = (-1, "")


def _exception(record: logging.LogRecord) -> str | None:
    if record.exc_info and record.exc_info[1] is not None:
        return describe(record.exc_info[1])
    return None


class TextFormatter(logging.Formatter):
    """``2026-01-31T12:00:00.123Z INFO voicehooks: message``, the default of ``voicehooks run``.

    Usable in any ``dictConfig`` (``"()": "voicehooks.core.logs.TextFormatter"``). An exception
    attached to a record is shown by ``describe``: type and traceback, no message.
    """

    def format(self, record: logging.LogRecord) -> str:
        """One line (more with a traceback)."""
        line = (
            f"{timestamp(record.created)} {record.levelname} {record.name}: {record.getMessage()}"
        )
        exception = _exception(record)
        return line if exception is None else f"{line}\n{exception}"


class JSONFormatter(logging.Formatter):
    """One JSON object per line, for log shippers.

    Keys, always: ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message``; then every
    field passed through ``extra=``. voicehooks' per-delivery line adds ``event``,
    ``call_id`` (masked), ``status``, ``duration_ms`` and ``tools`` (each tool's name and
    outcome, never its arguments or result). ``exception`` holds ``describe``'s text when a
    record carries one. Usable in any ``dictConfig``
    (``"()": "voicehooks.core.logs.JSONFormatter"``).

    Example:
        >>> import logging
        >>> record = logging.LogRecord("voicehooks", logging.INFO, "", 0, "hi %s", ("you",), None)
        >>> record.created = 0.0
        >>> record.status = 200
        >>> line = JSONFormatter().format(record)
        >>> line[:59]
        '{"time":"1970-01-01T00:00:00.000Z","level":"INFO","logger":'
        >>> line[59:]
        '"voicehooks","message":"hi you","status":200}'
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        fields: dict[str, Any] = {
            "time": timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                fields[key] = value
        exception = _exception(record)
        if exception is not None:
            fields["exception"] = exception
        return _encode(fields).decode()


_FORMATTERS: Final[dict[str, type[logging.Formatter]]] = {
    "text": TextFormatter,
    "json": JSONFormatter,
}


def _formatter_class(format: str) -> type[logging.Formatter]:
    try:
        return _FORMATTERS[format]
    except KeyError:
        raise ValueError(f"log format must be 'text' or 'json', got {format!r}") from None


def logging_config(format: LogFormat = "text", level: str = "INFO") -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of ``voicehooks run``: every line in one format.

    The root logger (so the app's own loggers too), ``voicehooks`` and uvicorn's loggers
    write to stderr through one handler at ``level``.
    """
    formatter = _formatter_class(format)
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"voicehooks": {"()": f"{formatter.__module__}.{formatter.__qualname__}"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "voicehooks",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": ["stderr"], "level": level, "propagate": False},
        },
        "root": {"handlers": ["stderr"], "level": level},
    }


class SetupHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``setup`` installs, recognisable so a second call replaces it."""


def setup(format: LogFormat = "text", level: str | int = "INFO") -> None:
    """Show every log line with time, level and logger name, under any server.

    The one line of setup outside ``voicehooks run`` (plain uvicorn, gunicorn, a FastAPI app):
    call it where the app is created. It gives the root logger a stderr handler in
    ``format`` at ``level``, so ``voicehooks``' lines and the app's own show; and when the
    server configured its loggers already (uvicorn, gunicorn), their handlers get the same
    format and keep their destinations. Calling it again replaces what it installed.

    Under ``voicehooks run`` (or any config that gives the root logger a handler with one of
    these formatters) it does nothing: the process owner chose already, and a second handler
    would print every line twice.

    Args:
        format: ``"text"`` or ``"json"`` (one object per line, see ``JSONFormatter``).
        level: The root logger's level, a name (``"INFO"``) or a number.
    """
    formatter = _formatter_class(format)()
    root = logging.getLogger()
    if any(
        isinstance(h.formatter, tuple(_FORMATTERS.values())) and not isinstance(h, SetupHandler)
        for h in root.handlers
    ):
        return
    for handler in [h for h in root.handlers if isinstance(h, SetupHandler)]:
        root.removeHandler(handler)
    handler = SetupHandler(sys.stderr)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in _SERVER_LOGGERS:
        for server_handler in logging.getLogger(name).handlers:
            server_handler.setFormatter(formatter)
