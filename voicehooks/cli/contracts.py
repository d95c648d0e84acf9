"""``voicehooks tools --check`` and ``--diff``: print lint findings and drift, pick the exit code.

Exit codes: ``--check`` 0 when no error (and, with ``--strict``, no warning), else 1;
``--diff`` 0 when the assistant carries the app's definitions, 1 when they drifted; 2 for a
usage error (a file that cannot be read, an unknown shape, options that do not combine).
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from voicehooks.contracts import Finding, lint
from voicehooks.drift import Difference, DriftError, diff, read_definitions
from voicehooks.tools import Tool
from voicehooks.toolstats import STATS_PATH

__all__ = ["definitions_from", "fetch_stats", "print_check", "print_diff"]


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
        hint = ": serve it with VoiceHooks(tool_stats=True)" if exc.code in (404, 405) else ""
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
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise click.UsageError(f"cannot read {path!r}: {exc.strerror}") from None
    try:
        return read_definitions(json.loads(text))
    except json.JSONDecodeError as exc:
        raise click.UsageError(f"{path}: not JSON ({exc.msg}, line {exc.lineno})") from None
    except DriftError as exc:
        raise click.UsageError(f"{path}: {exc}") from None


def print_check(
    definitions: list[dict[str, Any]],
    *,
    tools: Mapping[str, Tool] | None,
    stats: Mapping[str, Mapping[str, Any]] | None,
    providers: tuple[str, ...],
    slow_seconds: float,
    strict: bool,
    as_json: bool,
) -> int:
    """Lint and print, one line per finding; return the exit code."""
    findings = lint(
        definitions, tools=tools, stats=stats, providers=providers, slow_seconds=slow_seconds
    )
    errors = sum(f.severity == "error" for f in findings)
    warnings = len(findings) - errors
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
