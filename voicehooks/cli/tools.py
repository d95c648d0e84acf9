"""``voicehooks tools``: print the definitions, ``--check`` them, compare an assistant or workflow.

Exit codes: ``--check`` 0 when no error (and, with ``--strict``, no warning), else 1;
``--diff``/``--assistant`` 0 when the assistant carries the app's definitions, 1 when they
drifted; ``--workflow``/``--workflow-file`` 0 when every tool node and conversation-node tool
fits the app, 1 otherwise; 2 when nothing could be checked (a file that cannot be read, an
unknown shape, an assistant or workflow the platform did not give, options that do not
combine).
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from voicehooks.dev.contracts import PROVIDERS, SLOW_SECONDS, Finding, lint, lint_attachments
from voicehooks.dev.drift import Difference, DriftError, diff, read_definitions, tool_entries
from voicehooks.dev.workflows import WorkflowError, WorkflowProblem, read_workflow
from voicehooks.dev.workflows import check as check_workflow
from voicehooks.mcp import offered
from voicehooks.observe.toolstats import STATS_PATH
from voicehooks.tools.definition import Tool

from .environment import env_file_option
from .platform import call

__all__ = [
    "assistant_definitions",
    "definitions_from",
    "entries_from",
    "fetch_stats",
    "print_check",
    "print_diff",
    "print_workflow",
    "tools",
    "workflow_nodes",
]


def fetch_stats(url: str, app_path: str = "/") -> dict[str, Any]:
    """Read the measured tool latencies from a running app (``STATS_PATH`` under its root).

    ``url`` is where the platform calls the app; its path may end with the app's own
    webhook path, which is taken off to find the root.

    Raises:
        click.ClickException: The server cannot be reached or does not serve the summary
            (exit code 1).
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise click.UsageError(f"--url {url!r} is not an http(s) URL")
    root = parts.path
    if app_path != "/" and root.rstrip("/").endswith(app_path.rstrip("/")):
        root = root.rstrip("/")[: -len(app_path.rstrip("/"))]
    target = urllib.parse.urlunsplit(
        (parts.scheme, parts.netloc, root.rstrip("/") + STATS_PATH, "", "")
    )
    request = urllib.request.Request(target, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            report = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        exc.close()  # it holds the response and its socket
        hint = (
            ": serve it with VoiceHooks(observers=[ToolStats()])" if exc.code in (404, 405) else ""
        )
        raise click.ClickException(f"{target} answered {exc.code}{hint}") from None
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read {target}: {exc}") from None
    if not isinstance(report, dict) or not isinstance(report.get("tools"), dict):
        raise click.ClickException(f"{target} did not answer a tool summary")
    return report


def definitions_from(path: str) -> tuple[list[dict[str, Any]], str | None]:
    """Read an exported assistant or tools list from ``path`` (``-``: stdin).

    Raises:
        click.UsageError: The file cannot be read or has no accepted shape (exit code 2).
    """
    try:
        return read_definitions(_json_from(path))
    except DriftError as exc:
        raise click.UsageError(f"{path}: {exc}") from None


def entries_from(path: str) -> list[dict[str, Any]]:
    """Every ``llm_config.tools`` entry of the file ``path``, MCP attachments included."""
    try:
        return tool_entries(_json_from(path))[0]
    except DriftError as exc:
        raise click.UsageError(f"{path}: {exc}") from None


def _json_from(path: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise click.UsageError(f"cannot read {path!r}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.UsageError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None


def assistant_definitions(assistant_id: str) -> tuple[list[dict[str, Any]], str | None]:
    """Fetch assistant ``assistant_id`` with the platform API and read its tool definitions.

    The key comes from ``VOICEHOOKS_API_KEY`` (or ``VOICEHOOKS_API_KEY_FILE``, or an
    ``--env-file``), the base URL from ``VOICEHOOKS_API_URL`` when set.

    Raises:
        click.ClickException: No key, no httpx, or the platform refused or could not answer
            (exit code 2: nothing was compared).
    """
    saved = call(
        lambda api: api.get_assistant(assistant_id), action=f"fetch assistant {assistant_id!r}"
    )
    try:
        return read_definitions({"assistant": saved})
    except DriftError as exc:
        raise click.UsageError(f"assistant {assistant_id!r}: {exc}") from None


def print_check(
    definitions: list[dict[str, Any]],
    *,
    tools: Mapping[str, Tool] | None,
    stats: Mapping[str, Mapping[str, Any]] | None,
    providers: tuple[str, ...],
    slow_seconds: float,
    strict: bool,
    as_json: bool,
    entries: Sequence[dict[str, Any]] = (),
    withheld: Mapping[str, str] | None = None,
) -> int:
    """Lint and print, one line per finding; return the exit code.

    ``entries`` are the assistant's raw tool entries, when it is an exported assistant: its
    MCP attachments are checked too. ``withheld`` (``voicehooks.mcp.offered``'s) adds a hint
    per tool the app's MCP endpoint does not offer, with the reason.
    """
    findings = lint(
        definitions, tools=tools, stats=stats, providers=providers, slow_seconds=slow_seconds
    )
    if any(e.get("type") == "mcp" for e in entries):
        findings = sorted(
            findings + lint_attachments(list(entries), providers=providers),
            key=lambda f: f.severity != "error",
        )
    findings += [
        Finding("hint", name, "mcp", f"not offered over MCP: {reason}")
        for name, reason in (withheld or {}).items()
    ]
    errors = sum(f.severity == "error" for f in findings)
    warnings = sum(f.severity == "warning" for f in findings)  # a hint never fails
    failed = bool(errors or (strict and warnings))
    if as_json:
        report = {
            "ok": not failed,
            "tools": len(definitions),
            "errors": errors,
            "warnings": warnings,
            "measured": stats is not None,
            "findings": [_finding_json(f) for f in findings],
        }
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return int(failed)
    for finding in findings:
        click.echo(finding.line())
    measured = "" if stats is None else ", with measured latencies"
    click.echo(
        f"{'FAIL' if failed else 'OK'}: {len(definitions)} tool(s), {errors} error(s), "
        f"{warnings} warning(s){measured}" + (" (--strict)" if strict and warnings else ""),
        err=True,
    )
    return int(failed)


def _finding_json(finding: Finding) -> dict[str, str]:
    return {
        "severity": finding.severity,
        "tool": finding.tool,
        "path": finding.path,
        "message": finding.message,
    }


def print_diff(
    ours: list[dict[str, Any]],
    theirs: list[dict[str, Any]],
    *,
    webhook_url: str | None,
    source: str,
    as_json: bool,
) -> int:
    """Diff and print, one line per difference; return the exit code."""
    differences = diff(ours, theirs, webhook_url=webhook_url)
    if as_json:
        report = {
            "same": not differences,
            "source": source,
            "differences": [_difference_json(d) for d in differences],
        }
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return int(bool(differences))
    for difference in differences:
        click.echo(difference.line())
    if differences:
        tools = len({d.tool for d in differences})
        click.echo(
            f"DRIFT: {len(differences)} difference(s) in {tools} tool(s) between the app "
            f"and {source}",
            err=True,
        )
    else:
        click.echo(f"SAME: {source} carries the app's {len(ours)} tool(s)", err=True)
    return int(bool(differences))


def _difference_json(difference: Difference) -> dict[str, str]:
    return {"tool": difference.tool, "path": difference.path, "message": difference.message}


def print_workflow(
    problems: list[WorkflowProblem], *, nodes: int, source: str, as_json: bool
) -> int:
    """Print one line per problem, naming the node; return the exit code."""
    if as_json:
        report = {
            "same": not problems,
            "source": source,
            "problems": [{"node": p.node, "message": p.message} for p in problems],
        }
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        return int(bool(problems))
    for problem in problems:
        click.echo(problem.line())
    if problems:
        click.echo(f"DRIFT: {len(problems)} problem(s) in the nodes of {source}", err=True)
    else:
        click.echo(f"SAME: the {nodes} node(s) of {source} fit the app's tools", err=True)
    return int(bool(problems))


def workflow_nodes(workflow_id: str | None, path: str | None) -> list[dict[str, Any]]:
    """The nodes of workflow ``workflow_id`` (``GET /workflows/{id}``) or of the file ``path``.

    Raises:
        click.UsageError: The file cannot be read or is no workflow (exit code 2).
        click.ClickException: The platform refused or could not answer (exit code 2).
    """
    if workflow_id is not None:
        data: Any = call(
            lambda api: api.get_workflow(workflow_id), action=f"fetch workflow {workflow_id!r}"
        )
        where = f"workflow {workflow_id!r}"
    else:
        assert path is not None
        where = path
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise click.UsageError(f"cannot read {path!r}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise click.UsageError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    try:
        return read_workflow(data)
    except WorkflowError as exc:
        raise click.UsageError(f"{where}: {exc}") from None


@click.command()
@click.argument("target")
@click.option(
    "--url",
    default=None,
    metavar="URL",
    help="The URL the platform calls the app at: written into the definitions, compared by "
    "--diff; with --check, measured latencies are read from the app running there.",
)
@click.option("--check", is_flag=True, help="Lint the definitions; exit 1 on errors.")
@click.option("--strict", is_flag=True, help="With --check: warnings fail too.")
@click.option(
    "--diff",
    "diff_file",
    default=None,
    is_flag=False,
    flag_value="",
    metavar="FILE",
    help="Compare with an exported assistant or its tools list (JSON; - for stdin); exit 1 "
    "on drift. Alone (--diff --assistant ID), it only says what --assistant or --workflow do.",
)
@click.option(
    "--assistant",
    "assistant_id",
    default=None,
    metavar="ID",
    help="Compare with assistant ID as the platform saved it (GET /assistants/ID with "
    "VOICEHOOKS_API_KEY); exit 1 on drift.",
)
@click.option(
    "--workflow",
    "workflow_id",
    default=None,
    metavar="ID",
    help="Check workflow ID's tool nodes (tool_name, static arguments) and conversation-node "
    "tools against the app (GET /workflows/ID); exit 1 on a problem.",
)
@click.option(
    "--workflow-file",
    default=None,
    metavar="PATH",
    help="The same check for a saved workflow (JSON).",
)
@click.option(
    "--provider",
    "providers",
    multiple=True,
    type=click.Choice(PROVIDERS),
    help="With --check: the LLM provider(s) the assistants use (repeatable; default: all).",
)
@click.option(
    "--slow-seconds",
    default=SLOW_SECONDS,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="With --check --url: a measured p95 from which a tool without a spoken message is slow.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@env_file_option
def tools(
    target: str,
    url: str | None,
    check: bool,
    strict: bool,
    diff_file: str | None,
    assistant_id: str | None,
    workflow_id: str | None,
    workflow_file: str | None,
    providers: tuple[str, ...],
    slow_seconds: float,
    as_json: bool,
) -> None:
    """Print, check or compare TARGET's tool definitions (the assistant's llm_config.tools).

    TARGET is an app (module:attr or path/to/file.py) or a JSON file of definitions (an
    exported assistant or its tools list). Without options it prints the definitions as JSON.
    Exit codes: 0 no error (--check) or no drift (--diff, --assistant, --workflow); 1 errors,
    or warnings with --strict, or drift; 2 nothing could be checked (a usage error, a file, an
    assistant or a workflow that could not be read).

    \b
    Examples:
        voicehooks tools examples/quickstart.py --url https://hooks.example.com/
        voicehooks tools examples/appointments.py --check --strict --provider openai
        voicehooks tools myapp:app --check --url http://127.0.0.1:8000/
        voicehooks tools myapp:app --url https://hooks.example.com/ --diff assistant.json
        voicehooks tools myapp:app --url https://hooks.example.com/ --assistant asst_7f3e
        voicehooks tools myapp:app --url https://hooks.example.com/ --diff --workflow wf_91c2
    """
    from voicehooks.cli import _inspect  # the package imports this module

    sources = [s for s in (diff_file, assistant_id, workflow_id, workflow_file) if s]
    if len(sources) > 1:
        raise click.UsageError(
            "--diff FILE, --assistant, --workflow and --workflow-file do not combine: "
            "compare with one"
        )
    if diff_file == "" and not sources:
        raise click.UsageError("--diff needs a FILE, or --assistant ID, or --workflow ID")
    if check and sources:
        raise click.UsageError(
            "--check and --diff/--assistant/--workflow do not combine: run them one after the other"
        )
    if strict and not check:
        raise click.UsageError("--strict only applies to --check")
    if providers and not check:
        raise click.UsageError("--provider only applies to --check")
    if (workflow_id or workflow_file) and target.endswith(".json"):
        raise click.UsageError(
            "--workflow checks static arguments with the app's own decoders: give the app as TARGET"
        )
    registered: dict[str, Tool] | None = None
    withheld: dict[str, str] | None = None
    app_path = "/"
    entries: list[dict[str, Any]] = []
    if target.endswith(".json"):
        definitions, _ = definitions_from(target)
        entries = entries_from(target)
    else:
        app = _inspect(target)
        definitions, registered = app.tool_definitions(url), dict(app.tools)
        app_path = app.path
        if app.mcp_endpoint is not None:  # the app serves MCP: say what it withholds
            withheld = offered(app)[1]
    if check:
        stats = fetch_stats(url, app_path)["tools"] if url else None
        code = print_check(
            definitions,
            tools=registered,
            stats=stats,
            providers=providers or PROVIDERS,
            slow_seconds=slow_seconds,
            strict=strict,
            as_json=as_json,
            entries=entries,
            withheld=withheld,
        )
        sys.exit(code)
    if workflow_id or workflow_file:
        assert registered is not None
        nodes = workflow_nodes(workflow_id, workflow_file)
        problems = check_workflow(nodes, registered, definitions, url=url)
        source = f"workflow {workflow_id}" if workflow_id else str(workflow_file)
        sys.exit(print_workflow(problems, nodes=len(nodes), source=source, as_json=as_json))
    if diff_file or assistant_id:
        if assistant_id:
            theirs, webhook_url = assistant_definitions(assistant_id)
            source = f"assistant {assistant_id}"
        else:
            assert diff_file is not None
            theirs, webhook_url = definitions_from(diff_file)
            source = "stdin" if diff_file == "-" else diff_file
        sys.exit(
            print_diff(definitions, theirs, webhook_url=webhook_url, source=source, as_json=as_json)
        )
    click.echo(json.dumps(definitions, indent=2, ensure_ascii=False))
