"""``voicehooks simulate``: run a whole-call scenario in memory or against a running server.

The file format is ``voicehooks.testing.scenarios``'. In memory (``TARGET``) the app runs in
this process with its lifespan, no socket; over HTTP (``--url``) the same deliveries are
signed with the first configured secret and posted, one kept-alive connection for the run.
"""

from __future__ import annotations

import sys

import anyio
import anyio.to_thread
import click

from voicehooks.testing.scenarios import Scenario, ScenarioError, ScenarioReport, run, run_scenario

from .environment import configured_secrets, env_file_option
from .posting import Poster

__all__ = ["simulate"]


@click.command()
@click.argument("scenario_file", metavar="SCENARIO", type=click.Path(dir_okay=False))
@click.argument("target", required=False)
@click.option("--url", metavar="URL", help="Post to a running app instead of loading TARGET.")
@click.option("--no-timing", is_flag=True, help="Leave the milliseconds out of the report.")
@env_file_option
def simulate(scenario_file: str, target: str | None, url: str | None, no_timing: bool) -> None:
    """Run the whole-call SCENARIO (a TOML file) against TARGET in memory, or --url.

    Each step is one delivery of the same call; the report has a line per step and what
    did not match under it. Exit code 0 when every expectation held, 1 otherwise, 2 on a
    usage error or an invalid scenario.

    \b
    Examples:
        voicehooks simulate examples/scenarios/quickstart.toml examples/quickstart.py
        voicehooks simulate examples/scenarios/quickstart.toml --url http://127.0.0.1:8000/
    """
    if (target is None) == (url is None):
        raise click.UsageError("give either TARGET (run in memory) or --url URL, not both")
    try:
        scenario = Scenario.load(scenario_file)
    except ScenarioError as exc:
        raise click.UsageError(str(exc)) from None
    secrets = configured_secrets()
    secret = secrets[0] if secrets else None
    if target is not None:
        from voicehooks.cli import load_target  # the package imports this module

        app = load_target(target)[0]
        # A bug in the app is answered as a server answers it, so both ways report the same.
        report = anyio.run(
            lambda: run_scenario(scenario, app, secret=secret, raise_exceptions=False)
        )
    else:
        assert url is not None
        report = _over_http(scenario, url, secret)
    click.echo(report.format(timing=not no_timing))
    if not report.ok:
        sys.exit(1)


def _over_http(scenario: Scenario, url: str, secret: str | None) -> ScenarioReport:
    poster = Poster(url, secret)

    async def send(body: bytes, event: str) -> tuple[int, bytes]:
        headers = poster.headers(body, event)
        return await anyio.to_thread.run_sync(poster.post, body, headers)

    try:
        return anyio.run(run, scenario, send)
    finally:
        poster.close()
