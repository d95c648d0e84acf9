r"""Appointments: typed tool arguments, business hours, and a booking that never runs twice.

What it shows:

* Typed tool arguments. ``datetime.date`` and ``Literal`` choices become the JSON Schema the
  model is given (``voicehooks tools examples/appointments.py``; flat, so that every provider
  takes it: Gemini refuses a nested type's ``$ref``) and are checked before the tool runs: a
  date like "next Friday" never reaches the tool, the model gets an error naming the
  argument, what was expected and an example value.
* An ``assistant-request`` handler that answers by opening hours: when the workshop is closed
  it rejects the call with ``AssistantResponse.reject(...)`` (the caller hears the message);
  when open it starts the saved assistant with a ``first_message`` for the time of day.
* A booking that must not run twice. The platform documents no retries and no delivery ids,
  so the same tool call can arrive twice. ``VoiceHooks(duplicates=Duplicates())``, the
  default, runs each tool call (call id + tool call id) once and answers a redelivery with the
  first result. With several workers or hosts, set ``VOICEHOOKS_REDIS_URL`` so they share that
  memory.

Run it:

    VOICEHOOKS_SECRET=whsec_dev_only voicehooks run examples/appointments.py

and in another shell, with the same ``VOICEHOOKS_SECRET``, for next Monday:

    MONDAY=$(python3 -c 'import datetime as d; t = d.date.today()
    print(t + d.timedelta(days=7 - t.weekday()))')
    voicehooks send assistant-request
    voicehooks send tool-calls --tool available_slots --args "{\"day\": \"$MONDAY\"}"
    voicehooks send tool-calls --tool book_appointment --args \
        "{\"day\": \"$MONDAY\", \"slot\": \"14:30\", \"bike_brand\": \"Gazelle\"}"
"""

from __future__ import annotations

import datetime
import itertools
import os
from typing import Literal
from zoneinfo import ZoneInfo

import msgspec

from voicehooks import AssistantResponse, CallContext, ToolError, VoiceHooks

app = VoiceHooks()  # secret(s) from VOICEHOOKS_SECRET; duplicates=Duplicates() is the default

WORKSHOP = ZoneInfo("Europe/Amsterdam")
ASSISTANT_ID = os.environ.get("APPOINTMENTS_ASSISTANT_ID", "e2a94f1c-5b7d-4c1e-9a38-0f6d2b8c4e71")
# Weekday (Monday is 0) → opening and closing time; Sunday is closed.
OPENING_HOURS = {
    **{weekday: (datetime.time(9), datetime.time(18)) for weekday in range(5)},
    5: (datetime.time(10), datetime.time(16)),
}
CLOSED_MESSAGE = (
    "Rijwielhuis Kade is closed right now. We are open Monday to Friday from nine to six "
    "and on Saturday from ten to four. Goodbye!"
)

Slot = Literal["09:00", "10:30", "13:00", "14:30", "16:00"]
Service = Literal["maintenance", "brakes", "gears", "tyre", "repair"]
SLOTS: tuple[Slot, ...] = ("09:00", "10:30", "13:00", "14:30", "16:00")


class Bike(msgspec.Struct, frozen=True):
    """The bike to bring in."""

    brand: str
    kind: Literal["city", "e-bike", "racing", "cargo"] = "city"


class Booking(msgspec.Struct, frozen=True):
    """A confirmed appointment."""

    reference: str
    day: datetime.date
    slot: Slot
    service: Service
    bike: Bike
    callback_number: str | None


BOOKINGS: dict[tuple[datetime.date, Slot], Booking] = {}
_references = itertools.count(1042)


def now() -> datetime.datetime:
    """The workshop's local time; tests replace it."""
    return datetime.datetime.now(WORKSHOP)


def is_open(moment: datetime.datetime) -> bool:
    """Whether the workshop is open at ``moment`` (local time)."""
    hours = OPENING_HOURS.get(moment.weekday())
    return hours is not None and hours[0] <= moment.time() < hours[1]


@app.on("assistant-request")
async def answer_by_opening_hours() -> AssistantResponse:
    # Answered within the platform's 5 s (voicehooks' budget is 4 s); keep it quick.
    moment = now()
    if not is_open(moment):
        return AssistantResponse.reject(CLOSED_MESSAGE)
    greeting = "Good morning" if moment.hour < 12 else "Good afternoon"
    return AssistantResponse.override(
        ASSISTANT_ID,
        first_message=f"{greeting}, Rijwielhuis Kade workshop. Shall I book you in?",
    )


def _check_day(day: datetime.date) -> None:
    if day < now().date():
        raise ToolError(f"{day:%A %d %B} has passed. Ask the caller for a day from today on.")
    if day.weekday() not in OPENING_HOURS:
        raise ToolError("The workshop is closed on Sundays. Offer the caller another day.")


@app.tool
async def available_slots(day: datetime.date) -> list[str]:
    """List the free appointment times on a day. Call it before booking.

    Args:
        day: The day the caller wants, as YYYY-MM-DD.
    """
    _check_day(day)
    return [slot for slot in SLOTS if (day, slot) not in BOOKINGS]


@app.tool
async def book_appointment(
    day: datetime.date,
    slot: Slot,
    bike_brand: str,
    context: CallContext,
    bike_kind: Literal["city", "e-bike", "racing", "cargo"] = "city",
    service: Service = "maintenance",
) -> dict[str, str]:
    """Book a workshop appointment. Confirm day, time and bike with the caller first.

    Args:
        day: The day, as YYYY-MM-DD.
        slot: The start time; one of the free times from available_slots.
        bike_brand: The make of the caller's bike.
        bike_kind: What kind of bike it is.
        service: What the bike needs.
    """
    _check_day(day)
    if (day, slot) in BOOKINGS:
        free = ", ".join(s for s in SLOTS if (day, s) not in BOOKINGS) or "none that day"
        raise ToolError(f"{slot} is taken. Free times: {free}. Offer the caller one of them.")
    # No await between the check above and the booking below: no other request can take
    # the slot in between. A redelivery of this very call never gets here twice: voicehooks
    # answers it with this call's first result.
    booking = Booking(
        reference=f"BK-{next(_references)}",
        day=day,
        slot=slot,
        service=service,
        bike=Bike(bike_brand, bike_kind),
        callback_number=context.customer_number,  # personal data: stored, never logged
    )
    BOOKINGS[day, slot] = booking
    return {"reference": booking.reference, "day": day.isoformat(), "slot": slot}
