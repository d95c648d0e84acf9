"""Serving a target with uvicorn, for ``voicehooks run`` and ``voicehooks dev``.

What a server process adds to the app (a recorder, the inspector) travels to it in the
environment, because uvicorn starts the processes (workers, reloads) and imports the app in
each; ``serving.py`` is the other end.
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
from typing import Any

import click

from voicehooks.core import environment as variables

__all__ = ["record_file", "serve"]

_APP = "voicehooks.cli.serving:app"


def serve(
    target: str,
    directory: str | None,
    *,
    host: str,
    port: int,
    reload: bool,
    workers: int,
    log_level: str,
    log_config: str | dict[str, Any],
    record: str | None,
    record_raw: bool = False,
    inspector: str | None = None,
    history: str | None = None,
    **uvicorn_options: Any,
) -> None:
    """Run uvicorn on ``voicehooks.cli.serving:app``; what it adds travels in the environment."""
    import uvicorn

    from voicehooks.cli import serving

    if isinstance(log_config, dict):
        log_config = copy.deepcopy(log_config)
        # The reloader's file watcher logs every change it sees at INFO: noise, not news.
        log_config["loggers"]["watchfiles"] = {"level": "WARNING"}
    # Inherited by the server processes (see serving.py).
    handed_over = {
        variables.RUN_TARGET: target,
        variables.RUN_RECORD: record_file(record) if record is not None else None,
        variables.RUN_RECORD_RAW: "1" if record_raw else None,
        variables.RUN_INSPECTOR: inspector,
        variables.RUN_INSPECTOR_HISTORY: history,
    }
    for name, value in handed_over.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    app_dir = directory or os.getcwd()
    options: dict[str, Any] = {
        "factory": True,
        "host": host,
        "port": port,
        "log_level": log_level,
        "log_config": log_config,
        "lifespan": "on",
        "access_log": False,  # voicehooks logs one line per delivery itself
        "http": serving.http_parser(),
        # The inspector's live pages hold a stream open: do not wait long for them to end.
        "timeout_graceful_shutdown": 3 if inspector is not None else None,
        **uvicorn_options,
    }
    if not reload:
        uvicorn.run(_APP, workers=workers, app_dir=app_dir, **options)
        return
    # uvicorn.run's reload branch, with our watcher in place of uvicorn's (see reloading.py).
    from .reloading import ProjectReload

    sys.path.insert(0, app_dir)
    config = uvicorn.Config(_APP, reload=True, reload_dirs=[app_dir], **options)
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        ProjectReload(config, server.run, [config.bind_socket()], app_dir).run()


def record_file(path: str) -> str:
    """``path`` made absolute, after checking that it can be written (created 0600)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
    except OSError as exc:
        raise click.BadParameter(
            f"cannot write {path!r}: {exc.strerror}", param_hint="--record"
        ) from None
    return os.path.abspath(path)
