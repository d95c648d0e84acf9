"""What a tool is: a typed function turned into a JSON Schema definition, and the model's
arguments coerced back into its parameters.

``voicehooks.tools`` was a module in 0.1.0; its names (``Tool``, ``ToolOptions``,
``ArgumentError``, ``parse_docstring``) still resolve here for one release, with a
``DeprecationWarning``.
"""

from __future__ import annotations

import warnings
from typing import Any

_MOVED = ("ArgumentError", "Tool", "ToolOptions", "parse_docstring")


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module 'voicehooks.tools' has no attribute {name!r}")
    warnings.warn(
        "voicehooks.tools moved and this path goes in the next release: use "
        f"`from voicehooks.tools.definition import {name}`",
        DeprecationWarning,
        stacklevel=2,
    )
    from . import definition

    return getattr(definition, name)
