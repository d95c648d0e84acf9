"""The ``voicehooks`` command: serve an app, describe it, send it test events, check captures,
run whole-call scenarios, replay recordings, and develop with the inspector.

Targets are ``module:attr`` or ``path/to/file.py[:attr]`` (``attr`` defaults to ``app``); the
current directory is importable. A target that is not there (no such file, module or
attribute, or not a ``VoiceHooks`` app) or an app configured wrongly (``ConfigurationError``)
is a one-line error with exit code 2. Any other exception raised while importing the app is a
bug in it: its traceback is shown, from the app's own code on, as uvicorn does, with exit
code 1.

Secrets come from the environment (``VOICEHOOKS_SECRET``, comma-separated, or the file named
by ``VOICEHOOKS_SECRET_FILE``) or from an ``--env-file``; no command takes one as an option,
so none ends up in a shell history. Nothing here prints a secret, a signature or a request
body.

Exit codes: 0 success; 1 the thing checked failed (an HTTP error, a signature that does not
verify, a server that cannot be reached); 2 a usage error (click's own convention).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import click
from click.core import ParameterSource

from voicehooks import __version__
from voicehooks.app import VoiceHooks
from voicehooks.core import environment as variables
from voicehooks.core.exceptions import ConfigurationError
from voicehooks.core.logs import LogFormat, logging_config
from voicehooks.mcp import offered
from voicehooks.state.stores import MemoryStore

from .deploy import deploy
from .dev import dev
from .durable import queue, worker
from .environment import env_file_option, log_format_option, patched_environ, read_env_file
from .replay import replay
from .send import send
from .serve import serve
from .simulate import simulate
from .tools import tools
from .verify import verify

__all__ = ["TargetError", "TargetImportError", "load_target", "main", "read_env_file"]

_PLACEHOLDER_SECRET = "whsec_placeholder_for_inspection_only"


class TargetError(click.UsageError):
    """A ``module:attr`` target that cannot be loaded; exit code 2."""


class TargetImportError(click.ClickException):
    """Importing the app raised: shown as the traceback from the app's code on; exit code 1.

    Args:
        module_name: The module being imported.
        error: What its import raised.
    """

    exit_code = 1

    def __init__(self, module_name: str, error: BaseException) -> None:
        super().__init__(f"importing {module_name!r} raised {type(error).__name__}")
        self.error = error
        self.traceback = "".join(
            traceback.format_exception(type(error), error, _user_frames(error.__traceback__))
        )

    def show(self, file: IO[Any] | None = None) -> None:
        """Print the traceback, then the one-line summary, to stderr."""
        click.echo(self.traceback, file=file, err=True, nl=False)
        click.echo(f"Error: {self.message} (traceback above)", file=file, err=True)


def _user_frames(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` without its first frames: this module's and the import machinery's."""
    while tb is not None and (
        tb.tb_frame.f_code.co_filename in (__file__, importlib.__file__)
        or tb.tb_frame.f_code.co_filename.startswith("<frozen ")
    ):
        tb = tb.tb_next
    return tb


# -- loading targets ---------------------------------------------


def _split(target: str) -> tuple[str, str, str | None]:
    """Return (module name, attribute, directory to put on sys.path)."""
    spec, _, attr = target.partition(":")
    attr = attr or "app"
    if spec.endswith(".py") or os.sep in spec or "/" in spec:
        path = Path(spec)
        if path.suffix != ".py":
            path = path.with_suffix(".py")
        if not path.is_file():
            raise TargetError(f"{target!r}: no such file {str(path)!r}")
        return path.stem, attr, str(path.resolve().parent)
    if not spec:
        raise TargetError(f"{target!r} is not a target; write module:attr or path/to/file.py:attr")
    return spec, attr, None


def load_target(target: str) -> tuple[VoiceHooks, str, str | None]:
    """Import ``target`` and return the app, its import string and the directory it needs.

    Raises:
        TargetError: The message says what is wrong and how to fix it.
        TargetImportError: Importing the app raised; it carries the traceback.
    """
    module_name, attr, directory = _split(target)
    for entry in (directory, os.getcwd()):
        if entry and entry not in sys.path:
            sys.path.insert(0, entry)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only the target itself (or a package above it) missing is a usage error; a module
        # the app imports that is missing is the app's bug, shown with its traceback.
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise TargetError(
                f"cannot import {module_name!r}: no such module (run from the directory that "
                "contains it, or give a file path)"
            ) from None
        raise TargetImportError(module_name, exc) from None
    except ConfigurationError as exc:
        raise TargetError(f"{module_name}: {exc}") from None
    except Exception as exc:
        raise TargetImportError(module_name, exc) from None
    instance: Any = module
    for part in attr.split("."):
        try:
            instance = getattr(instance, part)
        except AttributeError:
            raise TargetError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(instance, VoiceHooks):
        raise TargetError(
            f"{module_name}:{attr} is a {type(instance).__name__}, not a VoiceHooks app"
            + (
                " (serve a parent app that mounts one with uvicorn directly)"
                if hasattr(instance, "routes")
                else ""
            )
        )
    return instance, f"{module_name}:{attr}", directory


def _inspect(target: str) -> VoiceHooks:
    """Load ``target`` to describe it; a placeholder secret stands in if none is configured.

    ``routes`` and ``tools`` never serve the app, so they should work in a shell that does
    not hold the production secret.
    """
    if os.environ.get(variables.SECRET, "").strip() or os.environ.get(variables.SECRET_FILE):
        return load_target(target)[0]
    with patched_environ({variables.SECRET: _PLACEHOLDER_SECRET}):
        return load_target(target)[0]


# -- the commands ----------------------------------------------------------------------


def _check_root_path(_: click.Context, __: click.Parameter, value: str) -> str:
    if value and (not value.startswith("/") or value.endswith("/")):
        raise click.BadParameter(
            f"{value!r}: write a path like /hooks (a leading /, no trailing /)"
        )
    return value


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="""\b
Examples:
  voicehooks run examples/quickstart.py --port 8000
  voicehooks dev examples/quickstart.py
  voicehooks routes examples/quickstart.py
  voicehooks tools examples/quickstart.py --check
  voicehooks deploy myapp:app --assistant asst_7f3e --url https://hooks.example.com --dry-run
  voicehooks send tool-calls --tool check_repair_status --args '{"order_number": "WO-2291"}'
  voicehooks verify --body body.json --headers headers.txt
  voicehooks simulate examples/scenarios/quickstart.toml examples/quickstart.py
  voicehooks replay deliveries.jsonl --url http://127.0.0.1:8000/ --resign
  voicehooks worker myapp:app --concurrency 16

Every command takes -h for its options and an example.""",
)
@click.version_option(__version__, "-V", "--version", prog_name="voicehooks")
def main() -> None:
    """Receive HMS Sovereign / VoiceDock webhooks with typed Python functions.

    Secrets come from VOICEHOOKS_SECRET (comma-separated for rotation), the file named by
    VOICEHOOKS_SECRET_FILE, or an --env-file; never from the command line.
    """


@main.command(context_settings={"show_default": True})
@click.argument("target")
@click.option(
    "--host",
    default="127.0.0.1",
    envvar="VOICEHOOKS_HOST",
    show_envvar=True,
    help="Interface to bind.",
)
@click.option(
    "--port",
    default=8000,
    type=int,
    envvar="VOICEHOOKS_PORT",
    show_envvar=True,
    help="Port to bind.",
)
@click.option(
    "--workers",
    default=1,
    type=click.IntRange(min=1),
    envvar="VOICEHOOKS_WORKERS",
    show_envvar=True,
    help="Worker processes (share duplicate suppression through Redis when > 1).",
)
@click.option(
    "--reload",
    is_flag=True,
    envvar="VOICEHOOKS_RELOAD",
    show_envvar=True,
    help="Restart when source files change (development).",
)
@click.option(
    "--log-level",
    default="info",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    envvar="VOICEHOOKS_LOG_LEVEL",
    show_envvar=True,
)
@click.option(
    "--proxy-headers/--no-proxy-headers",
    default=True,
    envvar="VOICEHOOKS_PROXY_HEADERS",
    show_envvar=True,
    help="Take the client's address and scheme from X-Forwarded-For and X-Forwarded-Proto "
    "when the connection comes from --forwarded-allow-ips.",
)
@click.option(
    "--forwarded-allow-ips",
    default=None,
    metavar="IPS",
    envvar="VOICEHOOKS_FORWARDED_ALLOW_IPS",
    show_envvar=True,
    show_default="$FORWARDED_ALLOW_IPS or 127.0.0.1,::1",
    help="Comma-separated addresses or networks of the proxies whose headers are trusted "
    "('*' trusts any).",
)
@click.option(
    "--root-path",
    default="",
    metavar="PATH",
    envvar="VOICEHOOKS_ROOT_PATH",
    show_envvar=True,
    callback=_check_root_path,
    help="The path prefix a proxy strips before forwarding (the ASGI root_path).",
)
@click.option(
    "--record",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    envvar="VOICEHOOKS_RECORD",
    show_envvar=True,
    help="Append every verified delivery to FILE as JSON lines, personal data redacted.",
)
@click.option(
    "--record-raw",
    is_flag=True,
    help="Record personal data as received instead of redacted (warned about at startup).",
)
@log_format_option
@click.option(
    "--log-config",
    type=click.Path(exists=True, dir_okay=False),
    metavar="FILE",
    envvar="VOICEHOOKS_LOG_CONFIG",
    show_envvar=True,
    help="A logging config (dictConfig .json/.yaml, or .ini) used instead of --log-format.",
)
@click.option(
    "--metrics",
    is_flag=True,
    envvar=variables.METRICS,
    show_envvar=True,
    help="Serve Prometheus metrics at GET /metrics on the same port.",
)
@env_file_option
@click.pass_context
def run(
    ctx: click.Context,
    target: str,
    host: str,
    port: int,
    workers: int,
    reload: bool,
    log_level: str,
    proxy_headers: bool,
    forwarded_allow_ips: str | None,
    root_path: str,
    record: str | None,
    record_raw: bool,
    log_format: LogFormat,
    log_config: str | None,
    metrics: bool,
) -> None:
    """Serve TARGET (module:attr or path/to/file.py[:attr]) with uvicorn.

    Every option can also come from its environment variable (shown with it below), or
    from --env-file; an option on the command line wins.

    \b
    Examples:
        VOICEHOOKS_SECRET=whsec_... voicehooks run myapp:app --port 8000
        voicehooks run examples/quickstart.py --env-file .env --workers 4
        voicehooks run myapp:app --root-path /hooks --forwarded-allow-ips 10.0.0.5
        voicehooks run myapp:app --log-format json --metrics
        voicehooks run myapp:app --record deliveries.jsonl
    """
    if log_config and ctx.get_parameter_source("log_format") is ParameterSource.COMMANDLINE:
        raise click.UsageError(
            "--log-config replaces --log-format: name voicehooks.observe.JSONFormatter or "
            "TextFormatter in the file instead"
        )
    with contextlib.ExitStack() as stack:
        if metrics:
            # Before the app is imported: it reads the switch, and prometheus_client reads
            # the directory when it is first imported.
            stack.enter_context(_metrics_environment(workers if not reload else 1))
        app, _, directory = load_target(target)  # fails here, in one line, before any server
        if workers > 1 and isinstance(app.store, MemoryStore):
            click.echo(
                f"warning: {workers} workers with the in-memory duplicate store: each worker "
                "only remembers its own deliveries, so a redelivery that lands on another "
                "worker runs again. Set VOICEHOOKS_STORE_URL to share one Redis or PostgreSQL.",
                err=True,
            )
        serve(
            target,
            directory,
            host=host,
            port=port,
            reload=reload,
            workers=workers,
            log_level=log_level,
            log_config=log_config or logging_config(log_format, log_level),
            record=record,
            record_raw=record_raw,
            proxy_headers=proxy_headers,
            forwarded_allow_ips=forwarded_allow_ips,
            root_path=root_path,
        )


@contextlib.contextmanager
def _metrics_environment(workers: int) -> Iterator[None]:
    """Switch metrics on for the server processes; with several, a private multiprocess dir.

    The directory is created empty before the workers start and removed when the server
    stops, so counts never leak from one run into the next. A directory the user set in
    ``PROMETHEUS_MULTIPROC_DIR`` is used as it is and left alone.
    """
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise click.UsageError(
            "--metrics needs prometheus_client: pip install 'voicehooks[metrics]'"
        ) from None
    values = {variables.METRICS: "1"}
    if workers == 1 or os.environ.get(variables.MULTIPROC_DIR):
        with patched_environ(values):
            yield
        return
    with (
        tempfile.TemporaryDirectory(prefix="voicehooks-metrics-") as directory,
        patched_environ({**values, variables.MULTIPROC_DIR: directory}),
    ):
        yield


@main.command()
@click.argument("target")
@env_file_option
def routes(target: str) -> None:
    """List the events and tools TARGET registers and the function each goes to.

    \b
    Example:
        voicehooks routes examples/quickstart.py
    """
    app = _inspect(target)
    rows = [(r.kind, r.name, r.function, r.note) for r in app.routes()]
    click.echo(f"POST {app.path}")
    if app.mcp_endpoint is not None:
        tools, withheld = offered(app)
        click.echo(
            f"POST {app.mcp.path}  (MCP: {len(tools)} tool(s) offered, {len(withheld)} withheld)"
        )
    if not rows:
        click.echo("nothing registered: add @app.tool functions or @app.on handlers")
        return
    rows.insert(0, ("KIND", "NAME", "FUNCTION", "NOTE"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        click.echo(f"{line}  {row[3]}".rstrip())


main.add_command(deploy)
main.add_command(dev)
main.add_command(queue)
main.add_command(replay)
main.add_command(send)
main.add_command(simulate)
main.add_command(tools)
main.add_command(verify)
main.add_command(worker)
