"""Pydantic models as tool arguments and results, with real pydantic."""

from __future__ import annotations

import sys
from typing import Literal

import jsonschema
import pytest
from pydantic import BaseModel, Field

from voicehooks import ToolResult, VoiceHooks
from voicehooks.testing import WebhookClient
from voicehooks.tools.models import is_model, mentions_model

pytestmark = pytest.mark.anyio

SECRET = "whsec_pydantic_models"
PHONE = "+31612345678"


class Address(BaseModel):
    street: str
    city: str


class Booking(BaseModel):
    """A repair booking."""

    name: str
    bikes: int = Field(ge=1, le=4, description="How many bikes to bring in.")
    kind: Literal["city", "racing"]
    address: Address


class Confirmation(BaseModel):
    reference: str
    booking: Booking


def make_app() -> tuple[VoiceHooks, list[Booking]]:
    app = VoiceHooks(secret=SECRET)
    booked: list[Booking] = []

    @app.tool
    def book(booking: Booking, note: str = "") -> Confirmation:
        """Book a repair.

        Args:
            booking: What to book.
            note: Anything else the caller said.
        """
        booked.append(booking)
        return Confirmation(reference="R-1", booking=booking)

    @app.tool
    def wrapped(booking: Booking) -> ToolResult:
        """Book, answering through a ToolResult."""
        return ToolResult({"confirmation": Confirmation(reference="R-2", booking=booking)})

    return app, booked


BOOKING = {
    "name": "Ada",
    "bikes": 2,
    "kind": "city",
    "address": {"street": "Main 1", "city": "Utrecht"},
}


def test_models_are_recognised_without_importing_pydantic() -> None:
    assert is_model(Booking)
    assert not is_model(BaseModel)  # the base itself is no model of the app's
    assert not is_model(dict)
    assert not is_model(list[Booking])
    assert mentions_model(list[Booking])
    assert mentions_model(Booking | None)
    assert not mentions_model(list[int])


def test_the_tool_s_schema_is_the_model_s_own() -> None:
    app, _ = make_app()
    parameters = app.tools["book"].parameters
    booking = parameters["properties"]["booking"]
    assert booking["description"] == "What to book."
    assert booking["properties"]["bikes"] == {
        "description": "How many bikes to bring in.",
        "maximum": 4,
        "minimum": 1,
        "title": "Bikes",
        "type": "integer",
    }
    assert booking["properties"]["kind"]["enum"] == ["city", "racing"]
    assert booking["properties"]["address"] == {"$ref": "#/$defs/Address"}
    assert parameters["$defs"]["Address"]["required"] == ["street", "city"]
    assert parameters["required"] == ["booking"]
    jsonschema.Draft202012Validator.check_schema(parameters)
    jsonschema.validate({"booking": BOOKING}, parameters)


async def test_a_model_argument_is_validated_and_a_model_result_is_its_json() -> None:
    app, booked = make_app()
    async with WebhookClient(app) as client:
        result = await client.call_tool("book", booking=BOOKING)
        wrapped = await client.call_tool("wrapped", booking=BOOKING)
    assert booked == [Booking.model_validate(BOOKING)]
    assert result == {"reference": "R-1", "booking": BOOKING}
    assert wrapped == {"confirmation": {"reference": "R-2", "booking": BOOKING}}


async def test_a_refused_model_is_explained_field_by_field_without_the_values() -> None:
    app, booked = make_app()
    bad = {**BOOKING, "bikes": 9, "name": PHONE, "address": {"street": PHONE}}
    async with WebhookClient(app) as client:
        result = await client.call_tool("book", booking=bad)
    assert booked == []
    error = result["error"]
    assert error.startswith("The arguments for book do not fit: booking.bikes: ")
    assert "booking.address.city: Field required" in error
    assert PHONE not in error
    assert "9" not in error
    assert error.endswith("Call book again with them fixed.")


def test_a_model_inside_another_type_is_refused_at_registration_with_the_way_out() -> None:
    app = VoiceHooks(secret=SECRET)
    with pytest.raises(Exception, match=r"whole type \(order: Order\).*msgspec.Struct"):

        @app.tool
        def book_many(bookings: list[Booking]) -> str:
            """Book several."""
            return "ok"


def test_an_app_without_models_never_imports_pydantic() -> None:
    import subprocess

    code = (
        "import sys, voicehooks, voicehooks.tools.models, voicehooks.pipeline.toolcalls\n"
        "app = voicehooks.VoiceHooks(secret='whsec_x')\n"
        "@app.tool\n"
        "def f(x: int) -> int:\n"
        "    '''F.'''\n"
        "    return x\n"
        "assert 'pydantic' not in sys.modules, 'pydantic imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
