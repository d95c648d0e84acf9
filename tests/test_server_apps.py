"""The apps our real-server tests run write each output line in one call.

Those tests read the server's output with regular expressions. ``print(a, b)`` writes ``a``,
the separator, ``b`` and the newline as separate writes, and handlers write from worker
threads as well as from the event loop: another thread's line can land between the parts,
and the line a test looks for is no longer there (``test_shutdown_under_load`` failed about
once in 64 runs that way). ``sys.stdout.write(line + "\\n")`` or a logger writes whole lines.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def app_sources() -> list[tuple[str, str]]:
    """(name, source) of every app a test or benchmark serves from a file or a string."""
    files = [*(ROOT / "tests" / "apps").glob("*.py"), *(ROOT / "examples").glob("*.py")]
    files.append(ROOT / "benchmarks" / "loadtest_app.py")
    sources = [(str(path.relative_to(ROOT)), path.read_text()) for path in files]
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        module = importlib.import_module(f"tests.{path.stem}")
        for name, value in vars(module).items():
            if isinstance(value, str) and "VoiceHooks(" in value and is_python(value):
                sources.append((f"{path.name}:{name}", value))
    return sources


def is_python(text: str) -> bool:
    try:
        ast.parse(text)
    except SyntaxError:
        return False  # a docstring or README text that mentions an app
    return True


SOURCES = app_sources()


def test_the_apps_written_by_tests_are_found() -> None:
    names = [name for name, _ in SOURCES]
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
