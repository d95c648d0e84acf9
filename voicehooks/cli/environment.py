"""Environment for the commands: ``--env-file`` and the secrets it may hold.

Secrets come from the environment only (``VOICEHOOKS_SECRET``, comma-separated, or the file
named by ``VOICEHOOKS_SECRET_FILE``), which ``--env-file`` may fill; no command takes one as
an option, so none ends up in a shell history or a process list.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click

from voicehooks.app import resolve_secrets
from voicehooks.core import environment as variables
from voicehooks.core.exceptions import ConfigurationError

__all__ = [
    "configured_secrets",
    "env_file_option",
    "log_format_option",
    "patched_environ",
    "read_env_file",
]

F = TypeVar("F", bound=Callable[..., Any])


def read_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read ``NAME=value`` lines (dotenv style) into a dict.

    Blank lines and ``#`` comments are skipped, a leading ``export`` is allowed, and a value
    may be quoted with ``'`` or ``"``. Values are never shown in errors: they may be secrets.

    Raises:
        click.BadParameter: The file cannot be read or a line is not ``NAME=value``.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise click.BadParameter(f"cannot read {str(path)!r}: {exc.strerror}") from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        name, sep, value = line.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name.isidentifier():
            raise click.BadParameter(f"{str(path)!r} line {number} is not NAME=value")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        values[name] = value
    return values


@contextlib.contextmanager
def patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    """Set ``values`` in ``os.environ`` for the block, then put back what was there."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def _load_env_file(ctx: click.Context, _: click.Parameter, value: str | None) -> None:
    if value is not None:
        # Scoped to the command: in-process callers (tests) get their environment back.
        ctx.with_resource(patched_environ(read_env_file(value)))


def env_file_option(function: F) -> F:
    """Add ``--env-file FILE`` to a command: its variables are set while the command runs."""
    return click.option(
        "--env-file",
        type=click.Path(dir_okay=False),
        metavar="FILE",
        callback=_load_env_file,
        expose_value=False,
        is_eager=True,
        help=f"Read NAME=value lines into the environment first (e.g. {variables.SECRET}); "
        "they win over variables already set.",
    )(function)


def log_format_option(function: F) -> F:
    """Add ``--log-format text|json`` (``VOICEHOOKS_LOG_FORMAT``), as ``run`` and ``worker``
    share it."""
    return click.option(
        "--log-format",
        default="text",
        type=click.Choice(["text", "json"]),
        envvar="VOICEHOOKS_LOG_FORMAT",
        show_envvar=True,
        help="text: time, level, logger, message; json: one object per line.",
    )(function)


def configured_secrets() -> list[str]:
    """The secrets ``VoiceHooks()`` would use: ``VOICEHOOKS_SECRET`` or its ``_FILE``.

    Raises:
        click.UsageError: ``VOICEHOOKS_SECRET_FILE`` names a file that cannot be read.
    """
    try:
        return resolve_secrets(None)
    except ConfigurationError as exc:
        raise click.UsageError(str(exc)) from None
