"""The app's settings as small frozen values, one per concern, in the manner of httpx's
``Timeout`` and ``Limits``::

    app = VoiceHooks(
        deadlines=Deadlines(tool_seconds=6.0),
        background=Background(max_queued_jobs=5_000),
        duplicates=Duplicates(store=RedisStore.from_url("redis://localhost:6379/0")),
    )

Each value checks itself when made, so a wrong setting fails at import time with its name.
Where a default comes from the environment (a store, a queue, an API key), the value holds
``None`` and the app reads ``voicehooks.core.environment`` when it is made.

``deprecated_keywords`` maps the 0.1/0.2 keyword arguments of ``VoiceHooks`` onto these; each
use warns with ``DeprecationWarning`` naming its replacement (CHANGELOG.md has the table).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from .core import environment
from .core.exceptions import ConfigurationError
from .core.signing import DEFAULT_TOLERANCE_SECONDS
from .live.api import PlatformClient
from .live.control import DEFAULT_COMMAND_LIMIT, CommandLimit
from .live.reconcile import Reconciliation
from .observe.observers import Observer
from .state.dedupe import StoreFailure
from .state.stores import DeliveryStore
from .work.durable import QueueFailure
from .work.queue import WorkQueue
from .work.sealing import sealer_for

__all__ = [
    "Background",
    "Deadlines",
    "Duplicates",
    "Limits",
    "Mcp",
    "Platform",
    "Privacy",
    "deprecated_keywords",
]


def _positive(owner: object, *names: str) -> None:
    for name in names:
        value = getattr(owner, name)
        if value is not None and value <= 0:
            kind = type(owner).__name__
            raise ConfigurationError(f"{kind}({name}=...) must be > 0, got {value!r}")


def _one_of(owner: object, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(owner, name)
    if value not in choices:
        kind = type(owner).__name__
        allowed = " or ".join(repr(choice) for choice in choices)
        raise ConfigurationError(f"{kind}({name}=...) must be {allowed}, got {value!r}")


@dataclass(frozen=True, slots=True)
class Deadlines:
    """How long each thing may take, in seconds.

    Args:
        tool_seconds: Budget of a ``tool-calls`` answer; the platform waits 10 s. A tool may
            set its own (``@app.tool(timeout_seconds=...)``).
        assistant_request_seconds: Budget of an ``assistant-request`` answer; the platform
            waits 5 s, then uses the saved configuration, as ``{}`` does.
        body_seconds: A body that takes longer to arrive is refused with 408, so a client
            that stalls mid-body cannot hold a connection (or a shutdown) forever.
        background_seconds: Each job's deadline after the answer; ``None`` for none.
        shutdown_grace_seconds: How long shutdown waits for background work, all of it
            together (jobs, slow tools, a worker's entries), before cancelling what is left.
    """

    tool_seconds: float = 8.0
    assistant_request_seconds: float = 4.0
    body_seconds: float = 10.0
    background_seconds: float | None = 300.0
    shutdown_grace_seconds: float = 20.0

    def __post_init__(self) -> None:
        _positive(
            self, "tool_seconds", "assistant_request_seconds", "body_seconds", "background_seconds"
        )
        if self.shutdown_grace_seconds < 0:
            raise ConfigurationError("Deadlines(shutdown_grace_seconds=...) must be >= 0")


@dataclass(frozen=True, slots=True)
class Limits:
    """How much a request may bring, and how many threads user functions may hold.

    Args:
        max_body_bytes: Larger bodies are refused with 413 while they stream in.
        timestamp_tolerance_seconds: Largest accepted clock distance of
            ``X-Webhook-Timestamp``, both directions; ``None`` switches the check off.
        max_threads: Worker threads for sync tools and the assistant-request handler.
        max_background_threads: Worker threads for sync handlers that run after the answer,
            kept apart so post-call work never delays a caller.
        max_abandoned_threads: Threads a sync function may leave running past its deadline;
            past that, its new calls are refused at once instead of taking another thread.
    """

    max_body_bytes: int = 1024 * 1024
    timestamp_tolerance_seconds: float | None = DEFAULT_TOLERANCE_SECONDS
    max_threads: int = 40
    max_background_threads: int = 8
    max_abandoned_threads: int = 4

    def __post_init__(self) -> None:
        _positive(
            self,
            "max_body_bytes",
            "timestamp_tolerance_seconds",
            "max_threads",
            "max_background_threads",
            "max_abandoned_threads",
        )


@dataclass(frozen=True, slots=True)
class Background:
    """Work after the answer: how much may run and wait in this process, and whether it goes
    to a durable queue instead (see "Scaling out" in the README).

    Args:
        max_running: How many background jobs run at once in this process.
        max_queued_jobs: How many may wait or run at once; past it, and past
            ``max_queued_bytes`` of their bodies, informational deliveries are refused 503
            with ``Retry-After`` instead of being accepted and lost.
        max_queued_bytes: See ``max_queued_jobs``.
        queue: Durable mode: jobs go to this queue (a ``RedisQueue`` or a ``PostgresQueue``)
            before the 200, for ``voicehooks worker`` processes to run. ``None``: the queue of
            ``VOICEHOOKS_QUEUE_URL`` when set, else no queue (jobs run in this process).
        queue_failure: When the queue cannot take a delivery's jobs: ``"process"`` them here
            and log an error, or ``"reject"`` the delivery with 503.
        queue_key: Seal the queue's entries with AES-256-GCM (``voicehooks.work.sealing``):
            32 random bytes in base64url (``voicehooks queue new-key``), several
            comma-separated for a rotation, the first sealing. ``None``:
            ``VOICEHOOKS_QUEUE_KEY`` (or ``VOICEHOOKS_QUEUE_KEY_FILE``) when set, else the
            entries are in clear text. Needs the ``privacy`` extra; never shown in a repr.
    """

    max_running: int = 64
    max_queued_jobs: int = 2_000
    max_queued_bytes: int = 64 * 1024 * 1024
    queue: WorkQueue | None = None
    queue_failure: QueueFailure = "process"
    queue_key: str | None = dataclasses.field(default=None, repr=False)

    def __post_init__(self) -> None:
        _positive(self, "max_running", "max_queued_jobs", "max_queued_bytes")
        _one_of(self, "queue_failure", ("process", "reject"))
        if self.queue_key is not None:
            sealer_for(self.queue_key)  # a malformed key fails here, naming the setting


@dataclass(frozen=True, slots=True)
class Duplicates:
    """Once-only processing: each tool call and informational event runs once, however often
    it is delivered, and a duplicate gets the first answer (``voicehooks.state.dedupe``).
    ``VoiceHooks(duplicates=None)`` switches it off.

    Args:
        store: Where deliveries are remembered. ``None``: the store of
            ``VOICEHOOKS_STORE_URL`` (old name ``VOICEHOOKS_REDIS_URL``), else of
            ``VOICEHOOKS_QUEUE_URL``, when set (Redis or PostgreSQL); else a ``MemoryStore``
            (this process only).
        ttl_seconds: How long a handled delivery is remembered.
        store_failure: When the store fails or is slow: ``"process"`` the delivery anyway
            and log an error, or ``"reject"`` it with 503.
        intent_ttl_seconds: How long a ``once_per_call`` tool's answer is remembered after
            its last use, within its call (and no longer than until the call's report has
            been handled); a tool's ``key_ttl_seconds`` sets its own.
        call_state_max_bytes: The bound of one call's ``CallState``: names and encoded
            values together; ``CallStateFull`` past it.
        call_state_ttl_seconds: How long a call's ``CallState`` is kept after its last
            write (it is cleared once the call's end-of-call-report handlers finished).

    With ``duplicates=None``, ``once_per_call`` tools and ``CallState`` keep these defaults
    and live in this process's memory.
    """

    store: DeliveryStore | None = None
    ttl_seconds: float = 3600.0
    store_failure: StoreFailure = "process"
    intent_ttl_seconds: float = 3 * 3600.0
    call_state_max_bytes: int = 64 * 1024
    call_state_ttl_seconds: float = 3 * 3600.0

    def __post_init__(self) -> None:
        _positive(
            self,
            "ttl_seconds",
            "intent_ttl_seconds",
            "call_state_max_bytes",
            "call_state_ttl_seconds",
        )
        _one_of(self, "store_failure", ("process", "reject"))


@dataclass(frozen=True, slots=True)
class Platform:
    """The way back to the platform's REST API: call control, late results, reconciliation.

    Args:
        api: The REST client. ``None``: a ``PlatformClient`` with the key from
            ``VOICEHOOKS_API_KEY`` (or ``VOICEHOOKS_API_KEY_FILE``), read at startup and only
            when a registration needs it (a missing key then stops the startup, naming it).
        command_limit: The call-control limit to keep, across every worker that shares the
            store: 10 commands per 60 s per call.
        reconcile: Fetch the calls whose ``end-of-call-report`` never came and run the report
            handlers on them (``EndOfCallReport.reconciled``); off when ``None``. Needs the
            API key, and Redis to happen once across several workers.
    """

    api: PlatformClient | None = None
    command_limit: CommandLimit = DEFAULT_COMMAND_LIMIT
    reconcile: Reconciliation | None = None


@dataclass(frozen=True, slots=True)
class Mcp:
    """The app's tools over MCP (Streamable HTTP), for the platform's MCP servers
    (``voicehooks.mcp``; docs: "MCP").

    Secure by default: without a token there is no endpoint, and its path answers 404 as any
    unknown path does.

    Args:
        tokens: The bearer tokens a client must send (``Authorization: Bearer ...``); several
            are all accepted, to rotate without downtime. Empty: ``VOICEHOOKS_MCP_TOKEN``
            (comma-separated) or the lines of the file ``VOICEHOOKS_MCP_TOKEN_FILE`` names,
            read when the app is made.
        path: Where the endpoint is served, beside the webhook.
        deadline_seconds: A tool call's deadline (a tool's own ``timeout_seconds`` wins when
            smaller): a little under the 20 s an MCP server of the platform waits by default
            (``timeout_seconds``, 5-60).
    """

    tokens: Sequence[str] = ()
    path: str = "/mcp"
    deadline_seconds: float = 18.0

    def __post_init__(self) -> None:
        _positive(self, "deadline_seconds")
        if isinstance(self.tokens, str):
            raise ConfigurationError("Mcp(tokens=...) takes a list of tokens, not one string")
        if not self.path.startswith("/"):
            raise ConfigurationError(f"Mcp(path=...) must start with '/', got {self.path!r}")

    def resolved_tokens(self) -> list[str]:
        """``tokens`` if given, else ``VOICEHOOKS_MCP_TOKEN`` (or its file); empty: no endpoint.

        Raises:
            ConfigurationError: ``tokens`` holds only blanks.
        """
        if not self.tokens:
            return environment.mcp_tokens()
        given = [token.strip() for token in self.tokens if token.strip()]
        if not given:
            raise ConfigurationError("Mcp(tokens=...) was given but is empty")
        return given


@dataclass(frozen=True, slots=True)
class Privacy:
    """Where the personal data callers say goes (see "Personal data" in the docs).

    Recordings, ``voicehooks replay``'s output and the inspector always redact; handlers get
    the real report unless ``redact_handlers``.

    Args:
        languages: The languages whose spoken numbers and context words redaction reads
            (``voicehooks.privacy``; ``"en"``, ``"nl"`` or one added with ``add_language``).
        redact_handlers: Handlers (``@app.on``, except ``assistant-request``, which routes
            the live call) get the event with its personal data redacted (``[card]``,
            ``[phone]``, ...), for teams whose storage must never hold a card number (PCI
            DSS). The redaction is done before the job is queued, so a durable queue and its
            dead letters never hold the data either.
        record_raw: Recordings keep personal data as received (``--record-raw``); the
            recorder logs a warning and each line says ``"redacted": false``.
        token_key: The key of ``Sensitive`` arguments' tokens (HMAC-SHA256). ``None``: a
            random key per process, so a token joins records of one process only; give every
            process the same key (32 random bytes, kept like the webhook secret) to join
            them across processes and restarts.
    """

    languages: tuple[str, ...] = ("en", "nl")
    redact_handlers: bool = False
    record_raw: bool = False
    token_key: bytes | None = None

    def __post_init__(self) -> None:
        if self.token_key is not None and len(self.token_key) < 16:
            raise ConfigurationError("Privacy(token_key=...) must be at least 16 bytes")
        if self.languages != ("en", "nl"):
            # Checked here only when not the built-in ones: the detector is imported where it
            # runs, never on the request path.
            from .privacy.languages import lexicon

            try:
                lexicon(tuple(self.languages))
            except ValueError as exc:
                raise ConfigurationError(f"Privacy(languages=...): {exc}") from None


# old keyword -> (the setting that replaces it, its field)
_MOVED: Final = {
    "tool_timeout_seconds": ("deadlines", "tool_seconds"),
    "assistant_request_timeout_seconds": ("deadlines", "assistant_request_seconds"),
    "body_timeout_seconds": ("deadlines", "body_seconds"),
    "background_timeout_seconds": ("deadlines", "background_seconds"),
    "shutdown_grace_seconds": ("deadlines", "shutdown_grace_seconds"),
    "max_body_bytes": ("limits", "max_body_bytes"),
    "tolerance_seconds": ("limits", "timestamp_tolerance_seconds"),
    "max_threads": ("limits", "max_threads"),
    "max_background_threads": ("limits", "max_background_threads"),
    "max_abandoned_threads": ("limits", "max_abandoned_threads"),
    "max_background_jobs": ("background", "max_running"),
    "max_queued_jobs": ("background", "max_queued_jobs"),
    "max_queued_bytes": ("background", "max_queued_bytes"),
    "queue": ("background", "queue"),
    "queue_failure": ("background", "queue_failure"),
    "store": ("duplicates", "store"),
    "store_failure": ("duplicates", "store_failure"),
    "dedupe_ttl_seconds": ("duplicates", "ttl_seconds"),
    "api": ("platform", "api"),
    "command_limit": ("platform", "command_limit"),
    "reconcile": ("platform", "reconcile"),
}
_CLASSES: Final[dict[str, type]] = {
    "deadlines": Deadlines,
    "limits": Limits,
    "background": Background,
    "duplicates": Duplicates,
    "platform": Platform,
}


def deprecated_keywords(
    old: dict[str, Any], settings: dict[str, Any], observers: Sequence[Observer]
) -> tuple[dict[str, Any], list[Observer]]:
    """Fold ``VoiceHooks``'s 0.1/0.2 keyword arguments ``old`` into ``settings`` (the new
    keyword arguments, by name) and ``observers``; warn once per keyword with its replacement.

    ``metrics=True`` and ``tool_stats=True`` become observers; ``deduplicate=False`` becomes
    ``duplicates=None``.

    Raises:
        TypeError: A keyword that never existed, as Python would say.
    """
    settings = dict(settings)
    installed = list(observers)
    for name, value in old.items():
        if name in _MOVED:
            group, field = _MOVED[name]
            _warn(name, f"{group}={_CLASSES[group].__name__}({field}=...)")
            current = settings[group]
            if current is None:  # duplicates=None and store=...: the old API refused this too
                raise ConfigurationError(f"{name}= has no use with duplicates=None; drop one")
            settings[group] = dataclasses.replace(current, **{field: value})
        elif name == "deduplicate":
            _warn(name, "duplicates=None (to switch it off)")
            if not value:
                settings["duplicates"] = None
        elif name == "clock":
            raise ConfigurationError(
                "VoiceHooks(clock=...) is gone: set app.verifier.clock, the clock of the "
                "signature's freshness check (voicehooks.testing.ManualClock in tests)"
            )
        elif name in ("metrics", "tool_stats"):
            replacement = "PrometheusObserver()" if name == "metrics" else "ToolStats()"
            _warn(name, f"observers=[{replacement}]")
            if value:
                installed.append(_observer(name))
        else:
            raise TypeError(f"VoiceHooks() got an unexpected keyword argument {name!r}")
    return settings, installed


def _observer(name: str) -> Observer:
    if name == "metrics":
        from .observe.metrics import PrometheusObserver

        return PrometheusObserver()
    from .observe.toolstats import ToolStats

    return ToolStats()


def _warn(name: str, replacement: str) -> None:
    warnings.warn(
        f"VoiceHooks({name}=...) is deprecated and goes in the next release: "
        f"use VoiceHooks({replacement})",
        DeprecationWarning,
        stacklevel=4,
    )
