"""Log lines that never carry payload values.

An exception's message is data: ``KeyError(customer_number)`` puts a phone number in it. So
failures are logged with the exception's type and where it was raised, and the message is
withheld (``describe``). Error hooks still receive the exception object itself, for trackers
like Sentry that keep data under their own access control.

A call id is opaque, and the platform's REST ids embed the caller's number
(``call-_+316…``, PLATFORM.md §2), so every call id is logged through ``masked``.

Warnings that the sender can trigger at will (a model inventing tool names) go through a
``Throttle``, so that no sender can fill the log.
"""

from __future__ import annotations

import re
import time
import traceback
from collections.abc import Callable

__all__ = ["Throttle", "describe", "masked"]

_PHONE_LIKE = re.compile(r"\d{7,}")


def masked(call_id: str | None) -> str:
    """``call_id`` with every run of 7 or more digits starred out, for the log.

    Examples:
        >>> masked("call-_+31612345678_XqaQ")
        'call-_+***********_XqaQ'
        >>> masked("3f8c2d1e-6b7a-4c59")
        '3f8c2d1e-6b7a-4c59'
    """
    if call_id is None:
        return "-"
    return _PHONE_LIKE.sub(lambda match: "*" * len(match.group()), call_id)


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


def describe(exc: BaseException) -> str:
    """The exception's type and traceback, without its message or its chained messages.

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
    lines = [f"{type(exc).__qualname__} (message withheld)", "Traceback (most recent call last):"]
    for frame in traceback.extract_tb(exc.__traceback__):
        lines.append(f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}')
        if frame.line:
            lines.append(f"    {frame.line}")
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if cause is not None:
        lines.append(f"  caused by {type(cause).__qualname__}")
    return "\n".join(lines)
