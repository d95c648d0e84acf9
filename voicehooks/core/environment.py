"""Every environment variable voicehooks reads: its name, its default, and the one place it is read.

The library reads the environment only through this module, so ``VARIABLES`` is the whole
list; the table in the docs (docs/reference/environment.md) is checked against it by a test.
The command line's own options (``voicehooks run --port``, ...) are read by click from the
variables listed with ``cli=True``; the last group is how ``voicehooks run`` hands its
options to the server processes it starts, and is not meant to be set by hand.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

from .exceptions import ConfigurationError

__all__ = [
    "API_KEY",
    "API_KEY_FILE",
    "API_URL",
    "METRICS",
    "MULTIPROC_DIR",
    "QUEUE_URL",
    "REDIS_URL",
    "SECRET",
    "SECRET_FILE",
    "STORE_URL",
    "VARIABLES",
    "Variable",
    "api_key",
    "metrics_switched_on",
    "read",
    "secrets",
    "switched_on",
]

SECRET: Final = "VOICEHOOKS_SECRET"
SECRET_FILE: Final = "VOICEHOOKS_SECRET_FILE"
STORE_URL: Final = "VOICEHOOKS_STORE_URL"
REDIS_URL: Final = "VOICEHOOKS_REDIS_URL"  # the old name of STORE_URL
QUEUE_URL: Final = "VOICEHOOKS_QUEUE_URL"
API_KEY: Final = "VOICEHOOKS_API_KEY"
API_KEY_FILE: Final = "VOICEHOOKS_API_KEY_FILE"
API_URL: Final = "VOICEHOOKS_API_URL"
METRICS: Final = "VOICEHOOKS_METRICS"
MULTIPROC_DIR: Final = "PROMETHEUS_MULTIPROC_DIR"
# voicehooks run -> the server processes it starts
RUN_TARGET: Final = "VOICEHOOKS_RUN_TARGET"
RUN_RECORD: Final = "VOICEHOOKS_RUN_RECORD"
RUN_INSPECTOR: Final = "VOICEHOOKS_RUN_INSPECTOR"
RUN_INSPECTOR_HISTORY: Final = "VOICEHOOKS_RUN_INSPECTOR_HISTORY"


@dataclass(frozen=True, slots=True)
class Variable:
    """One environment variable: its name, its default (as text) and what it sets."""

    name: str
    default: str
    meaning: str
    cli: bool = False  # an option of the command line, read by click


VARIABLES: Final = (
    Variable(SECRET, "(none)", "The webhook secret; several, comma-separated, are all accepted."),
    Variable(SECRET_FILE, "(none)", "A file holding the secret(s), one a line; read if unset."),
    Variable(
        STORE_URL,
        f"${REDIS_URL}, else ${QUEUE_URL}",
        "The store: redis://, rediss:// or postgresql://; unset: in memory.",
    ),
    Variable(REDIS_URL, "(none)", f"The old name of {STORE_URL}, still read."),
    Variable(QUEUE_URL, "(none)", "Durable mode: the queue, redis://, rediss:// or postgresql://."),
    Variable(API_KEY, "(none)", "The platform API key, for LiveCall, late results, reconcile."),
    Variable(API_KEY_FILE, "(none)", "A file holding the API key; read if the key is unset."),
    Variable(API_URL, "https://api.hmsovereign.com/api/v1", "The platform API's base URL."),
    Variable(METRICS, "0", "1 serves Prometheus metrics at /metrics (voicehooks run --metrics)."),
    Variable(MULTIPROC_DIR, "(none)", "prometheus_client's directory for several processes."),
    Variable("VOICEHOOKS_HOST", "127.0.0.1", "voicehooks run --host", cli=True),
    Variable("VOICEHOOKS_PORT", "8000", "voicehooks run --port", cli=True),
    Variable("VOICEHOOKS_WORKERS", "1", "voicehooks run --workers", cli=True),
    Variable("VOICEHOOKS_RELOAD", "0", "voicehooks run --reload", cli=True),
    Variable("VOICEHOOKS_LOG_LEVEL", "info", "voicehooks run --log-level", cli=True),
    Variable("VOICEHOOKS_LOG_CONFIG", "(none)", "voicehooks run --log-config", cli=True),
    Variable("VOICEHOOKS_LOG_FORMAT", "text", "voicehooks run/worker --log-format", cli=True),
    Variable("VOICEHOOKS_PROXY_HEADERS", "1", "voicehooks run --proxy-headers", cli=True),
    Variable(
        "VOICEHOOKS_FORWARDED_ALLOW_IPS",
        "$FORWARDED_ALLOW_IPS or 127.0.0.1,::1",
        "voicehooks run --forwarded-allow-ips",
        cli=True,
    ),
    Variable(
        "VOICEHOOKS_WORKER_HEALTH_PORT", "(none)", "voicehooks worker --health-port", cli=True
    ),
    Variable(
        "VOICEHOOKS_WORKER_HEALTH_HOST", "127.0.0.1", "voicehooks worker --health-host", cli=True
    ),
    Variable("VOICEHOOKS_ROOT_PATH", "(none)", "voicehooks run --root-path", cli=True),
    Variable("VOICEHOOKS_RECORD", "(none)", "voicehooks run --record", cli=True),
    Variable(RUN_TARGET, "(set by voicehooks run)", "The app a server process loads."),
    Variable(RUN_RECORD, "(set by voicehooks run)", "Where a server process records."),
    Variable(RUN_INSPECTOR, "(set by voicehooks dev)", "The inspector's settings."),
    Variable(RUN_INSPECTOR_HISTORY, "(set by voicehooks dev)", "The inspector's history file."),
)


def read(name: str) -> str:
    """The value of ``name``, stripped; ``""`` when unset."""
    return os.environ.get(name, "").strip()


def switched_on(value: str | None) -> bool:
    """Whether a variable's text means yes (``1``, ``true``, ``yes``, ``on``)."""
    return value is not None and value.strip().lower() in ("1", "true", "yes", "on")


def metrics_switched_on() -> bool:
    """``VOICEHOOKS_METRICS`` says yes."""
    return switched_on(os.environ.get(METRICS))


def secrets() -> list[str]:
    """The webhook secrets of ``VOICEHOOKS_SECRET`` (comma-separated), else the lines of the
    file ``VOICEHOOKS_SECRET_FILE`` names; ``[]`` when neither holds one.

    Raises:
        ConfigurationError: The file cannot be read.
    """
    raw = os.environ.get(SECRET, "")
    filename = os.environ.get(SECRET_FILE)
    if not raw.strip() and filename:
        raw = _read_file(SECRET_FILE, filename).replace("\n", ",")
    return [part.strip() for part in raw.split(",") if part.strip()]


def api_key() -> str:
    """``VOICEHOOKS_API_KEY``, else the content of the file ``VOICEHOOKS_API_KEY_FILE`` names;
    ``""`` when neither holds one.

    Raises:
        ConfigurationError: The file cannot be read.
    """
    key = read(API_KEY)
    filename = read(API_KEY_FILE)
    if not key and filename:
        key = _read_file(API_KEY_FILE, filename).strip()
    return key


def _read_file(variable: str, filename: str) -> str:
    try:
        with open(filename, encoding="utf-8") as file:
            return file.read()
    except OSError as exc:
        raise ConfigurationError(
            f"{variable}={filename!r} cannot be read: {exc.strerror}"
        ) from None
