"""``voicehooks deploy``: bring an assistant in step with the app (webhook, events, tools).

It reads the assistant (``GET /assistants/{id}``), computes what the app needs
(``voicehooks.dev.deploy``), prints each difference, and writes them with one ``PATCH`` once
confirmed. Exit codes: 0 written, or nothing to change; 1 a dry run (or a "no" at the prompt)
found changes, nothing was sent; 2 a usage error, or the platform refused or could not be
reached.
"""

from __future__ import annotations

import sys
import urllib.parse
from dataclasses import dataclass
from typing import Any

import click

from voicehooks.app import VoiceHooks
from voicehooks.core import environment
from voicehooks.dev.deploy import (
    check_allowed,
    handled_events,
    mcp_server_changes,
    mcp_server_fields,
    plan,
    webhook_url,
)
from voicehooks.dev.drift import Difference
from voicehooks.mcp import offered

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
@click.option(
    "--mcp",
    "use_mcp",
    is_flag=True,
    help="Serve the tools over MCP: make or update the app's MCP server, attach it, test it.",
)
@click.option(
    "--mcp-name",
    metavar="NAME",
    default=None,
    help="The MCP server's name (unique in the organization) [default: voicehooks HOST].",
)
@click.option("--dry-run", is_flag=True, help="Show the differences, send nothing; exit 1 if any.")
@click.option("--yes", "-y", is_flag=True, help="Write without asking (CI).")
@env_file_option
def deploy(
    target: str,
    assistant_id: str,
    public_url: str,
    set_secret: bool,
    use_mcp: bool,
    mcp_name: str | None,
    dry_run: bool,
    yes: bool,
) -> None:
    """Write TARGET's webhook URL, events and tools into assistant ID.

    Reads the assistant with VOICEHOOKS_API_KEY, prints every difference, asks, then sends one
    PATCH: webhook_url (PUBLIC_URL and the app's path), webhook_events (the events the app
    handles) and llm_config with its tools replaced by the app's. Built-in tools, MCP
    attachments, tools whose URL points elsewhere and every other setting stay as they are.
    With --mcp the tools that need no call go over MCP instead: the app's MCP server
    (PUBLIC_URL and its MCP path, the bearer token of VOICEHOOKS_MCP_TOKEN) is made or updated,
    attached with those tools allowed, and tested from the platform's side; the tools that
    need a call stay webhook tools. --set-secret then also writes the token.
    Exit codes: 0 written or nothing to change; 1 a dry run found changes; 2 a usage error,
    the platform refused or could not be reached, or its test of the MCP server failed.

    \b
    Examples:
        voicehooks deploy myapp:app --assistant asst_7f3e --url https://hooks.example.com
        voicehooks deploy myapp:app --assistant asst_7f3e --url https://hooks.example.com --dry-run
        voicehooks deploy myapp:app --assistant asst_7f3e --url https://hooks.example.com --yes
        voicehooks deploy myapp:app --assistant asst_7f3e --url https://hooks.example.com --mcp
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
    server = _McpServer.of(app, public_url, url, mcp_name, set_secret) if use_mcp else None
    if server is not None:
        webhook_only = set(server.withheld)
        definitions = [d for d in definitions if d["name"] in webhook_only]
        events = handled_events(app, webhook_tools=bool(definitions))
    saved: dict[str, Any] = call(
        lambda api: api.get_assistant(assistant_id), action=f"read assistant {assistant_id!r}"
    )
    planned = plan(
        saved,
        definitions,
        webhook_url=url,
        webhook_events=events,
        secret=secret,
        mcp=server.attachment() if server is not None else None,
    )
    differences = (server.differences if server is not None else []) + planned.differences
    for difference in differences:
        click.echo(difference.line())
    if not differences:
        click.echo(
            f"SAME: assistant {assistant_id} is in step with the app ({len(definitions)} "
            f"tool(s), events to {url})",
            err=True,
        )
        sys.exit(0)
    click.echo(
        f"CHANGES: {len(differences)} difference(s) between the app and assistant {assistant_id}",
        err=True,
    )
    if dry_run:
        click.echo("Dry run: nothing sent.", err=True)
        sys.exit(1)
    if not yes and not click.confirm(f"Write them to assistant {assistant_id}?", err=True):
        click.echo("Nothing sent.", err=True)
        sys.exit(1)
    if server is not None:
        server.write(secret)
        planned = plan(  # the server's id is known now
            saved,
            definitions,
            webhook_url=url,
            webhook_events=events,
            secret=secret,
            mcp=server.attachment(),
        )
    secrets = [secret, server.token if server is not None else None]
    if planned.changed:
        updated: dict[str, Any] = call(
            lambda api: api.update_assistant(assistant_id, planned.changes),
            action=f"update assistant {assistant_id!r}",
            secrets=secrets,
        )
        # The answer is the assistant as saved: a platform that kept something else is worth
        # a line.
        left = plan(
            updated,
            definitions,
            webhook_url=url,
            webhook_events=events,
            mcp=server.attachment() if server is not None else None,
        ).differences
        if left:
            click.echo(
                f"warning: the platform's answer still differs in {len(left)} place(s); "
                "run again with --dry-run to see them",
                err=True,
            )
    click.echo(f"DEPLOYED: assistant {assistant_id} now calls {url}", err=True)
    if server is not None:
        sys.exit(server.test())


@dataclass
class _McpServer:
    """The app's MCP server as a deploy sees it: what it should be, what the platform holds."""

    name: str
    wanted: dict[str, Any]
    allowed: list[str]
    withheld: dict[str, str]
    token: str
    saved: dict[str, Any] | None
    changes: dict[str, Any]
    differences: list[Difference]

    @classmethod
    def of(
        cls, app: VoiceHooks, public_url: str, url: str, name: str | None, set_token: bool
    ) -> _McpServer:
        tokens = app.mcp.resolved_tokens()
        if not tokens:
            raise click.UsageError(
                f"--mcp: the app serves no MCP endpoint; set {environment.MCP_TOKEN} "
                "(or Mcp(tokens=...)) where the app runs, and here"
            )
        tools, withheld = offered(app)
        allowed = [tool.name for tool in tools]
        try:
            check_allowed(allowed)  # before anything is read
        except ValueError as exc:
            raise click.UsageError(f"--mcp: {exc}") from None
        name = name or f"voicehooks {urllib.parse.urlsplit(url).netloc}"
        wanted = mcp_server_fields(
            name=name,
            url=webhook_url(public_url, app.mcp.path),
            token=tokens[0],
            deadline_seconds=app.mcp.deadline_seconds,
        )
        servers: list[dict[str, Any]] = call(
            lambda api: api.list_mcp_servers(), action="list MCP servers"
        )
        saved = next((s for s in servers if s.get("name") == name), None)
        changes, differences = mcp_server_changes(saved, wanted, set_token=set_token)
        return cls(name, wanted, allowed, withheld, tokens[0], saved, changes, differences)

    def attachment(self) -> tuple[str | None, list[str]]:
        return (self.saved["id"] if self.saved is not None else None), self.allowed

    def write(self, secret: str | None) -> None:
        """Make the server, or send its changes."""
        secrets = [secret, self.token]
        if self.saved is None:
            self.saved = call(
                lambda api: api.create_mcp_server(self.changes),
                action=f"make MCP server {self.name!r}",
                secrets=secrets,
            )
            click.echo(f"MCP server {self.name!r} made: {self.saved.get('id')}", err=True)
        elif self.changes:
            server_id = str(self.saved["id"])
            self.saved = call(
                lambda api: api.update_mcp_server(server_id, self.changes),
                action=f"update MCP server {self.name!r}",
                secrets=secrets,
            )

    def test(self) -> int:
        """Have the platform connect and list the tools; 0 when it sees the app's, else 2."""
        assert self.saved is not None
        server_id = str(self.saved["id"])
        result: dict[str, Any] = call(
            lambda api: api.test_mcp_server(server_id),
            action=f"test MCP server {self.name!r}",
            secrets=[self.token],
        )
        if not result.get("ok"):
            click.echo(
                f"MCP TEST FAILED: the platform could not list the tools: "
                f"{result.get('error', 'no reason given')}",
                err=True,
            )
            return 2
        seen = [t.get("name") for t in result.get("tools", []) if isinstance(t, dict)]
        click.echo(f"MCP test: the platform sees {len(seen)} tool(s): {', '.join(map(str, seen))}")
        if sorted(map(str, seen)) != sorted(self.allowed):
            missing = sorted(set(self.allowed) - set(map(str, seen)))
            extra = sorted(set(map(str, seen)) - set(self.allowed))
            click.echo(
                f"MCP TEST FAILED: the platform's list differs from the app's (missing: "
                f"{', '.join(missing) or 'none'}; unexpected: {', '.join(extra) or 'none'})",
                err=True,
            )
            return 2
        return 0
