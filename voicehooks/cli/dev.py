"""``voicehooks dev``: serve an app for development, with the inspector at ``/_voicehooks/``."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile

import click

from voicehooks.core.logs import logging_config

from .environment import env_file_option
from .serve import serve

__all__ = ["dev"]


@click.command(context_settings={"show_default": True})
@click.argument("target")
@click.option("--host", default="127.0.0.1", help="Interface to bind.")
@click.option("--port", default=8000, type=int, help="Port to bind.")
@click.option("--no-reload", is_flag=True, help="Do not restart when source files change.")
@click.option(
    "--log-level",
    default="info",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
)
@click.option(
    "--record",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Append every verified delivery to FILE as JSON lines, personal data redacted.",
)
@click.option(
    "--record-raw",
    is_flag=True,
    help="Record personal data as received instead of redacted (warned about at startup).",
)
@click.option(
    "--allow-remote-inspector",
    is_flag=True,
    help="Serve the inspector on a non-loopback --host too (it shows personal data).",
)
@env_file_option
def dev(
    target: str,
    host: str,
    port: int,
    no_reload: bool,
    log_level: str,
    record: str | None,
    record_raw: bool,
    allow_remote_inspector: bool,
) -> None:
    """Serve TARGET for development: reload, a readable log, the inspector at /_voicehooks/.

    The inspector lists recent deliveries grouped by call, shows each one (personal data
    masked until asked for), its answer, log lines and tool timings, and replays any of
    them. Development only: one process, deliveries kept in memory (and across reloads in a
    private temporary file), replays may bypass duplicate suppression.

    \b
    Examples:
        VOICEHOOKS_SECRET=whsec_dev voicehooks dev examples/quickstart.py
        voicehooks dev myapp:app --port 8001 --record deliveries.jsonl --env-file .env
    """
    if host not in ("127.0.0.1", "::1", "localhost") and not allow_remote_inspector:
        raise click.UsageError(
            f"--host {host} would show the inspector (personal data, replays) to other "
            "machines. Use 127.0.0.1, or add --allow-remote-inspector on a trusted network."
        )
    from voicehooks.cli import load_target  # the package imports this module

    _, _, directory = load_target(target)
    click.echo(f"Inspector: http://{_url_host(host)}:{port}/_voicehooks/", err=True)
    # The inspector's list outlives each reload in a private file, deleted when dev exits;
    # one left by a dev that was killed (kill -9 runs no cleanup) goes at the next start.
    _remove_stale_histories()
    history = tempfile.mkdtemp(prefix=f"{_HISTORY_PREFIX}{os.getpid()}-")
    # uvicorn raises a SIGTERM again once it has shut down, with the handler it found: this
    # one turns it into an exit that runs the ``finally`` below (the default would not).
    signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        serve(
            target,
            directory,
            host=host,
            port=port,
            reload=not no_reload,
            workers=1,
            log_level=log_level,
            log_config=logging_config("text", log_level),
            record=record,
            record_raw=record_raw,
            inspector="remote" if allow_remote_inspector else "local",
            history=os.path.join(history, "inspector.jsonl"),
        )
    finally:
        shutil.rmtree(history, ignore_errors=True)


_HISTORY_PREFIX = "voicehooks-dev-"


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _remove_stale_histories() -> None:
    """Delete the history directories of ``voicehooks dev`` processes that are gone: each
    is named after its process id, and holds what callers said."""
    directory = tempfile.gettempdir()
    for name in os.listdir(directory):
        pid = name.removeprefix(_HISTORY_PREFIX).partition("-")[0]
        if not name.startswith(_HISTORY_PREFIX) or not pid.isdigit():
            continue
        path = os.path.join(directory, name)
        try:
            if os.stat(path).st_uid != os.getuid() or _alive(int(pid)):
                continue
        except OSError:
            continue
        shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
