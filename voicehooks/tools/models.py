"""Pydantic models as tool arguments and results, when the app brings pydantic.

FastAPI shops describe their data with pydantic's ``BaseModel``; a tool may take one as a
parameter's whole type (``def book(request: Booking)``) and return one. voicehooks does not
depend on pydantic and never imports it for an app without models: a class is recognised as
a model by its ancestry (a ``BaseModel`` defined in a ``pydantic`` module), so the check costs
a walk over a few base classes at registration, and pydantic is imported only to catch its
``ValidationError`` once a model exists.

* The tool's JSON Schema for that parameter is the model's ``model_json_schema()``, its
  ``$defs`` hoisted into the tool's.
* The argument is decoded as a JSON object by msgspec, then validated by the model
  (``model_validate``, pydantic's own rules and coercions); a failure is explained to the
  model field by field, without the values it sent.
* A model returned (or inside what is returned) is encoded with ``model_dump(mode="json")``
  through msgspec's ``enc_hook``, which msgspec calls only for types it does not know: a tool
  that returns no model pays nothing.

The cost is pydantic's: validating a small model takes microseconds, about what msgspec takes
to decode the whole delivery. A model inside another type (``list[Booking]``,
``Booking | None``) is refused at registration with the alternatives.
"""

from __future__ import annotations

import typing
from typing import Any

__all__ = ["encode_model", "is_model", "mentions_model", "validation_message"]


def is_model(annotation: Any) -> bool:
    """Whether ``annotation`` is a pydantic ``BaseModel`` subclass (pydantic is not imported)."""
    return isinstance(annotation, type) and any(
        base.__name__ == "BaseModel" and base.__module__.startswith("pydantic")
        for base in annotation.__mro__[1:]
    )


def mentions_model(annotation: Any) -> bool:
    """Whether a model hides inside ``annotation`` (``list[Model]``, ``Model | None``, ...)."""
    return is_model(annotation) or any(mentions_model(a) for a in typing.get_args(annotation))


def encode_model(value: Any) -> Any:
    """msgspec's ``enc_hook``: a pydantic model as the JSON its ``model_dump`` gives."""
    if is_model(type(value)):
        return value.model_dump(mode="json")
    raise TypeError(f"Encoding objects of type {type(value).__qualname__} is unsupported")


def validation_message(tool: str, parameter: str, error: Exception) -> str:
    """What the model is told when pydantic refuses ``parameter``: each field and why, never
    the value it sent (``errors()``' ``input`` is left out)."""
    problems = []
    for item in getattr(error, "errors", list)()[:10]:
        where = ".".join(str(part) for part in (parameter, *item.get("loc", ())))
        problems.append(f"{where}: {item.get('msg', 'invalid')}")
    listed = "; ".join(problems) or f"{parameter}: invalid"
    return f"The arguments for {tool} do not fit: {listed}. Call {tool} again with them fixed."
