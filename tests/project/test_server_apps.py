"""The apps our real-server tests run write each output line in one call.

Those tests read the server's output with regular expressions. ``print(a, b)`` writes ``a``,
the separator, ``b`` and the newline as separate writes, and handlers write from worker
threads as well as from the event loop: another thread's line can land between the parts,
and the line a test looks for is no longer there (``test_shutdown_under_load`` failed about
once in 64 runs that way). ``sys.stdout.write(line + "\\n")`` or a logger writes whole lines.
"""

from __future__ import annotations

import ast
import contextlib
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT

CONVERSIONS: dict[int, Callable[[object], str]] = {ord("s"): str, ord("r"): repr, ord("a"): ascii}


def app_sources() -> list[tuple[str, str]]:
    """(name, source) of every app a test or benchmark serves from a file or a string.

    Test modules are read, never imported (no test module imports another): a module-level
    string that builds a ``VoiceHooks`` and parses as Python is an app, and so is an f-string
    over the module's own constants, rendered as Python would.
    """
    files = [
        *(ROOT / "tests" / "apps").glob("*.py"),
        ROOT / "tests" / "helpers" / "fuzzing.py",
        *(ROOT / "examples").glob("*.py"),
        ROOT / "benchmarks" / "loadtest_app.py",
    ]
    sources = [(str(path.relative_to(ROOT)), path.read_text()) for path in files]
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        for name, value in module_strings(path).items():
            if "VoiceHooks(" in value and is_python(value):
                sources.append((f"{path.relative_to(ROOT)}:{name}", value))
    return sources


def module_strings(path: Path) -> dict[str, str]:
    """The module-level names of a file bound to a string, read from its syntax tree."""
    known: dict[str, object] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if isinstance(target, ast.Name):
            with contextlib.suppress(ValueError, TypeError, KeyError):  # not a constant
                known[target.id] = constant(value, known)
    return {name: value for name, value in known.items() if isinstance(value, str)}


def constant(node: ast.expr, known: Mapping[str, object]) -> object:
    """The value of a literal, of a name bound to one, or of an f-string over such values."""
    if isinstance(node, ast.Name):
        return known[node.id]
    if isinstance(node, ast.JoinedStr):
        return "".join(str(constant(part, known)) for part in node.values)
    if isinstance(node, ast.FormattedValue):
        value = constant(node.value, known)
        if node.conversion != -1:
            value = CONVERSIONS[node.conversion](value)  # !s, !r, !a
        spec = constant(node.format_spec, known) if node.format_spec else ""
        return format(value, str(spec))
    return ast.literal_eval(node)


def is_python(text: str) -> bool:
    try:
        ast.parse(text)
    except SyntaxError:
        return False  # a docstring or README text that mentions an app
    return True


SOURCES = app_sources()


def test_the_apps_written_by_tests_are_found() -> None:
    names = {Path(name).name for name, _ in SOURCES}
    assert "test_shutdown_under_load.py:APP" in names
    assert "test_slow_clients.py:APP" in names


@pytest.mark.parametrize(("name", "source"), SOURCES, ids=[name for name, _ in SOURCES])
def test_no_served_app_prints(name: str, source: str) -> None:
    calls = [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "print"
    ]
    assert calls == [], f"{name}: print() on lines {calls}; write each line in one call"
