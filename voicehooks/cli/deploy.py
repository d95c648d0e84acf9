"""``voicehooks deploy``: bring an assistant in step with the app (webhook, events, tools).

It reads the assistant (``GET /assistants/{id}``), computes what the app needs
(``voicehooks.dev.deploy``), prints each difference, and writes them with one ``PATCH`` once
confirmed. Exit codes: 0 written, or nothing to change; 1 a dry run (or a "no" at the prompt)
found changes, nothing was sent; 2 a usage error, or the platform refused or could not be
reached.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from voicehooks.app import VoiceHooks
from voicehooks.core import environment
from voicehooks.dev.deploy import handled_events, plan, webhook_url

from .environment import env_file_option
from .platform import PlatformError, call

__all__ = ["deploy"]


def _can_ask() -> bool:
    """Whether a person can answer the prompt (stdin is a terminal)."""
    return sys.stdin is not None and sys.stdin.isatty()


def _app_and_secret(target: str, set_secret: bool) -> tuple[VoiceHooks, str | None]:
    """Load the app; with ``set_secret``, also its first secret, which must be the real one
    (without, a stand-in secret lets the app load where the production one is not at hand)."""
    from voicehooks.cli import _inspect, load_target  # the package imports this module

    if not set_secret:
        return _inspect(target), None
    app = load_target(target)[0]
    if app.verifier is None:
        raise click.UsageError(
            "--set-secret: the app does not verify signatures, so it has no secret to set"
        )
    return app, app.verifier.secrets[0]


@click.command()
@click.argument("target")
@click.option(
    "--assistant", "assistant_id", required=True, metavar="ID", help="The assistant to update."
)
@click.option(
    "--url",
    "public_url",
    required=True,
    metavar="PUBLIC_URL",
    help="Where the platform reaches the app; the app's path is added to it.",
)
@click.option(
    "--set-secret",
    is_flag=True,
    help=f"Also write the app's webhook secret (its first; {environment.SECRET}). Never shown.",
)
@click.option("--dry-run", is_flag=True, help="Show the differences, send nothing; exit 1 if any.")
@click.option("--yes", "-y", is_flag=True, help="Write without asking (CI).")
@env_file_option
def deploy(
    target: str,
    assistant_id: str,
    public_url: str,
    set_secret: bool,
    dry_run: bool,
    yes: bool,
) -> None:
    """Write TARGET's webhook URL, events and tools into assistant ID.

    Reads the assistant with VOICEHOOKS_API_KEY, prints every difference, asks, then sends one
    PATCH: webhook_url (PUBLIC_URL and the app's path), webhook_events (the events the app
    handles) and llm_config with its tools replaced by the app's. Built-in tools, MCP
    attachments, tools whose URL points elsewhere and every other setting stay as they are.
    Exit codes: 0 written or nothing to change; 1 a dry run found changes; 2 a usage error,
    or the platform refused or could not be reached.

    \b
    Examples:
        voicehooks deploy myapp:app --assistant asst_7f3e --url https://hooks.example.com
        voicehooks deploy myapp:app --assistant asst_7f3e --url https://hooks.example.com --dry-run
        voicehooks deploy myapp:app --assistant asst_7f3e --url https://hooks.example.com --yes
    """
    if dry_run and yes:
        raise click.UsageError("--dry-run and --yes do not combine: check, or write")
    if not dry_run and not yes and not _can_ask():
        raise PlatformError(
            "no terminal to confirm on: pass --yes to write, or --dry-run to only check"
        )
    app, secret = _app_and_secret(target, set_secret)
    try:
        url = webhook_url(public_url, app.path)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--url") from None
    definitions = app.tool_definitions(url)
    events = handled_events(app)
    saved: dict[str, Any] = call(
        lambda api: api.get_assistant(assistant_id), action=f"read assistant {assistant_id!r}"
    )
    planned = plan(saved, definitions, webhook_url=url, webhook_events=events, secret=secret)
    for difference in planned.differences:
        click.echo(difference.line())
    if not planned.changed:
        click.echo(
            f"SAME: assistant {assistant_id} is in step with the app ({len(definitions)} "
            f"tool(s), events to {url})",
            err=True,
        )
        sys.exit(0)
    click.echo(
        f"CHANGES: {len(planned.differences)} difference(s) between the app and assistant "
        f"{assistant_id}",
        err=True,
    )
    if dry_run:
        click.echo("Dry run: nothing sent.", err=True)
        sys.exit(1)
    if not yes and not click.confirm(f"Write them to assistant {assistant_id}?", err=True):
        click.echo("Nothing sent.", err=True)
        sys.exit(1)
    updated: dict[str, Any] = call(
        lambda api: api.update_assistant(assistant_id, planned.changes),
        action=f"update assistant {assistant_id!r}",
        secrets=[secret],
    )
    # The answer is the assistant as saved: a platform that kept something else is worth a line.
    left = plan(updated, definitions, webhook_url=url, webhook_events=events).differences
    if left:
        click.echo(
            f"warning: the platform's answer still differs in {len(left)} place(s); "
            "run again with --dry-run to see them",
            err=True,
        )
    click.echo(f"DEPLOYED: assistant {assistant_id} now calls {url}", err=True)
