"""What each server process of ``voicehooks run`` and ``dev`` loads: the app, then a frozen heap.

uvicorn calls ``app()`` as a factory in every worker process (and after every reload). After
the import, everything that exists lives as long as the process: modules, the registry, the
decoders. ``gc.freeze()`` moves it out of the garbage collector's view, so the full
collections that a busy server triggers every few thousand requests stop scanning it; they
were the p99 latency (tens of milliseconds) before. It is process-wide, which is why the
process owner does it here and the library does not.

``run --record`` adds a ``Recorder`` to the app (redacting unless ``--record-raw`` or
``Privacy(record_raw=True)``); ``dev`` serves it wrapped in the ``Inspector``, and on loopback
shows exceptions' messages in the log (``reveal_messages``). Each process then says which event
loop and HTTP parser it runs on: uvloop and httptools are what the benchmarks measure, and
about three times the throughput of asyncio's loop and h11.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import logging
import os

from starlette.types import ASGIApp

from voicehooks.app import resolve_secrets
from voicehooks.cli import TargetImportError, load_target
from voicehooks.core import environment as variables
from voicehooks.core.logs import reveal_messages

__all__ = ["app", "http_parser"]

_log = logging.getLogger("voicehooks")


def app() -> ASGIApp:
    """Load the app named by ``$VOICEHOOKS_RUN_TARGET``, add what ``run``/``dev`` asked for
    (a recorder, the inspector), and freeze the startup heap."""
    try:
        instance, _, _ = load_target(os.environ[variables.RUN_TARGET])
    except TargetImportError as exc:
        raise exc.error from None  # uvicorn shows it with its own traceback
    served: ASGIApp = instance
    record = variables.read(variables.RUN_RECORD)
    if record:
        from voicehooks.observe.recording import Recorder

        privacy = instance.privacy
        raw = privacy.record_raw or variables.read(variables.RUN_RECORD_RAW) == "1"
        instance.add_observer(Recorder(record, raw=raw, languages=privacy.languages))
    inspector = variables.read(variables.RUN_INSPECTOR)
    if inspector == "local":  # voicehooks dev on loopback: the developer reads every line
        reveal_messages()
    if inspector:
        from voicehooks.dev.inspector import Inspector

        secrets = resolve_secrets(None)
        served = Inspector(
            instance,
            secret=secrets[0] if secrets else None,
            allow_remote=inspector == "remote",
            history=variables.read(variables.RUN_INSPECTOR_HISTORY) or None,
        )
    gc.freeze()
    loop = type(asyncio.get_running_loop()).__module__.partition(".")[0]
    http = http_parser()
    fast = loop == "uvloop" and http == "httptools"
    _log.info(
        "running on the %s event loop and the %s HTTP parser%s",
        loop,
        http,
        "" if fast else " (uvloop and httptools, where they install, serve about 3x faster)",
    )
    return served


def http_parser() -> str:
    """``httptools`` when it is installed, else ``h11``: uvicorn's own choice, made explicit."""
    return "httptools" if importlib.util.find_spec("httptools") else "h11"
