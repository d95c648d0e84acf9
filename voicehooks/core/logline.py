"""The per-delivery INFO line, at what a line costs.

Through the logging module one line costs about 15-20 µs of CPU, more than the rest of a
tool call: a ``LogRecord`` of some thirty attributes, the logger and handler walk, the
formatter. With the configuration ``voicehooks run`` installs, or ``setup()``'s (one stream
handler with one of ``voicehooks.core.logs``' formatters, no filter), ``log_delivery``
formats the line itself and writes it to that handler's stream under the handler's lock:
the same text, no record. Any other configuration (a filter, a second handler such as
pytest's ``caplog``, a formatter of the user's) gets a real record through ``logging``, so
whatever the user set up sees the line as before.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final

import msgspec

from .logs import JSONFormatter, SetupHandler, TextFormatter, loggable, masked, timestamp
from .records import Delivery

__all__ = ["log_delivery"]

_log = logging.getLogger("voicehooks")
_INFO: Final = logging.INFO
_encode = msgspec.json.Encoder(enc_hook=str).encode


def log_delivery(delivery: Delivery) -> None:
    """Log ``delivery``'s line at INFO: event type, masked call id, status, milliseconds,
    each tool and how it ended; in JSON also as fields (``JSONFormatter``)."""
    runs = delivery.tools
    if not runs:
        listed = ""
    elif len(runs) == 1:  # most deliveries: no list to build and join
        listed = f" tools={runs[0].name if runs[0].registered else '?'}:{runs[0].outcome}"
    else:
        listed = " tools=" + ",".join(f"{name}:{outcome}" for name, outcome in _tools(delivery))
    replay = " mcp" if delivery.transport == "mcp" else ""
    if delivery.is_replay:
        replay = " replay (duplicates bypassed)" if delivery.bypass_dedupe else " replay"
    args = (
        loggable(delivery.event_type or ""),
        masked(delivery.call_id),
        delivery.status,
        delivery.duration_seconds * 1000,
        listed,
        replay,
    )
    handler = _plain_handler()
    if handler is None:
        _log.handle(_record(delivery, args))
        return
    if type(handler.formatter) is TextFormatter:
        line = f"{timestamp(time.time())} INFO voicehooks: {_MESSAGE % args}"
    else:
        line = _encode(
            {
                "time": timestamp(time.time()),
                "level": "INFO",
                "logger": "voicehooks",
                "message": _MESSAGE % args,
            }
            | _fields(delivery, args)
        ).decode()
    handler.acquire()
    try:
        stream = handler.stream
        stream.write(line + handler.terminator)
        if hasattr(stream, "flush"):  # StreamHandler.flush's test, without its second lock
            stream.flush()
    except Exception:
        handler.handleError(_record(delivery, args))
    finally:
        handler.release()


def _tools(delivery: Delivery) -> list[tuple[str, str]]:
    return [(run.name if run.registered else "?", run.outcome) for run in delivery.tools]


_MESSAGE: Final = "%s call=%s %d %.1fms%s%s"


def _record(delivery: Delivery, args: tuple[Any, ...]) -> logging.LogRecord:
    # Made by hand rather than through _log.info, which would first walk the stack for the
    # caller's file and line (always log_delivery).
    return _log.makeRecord(
        _log.name,
        _INFO,
        __file__,
        _LINE,
        _MESSAGE,
        args,
        None,
        "log_delivery",
        _fields(delivery, args),
    )


def _fields(delivery: Delivery, args: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "event": args[0],
        "call_id": args[1],
        "status": delivery.status,
        "outcome": delivery.outcome,
        "duration_ms": round(args[3], 3),
        "tools": [{"name": name, "outcome": outcome} for name, outcome in _tools(delivery)],
        "replay": delivery.is_replay,
        "transport": delivery.transport,
    }


_LINE: Final = log_delivery.__code__.co_firstlineno


def _plain_handler() -> logging.StreamHandler[Any] | None:
    """The one handler the line goes to, when it is a plain stream handler with one of our
    formatters and nothing else would see the record; else ``None``."""
    if _log.filters:
        return None
    found: logging.Handler | None = None
    logger: logging.Logger | None = _log
    while logger is not None:
        for handler in logger.handlers:
            if found is not None:
                return None
            found = handler
        if not logger.propagate:
            break
        logger = logger.parent
    if (
        found is None
        or type(found) not in _PLAIN_HANDLERS
        or found.filters
        or found.level > _INFO
        or type(found.formatter) not in _OUR_FORMATTERS
    ):
        return None
    return found  # type: ignore[return-value]


_PLAIN_HANDLERS: Final = (logging.StreamHandler, SetupHandler)
_OUR_FORMATTERS: Final = (TextFormatter, JSONFormatter)
