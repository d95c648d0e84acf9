"""Answering an ``assistant-request``: the answer's documented modes, built and checked.

``AssistantResponse`` builds exactly one of the modes (PLATFORM.md 3.3): ``default()``,
``reference(id)``, ``override(id, partial)``, ``inline(config)`` or ``reject(message)``.
``validate_assistant_answer`` checks a plain dict a handler returned. The dispatcher runs the
one handler under its budget and answers ``{}`` (the saved configuration) on any trouble.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

__all__ = ["AssistantResponse", "validate_assistant_answer"]


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
