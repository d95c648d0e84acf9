"""The import paths of 0.1.0 (and the root names of 0.2) that moved: each keeps working for
one release, with a ``DeprecationWarning`` that names the new home.

0.1.0 published the modules ``background``, ``context``, ``dedupe``, ``dispatch``, ``logs``,
``responses``, ``routing``, ``running``, ``signing`` and ``stores`` directly under
``voicehooks``. Each is now a small module object in ``sys.modules`` whose attributes are
looked up in the new modules on use, so ``import voicehooks.dispatch`` and
``from voicehooks.stores import RedisStore`` still work. ``voicehooks.tools`` is a package
now and forwards its old names itself.
"""

from __future__ import annotations

import importlib
import sys
import types
import warnings
from typing import Any, Final

__all__ = ["MODULES", "ROOT_NAMES", "moved_root_name", "register_modules"]

MODULES: Final[dict[str, tuple[str, ...]]] = {
    "background": ("voicehooks.work.runner", "voicehooks.work.jobs"),
    "context": ("voicehooks.core.injection",),
    "dedupe": ("voicehooks.state.dedupe", "voicehooks.core.events"),
    "dispatch": ("voicehooks.pipeline.dispatch",),
    "logs": ("voicehooks.core.logs",),
    "responses": ("voicehooks.pipeline.toolcalls", "voicehooks.pipeline.assistant"),
    "routing": ("voicehooks.pipeline.routing",),
    "running": ("voicehooks.core.running",),
    "signing": ("voicehooks.core.signing",),
    "stores": ("voicehooks.state.stores",),
}
"""Old module under ``voicehooks`` -> where its names live now, searched in order."""

_RENAMED: Final[dict[tuple[str, str], tuple[str, str]]] = {
    ("stores", "REDIS_URL_ENV"): ("voicehooks.core.environment", "REDIS_URL"),
}

ROOT_NAMES: Final[dict[str, str]] = {
    "CallEnded": "voicehooks.exceptions",
    "PlatformAPIError": "voicehooks.exceptions",
    "PlatformUnavailable": "voicehooks.exceptions",
    "QueueError": "voicehooks.exceptions",
    "RateLimited": "voicehooks.exceptions",
    "StoreError": "voicehooks.exceptions",
    "Unauthorized": "voicehooks.exceptions",
    "Unavailable": "voicehooks.exceptions",
    "Recorder": "voicehooks.observe",
    "ToolStats": "voicehooks.observe",
    "normalize_result": "voicehooks.testing",
    "results_from_response": "voicehooks.testing",
}
"""Names ``voicehooks`` itself exported before that now live in a documented subpackage."""


def moved_root_name(name: str) -> Any:
    """The value of a name ``voicehooks`` used to export, with a warning naming its home.

    Raises:
        AttributeError: ``name`` was never one of them.
    """
    if name in MODULES:
        return sys.modules[f"voicehooks.{name}"]
    home = ROOT_NAMES.get(name)
    if home is None:
        raise AttributeError(f"module 'voicehooks' has no attribute {name!r}")
    _warn(f"voicehooks.{name}", f"from {home} import {name}")
    return getattr(importlib.import_module(home), name)


def register_modules() -> None:
    """Put a forwarding module for each old path into ``sys.modules`` (idempotent)."""
    for old, homes in MODULES.items():
        name = f"voicehooks.{old}"
        if name not in sys.modules:
            module = types.ModuleType(name, f"Moved: see {', '.join(homes)}.")
            module.__getattr__ = _forwarder(old, homes)  # type: ignore[method-assign]
            sys.modules[name] = module


def _forwarder(old: str, homes: tuple[str, ...]) -> Any:
    def __getattr__(name: str) -> Any:
        if name.startswith("__"):  # import machinery and tools probing: not a moved name
            raise AttributeError(name)
        if (old, name) in _RENAMED:
            home, new = _RENAMED[old, name]
            _warn(f"voicehooks.{old}.{name}", f"from {home} import {new}")
            return getattr(importlib.import_module(home), new)
        for home in homes:
            module = importlib.import_module(home)
            if hasattr(module, name):
                public = importlib.import_module("voicehooks")
                where = "voicehooks" if name in public.__all__ else home
                _warn(f"voicehooks.{old}", f"from {where} import {name}")
                return getattr(module, name)
        raise AttributeError(f"module 'voicehooks.{old}' has no attribute {name!r}")

    return __getattr__


def _warn(old: str, new: str) -> None:
    warnings.warn(
        f"{old} moved and this path goes in the next release: use `{new}`",
        DeprecationWarning,
        stacklevel=3,
    )
