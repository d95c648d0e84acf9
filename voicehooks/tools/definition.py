"""Tools: a typed function becomes an argument Struct, a JSON Schema and a tool definition.

At registration ``Tool.from_function`` reads the function's signature once: parameters the
request fills in (see ``context``) are set aside; the rest become fields of a ``msgspec``
Struct whose decoder and JSON Schema are built there and then. A type that msgspec cannot
decode or describe fails at registration, not during a call.
"""

from __future__ import annotations

import inspect
import re
import typing
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Final, Literal, TypedDict

import msgspec

from voicehooks.core.events import ToolCall, ToolCalls
from voicehooks.core.injection import CallContext, Injection, plan_injections
from voicehooks.core.logs import loggable
from voicehooks.core.running import UserFunction

from . import models
from .arguments import Unfit, not_json, recover
from .sensitive import Sensitive

__all__ = [
    "ArgumentError",
    "INTERIM_TIMEOUT_SECONDS",
    "IntentKey",
    "Tool",
    "ToolOptions",
    "UnknownArguments",
    "parse_docstring",
    "stub_for",
]

UnknownArguments = Literal["ignore", "forbid"]
"""What a tool does with an argument its definition does not have: drop it, or refuse the call."""

_SECTIONS = ("Args", "Arguments", "Parameters")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")

# Besides DecodeError, msgspec raises UnicodeDecodeError for invalid UTF-8 inside a string and
# RecursionError for nesting deeper than the interpreter allows: both are unusable arguments.
_MALFORMED = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


class ToolOptions(TypedDict, total=False):
    """The options of ``@app.tool`` and ``app.add_tool``; ``Registry.add_tool`` documents them."""

    description: str | None
    timeout_seconds: float | None
    fire_and_forget: bool
    async_response: str | None
    url: str | None
    deduplicate: bool
    interim: str | None
    interim_after_seconds: float
    inject_result: bool
    unknown_arguments: UnknownArguments
    once_per_call: bool
    key: IntentKey | None
    key_ttl_seconds: float | None


IntentKey = Callable[[Any, CallContext], Any]
"""What defines a once-per-call tool's intent: a function of the decoded arguments (the
argument Struct, or ``None`` for a tool without arguments) and the call's context, returning
any msgspec-encodable value."""

INTERIM_TIMEOUT_SECONDS: Final = 60.0
"""The deadline of a tool with an interim text, unless it sets its own ``timeout_seconds``."""

_PLATFORM_WAITS_SECONDS: Final = 10.0


class ArgumentError(Exception):
    """The model's arguments do not fit the tool; the message is phrased for the model."""


@dataclass(frozen=True, slots=True)
class Tool:
    """A registered tool: the function, its argument decoder and its platform definition.

    What ``app.tools["name"]`` returns; made by ``@app.tool`` (``Tool.from_function``), never
    by hand. Read it: ``name``, ``description`` (the docstring's first paragraph, or
    ``description=``), ``parameters`` (the JSON Schema of its arguments), the options given
    to ``@app.tool`` (``timeout_seconds``, ``fire_and_forget``, ``interim``, ...),
    ``function`` (yours, undecorated) and ``definition(url)`` (the entry of the assistant's
    ``llm_config.tools``, as ``voicehooks tools`` prints it).

    Examples:
        >>> from voicehooks import VoiceHooks
        >>> app = VoiceHooks(secret="whsec_example")
        >>> @app.tool
        ... def check(order_number: str) -> str:
        ...     '''Check an order.'''
        ...     return "ready"
        >>> tool = app.tools["check"]
        >>> tool.description, tool.parameters["required"]
        ('Check an order.', ['order_number'])
    """

    name: str
    fn: UserFunction
    description: str
    parameters: dict[str, Any]
    timeout_seconds: float | None
    fire_and_forget: bool
    async_response: str | None
    url: str | None
    injections: tuple[Injection, ...]
    decoder: msgspec.json.Decoder[Any] | None
    deduplicate: bool = True
    interim: str | None = None
    interim_after_seconds: float = 5.0
    inject_result: bool = False
    unknown_arguments: UnknownArguments = "ignore"
    once_per_call: bool = False
    key: IntentKey | None = None
    key_ttl_seconds: float | None = None
    sensitive: tuple[str, ...] = ()
    """The parameters annotated ``Sensitive()``: masked outside the tool (``sensitive``)."""
    coercions: Counter[str] = field(default_factory=Counter, compare=False)
    """How many arguments of each kind (``arguments.COERCIONS``) were coerced to fit, so far."""
    models: tuple[tuple[str, Any], ...] = ()
    """Parameters typed with a pydantic model, and the model: validated after the decode."""

    @property
    def delivers_late(self) -> bool:
        """Whether its result may be spoken into the call after the answer (needs the API)."""
        return self.interim is not None or self.inject_result

    @property
    def function(self) -> Callable[..., Any]:
        """The user's function."""
        return self.fn.function

    @classmethod
    def from_function(
        cls,
        function: Callable[..., Any],
        name: str | None = None,
        *,
        description: str | None = None,
        timeout_seconds: float | None = None,
        fire_and_forget: bool = False,
        async_response: str | None = None,
        url: str | None = None,
        deduplicate: bool = True,
        interim: str | None = None,
        interim_after_seconds: float = 5.0,
        inject_result: bool = False,
        unknown_arguments: UnknownArguments = "ignore",
        once_per_call: bool = False,
        key: IntentKey | None = None,
        key_ttl_seconds: float | None = None,
    ) -> Tool:
        """Analyse ``function`` once and build its tool. Raises ``TypeError``/``ValueError``."""
        tool_name = name or str(getattr(function, "__name__", ""))
        if not _NAME.fullmatch(tool_name):
            raise ValueError(
                f"tool name {tool_name!r} is not valid: start with a letter or '_', then up to "
                "63 letters, digits, '_' or '-'"
            )
        if timeout_seconds is not None and timeout_seconds <= 0:
            raise ValueError(f"tool {tool_name!r}: timeout_seconds must be > 0")
        if unknown_arguments not in ("ignore", "forbid"):
            raise ValueError(
                f"tool {tool_name!r}: unknown_arguments must be 'ignore' or 'forbid', "
                f"not {unknown_arguments!r}"
            )
        if async_response is not None and not fire_and_forget:
            raise ValueError(
                f"tool {tool_name!r}: async_response only applies with fire_and_forget=True"
            )
        _check_interim(tool_name, interim, interim_after_seconds, inject_result, fire_and_forget)
        _check_once(tool_name, once_per_call, key, key_ttl_seconds, fire_and_forget)
        summary, documented = parse_docstring(inspect.getdoc(function) or "")
        text = description if description is not None else summary
        if not text:
            raise ValueError(
                f"tool {tool_name!r} has no description: give the function a docstring or pass "
                "description=...; the model decides when to call a tool from it"
            )
        injections, arguments, hints = plan_injections(function, ToolCalls, tool=True)
        fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
        sensitive = tuple(name for name in arguments if _is_sensitive(hints[name]))
        if sensitive and fire_and_forget:
            raise ValueError(
                f"tool {tool_name!r}: a Sensitive argument ({sensitive[0]}) cannot go with "
                "fire_and_forget=True: the job would carry its value to the queue"
            )
        pydantic_models: list[tuple[str, Any]] = []
        for parameter in arguments.values():
            annotation = hints[parameter.name]
            if models.is_model(annotation):  # decoded as an object, then validated by it
                pydantic_models.append((parameter.name, annotation))
                annotation = dict[str, Any]
            elif models.mentions_model(annotation):
                raise TypeError(
                    f"tool {tool_name!r}: parameter {parameter.name!r}: a pydantic model is "
                    "supported as a parameter's whole type (order: Order); inside another "
                    "type use a msgspec.Struct or a dataclass, or make the model the whole type"
                )
            if parameter.name in documented:
                annotation = Annotated[
                    annotation, msgspec.Meta(description=documented[parameter.name])
                ]
            if parameter.default is inspect.Parameter.empty:
                fields.append((parameter.name, annotation))
            else:
                fields.append((parameter.name, annotation, parameter.default))
        forbid = unknown_arguments == "forbid"
        struct = msgspec.defstruct(
            f"{_camel(tool_name)}Arguments", fields, kw_only=True, forbid_unknown_fields=forbid
        )
        try:
            decoder: msgspec.json.Decoder[Any] | None = (
                msgspec.json.Decoder(struct) if fields or forbid else None
            )
            schema = _parameters_schema(struct)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"tool {tool_name!r}: an argument type cannot be used: {exc}") from exc
        for parameter_name, model in pydantic_models:
            _model_schema(tool_name, schema, parameter_name, model)
        return cls(
            name=tool_name,
            fn=UserFunction(function, f"tool {tool_name}"),
            description=text,
            parameters=schema,
            timeout_seconds=timeout_seconds,
            fire_and_forget=fire_and_forget,
            async_response=async_response,
            url=url,
            injections=injections,
            decoder=decoder,
            deduplicate=deduplicate,
            interim=interim,
            interim_after_seconds=interim_after_seconds,
            inject_result=inject_result,
            unknown_arguments=unknown_arguments,
            once_per_call=once_per_call,
            key=key,
            key_ttl_seconds=key_ttl_seconds,
            sensitive=sensitive,
            models=tuple(pydantic_models),
        )

    def decode(self, call: ToolCall) -> Any:
        """Decode ``call``'s arguments into the argument Struct (``None`` for a tool without
        arguments), or raise ``ArgumentError``; see ``bind``."""
        if self.decoder is None:
            return None
        raw = call.function.arguments
        try:
            decoded = self.decoder.decode(raw)
        except msgspec.ValidationError as exc:
            try:
                decoded = recover(
                    self.decoder, raw, exc, self.parameters, self.name, self.coercions
                )
            except Unfit as unfit:
                raise ArgumentError(str(unfit)) from None
        except _MALFORMED:
            raise ArgumentError(not_json(self.name)) from None
        return self._validate_models(decoded) if self.models else decoded

    def _validate_models(self, decoded: Any) -> Any:
        from pydantic import ValidationError  # installed: the tool has a model

        for name, model in self.models:
            value = getattr(decoded, name)
            if isinstance(value, dict):  # not a default the function set
                try:
                    setattr(decoded, name, model.model_validate(value))
                except ValidationError as exc:
                    raise ArgumentError(models.validation_message(self.name, name, exc)) from None
        return decoded

    def bind(self, call: ToolCall) -> dict[str, Any]:
        """Decode ``call``'s arguments into keyword arguments, or raise ``ArgumentError``.

        A strict decode first; if it fails, ``arguments.recover`` applies the unambiguous
        coercions (counted in ``coercions``) or explains the problem to the model.
        """
        decoded = self.decode(call)
        if decoded is None:
            return {}
        return msgspec.structs.asdict(decoded)  # its fields are exactly the arguments

    def definition(self, url: str | None = None) -> dict[str, Any]:
        """This tool as an entry of the assistant's ``llm_config.tools[]``.

        Args:
            url: Where the platform should send calls; the tool's own ``url`` wins.
        """
        entry: dict[str, Any] = {"name": self.name, "description": self.description}
        target = self.url or url
        if target:
            entry["url"] = target
        entry["async"] = self.fire_and_forget
        if self.async_response is not None:
            entry["async_response"] = self.async_response
        if self.interim is not None:
            entry["message"] = self.interim  # what the assistant says while the tool runs
        entry["parameters"] = self.parameters
        return entry


def _check_interim(
    name: str,
    interim: str | None,
    interim_after_seconds: float,
    inject_result: bool,
    fire_and_forget: bool,
) -> None:
    if interim is not None:
        if not interim.strip():
            raise ValueError(f"tool {name!r}: interim must be a text the assistant can say")
        if fire_and_forget:
            raise ValueError(
                f"tool {name!r}: a fire-and-forget tool is answered at once; give it "
                "async_response= for what the assistant says, and inject_result=True to have "
                "its result spoken into the call"
            )
        if not 0 < interim_after_seconds < _PLATFORM_WAITS_SECONDS:
            raise ValueError(
                f"tool {name!r}: interim_after_seconds must be > 0 and below the platform's "
                f"{_PLATFORM_WAITS_SECONDS:g} s, got {interim_after_seconds!r}"
            )
    if inject_result and not fire_and_forget:
        raise ValueError(
            f"tool {name!r}: inject_result applies to fire_and_forget tools; a slow tool "
            "delivers its result late with interim='...'"
        )


def _check_once(
    name: str,
    once_per_call: bool,
    key: IntentKey | None,
    key_ttl_seconds: float | None,
    fire_and_forget: bool,
) -> None:
    if not once_per_call:
        if key is not None or key_ttl_seconds is not None:
            raise ValueError(f"tool {name!r}: key= and key_ttl_seconds= need once_per_call=True")
        return
    if fire_and_forget:
        raise ValueError(
            f"tool {name!r}: a fire-and-forget tool is answered before it runs, so a repeat "
            "cannot be given its result; drop once_per_call, or make it a plain tool"
        )
    if key is not None and not callable(key):
        raise ValueError(f"tool {name!r}: key= must be a function (arguments, context) -> value")
    if key_ttl_seconds is not None:
        if key is None:
            raise ValueError(
                f"tool {name!r}: key_ttl_seconds= remembers an intent beyond the call; it "
                "needs key= to say what the intent is (include the caller's number to scope "
                "it to the caller)"
            )
        if key_ttl_seconds <= 0:
            raise ValueError(f"tool {name!r}: key_ttl_seconds must be > 0")


def _model_schema(tool: str, schema: dict[str, Any], parameter: str, model: Any) -> None:
    """Put ``model``'s JSON Schema in place of the object ``parameter`` was decoded as."""
    own: dict[str, Any] = model.model_json_schema(ref_template="#/$defs/{model}")
    definitions = schema.setdefault("$defs", {})
    for name, definition in own.pop("$defs", {}).items():
        if definitions.setdefault(name, definition) != definition:
            raise TypeError(
                f"tool {tool!r}: two different types are both named {name!r} in its "
                "arguments' schema; rename one"
            )
    if not definitions:
        del schema["$defs"]
    described = schema["properties"][parameter].get("description")
    if described is not None:
        own["description"] = described
    default = schema["properties"][parameter].get("default")
    if default is not None:
        own["default"] = default
    schema["properties"][parameter] = own
    _type_enums(own)


def _parameters_schema(struct: type[msgspec.Struct]) -> dict[str, Any]:
    """A self-contained JSON Schema for the argument struct, root inlined."""
    schema = msgspec.json.schema(struct)
    definitions: dict[str, Any] = schema.pop("$defs", {})
    root: dict[str, Any] = definitions.pop(struct.__name__)
    root.pop("title", None)
    # unknown_arguments="forbid" is enforced here, with an error the model can act on; the
    # definition keeps no additionalProperties, which Gemini's schema subset refuses.
    root.pop("additionalProperties", None)
    root.setdefault("properties", {})
    if not root.get("required"):
        root.pop("required", None)
    if definitions:
        root["$defs"] = definitions
    _type_enums(root)
    return root


_ENUM_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _type_enums(node: Any) -> None:
    """Give every ``enum`` of one JSON type its ``type``: msgspec leaves it out for ``Literal``
    and ``Enum``, and Gemini refuses an enum without one."""
    if isinstance(node, dict):
        values = node.get("enum")
        if isinstance(values, list) and "type" not in node:
            kinds = {_ENUM_TYPES.get(type(value)) for value in values}
            if len(kinds) == 1 and None not in kinds:
                node["type"] = kinds.pop()
        for child in node.values():
            _type_enums(child)
    elif isinstance(node, list):
        for child in node:
            _type_enums(child)


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[_-]", name)) or "Tool"


def _is_sensitive(annotation: Any) -> bool:
    return typing.get_origin(annotation) is Annotated and any(
        isinstance(item, Sensitive) for item in annotation.__metadata__
    )


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its first paragraph and its ``Args:`` entries.

    Examples:
        >>> parse_docstring("Book a slot.\\n\\nArgs:\\n    date: The day.\\n")
        ('Book a slot.', {'date': 'The day.'})
    """
    paragraphs = doc.strip().split("\n\n")
    first = paragraphs[0]
    summary = "" if first.split(":\n")[0].strip() in _SECTIONS else " ".join(first.split())
    arguments: dict[str, str] = {}
    lines = doc.splitlines()
    in_args = False
    current: str | None = None
    base_indent = entry_indent = 0
    for line in lines:
        stripped = line.strip()
        if stripped[:-1] in _SECTIONS and stripped.endswith(":"):
            in_args, current, base_indent = True, None, len(line) - len(line.lstrip())
            continue
        if not in_args:
            continue
        indent = len(line) - len(line.lstrip())
        if stripped and indent <= base_indent:
            break  # the next section ("Returns:", ...) ends Args
        entry = re.match(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?:\s*(.*)$", stripped)
        if entry and (current is None or indent <= entry_indent):
            current, entry_indent = entry.group(1), indent
            arguments[current] = entry.group(2)
        elif current and stripped:
            arguments[current] = f"{arguments[current]} {stripped}".strip()
    return summary, arguments


def stub_for(call: ToolCall) -> str:
    """A ready-to-paste ``@app.tool`` stub for a call no tool claims.

    Built from the argument *names* and JSON types only: values can be personal data.
    """
    kinds = {
        bool: "bool",
        int: "int",
        float: "float",
        str: "str",
        list: "list[Any]",
        dict: "dict[str, Any]",
    }
    params = ", ".join(
        f"{key}: {kinds.get(type(value), 'Any')}"
        for key, value in list(call.arguments.items())[:20]
        if key.isidentifier()
    )
    name = loggable(call.function.name)
    func = name.replace("-", "_") if name.replace("-", "_").isidentifier() else "tool"
    return (
        f'@app.tool("{name}")\n'
        f"async def {func}({params}) -> dict[str, Any]:\n"
        f'    """Describe what {name} does, for the model."""\n'
        f"    ..."
    )
