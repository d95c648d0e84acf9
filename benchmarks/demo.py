"""The demo application every contender implements: one tool (async and sync) and two handlers.

The functions are deliberately trivial and free of I/O, so a benchmark measures what a
framework costs around them. Every contender calls exactly these functions.
"""

from __future__ import annotations

from typing import Any

STATUSES = ("received", "in repair", "waiting for parts", "ready for pickup")


class Stats:
    """What the handlers saw; a benchmark reads it to know the handlers really ran."""

    reports = 0
    messages = 0
    assistant_requests = 0


def order_status(order_number: str) -> dict[str, Any]:
    """The answer for ``order_number``: a fixed function of its last digit."""
    last = order_number[-1:]
    status = STATUSES[int(last) % len(STATUSES)] if last.isdigit() else STATUSES[0]
    return {
        "order_number": order_number,
        "status": status,
        "ready": status == "ready for pickup",
        "pickup_after": "14:00",
    }


async def check_order(order_number: str) -> dict[str, Any]:
    """Return the repair status of a work order.

    Args:
        order_number: The work order number, like WO-2291.
    """
    return order_status(order_number)


def check_order_sync(order_number: str) -> dict[str, Any]:
    """Return the repair status of a work order (a sync tool: it runs in a worker thread).

    Args:
        order_number: The work order number, like WO-2291.
    """
    return order_status(order_number)


def record_report(call_id: str, messages: int) -> None:
    """What the end-of-call-report handler does with a report: count it."""
    Stats.reports += 1
    Stats.messages += messages


def choose_assistant(customer_number: str | None) -> None:
    """What the assistant-request handler answers: ``None``, the saved configuration (``{}``)."""
    Stats.assistant_requests += 1
