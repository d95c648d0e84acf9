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
    "MCP_TOKEN",
    "MCP_TOKEN_FILE",
    "METRICS",
    "MULTIPROC_DIR",
    "QUEUE_KEY",
    "QUEUE_KEY_FILE",
    "QUEUE_MAX_DEAD",
    "QUEUE_MAX_DEAD_AGE_SECONDS",
    "QUEUE_MIN_REPLICAS_ACKS",
    "QUEUE_REPLICA_ACK_TIMEOUT_SECONDS",
    "QUEUE_URL",
    "REDIS_URL",
    "SECRET",
    "SECRET_FILE",
    "STORE_URL",
    "VARIABLES",
    "Variable",
    "api_key",
    "mcp_tokens",
    "metrics_switched_on",
    "positive_number",
    "queue_key",
    "read",
    "secrets",
    "switched_on",
]

SECRET: Final = "VOICEHOOKS_SECRET"
SECRET_FILE: Final = "VOICEHOOKS_SECRET_FILE"
STORE_URL: Final = "VOICEHOOKS_STORE_URL"
REDIS_URL: Final = "VOICEHOOKS_REDIS_URL"  # the old name of STORE_URL
QUEUE_URL: Final = "VOICEHOOKS_QUEUE_URL"
QUEUE_KEY: Final = "VOICEHOOKS_QUEUE_KEY"
QUEUE_KEY_FILE: Final = "VOICEHOOKS_QUEUE_KEY_FILE"
QUEUE_MAX_DEAD: Final = "VOICEHOOKS_QUEUE_MAX_DEAD"
QUEUE_MAX_DEAD_AGE_SECONDS: Final = "VOICEHOOKS_QUEUE_MAX_DEAD_AGE_SECONDS"
QUEUE_MIN_REPLICAS_ACKS: Final = "VOICEHOOKS_QUEUE_MIN_REPLICAS_ACKS"
QUEUE_REPLICA_ACK_TIMEOUT_SECONDS: Final = "VOICEHOOKS_QUEUE_REPLICA_ACK_TIMEOUT_SECONDS"
API_KEY: Final = "VOICEHOOKS_API_KEY"
API_KEY_FILE: Final = "VOICEHOOKS_API_KEY_FILE"
API_URL: Final = "VOICEHOOKS_API_URL"
METRICS: Final = "VOICEHOOKS_METRICS"
MCP_TOKEN: Final = "VOICEHOOKS_MCP_TOKEN"
MCP_TOKEN_FILE: Final = "VOICEHOOKS_MCP_TOKEN_FILE"
MULTIPROC_DIR: Final = "PROMETHEUS_MULTIPROC_DIR"
# voicehooks run -> the server processes it starts
RUN_TARGET: Final = "VOICEHOOKS_RUN_TARGET"
RUN_RECORD: Final = "VOICEHOOKS_RUN_RECORD"
RUN_RECORD_RAW: Final = "VOICEHOOKS_RUN_RECORD_RAW"
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
    Variable(QUEUE_KEY, "(none)", "Seals queue entries (AES-256-GCM); several: first seals."),
    Variable(
        QUEUE_KEY_FILE, "(none)", "A file holding the queue key(s); read if the key is unset."
    ),
    Variable(QUEUE_MAX_DEAD, "10000", "Most dead letters kept; the oldest go first."),
    Variable(QUEUE_MAX_DEAD_AGE_SECONDS, "604800", "Dead letters older than this are deleted."),
    Variable(QUEUE_MIN_REPLICAS_ACKS, "0", "Replicas that must hold the entries before the 200."),
    Variable(QUEUE_REPLICA_ACK_TIMEOUT_SECONDS, "0.5", "How long the enqueue waits for them."),
    Variable(API_KEY, "(none)", "The platform API key, for LiveCall, late results, reconcile."),
    Variable(API_KEY_FILE, "(none)", "A file holding the API key; read if the key is unset."),
    Variable(API_URL, "https://api.hmsovereign.com/api/v1", "The platform API's base URL."),
    Variable(METRICS, "0", "1 serves Prometheus metrics at /metrics (run/worker --metrics)."),
    Variable(MULTIPROC_DIR, "(none)", "prometheus_client's directory for several processes."),
    Variable(MCP_TOKEN, "(none)", "Serves the tools over MCP to this bearer token (several: a,b)."),
    Variable(
        MCP_TOKEN_FILE, "(none)", "A file holding the MCP token(s), one a line; read if unset."
    ),
    Variable("VOICEHOOKS_HOST", "127.0.0.1", "voicehooks run --host", cli=True),
    Variable("VOICEHOOKS_PORT", "8000", "voicehooks run --port", cli=True),
    Variable("VOICEHOOKS_WORKERS", "1", "voicehooks run --workers", cli=True),
    Variable("VOICEHOOKS_RELOAD", "0", "voicehooks run --reload", cli=True),
    Variable("VOICEHOOKS_LOG_LEVEL", "info", "voicehooks run/worker --log-level", cli=True),
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
    Variable("VOICEHOOKS_WORKER_CONCURRENCY", "8", "voicehooks worker --concurrency", cli=True),
    Variable(
        "VOICEHOOKS_WORKER_CLAIM_IDLE_SECONDS",
        "30.0",
        "voicehooks worker --claim-idle-seconds",
        cli=True,
    ),
    Variable("VOICEHOOKS_WORKER_MAX_ATTEMPTS", "5", "voicehooks worker --max-attempts", cli=True),
    Variable(
        "VOICEHOOKS_WORKER_RETRY_DELAY_SECONDS",
        "1.0",
        "voicehooks worker --retry-delay-seconds",
        cli=True,
    ),
    Variable(
        "VOICEHOOKS_WORKER_GRACE_SECONDS",
        "(none)",
        "voicehooks worker --grace-seconds",
        cli=True,
    ),
    Variable(
        "VOICEHOOKS_WORKER_FORGET_IDLE_SECONDS",
        "3600.0",
        "voicehooks worker --forget-idle-seconds",
        cli=True,
    ),
    Variable("VOICEHOOKS_ROOT_PATH", "(none)", "voicehooks run --root-path", cli=True),
    Variable("VOICEHOOKS_RECORD", "(none)", "voicehooks run --record", cli=True),
    Variable(RUN_TARGET, "(set by voicehooks run)", "The app a server process loads."),
    Variable(RUN_RECORD, "(set by voicehooks run)", "Where a server process records."),
    Variable(RUN_RECORD_RAW, "(set by voicehooks run)", "Record without redaction (`1`)."),
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
    return _listed(SECRET, SECRET_FILE)


def mcp_tokens() -> list[str]:
    """The MCP endpoint's bearer tokens of ``VOICEHOOKS_MCP_TOKEN`` (comma-separated), else the
    lines of the file ``VOICEHOOKS_MCP_TOKEN_FILE`` names; ``[]`` when neither holds one.

    Raises:
        ConfigurationError: The file cannot be read.
    """
    return _listed(MCP_TOKEN, MCP_TOKEN_FILE)


def _listed(variable: str, file_variable: str) -> list[str]:
    raw = os.environ.get(variable, "")
    filename = os.environ.get(file_variable)
    if not raw.strip() and filename:
        raw = _read_file(file_variable, filename).replace("\n", ",")
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


def queue_key() -> tuple[str, str]:
    """The queue key(s) and where they came from: ``VOICEHOOKS_QUEUE_KEY`` (comma-separated),
    else the lines of the file ``VOICEHOOKS_QUEUE_KEY_FILE`` names; ``("", "")`` when neither
    holds one. The source is for error messages, which name it and never the key.

    Raises:
        ConfigurationError: The file cannot be read.
    """
    key = read(QUEUE_KEY)
    if key:
        return key, QUEUE_KEY
    filename = read(QUEUE_KEY_FILE)
    if filename:
        return _read_file(QUEUE_KEY_FILE, filename).replace("\n", ","), QUEUE_KEY_FILE
    return "", ""


def positive_number(name: str, default: float) -> float:
    """The number in ``name``, or ``default`` when it is unset.

    Raises:
        ConfigurationError: The value is not a number greater than 0.
    """
    text = read(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise ConfigurationError(f"{name}={text!r}: a number greater than 0 is expected")
    return value


def _read_file(variable: str, filename: str) -> str:
    try:
        with open(filename, encoding="utf-8") as file:
            return file.read()
    except OSError as exc:
        raise ConfigurationError(
            f"{variable}={filename!r} cannot be read: {exc.strerror}"
        ) from None
