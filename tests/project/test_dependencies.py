"""Every package voicehooks imports is one it declares: a dependency, or an extra's.

A package that arrives only as someone else's dependency (``click`` through uvicorn) works
until that someone drops it. The imports are read from the source (the AST, so imports
inside functions and ``TYPE_CHECKING`` blocks count too) and matched to distributions with
``importlib.metadata``; the declared ones come from the installed package's own metadata,
which is what ``pip install voicehooks`` reads.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import pkgutil
import re
import sys
from pathlib import Path

import pytest

import voicehooks

PACKAGE = Path(voicehooks.__file__).parent
MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="voicehooks.")
    if info.name != "voicehooks.__main__"  # runs the command line when imported
)


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_top_level_names(path: Path) -> set[str]:
    """The top-level names of the absolute imports in ``path``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
    return names


def third_party_imports() -> dict[str, set[str]]:
    """Distribution name → the files of the package that import it."""
    providers = importlib.metadata.packages_distributions()
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for name in imported_top_level_names(path):
            if name in sys.stdlib_module_names or name in ("voicehooks", "__future__"):
                continue
            candidates = providers.get(name, [f"<no installed distribution: {name}>"])
            # A namespace package (opentelemetry) comes from several distributions: an import
            # of it is declared when one of them is.
            chosen = [d for d in candidates if normalized(d) in declared()] or candidates
            for distribution in chosen:
                found.setdefault(normalized(distribution), set()).add(
                    str(path.relative_to(PACKAGE))
                )
    return found


def declared() -> set[str]:
    """The distributions voicehooks' metadata requires, its extras' included."""
    requirements = importlib.metadata.requires("voicehooks") or []
    return {normalized(re.split(r"[\s;\[<>=!~]", line, maxsplit=1)[0]) for line in requirements}


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports(module: str) -> None:
    importlib.import_module(module)


def test_every_third_party_import_is_a_declared_dependency() -> None:
    imports = third_party_imports()
    undeclared = {name: sorted(files) for name, files in imports.items() if name not in declared()}
    assert undeclared == {}, "declare these in pyproject.toml (a dependency or an extra)"
    # The check sees what it should: the direct dependencies, and the Redis extra's import.
    assert {"starlette", "anyio", "msgspec", "uvicorn", "click", "redis"} <= set(imports)


def test_the_fast_server_stack_is_a_dependency_where_it_installs() -> None:
    requirements = importlib.metadata.requires("voicehooks") or []
    markers = {normalized(re.split(r"[\s;<>=]", r, maxsplit=1)[0]): r for r in requirements}
    assert "sys_platform != 'win32'" in markers["uvloop"].replace('"', "'")
    assert "extra ==" not in markers["uvloop"] + markers["httptools"]
