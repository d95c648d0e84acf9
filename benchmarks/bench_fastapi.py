"""What most users write instead: FastAPI with pydantic v2 models, written the documented way.

The body is a pydantic model (a discriminated union on ``message.type``), the signature is
checked by a dependency that reads the raw body and the two headers, tool arguments are
validated by a per-tool model, a sync tool goes to the thread pool, and the endpoint returns
a dict that FastAPI serialises.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import time
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, ValidationError

from benchmarks import demo

label = "FastAPI + pydantic v2"

TOLERANCE_SECONDS = 300


class Call(BaseModel):
    id: str
    type: str
    status: str


class PhoneNumber(BaseModel):
    number: str | None = None
    id: str | None = None
    name: str | None = None


class Customer(BaseModel):
    number: str | None = None


class ToolFunction(BaseModel):
    name: str
    arguments: dict[str, Any] = {}


class ToolCall(BaseModel):
    id: str
    type: str = "function"
    function: ToolFunction


class EventBase(BaseModel):
    timestamp: datetime.datetime
    call: Call
    phone_number: PhoneNumber = PhoneNumber()
    customer: Customer = Customer()


class ToolCalls(EventBase):
    type: Literal["tool-calls"]
    tool_call_list: list[ToolCall] = []


class AssistantRequest(EventBase):
    type: Literal["assistant-request"]


class StatusUpdate(EventBase):
    type: Literal["status-update"]
    error: str | None = None
    end_reason: str | None = None


class TranscriptMessage(BaseModel):
    role: str
    content: str = ""


class EndOfCallReport(EventBase):
    type: Literal["end-of-call-report"]
    duration_seconds: int | None = None
    summary: str | None = None
    messages: list[TranscriptMessage] = []
    analysis: dict[str, Any] | None = None
    recording_url: str | None = None
    started_at: datetime.datetime | None = None
    ended_at: datetime.datetime | None = None
    end_reason: str | None = None


class Delivery(BaseModel):
    message: Annotated[
        ToolCalls | AssistantRequest | StatusUpdate | EndOfCallReport,
        Field(discriminator="type"),
    ]


class CheckOrderArguments(BaseModel):
    order_number: str


async def run_tool(call: ToolCall) -> Any:
    """Validate the arguments with the tool's model and run the tool."""
    try:
        arguments = CheckOrderArguments.model_validate(call.function.arguments)
    except ValidationError:
        return {"error": f"The arguments for {call.function.name} were not usable."}
    if call.function.name == "check_order":
        return await demo.check_order(arguments.order_number)
    if call.function.name == "check_order_sync":
        return await run_in_threadpool(demo.check_order_sync, arguments.order_number)
    return {"error": f"There is no tool called {call.function.name}."}


def make_app(secret: str) -> FastAPI:
    """The demo application on FastAPI."""
    key = secret.encode()

    async def verify_signature(
        request: Request,
        x_webhook_timestamp: Annotated[str, Header()],
        x_webhook_signature: Annotated[str, Header()],
    ) -> None:
        body = await request.body()
        if (
            not x_webhook_timestamp.isdigit()
            or abs(time.time() - int(x_webhook_timestamp)) > TOLERANCE_SECONDS
        ):
            raise HTTPException(401, "stale timestamp")
        signed = x_webhook_timestamp.encode() + b"." + body
        expected = hmac.new(key, signed, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, x_webhook_signature.removeprefix("sha256=")):
            raise HTTPException(401, "bad signature")

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.post("/", dependencies=[Depends(verify_signature)])
    async def webhook(delivery: Delivery) -> dict[str, Any]:
        event = delivery.message
        if isinstance(event, ToolCalls):
            return {
                "results": [
                    {"tool_call_id": call.id, "result": await run_tool(call)}
                    for call in event.tool_call_list
                ]
            }
        if isinstance(event, AssistantRequest):
            demo.choose_assistant(event.customer.number)
        elif isinstance(event, EndOfCallReport):
            demo.record_report(event.call.id, len(event.messages))
        return {}

    return app
