"""The public surface: exported from voicehooks, sorted, documented, and nothing stray."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import voicehooks


def test_all_is_sorted_and_unique() -> None:
    assert voicehooks.__all__ == sorted(set(voicehooks.__all__))


def test_every_public_name_of_the_package_is_in_all() -> None:
    public = {name for name in vars(voicehooks) if not name.startswith("_")}
    modules = {info.name for info in pkgutil.iter_modules(voicehooks.__path__)}
    assert public - modules == set(voicehooks.__all__) - {"__version__"}


def test_every_exported_name_resolves_and_is_documented() -> None:
    for name in voicehooks.__all__:
        value = getattr(voicehooks, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert inspect.getdoc(value), f"{name} has no docstring"


MODULES = sorted(
    info.name for info in pkgutil.iter_modules(voicehooks.__path__) if info.name != "__main__"
)


@pytest.mark.parametrize("module", MODULES)
def test_each_module_has_a_docstring_and_a_sorted_all(module: str) -> None:
    imported = importlib.import_module(f"voicehooks.{module}")
    assert imported.__doc__, f"voicehooks.{module} has no module docstring"
    if hasattr(imported, "__all__"):
        names = list(imported.__all__)
        assert names == sorted(names), f"voicehooks.{module}.__all__ is not sorted"
        for name in names:
            assert hasattr(imported, name), f"voicehooks.{module}.__all__ lists missing {name}"


def test_the_version_is_a_string() -> None:
    assert isinstance(voicehooks.__version__, str)
