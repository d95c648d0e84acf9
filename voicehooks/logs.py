"""Log lines about failures that never carry payload values.

An exception's message is data: ``KeyError(customer_number)`` puts a phone number in it. So
failures are logged with the exception's type and where it was raised, and the message is
withheld. Error hooks still receive the exception object itself, for trackers like Sentry
that keep data under their own access control.
"""

from __future__ import annotations

import traceback

__all__ = ["describe"]


def describe(exc: BaseException) -> str:
    """The exception's type and traceback, without its message or its chained messages.

    Example:
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
