"""The README and the docs site are executable: every Python block runs, every command parses.

The documents are ``README.md`` and every page under ``docs/``.

* Each ```python block runs in a fresh module of its own, in order, with ``VOICEHOOKS_SECRET``
  set (blocks are meant to be copied one at a time, so each stands alone). A block titled
  with a file name (```` ```python title="myapp.py" ````, as the site shows it) is also
  importable by the later blocks of its page under that name (``from myapp import app``),
  the way a reader's files are. The ``test_*`` functions a block defines are then run, as
  pytest would: that is how the testing examples are checked. Nothing needs a server or the
  network: clients are in-process.
* Each command line of a ```sh or ```console block (``$ `` lines in console blocks) is
  checked: a ``voicehooks`` command is parsed by click exactly as the shell would pass it, so
  a renamed option or command breaks this test; ``routes`` and ``tools`` on a file of this
  repository really run; ``uvicorn`` commands are parsed by uvicorn's own click command.
  ``make`` targets must exist in the Makefile; ``pip install`` installs from a clone (``.``,
  a path to one) or a wheel of ``dist/``, with extras pyproject.toml declares, and names the
  index's ``voicehooks`` only on a line labelled "once published" (it is on no index yet).
  A ``NAME=$(python3 -c '...')`` line computes a date for the lines after it: it must print
  one after today. No page or example holds a literal date that would expire.
* The CLI reference page is complete: every command and every option is mentioned.
* The README's relative links name files that exist (mkdocs checks the pages' links).
* The API reference has a page for each public module (``voicehooks`` and the subpackages its
  docstring names); each name ``voicehooks`` exports is rendered on one, and an internal
  module has a page only when a guide names it and the page says it is internal.
* The environment variables page lists every variable the library and the command line read,
  with its default.

``make docs`` builds the site with ``mkdocs build --strict``, which checks every link.
"""

from __future__ import annotations

import datetime
import importlib
import importlib.util
import inspect
import json
import logging
import re
import shlex
import subprocess
import sys
import textwrap
import tomllib
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
import uvicorn
from click.testing import CliRunner

import voicehooks
import voicehooks.cli.environment
from tests.helpers.paths import ROOT
from voicehooks import VoiceHooks
from voicehooks.cli import main
from voicehooks.core import environment

pytestmark = pytest.mark.anyio

README = ROOT / "README.md"
DOCUMENTS = [README, *sorted((ROOT / "docs").rglob("*.md"))]
MAKEFILE = (ROOT / "Makefile").read_text()
CLI_REFERENCE = ROOT / "docs" / "reference" / "cli.md"
FENCE = re.compile(r"^( *)```(\w*)([^\n]*)\n(.*?)^\1```$", re.MULTILINE | re.DOTALL)
TITLE = re.compile(r'title="([\w/]+)\.py"')


@dataclass(frozen=True)
class Block:
    document: Path
    language: str
    line: int
    code: str
    title: str | None  # the file name a block is titled with, without ".py"

    def __str__(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"

    @property
    def module_name(self) -> str:
        if self.title is not None:
            return self.title.rpartition("/")[2]
        return f"docs_block_{self.document.stem}_{self.line}"


def blocks_of(document: Path, *languages: str) -> list[Block]:
    text = document.read_text()
    found = []
    for match in FENCE.finditer(text):
        indent, language, info, code = match.groups()
        if language in languages:
            title = TITLE.search(info)
            found.append(
                Block(
                    document,
                    language,
                    text.count("\n", 0, match.start()) + 2,
                    textwrap.dedent(code) if indent else code,
                    title.group(1) if title else None,
                )
            )
    return found


def blocks(*languages: str) -> list[Block]:
    return [block for document in DOCUMENTS for block in blocks_of(document, *languages)]


def command_lines(block: Block) -> Iterator[str]:
    text = block.code.replace("\\\n", " ")
    for line in text.splitlines():
        if block.language == "console":
            if line.startswith("$ "):
                yield line[2:]
        elif line.strip() and not line.lstrip().startswith("#"):
            yield line


PYTHON = blocks("python")
COMMANDS = [(block, line) for block in blocks("sh", "console") for line in command_lines(block)]


def test_the_documents_have_python_and_command_examples() -> None:
    assert len(PYTHON) >= 20
    assert len(COMMANDS) >= 25
    assert len(blocks_of(README, "python")) >= 1


def test_the_first_hook_takes_under_20_lines() -> None:
    text = README.read_text()
    quick_start = text.index("## Quick start")
    first = next(
        block for block in blocks_of(README, "python") if text.index(block.code) > quick_start
    )
    assert len(first.code.splitlines()) < 20
    assert "@app.tool" in first.code


def test_the_quick_start_secret_is_the_one_make_run_uses() -> None:
    dev_secret = re.search(r"^DEV_SECRET := (\S+)$", MAKEFILE, re.MULTILINE)
    assert dev_secret is not None
    assert f"VOICEHOOKS_SECRET={dev_secret.group(1)}" in README.read_text()


def load(block: Block, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType(block.module_name)
    monkeypatch.setitem(sys.modules, block.module_name, module)  # so its classes resolve
    exec(compile(block.code, str(block), "exec"), module.__dict__)
    return module


@pytest.mark.parametrize("block", PYTHON, ids=str)
async def test_python_block_runs(
    block: Block, secret: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VOICEHOOKS_REDIS_URL", raising=False)
    modules = [
        load(earlier, monkeypatch)
        for earlier in blocks_of(block.document, "python")
        if earlier.line < block.line and earlier.title is not None
    ]
    modules.append(load(block, monkeypatch))
    try:
        for test_name, function in sorted(vars(modules[-1]).items()):
            if test_name.startswith("test_") and inspect.iscoroutinefunction(function):
                await function()
            elif test_name.startswith("test_") and callable(function):
                function()
    finally:
        for module in modules:
            for value in vars(module).values():
                store = getattr(value, "store", None) if isinstance(value, VoiceHooks) else None
                if store is not None:
                    await store.aclose()


@pytest.mark.parametrize(("block", "line"), COMMANDS, ids=lambda value: str(value)[:60])
def test_command_line_is_valid(
    block: Block, line: str, monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    computed = re.fullmatch(r"[A-Z_]+=\$\(python3 -c '([^']*)'\)", line)
    if computed:  # a value for the next lines, like a date relative to today
        check_computed_date(computed.group(1))
        return
    words = shlex.split(line, comments=True)
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        words.pop(0)  # NAME=value before a command
    program, *args = words
    if program == "export":
        assert all(re.fullmatch(r"[A-Z_]+=\S+", arg) for arg in args), line
    elif Path(program).name == "voicehooks":
        monkeypatch.chdir(ROOT)
        # --env-file names a file of the reader's; parse the option, do not read the file.
        monkeypatch.setattr(voicehooks.cli.environment, "read_env_file", lambda path: {})
        check_voicehooks(args)
    elif program == "uvicorn":
        with uvicorn.main.make_context("uvicorn", list(args)):
            pass
    elif program == "make":
        for arg in args:
            if "=" in arg:
                assert re.search(rf"^{arg.split('=')[0]} \?=", MAKEFILE, re.MULTILINE), line
            else:
                assert re.search(rf"^{arg}:", MAKEFILE, re.MULTILINE), f"no make target {arg}"
    elif program == "pip":
        assert args[0] == "install", line
        check_pip_install(args[1:], published="# once published" in line)
    else:
        pytest.fail(f"{block}: {program!r} is not a command this test knows how to check")


def check_computed_date(code: str) -> None:
    printed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    ).stdout.strip()
    assert datetime.date.fromisoformat(printed) > datetime.date.today(), printed


def test_no_example_holds_a_date_that_expires() -> None:
    for path in [*DOCUMENTS, *(ROOT / "examples").glob("*.py")]:
        assert re.findall(r"\b20\d\d-[01]\d-[0-3]\d\b", path.read_text()) == [], (
            f"{path.relative_to(ROOT)}: compute it from today"
        )


def check_voicehooks(args: list[str]) -> None:
    if not args or args[0].startswith("-"):
        with pytest.raises(click.exceptions.Exit):
            main.make_context("voicehooks", list(args))
        return
    name, *rest = args
    # With main's own settings: click caches each command's help option the first time it is
    # built, and a parent without help_option_names=["-h", "--help"] would cache "--help" alone.
    parent = click.Context(main, info_name="voicehooks", **main.context_settings)
    command = main.get_command(parent, name)
    assert command is not None, f"voicehooks has no command {name!r}"
    try:
        with command.make_context(name, list(rest), parent=parent):
            pass
    except click.exceptions.Exit:  # --help
        return
    except click.UsageError as exc:
        pytest.fail(f"voicehooks {' '.join(args)}: {exc.format_message()}")
    target = Path(rest[0]) if rest else None
    if name in ("routes", "tools") and target is not None and (ROOT / target).is_file():
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output


def check_pip_install(specs: list[str], *, published: bool) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for spec in specs:
        # the index's name; the clone's directory (".", "../voicehooks"); a wheel make dist built
        match = re.fullmatch(
            r"(?:(?P<index>\w+)|(?P<clone>\.|(?:\.\./)+voicehooks)"
            r"|(?P<wheel>dist/voicehooks-\*\.whl))(?:\[(?P<extra>\w+)\])?",
            spec,
        )
        assert match is not None, spec
        if match["index"] is not None:
            assert match["index"] == project["name"], spec
            assert published, f"{spec}: voicehooks is on no index yet; label it # once published"
        if match["extra"]:
            assert match["extra"] in project["optional-dependencies"]


def test_the_install_lines_start_from_a_clone_and_label_the_index() -> None:
    install = [
        (block, line)
        for block, line in COMMANDS
        if block.document in (README, ROOT / "docs" / "tutorial.md") and "pip install" in line
    ]
    first_of_each = {block.document: line for block, line in reversed(install)}
    assert first_of_each == {
        README: "pip install .                 # from the clone's directory",
        ROOT / "docs" / "tutorial.md": "pip install ../voicehooks",
    }
    for document in DOCUMENTS:
        for line in document.read_text().splitlines():
            if re.search(r"pip install '?voicehooks\b", line):
                assert "once published" in line, f"{document.relative_to(ROOT)}: {line}"


def test_the_cli_reference_mentions_every_command_and_option() -> None:
    reference = CLI_REFERENCE.read_text()
    where = CLI_REFERENCE.relative_to(ROOT)
    for name, command in sorted(main.commands.items()):
        assert f"voicehooks {name}" in reference, f"{where} does not show voicehooks {name}"
        for parameter in command.params:
            for option in parameter.opts:
                if option.startswith("--") and option != "--help":
                    assert option in reference, f"{where} does not mention {name} {option}"
    assert "voicehooks --version" in reference


NAV = (ROOT / "mkdocs.yml").read_text()
API_PAGE = re.compile(r"^ +- (voicehooks[\w.]*): (reference/\S+\.md)$", re.MULTILINE)


def api_pages() -> dict[str, Path]:
    """The API reference in mkdocs.yml's nav: module -> its page."""
    return {module: ROOT / "docs" / page for module, page in API_PAGE.findall(NAV)}


def public_modules() -> set[str]:
    """``voicehooks``, the subpackages its docstring names, and the modules of theirs that
    their own docstrings name (``voicehooks.observe.metrics``): the documented API."""
    public = {"voicehooks"}
    for package in re.findall(r"``(voicehooks\.\w+)``", voicehooks.__doc__ or ""):
        public.add(package)
        doc = importlib.import_module(package).__doc__ or ""
        named = re.findall(rf"``({re.escape(package)}\.\w+)``", doc)
        public |= {name for name in named if importlib.util.find_spec(name) is not None}
    return public


def test_every_public_module_has_a_reference_page() -> None:
    public = public_modules()
    assert {"voicehooks.events", "voicehooks.exceptions", "voicehooks.observe"} < public
    assert {"voicehooks.testing", "voicehooks.observe.metrics"} < public
    # what moved off the root went to a documented home
    assert set(voicehooks._moved.ROOT_NAMES.values()) <= public
    pages = api_pages()
    for module in sorted(public):
        page = Path("reference", f"{module}.md")
        assert f"- {module}: {page.as_posix()}" in NAV, f"mkdocs.yml's nav lacks {page}"
        assert pages[module].read_text().strip() == f"::: {module}", page


def test_every_module_voicehooks_exports_from_is_reachable_in_the_reference() -> None:
    """voicehooks takes its names from internal modules (``voicehooks.core.events``,
    ``voicehooks.settings``, ...), which have no page of their own: the root's page renders
    every name of ``__all__``, so each name the root exposes must be listed there."""
    rendered: set[int] = set()
    for module in api_pages():
        imported = importlib.import_module(module)
        rendered |= {id(getattr(imported, name)) for name in getattr(imported, "__all__", ())}
    exported = {
        name: value
        for name, value in vars(voicehooks).items()
        if not name.startswith("_") and (isinstance(value, type) or inspect.isfunction(value))
    }
    for name, value in sorted(exported.items()):
        assert name in voicehooks.__all__, f"voicehooks.{name} is not in __all__"
        assert id(value) in rendered, f"{value.__module__}.{name} is on no reference page"


def test_an_internal_module_has_a_page_only_when_a_guide_names_it() -> None:
    public = public_modules()
    for module, page in sorted(api_pages().items()):
        if module in public:
            continue
        where = page.relative_to(ROOT)
        assert f"::: {module}" in page.read_text(), where
        assert "An internal module" in page.read_text(), f"{where} does not say it is internal"
        named = re.compile(rf"\b{re.escape(module)}\b")
        guides = [path for path in DOCUMENTS if path != page and named.search(path.read_text())]
        assert guides, f"{where}: no guide names {module}"


ENVIRONMENT = ROOT / "docs" / "reference" / "environment.md"
ENVIRONMENT_ROW = re.compile(r"^\| `([A-Z_]+)` \| ([^|]+) \|", re.MULTILINE)


def command_line_variables() -> dict[str, str]:
    """Each variable a command's option reads -> the default that option really has."""
    found: dict[str, str] = {}
    commands: list[click.Command] = [main]
    while commands:
        command = commands.pop()
        if isinstance(command, click.Group):
            commands.extend(command.commands.values())
        for parameter in command.params:
            if isinstance(parameter, click.Option) and isinstance(parameter.envvar, str):
                found[parameter.envvar] = option_default(parameter)
    return found


def option_default(option: click.Option) -> str:
    default = option.default
    if option.is_flag:
        return "1" if default is True else "0"
    if isinstance(option.show_default, str):
        return option.show_default
    if default in (None, "") or not isinstance(default, str | int | float):
        return "(none)"
    return str(default)


def test_the_environment_page_lists_every_variable_with_its_default() -> None:
    rows = {
        name: default.strip().strip("`")
        for name, default in ENVIRONMENT_ROW.findall(ENVIRONMENT.read_text())
    }
    expected = {variable.name: variable.default for variable in environment.VARIABLES}
    for name, default in sorted(expected.items()):
        assert name in rows, f"{ENVIRONMENT.relative_to(ROOT)} does not list {name}"
        assert rows[name] == default, f"{name}: the page says {rows[name]!r}, not {default!r}"
    assert set(rows) == set(expected), set(rows) - set(expected)


def test_the_command_lines_variables_are_listed_with_the_defaults_its_options_have() -> None:
    options = command_line_variables()
    defaults = {v.name: v.default for v in environment.VARIABLES}
    assert {name: defaults.get(name) for name in options} == options
    assert {v.name for v in environment.VARIABLES if v.cli} <= set(options)


def test_the_readme_links_to_files_that_exist() -> None:
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README.read_text()):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"


def log_shape(line: str) -> str:
    """A log line with what varies (time, call id, milliseconds) replaced by placeholders."""
    line = re.sub(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ", "<time> ", line)
    line = re.sub(r"call=\S+", "call=<id>", line)
    return re.sub(r" \d+\.\dms\b", " <n>ms", line)


async def test_the_tutorial_s_log_sample_has_the_shape_of_the_real_lines(
    secret: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from voicehooks.core.logs import TextFormatter
    from voicehooks.testing import WebhookClient

    tutorial = ROOT / "docs" / "tutorial.md"
    (myapp,) = [b for b in blocks_of(tutorial, "python") if b.title == "myapp"]
    app = load(myapp, monkeypatch).app
    (sample,) = [b for b in blocks_of(tutorial, "text") if "INFO voicehooks:" in b.code]
    expected = [log_shape(line) for line in sample.code.splitlines() if line[:1].isdigit()]
    with caplog.at_level(logging.INFO, "voicehooks"):
        async with WebhookClient(app) as client:  # what step 3 sends
            await client.call_tool("check_repair_status", order_number="WO-2291")
            await client.call_tool("check_repair_status", order_number="WO-9999")
            await client.end_of_call_report()
    lines = [TextFormatter().format(r) for r in caplog.records if r.name == "voicehooks"]
    assert [log_shape(line) for line in lines] == expected


def test_the_tutorial_s_scenario_passes_against_the_tutorial_s_app(
    secret: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    (myapp,) = [b for b in blocks_of(ROOT / "docs" / "tutorial.md", "python") if b.title == "myapp"]
    (tmp_path / "myapp.py").write_text(myapp.code)
    monkeypatch.delitem(sys.modules, "myapp", raising=False)
    scenario = str(ROOT / "examples" / "scenarios" / "tutorial.toml")
    result = CliRunner().invoke(main, ["simulate", scenario, str(tmp_path / "myapp.py")])
    assert result.exit_code == 0, result.output
    assert result.output.rstrip().endswith("6 passed, 0 failed"), result.output


def test_the_metrics_table_lists_every_metric_the_code_registers() -> None:
    from prometheus_client import CollectorRegistry

    from voicehooks.observe.metrics import PrometheusObserver, WorkerMetrics

    async def backlog() -> int:
        return 0

    registry = CollectorRegistry()
    PrometheusObserver(registry, path=None)
    WorkerMetrics(dict, backlog, registry)._backlog = 0  # as after a scrape
    registered = {
        family.name + ("_total" if family.type == "counter" else "")
        for family in registry.collect()
    }
    page = (ROOT / "docs" / "how-to" / "observability.md").read_text()
    listed = set(re.findall(r"^\| `(voicehooks_\w+)` \|", page, re.MULTILINE))
    assert listed == registered


def test_what_app_tools_holds_is_documented_and_the_app_module_opens_for_users() -> None:
    app = VoiceHooks(secret="whsec_x")

    @app.tool
    def check(order_number: str) -> str:
        """Check an order."""
        return "ready"

    tool_type = type(app.tools["check"])
    pages = api_pages()
    assert tool_type.__module__ in pages, f"{tool_type.__module__}.Tool is on no reference page"
    assert tool_type.__doc__ is not None
    assert 'app.tools["name"]' in tool_type.__doc__
    import voicehooks.app

    opening = (voicehooks.app.__doc__ or "").split("\n\n")[0]
    assert "_handle" not in (voicehooks.app.__doc__ or "")
    assert "hot path" not in (voicehooks.app.__doc__ or "")
    assert "register tools and handlers" in opening


DOCKERFILES = blocks("dockerfile")


def test_the_dockerfile_copies_what_the_project_has_and_runs_valid_commands(
    monkeypatch: pytest.MonkeyPatch, secret: str
) -> None:
    """Docker cannot build here (no daemon, no image registry): its instructions are checked
    instead. What the build stage copies exists, the runtime runs as a user without rights,
    and every voicehooks command of CMD (exec form) parses as the CLI would parse it."""
    assert DOCKERFILES, "docs/how-to/deployment.md has a Dockerfile"
    for block in DOCKERFILES:
        lines = block.code.replace("\\\n", " ").splitlines()
        stages = [line for line in lines if line.startswith("FROM ")]
        assert len(stages) == 2, "two stages: build, then a clean runtime"
        for line in lines:
            if line.startswith("COPY ") and "--from=" not in line:
                for source in line.split()[1:-1]:
                    if source != "myapp.py":  # the reader's own app
                        assert (ROOT / source).exists(), f"{block}: COPY {source}"
        assert any(re.fullmatch(r"USER \d+", line) for line in lines), "runs as a non-root uid"
        (command,) = [line for line in lines if line.startswith("CMD ")]
        words = json.loads(command.removeprefix("CMD "))
        assert words[0] == "voicehooks", "voicehooks is PID 1 (exec form: no shell between)"
        monkeypatch.chdir(ROOT)
        check_voicehooks(words[1:])


def test_the_version_is_the_changelog_s_latest_release() -> None:
    """One place holds the version (``voicehooks.__version__``, which the build reads); the
    CHANGELOG's newest released section names the same one."""
    changelog = (ROOT / "CHANGELOG.md").read_text()
    released = re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d\d-\d\d$", changelog, re.MULTILINE)
    assert released[0] == voicehooks.__version__
