"""Outbound shapes, and the normalizers between what handlers return and the wire.

Tool results. A tool may return any JSON-encodable value or answer in one of the platform's
four formats (PLATFORM.md 4.3). ``normalize_result`` reads a returned value as:

* ``ToolResult(x)``: ``x`` exactly as given, never read as a format;
* a dict whose only key is ``"result"``: the simple format, its value is the result;
* a dict whose only key is ``"error"`` with a string value: the error format;
* a dict whose only key is ``"results"`` with a list value: the object format;
* anything else: the direct format, the value itself.

So a dict with exactly one of those keys is read as a wrapper; wrap it in ``ToolResult`` to
send it literally. Whatever came back, voicehooks answers in the object format only, one entry
per received call in request order (PLATFORM.md 8 rows 12, 13 and 15).

``results_from_response`` runs the other way: given any of the four response bodies and the
call ids, it returns the per-call results. The test client and the CLI read answers with it.

Assistant-request answers. ``AssistantResponse`` builds exactly one of the documented modes
(PLATFORM.md 3.3): ``default()``, ``reference(id)``, ``override(id, partial)``,
``inline(config)`` or ``reject(message)``. ``validate_assistant_answer`` checks a plain dict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import msgspec

__all__ = [
    "AssistantResponse",
    "ToolResult",
    "error_result",
    "normalize_result",
    "results_from_response",
    "validate_assistant_answer",
]


class ToolResult(msgspec.Struct, frozen=True):
    """Send ``value`` as a tool's result exactly as it is, even a dict shaped like a format.

    Examples:
        >>> ToolResult({"error": "not an error, a field called error"}).value
        {'error': 'not an error, a field called error'}
    """

    value: Any


def error_result(message: str) -> dict[str, str]:
    """The per-call error result the platform passes to the model: ``{"error": message}``."""
    return {"error": message}


def normalize_result(value: Any, call_id: str) -> Any:
    """Return the result value a tool's return ``value`` stands for, for the call ``call_id``.

    An object-format answer (``{"results": [...]}``) is searched for ``call_id``; if it has no
    entry for it but holds exactly one, that one is taken.
    """
    if type(value) is dict and len(value) == 1:
        # A one-key dict is the only shape that can be a wrapper; anything else is direct.
        if "result" in value:
            return value["result"]
        error = value.get("error")
        if isinstance(error, str):
            return error_result(error)
        results = value.get("results")
        if isinstance(results, list):
            return _result_for(results, call_id, len(results) == 1)
    if type(value) is ToolResult:
        return value.value
    return value


def results_from_response(body: Any, call_ids: Sequence[str]) -> list[Any]:
    """Split a tool-calls response body in any of the four formats into per-call results.

    Args:
        body: The decoded JSON answer.
        call_ids: The ids of the calls the answer is for, in request order.

    Returns:
        One result per id, in the same order. An id the answer does not cover gets an error
        result saying so.

    Examples:
        >>> results_from_response({"results": [{"tool_call_id": "a", "result": 1}]}, ["a"])
        [1]
        >>> results_from_response({"error": "down"}, ["a", "b"])
        [{'error': 'down'}, {'error': 'down'}]
    """
    if isinstance(body, dict) and len(body) == 1:
        if isinstance(body.get("error"), str):
            return [error_result(body["error"])] * len(call_ids)
        results = body.get("results")
        if isinstance(results, list):
            return [_result_for(results, i, len(call_ids) == 1) for i in call_ids]
    if len(call_ids) == 1:
        return [normalize_result(body, call_ids[0])]
    message = "The answer did not say which call this result belongs to."
    return [error_result(message)] * len(call_ids)


def _result_for(results: list[Any], call_id: str, single: bool) -> Any:
    for entry in results:
        if isinstance(entry, dict) and entry.get("tool_call_id") == call_id:
            return entry.get("result")
    if single and len(results) == 1 and isinstance(results[0], dict):
        return results[0].get("result")
    return error_result("The answer had no result for this call.")


_MODES: Final = ("assistant", "assistant_id", "error")


class AssistantResponse:
    """Builders for the assistant-request answer, one documented mode each.

    ``max_duration_seconds`` is placed inside the assistant or override object by default, as
    PLATFORM.md 8 row 18 recommends; pass ``top_level_max_duration=True`` for the top-level
    form the platform's examples show.

    Examples:
        >>> AssistantResponse.override("e2a9", first_message="Hi Sanne!").body
        {'assistant_id': 'e2a9', 'assistant_override': {'first_message': 'Hi Sanne!'}}
        >>> AssistantResponse.reject("We are closed.").body
        {'error': 'We are closed.'}
    """

    __slots__ = ("body",)

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = validate_assistant_answer(body)

    def __repr__(self) -> str:
        return f"AssistantResponse({self.body!r})"

    @classmethod
    def default(cls) -> AssistantResponse:
        """Use the assistant's saved configuration unchanged: ``{}``."""
        return cls({})

    @classmethod
    def reference(
        cls,
        assistant_id: str,
        *,
        max_duration_seconds: int | None = None,
        top_level_max_duration: bool = False,
    ) -> AssistantResponse:
        """Use another saved assistant as it is: ``{"assistant_id": id}``."""
        if max_duration_seconds is not None and not top_level_max_duration:
            # Nested placement needs an object to nest in: an override with just the cap.
            return cls.override(assistant_id, max_duration_seconds=max_duration_seconds)
        return cls(_with_cap({"assistant_id": assistant_id}, max_duration_seconds))

    @classmethod
    def override(
        cls,
        assistant_id: str,
        overrides: Mapping[str, Any] | None = None,
        /,
        *,
        top_level_max_duration: bool = False,
        **fields: Any,
    ) -> AssistantResponse:
        """Start from saved assistant ``assistant_id`` and replace whole top-level blocks.

        The platform merges shallowly: an ``llm_config`` here replaces the saved one entirely.
        """
        partial = {**(overrides or {}), **fields}
        cap = partial.pop("max_duration_seconds", None) if top_level_max_duration else None
        body = {"assistant_id": assistant_id, "assistant_override": partial}
        return cls(_with_cap(body, cap))

    @classmethod
    def inline(
        cls,
        config: Mapping[str, Any] | None = None,
        /,
        *,
        top_level_max_duration: bool = False,
        **fields: Any,
    ) -> AssistantResponse:
        """Supply the configuration in the answer (the "transient" mode).

        The platform's documents disagree on whether this is merged onto the saved assistant
        or replaces it: treat it as a full configuration, and use ``override`` to change a
        few fields.
        """
        assistant = {**(config or {}), **fields}
        cap = assistant.pop("max_duration_seconds", None) if top_level_max_duration else None
        return cls(_with_cap({"assistant": assistant}, cap))

    @classmethod
    def reject(cls, message: str) -> AssistantResponse:
        """Reject the call; the platform speaks ``message`` to the caller first."""
        if not message:
            raise ValueError("reject() needs the message the caller will hear.")
        return cls({"error": message})


def _with_cap(body: dict[str, Any], cap: int | None) -> dict[str, Any]:
    if cap is not None:
        body["max_duration_seconds"] = cap
    return body


def validate_assistant_answer(body: Any) -> dict[str, Any]:
    """Check that ``body`` is one documented assistant-request mode, and return it.

    Raises:
        ValueError: The body mixes modes or has the wrong shape; the message says how.
    """
    if not isinstance(body, dict):
        raise ValueError(f"an assistant-request answer must be a dict, not {type(body).__name__}")
    modes = [key for key in _MODES if key in body]
    if len(modes) > 1:
        raise ValueError(f"the answer mixes modes {modes}; use exactly one of {list(_MODES)}")
    allowed = {"max_duration_seconds", *modes}
    if "assistant_id" in body:
        allowed.add("assistant_override")
        if not isinstance(body["assistant_id"], str) or not body["assistant_id"]:
            raise ValueError("'assistant_id' must be a non-empty string")
    elif "assistant_override" in body:
        raise ValueError("'assistant_override' needs an 'assistant_id' to apply to")
    for key in ("assistant", "assistant_override"):
        if key in body and not isinstance(body[key], dict):
            raise ValueError(f"{key!r} must be an object")
    if "error" in body and not (isinstance(body["error"], str) and body["error"]):
        raise ValueError("'error' must be the non-empty text the caller hears")
    cap = body.get("max_duration_seconds")
    if cap is not None and (type(cap) is not int or cap <= 0):
        raise ValueError("'max_duration_seconds' must be a positive whole number")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ValueError(f"unknown keys {unknown} in the answer; see AssistantResponse")
    return body
