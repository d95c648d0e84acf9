"""The contenders: each a module ``benchmarks.bench_<name>`` with ``label`` and ``make_app``.

``make_app(secret)`` returns an ASGI app that answers the demo application's requests (see
``demo``) for deliveries signed with ``secret``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Final

from starlette.types import ASGIApp

__all__ = ["ALL", "CONFORMING", "INPROCESS_ONLY", "label", "make_app"]

CONFORMING: Final = ("raw", "handmade", "voicehooks", "starlette", "fastapi")
"""Contenders that do the full work; they must give identical answers."""

ALL: Final = ("constant", *CONFORMING)
"""Every contender; ``constant`` only runs over HTTP."""

INPROCESS_ONLY: Final = ("handmade",)
"""Contenders the HTTP level leaves out: the second floor splits the in-process gap only."""


def make_app(name: str, secret: str) -> ASGIApp:
    """Import contender ``name`` and build its app for ``secret``."""
    factory: Callable[[str], ASGIApp] = _module(name).make_app
    return factory(secret)


def label(name: str) -> str:
    """The contender's human-readable label."""
    text: str = _module(name).label
    return text


def _module(name: str) -> ModuleType:
    if name not in ALL:
        raise ValueError(f"unknown contender {name!r}; choose from {', '.join(ALL)}")
    return importlib.import_module(f"benchmarks.bench_{name}")
