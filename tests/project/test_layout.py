"""The test suite's own shape: it mirrors the package, and no test module imports another.

``tests/<subpackage>/test_<module>.py`` tests ``voicehooks/<subpackage>/<module>.py``; tests of
the root modules sit in ``tests/`` itself; ``tests/integration/`` runs the whole pipeline (real
servers, chaos, fuzzing) and ``tests/project/`` checks the repository around the package (docs,
examples, dependencies, benchmarks). What tests share lives in ``tests/helpers/``: a test
module that imported another would run the other's module-level code and tie the two together.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.helpers.paths import ROOT

TESTS = ROOT / "tests"
PACKAGE = ROOT / "voicehooks"
# The folders of tests that test no one subpackage.
WHOLE = {"integration", "project"}


def sources() -> Iterator[Path]:
    """Every Python file under tests/."""
    yield from sorted(path for path in TESTS.rglob("*.py") if "__pycache__" not in path.parts)


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


def is_test_module(name: str) -> bool:
    parts = name.split(".")
    return parts[0] == "tests" and parts[-1].startswith("test_")


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in the file, relative ones resolved, nested ones too."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            yield node.lineno, module
            for alias in node.names:  # `from tests.cli import test_durable` names a module
                yield node.lineno, f"{module}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def test_no_module_under_tests_imports_a_test_module() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sources()
        for line, module in imported_modules(path)
        if is_test_module(module)
    ]
    assert found == [], "move what they share into tests/helpers/:\n" + "\n".join(found)


def test_every_folder_of_python_files_under_tests_is_a_package() -> None:
    # --import-mode=importlib and mypy both name a test module by its package path: without
    # __init__.py, tests/cli/test_durable.py and tests/work/test_durable.py would collide.
    folders = {path.parent for path in sources()}
    missing = [str(f.relative_to(ROOT)) for f in folders if not (f / "__init__.py").exists()]
    assert sorted(missing) == []


def test_the_folders_of_tests_mirror_the_subpackages() -> None:
    subpackages = {path.parent.name for path in PACKAGE.glob("*/__init__.py")}
    folders = {path.parent for path in TESTS.rglob("test_*.py")} - {TESTS}
    strays = [
        str(folder.relative_to(ROOT))
        for folder in sorted(folders)
        if folder.parent != TESTS or folder.name not in subpackages | WHOLE
    ]
    assert strays == [], "test modules go in tests/<subpackage>/, integration/ or project/"


def test_the_tests_at_the_top_are_named_after_root_modules() -> None:
    names = {path.stem.removeprefix("test_") for path in TESTS.glob("test_*.py")}
    modules = {path.stem.removeprefix("_") for path in PACKAGE.glob("*.py")}  # _moved: moved
    assert sorted(names - modules) == []
