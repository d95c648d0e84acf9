"""The inbound payloads: one ``msgspec.Struct`` per event, a tagged union on ``message.type``.

Every delivery is ``{"message": {...}}``. ``decode_delivery`` turns the raw body into one of
``AssistantRequest``, ``ToolCalls``, ``StatusUpdate`` or ``EndOfCallReport`` in a single pass
with a decoder built once at import. Unknown fields are ignored, so new platform fields never
break a receiver; statuses and end reasons stay open strings with named constants
(PLATFORM.md 8 rows 22 and 24). Fields that web calls send as ``null`` are optional.

The decoded event keeps the body it came from, so ``event.raw`` gives the untyped payload on
demand without a second parse on the hot path.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import typing
from typing import Any, ClassVar, Final, Literal, TypeAlias

import msgspec

from .tolerance import DecodeIssue, repair

__all__ = [
    "AnyEvent",
    "AssistantRequest",
    "Call",
    "CallStatus",
    "CallType",
    "Customer",
    "DecodeIssue",
    "EVENT_NAMES",
    "EndOfCallReport",
    "EndReason",
    "Event",
    "EventName",
    "Message",
    "PhoneNumber",
    "StatusUpdate",
    "ToolCall",
    "ToolCalls",
    "ToolFunction",
    "UnknownEventType",
    "call_scope",
    "decode_delivery",
    "delivery_id",
    "event_key",
    "tool_key",
]

EventName: TypeAlias = Literal[
    "assistant-request", "tool-calls", "status-update", "end-of-call-report"
]
"""The four documented event names (``message.type``)."""


class CallStatus:
    """Known values of ``call.status``. The platform may send others; they are kept as is."""

    RINGING: Final = "ringing"
    CONNECTING: Final = "connecting"
    DIALING: Final = "dialing"
    IN_PROGRESS: Final = "in-progress"
    ENDED: Final = "ended"
    ENDED_WITH_ERROR: Final = "ended-with-error"
    FAILED: Final = "failed"
    TRANSFERRED: Final = "transferred"
    REJECTED: Final = "rejected"
    INSUFFICIENT_CREDITS: Final = "insufficient-credits"


class CallType:
    """Known values of ``call.type``."""

    INBOUND_PHONE_CALL: Final = "inbound_phone_call"
    OUTBOUND_PHONE_CALL: Final = "outbound_phone_call"
    WEB_CALL: Final = "web_call"


class EndReason:
    """End reasons seen in the platform's SDK. No list is documented; others pass through."""

    USER_HANGUP: Final = "user_hangup"
    MAX_DURATION: Final = "max_duration"


class Call(msgspec.Struct, frozen=True):
    """The call an event belongs to. ``id`` is opaque: UUIDs and ``call-…`` ids both occur.

    Every field is documented as present; each still has a default, so that a delivery that
    lacks one is kept (and the gap named in ``Event.decode_issues``) rather than refused.
    """

    id: str = ""
    type: str = ""
    status: str = ""
    pipeline: str | None = None


class PhoneNumber(msgspec.Struct, frozen=True):
    """The platform's number on the call; every field is ``None`` on web calls."""

    number: str | None = None
    id: str | None = None
    name: str | None = None


class Customer(msgspec.Struct, frozen=True):
    """The other party; ``number`` is ``None`` on web calls."""

    number: str | None = None


class Event(msgspec.Struct, frozen=True, tag_field="type", dict=True, omit_defaults=True):
    """Fields every event carries. Handlers may annotate ``Event`` to receive any event."""

    type: ClassVar[str]
    timestamp: datetime.datetime | None = None
    call: Call = msgspec.field(default_factory=Call)
    phone_number: PhoneNumber = msgspec.field(default_factory=PhoneNumber)
    customer: Customer = msgspec.field(default_factory=Customer)
    # Kept undecoded: the resolved assistant config can be large and most handlers never read
    # it. ``assistant`` decodes it on first access.
    assistant_json: msgspec.Raw = msgspec.field(default=msgspec.Raw(), name="assistant")

    @property
    def assistant(self) -> dict[str, Any] | None:
        """The resolved assistant configuration echoed by the platform, if sent."""
        cache = self.__dict__
        if "_assistant" not in cache:
            raw = self.assistant_json
            cache["_assistant"] = _decode_object(raw) if raw else None
        value: dict[str, Any] | None = cache["_assistant"]
        return value

    @property
    def metadata(self) -> dict[str, Any]:
        """``assistant.metadata``: what the assistant-request answer attached to this call."""
        assistant = self.assistant
        metadata = assistant.get("metadata") if assistant else None
        return metadata if isinstance(metadata, dict) else {}

    @property
    def decode_issues(self) -> tuple[DecodeIssue, ...]:
        """Fields that could not be read and were given their default (see ``DecodeIssue``).

        Empty for a delivery that fits the documented types, which is nearly every one.
        """
        issues: tuple[DecodeIssue, ...] = self.__dict__.get("_issues", ())
        return issues

    @property
    def raw(self) -> dict[str, Any]:
        """The untyped ``message`` object, decoded from the original body on first access."""
        cache = self.__dict__
        if "_raw" not in cache:
            body = cache.get("_body")
            if body is None:  # built in code rather than decoded: re-encode what it holds
                cache["_raw"] = _decode_object(msgspec.json.encode(self))
            else:
                cache["_raw"] = _decode_object(body).get("message", {})
        value: dict[str, Any] = cache["_raw"]
        return value


class AssistantRequest(Event, frozen=True, tag="assistant-request"):
    """An inbound call is ringing; the answer chooses its configuration (5 s deadline)."""

    type: ClassVar[str] = "assistant-request"


class ToolFunction(msgspec.Struct, frozen=True):
    """The function part of a tool call; ``arguments`` stay raw JSON until a tool binds them."""

    name: str
    arguments: msgspec.Raw = msgspec.Raw(b"{}")


class ToolCall(msgspec.Struct, frozen=True, dict=True):
    """One tool invocation; answer it by echoing ``id`` as ``tool_call_id``."""

    id: str
    function: ToolFunction
    type: str = "function"

    @property
    def name(self) -> str:
        """The tool's name as the model called it."""
        return self.function.name

    @property
    def arguments(self) -> dict[str, Any]:
        """The arguments as a dict. A JSON-encoded string is decoded; unusable input is ``{}``."""
        cache = self.__dict__
        if "_arguments" not in cache:
            value = _decode_any(self.function.arguments)
            if isinstance(value, str):
                value = _decode_any(value.encode())
            cache["_arguments"] = value if isinstance(value, dict) else {}
        arguments: dict[str, Any] = cache["_arguments"]
        return arguments


class ToolCalls(Event, frozen=True, tag="tool-calls", kw_only=True):
    """The model called one or more custom tools; the answer carries their results (10 s)."""

    type: ClassVar[str] = "tool-calls"
    tool_call_list: list[ToolCall]


class StatusUpdate(Event, frozen=True, tag="status-update"):
    """The call's status changed. The answer's body is ignored."""

    type: ClassVar[str] = "status-update"
    error: str | None = None
    end_reason: str | None = None

    @property
    def status(self) -> str:
        """The new status, ``call.status``."""
        return self.call.status


class Message(msgspec.Struct, frozen=True, gc=False):
    """One transcript entry. ``content`` is ``""`` for turns without text (tool calls)."""

    # gc=False: two strings can be part of no reference cycle, and a report has hundreds of
    # turns, each of which counted towards a collection. Measured: decoding a 512 KiB report
    # went from 9 % slower than the floor's to equal (311 -> 273 µs).

    role: str = ""
    content: str = ""


class EndOfCallReport(Event, frozen=True, tag="end-of-call-report"):
    """The call ended and post-processing finished. The answer's body is ignored."""

    type: ClassVar[str] = "end-of-call-report"
    # Documented as always present, but a report is worth more than strictness: a missing
    # field must not turn the only copy of a call's transcript into a 400.
    duration_seconds: int | None = None
    summary: str | None = None
    messages: list[Message] = []
    analysis: dict[str, Any] | None = None
    recording_url: str | None = None
    started_at: datetime.datetime | None = None
    ended_at: datetime.datetime | None = None
    end_reason: str | None = None
    reconciled: bool = False
    """Built from ``GET /calls/{id}`` because no report came (``Platform(reconcile=...)``)."""


AnyEvent: TypeAlias = AssistantRequest | ToolCalls | StatusUpdate | EndOfCallReport

EVENT_NAMES: Final[dict[str, type[Event]]] = {
    event.type: event for event in typing.get_args(AnyEvent)
}
"""Event name → the Struct it decodes into, in the order of ``AnyEvent``."""


class _Delivery(msgspec.Struct):
    message: AnyEvent


class _Untyped(msgspec.Struct):
    """Enough of an unknown event type to route it to ``{}`` and name it in the log."""

    class _Message(msgspec.Struct):
        type: str
        call: dict[str, Any] | None = None

    message: _Message


_delivery_decoder = msgspec.json.Decoder(_Delivery)
_untyped_decoder = msgspec.json.Decoder(_Untyped)
_any_decoder = msgspec.json.Decoder()
_encode = msgspec.json.Encoder().encode

# Malformed input msgspec reports with a builtin exception rather than DecodeError: invalid
# UTF-8 inside a string, and nesting deeper than the interpreter's recursion limit.
_MALFORMED = (UnicodeDecodeError, RecursionError)


def decode_delivery(body: bytes) -> Event:
    """Decode a raw delivery body into its typed event.

    The strict typed decode runs first; only when it fails does the tolerant path repair the
    fields that drifted from their documented types (see ``voicehooks.core.tolerance``) and name
    them in ``event.decode_issues``.

    Raises:
        msgspec.ValidationError: The envelope's essentials are missing or unusable (no
            ``message`` object, no string ``message.type``, a tool call without a usable
            ``id`` or ``function.name``); the message names the path.
        msgspec.DecodeError: The body is not JSON.
        UnknownEventType: ``message.type`` is not one of the four known events.
    """
    try:
        event: Event = _delivery_decoder.decode(body).message
    except msgspec.ValidationError as error:
        unknown = _unknown_type(body)
        if unknown is not None:
            raise unknown from None
        event = _tolerant(body, error)
    except _MALFORMED as exc:
        reason = "invalid UTF-8" if isinstance(exc, UnicodeDecodeError) else "nested too deeply"
        raise msgspec.DecodeError(f"JSON is malformed: {reason}") from None
    event.__dict__["_body"] = body
    return event


def _tolerant(body: bytes, error: msgspec.ValidationError) -> Event:
    try:
        delivery = _any_decoder.decode(body)  # valid JSON: the strict decode got past parsing
        message = delivery.get("message") if isinstance(delivery, dict) else None
        kind = message.get("type") if isinstance(message, dict) else None
        event_type = EVENT_NAMES.get(kind) if isinstance(kind, str) else None
        if not isinstance(message, dict) or event_type is None:
            raise error  # no message object or no known type: nothing to repair
        repaired, issues = repair(message, event_type)
        repaired["type"] = event_type.type
        event: Event = _delivery_decoder.decode(_encode({"message": repaired})).message
    except _MALFORMED:
        raise error from None  # too deep to walk: refused as the strict decode refused it
    if issues:
        event.__dict__["_issues"] = tuple(issues)
    return event


class UnknownEventType(Exception):
    """The delivery is well formed but of a type this version does not know."""

    def __init__(self, event_type: str, call_id: str | None) -> None:
        super().__init__(event_type)
        self.event_type = event_type
        self.call_id = call_id


def _unknown_type(body: bytes) -> UnknownEventType | None:
    try:
        message = _untyped_decoder.decode(body).message
    except (msgspec.MsgspecError, *_MALFORMED):
        return None
    if message.type in EVENT_NAMES:
        return None
    call_id = message.call.get("id") if message.call else None
    return UnknownEventType(message.type, call_id if isinstance(call_id, str) else None)


def _decode_any(raw: bytes | msgspec.Raw) -> Any:
    try:
        return _any_decoder.decode(raw)
    except (msgspec.DecodeError, *_MALFORMED):
        return None


def _decode_object(raw: bytes | msgspec.Raw) -> dict[str, Any]:
    value = _decode_any(raw)
    return value if isinstance(value, dict) else {}


# -- identity: what one piece of work is, derived from what a delivery carries ---------------
#
# The platform documents neither retries nor delivery ids (PLATFORM.md 8 rows 1-2): a tool call
# is its (call id, tool call id), an informational event a digest of its type, call id, call
# status and event time. Duplicate suppression (``voicehooks.state.dedupe``), the durable queue's
# done marks and ``CallContext.delivery_id`` all read these, so they agree.


@functools.lru_cache(maxsize=1024)
def call_scope(call_id: str) -> str:
    """The call id as it appears in store keys: hashed, because it may embed a phone number.

    The one hash of a call id in keys (tool calls, call state, intents, late results,
    call-control pacing, reconciliation claims): unkeyed, so every process agrees on it.
    Cached: a call's deliveries and their tool calls hash the same id again and again (a hit
    costs a fifth of the hash), and 1,024 ids are more calls than a process has live.
    """
    return hashlib.blake2b(call_id.encode(), digest_size=16).hexdigest()


def tool_key(call_id: str, tool_call_id: str) -> str:
    """The store key of one tool call; the hashed call id has a fixed length, so ``:`` in
    the tool call id stays unambiguous."""
    return f"tool:{call_scope(call_id)}:{tool_call_id}"


def event_key(event: Event) -> str:
    """The store key of an informational delivery: a digest of its identity.

    Kept on the event once made: duplicate suppression and ``delivery_id`` both read it.
    """
    cache = event.__dict__
    key: str | None = cache.get("_key")
    if key is None:
        call = event.call
        identity = _encode_identity((event.type, call.id, call.status, event.timestamp))
        key = cache["_key"] = "event:" + hashlib.sha256(identity).hexdigest()
    return key


_encode_identity = msgspec.json.Encoder().encode


def delivery_id(event: Event, tool_call: ToolCall | None = None) -> str:
    """A stable id of one piece of work: ``tool_call`` of ``event``, or ``event`` itself.

    The same identity duplicate suppression uses, so a redelivery has the same id: 32 hex
    characters, for the user's own idempotency keys.
    """
    if tool_call is not None:
        # The 0.3 form of the identity, kept so that ids users stored stay the same.
        identity = f"tool:{len(event.call.id)}:{event.call.id}:{tool_call.id}"
        return hashlib.sha256(identity.encode()).hexdigest()[:32]
    return event_key(event)[6:38]  # after "event:"
