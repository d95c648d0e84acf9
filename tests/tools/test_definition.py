"""Tool registration: signatures → argument Structs → JSON Schema; errors at import time."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
from typing import Any, Literal, TypedDict

import msgspec
import pytest

from voicehooks import CallContext, ConfigurationError, ToolCall, ToolCalls, VoiceHooks
from voicehooks.core.events import ToolFunction
from voicehooks.tools.definition import ArgumentError, Tool, parse_docstring


class Service(enum.Enum):
    REPAIR = "repair"
    SERVICE = "service"


class Address(msgspec.Struct):
    street: str
    city: str = "Utrecht"


@dataclasses.dataclass
class Window:
    start: datetime.time
    end: datetime.time


class Contact(TypedDict):
    name: str
    phone: str


async def book(
    date: datetime.date,
    time: str,
    service: Literal["general", "brakes"] = "general",
    kind: Service = Service.REPAIR,
    when: datetime.datetime | None = None,
    count: int = 1,
    price: float = 0.0,
    urgent: bool = False,
    tags: list[str] | None = None,
    extra: dict[str, int] | None = None,
    address: Address | None = None,
    window: Window | None = None,
    contact: Contact | None = None,
) -> dict[str, Any]:
    """Book an appointment. Ask the caller for the date and time first.

    Second paragraph is not part of the description.

    Args:
        date: The day, as YYYY-MM-DD.
        time: The time,
            as HH:MM.
        service (str): Which service.

    Returns:
        A confirmation.
    """
    return {}


def call(arguments: Any, name: str = "book") -> ToolCall:
    return ToolCall(
        id="t1", function=ToolFunction(name, msgspec.Raw(msgspec.json.encode(arguments)))
    )


@pytest.fixture
def tool() -> Tool:
    return Tool.from_function(book)


def test_name_and_description_come_from_the_function(tool: Tool) -> None:
    assert tool.name == "book"
    assert tool.description == "Book an appointment. Ask the caller for the date and time first."
    assert tool.fn.is_async


def test_the_schema_is_self_contained_with_documented_parameters(tool: Tool) -> None:
    schema = tool.parameters
    assert schema["type"] == "object"
    assert schema["required"] == ["date", "time"]
    props = schema["properties"]
    assert props["date"] == {
        "description": "The day, as YYYY-MM-DD.",
        "type": "string",
        "format": "date",
    }
    assert props["time"]["description"] == "The time, as HH:MM."
    assert sorted(props["service"]["enum"]) == ["brakes", "general"]
    assert props["count"] == {"type": "integer", "default": 1}
    assert set(schema["$defs"]) == {"Service", "Address", "Window", "Contact"}
    assert "title" not in schema
    # every reference resolves inside the schema itself
    text = json.dumps(schema)
    for name in schema["$defs"]:
        assert f'"#/$defs/{name}"' in text


def test_arguments_bind_to_their_types(tool: Tool) -> None:
    kwargs = tool.bind(
        call(
            {
                "date": "2026-01-16",
                "time": "14:30",
                "kind": "service",
                "when": "2026-01-16T14:30:00Z",
                "tags": ["a"],
                "extra": {"x": 1},
                "address": {"street": "Kade 1"},
                "window": {"start": "09:00:00", "end": "10:00:00"},
                "contact": {"name": "Sanne", "phone": "+31"},
                "unknown": "ignored",
            }
        )
    )
    assert kwargs["date"] == datetime.date(2026, 1, 16)
    assert kwargs["kind"] is Service.SERVICE
    assert kwargs["when"].tzinfo is not None
    assert kwargs["address"] == Address(street="Kade 1")
    assert kwargs["window"] == Window(datetime.time(9), datetime.time(10))
    assert kwargs["contact"] == {"name": "Sanne", "phone": "+31"}
    assert kwargs["service"] == "general"
    assert "unknown" not in kwargs


def test_arguments_may_arrive_as_a_json_string(tool: Tool) -> None:
    kwargs = tool.bind(call(json.dumps({"date": "2026-01-16", "time": "9:00"})))
    assert kwargs["date"] == datetime.date(2026, 1, 16)


TODAY = datetime.date.today().isoformat()
MISSING = "If the caller has not said it yet, ask them for it; then call book again with it."
CORRECT = "Call book again with a corrected value."


@pytest.mark.parametrize(
    ("arguments", "message", "advice"),
    [
        (
            {"time": "9"},
            f"the argument 'date' is missing (a date as YYYY-MM-DD, for example {TODAY})",
            MISSING,
        ),
        (
            {"date": "16 jan", "time": "9"},
            f"the argument 'date' must be a date as YYYY-MM-DD, for example {TODAY}",
            CORRECT,
        ),
        (
            {"date": "2026-01-16", "time": 9},
            "the argument 'time' must be a string (it was an integer)",
            CORRECT,
        ),
        (
            {"date": "2026-01-16", "time": "9", "service": "oil"},
            'the argument \'service\' must be one of "brakes", "general"',
            CORRECT,
        ),
        (
            {"date": "2026-01-16", "time": "9", "address": {}},
            "the argument 'address.street' is missing (a string)",
            MISSING,
        ),
        (
            {"date": "2026-01-16", "time": "9", "tags": ["a", 1]},
            "the argument 'tags[1]' must be a string (it was an integer)",
            CORRECT,
        ),
        (
            {"date": "2026-01-16", "time": "9", "extra": {"a": "x"}},
            "the argument 'extra[...]' must be a whole number, for example 4 (it was a string)",
            CORRECT,
        ),
        (
            {"date": "2026-01-16", "time": "9", "count": 2.5},
            "the argument 'count' must be a whole number, for example 1 (it was a number)",
            CORRECT,
        ),
        (
            {"date": "2026-01-16", "time": "9", "urgent": "yes"},
            "the argument 'urgent' must be true or false (it was a string)",
            CORRECT,
        ),
        (
            {"date": "2026-01-16", "time": "9", "price": "nan"},
            "the argument 'price' must be a number, for example 0.0 (it was a string)",
            CORRECT,
        ),
        (
            [1, 2],
            "the arguments must be an object with the fields date, time, service",
            "Call book again with them.",
        ),
        (
            "not json",
            "they are not valid JSON",
            "Call book again with a JSON object of its arguments.",
        ),
        ('["a"]', "(it was a list)", "Call book again with them."),
        (5, "(it was an integer)", "Call book again with them."),
    ],
)
def test_bad_arguments_say_what_was_expected_and_what_to_do(
    tool: Tool, arguments: Any, message: str, advice: str
) -> None:
    with pytest.raises(ArgumentError) as info:
        tool.bind(call(arguments))
    text = str(info.value)
    assert text.startswith("The arguments for book were not usable: ")
    assert message in text
    assert text.endswith(advice)
    assert ("ask them" in text) is (advice == MISSING)
    assert tool.coercions == {}


def test_a_tool_without_arguments_binds_nothing() -> None:
    async def ping() -> str:
        """Ping."""
        return "pong"

    tool = Tool.from_function(ping)
    assert tool.bind(call({"anything": 1})) == {}
    assert tool.parameters == {"type": "object", "properties": {}}


def test_injected_parameters_are_left_out_of_the_schema() -> None:
    def lookup(query: str, event: ToolCalls, tool_call: ToolCall, context: CallContext) -> str:
        """Look a contact up."""
        return query

    tool = Tool.from_function(lookup)
    assert list(tool.parameters["properties"]) == ["query"]
    assert {i.source for i in tool.injections} == {"event", "tool_call", "context"}
    assert not tool.fn.is_async


def test_the_definition_has_the_platform_shape() -> None:
    app = VoiceHooks(verify_signatures=False)

    @app.tool(fire_and_forget=True, async_response="The text is on its way.")
    def send_sms(text: str) -> None:
        """Send the caller a text message."""

    @app.tool("status", url="https://tools.example/status", description="Repair status.")
    async def status(order: str) -> str:
        return order

    first, second = app.tool_definitions("https://hooks.example/")
    assert first == {
        "name": "send_sms",
        "description": "Send the caller a text message.",
        "url": "https://hooks.example/",
        "async": True,
        "async_response": "The text is on its way.",
        "parameters": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
        },
    }
    assert second["url"] == "https://tools.example/status"
    assert second["description"] == "Repair status."
    assert "url" not in app.tool_definitions()[0]


class NotSerialisable:
    pass


def bad_type(thing: NotSerialisable) -> None:
    """Has an argument type no schema can describe."""


def no_doc(x: int) -> None:
    pass


def untyped(x) -> None:  # type: ignore[no-untyped-def]
    """Untyped."""


def star_args(*names: str) -> None:
    """Varargs."""


def positional(x: int, /) -> None:
    """Positional only."""


@pytest.mark.parametrize(
    ("function", "options", "message"),
    [
        (bad_type, {}, "an argument type cannot be used"),
        (no_doc, {}, "has no description"),
        (untyped, {}, "parameter 'x' has no annotation"),
        (star_args, {}, "takes *names"),
        (positional, {}, "positional-only"),
        (book, {"name": "has space"}, "not valid"),
        (book, {"name": "9starts_with_digit"}, "not valid"),
        (book, {"name": "x" * 65}, "not valid"),
        (book, {"name": "book\n"}, "not valid"),
        (book, {"timeout_seconds": 0}, "timeout_seconds"),
        (book, {"async_response": "hi"}, "fire_and_forget"),
    ],
)
def test_bad_tools_fail_at_registration(
    function: Any, options: dict[str, Any], message: str
) -> None:
    app = VoiceHooks(verify_signatures=False)
    with pytest.raises(ConfigurationError, match=message.replace("*", r"\*")):
        app.add_tool(function, **options)


def test_duplicate_tool_names_fail_at_registration() -> None:
    app = VoiceHooks(verify_signatures=False)
    app.tool("book")(book)
    with pytest.raises(ConfigurationError, match="already registered to book"):
        app.tool("book")(book)


def test_unresolvable_annotations_fail_at_registration() -> None:
    namespace: dict[str, Any] = {}
    exec(
        "from __future__ import annotations\ndef broken(x: Missing) -> None:\n    '''Broken.'''\n",
        namespace,
    )
    with pytest.raises(ConfigurationError, match="cannot resolve the annotations"):
        VoiceHooks(verify_signatures=False).add_tool(namespace["broken"])


def test_the_bare_decorator_keeps_the_function() -> None:
    app = VoiceHooks(verify_signatures=False)

    @app.tool
    async def greet(name: str) -> str:
        """Greet someone."""
        return f"hi {name}"

    assert greet.__name__ == "greet"
    assert "greet" in app.tools


@pytest.mark.parametrize(
    ("doc", "summary", "arguments"),
    [
        ("", "", {}),
        ("One line.", "One line.", {}),
        ("Spans\n  two lines.\n\nMore.", "Spans two lines.", {}),
        (
            "Sum.\n\nArgs:\n    a: First.\n    b (int): Second,\n        continued.\n",
            "Sum.",
            {"a": "First.", "b": "Second, continued."},
        ),
        ("Sum.\n\nArguments:\n    a: x\nReturns:\n    y: not an argument\n", "Sum.", {"a": "x"}),
        ("Args:\n    a: only args\n", "", {"a": "only args"}),
    ],
)
def test_docstrings_are_read_google_style(
    doc: str, summary: str, arguments: dict[str, str]
) -> None:
    assert parse_docstring(doc) == (summary, arguments)


def test_callable_objects_and_partials_are_detected_as_async() -> None:
    import functools

    from voicehooks.core.running import is_async_callable

    class Handler:
        async def __call__(self) -> None: ...

    async def coro(a: int) -> None: ...

    assert is_async_callable(Handler())
    assert is_async_callable(functools.partial(coro, 1))
    assert not is_async_callable(lambda: None)
    assert not is_async_callable(print)
