"""Health probes for load balancers and Kubernetes: ``GET /healthz`` and ``GET /healthz/ready``.

Both are unauthenticated ``GET`` (and ``HEAD``) routes beside the webhook, served by an
observer (``Observer.routes``), and every app has one unless it installs its own
``Health(path=...)`` or ``Health(path=None)`` (none):

* ``{path}``: *live*, 200 ``{"status":"live"}`` while the process serves requests at all.
  A liveness probe restarts a process that stops answering it.
* ``{path}/ready``: *ready*, 200 ``{"status":"ready"}`` only once the app's lifespan has
  started and, when the app has a Redis store or queue, that Redis answers a ``PING``;
  503 ``{"status":"not ready"}`` otherwise. A readiness probe takes the process out of the
  load balancer until then: a receiver whose duplicate store is gone would answer 503 anyway.

The answer says nothing else: not which store failed, nor any tool, call or version, because
probes are unauthenticated and often reachable from outside. Why it failed is in the log, once
per change. A probe costs next to nothing: the ping's outcome is kept ``cache_seconds``
(1 s), so a dozen probes a second make one ``PING`` a second, and concurrent probes share it.
Probes are never logged above DEBUG (``voicehooks run`` has no access log; a probe is not a
delivery).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from voicehooks.observe.observers import Observer

if TYPE_CHECKING:
    from voicehooks.tools.definition import Tool

__all__ = ["Health"]

_log = logging.getLogger("voicehooks")

Ping = Callable[[], Awaitable[object]]

_LIVE = b'{"status":"live"}'
_READY = b'{"status":"ready"}'
_NOT_READY = b'{"status":"not ready"}'
_HEADERS = {"cache-control": "no-store"}


class Health(Observer):
    """Serve the live and ready probes at ``path`` and ``path + "/ready"``.

    Args:
        path: Where the liveness probe is; the readiness probe is beneath it. ``None``
            serves neither (the app then has no probe routes at all).
        cache_seconds: How long a readiness answer is reused before Redis is pinged again.
        ping_timeout_seconds: How long a ping may take before the app counts as not ready.

    Examples:
        >>> from voicehooks import VoiceHooks
        >>> from voicehooks.observe import Health
        >>> app = VoiceHooks(secret="whsec_example", observers=[Health(path="/_health")])
    """

    def __init__(
        self,
        path: str | None = "/healthz",
        *,
        cache_seconds: float = 1.0,
        ping_timeout_seconds: float = 2.0,
    ) -> None:
        if path is not None and (not path.startswith("/") or path == "/"):
            raise ValueError(f"Health path must start with '/' and not be '/', got {path!r}")
        self.path = path.rstrip("/") if path is not None else None
        self.cache_seconds = cache_seconds
        self.ping_timeout_seconds = ping_timeout_seconds
        self._started: Callable[[], bool] = lambda: True
        self._pings: Sequence[Ping] = ()
        self._checked_at = -float("inf")
        self._answered = True
        self._lock = anyio.Lock()

    def watch(self, started: Callable[[], bool], pings: Sequence[Ping]) -> None:
        """What readiness means for one app: its lifespan ``started()``, and each ping answers.

        The app calls this when it installs the observer.
        """
        self._started, self._pings = started, pings

    def routes(self, tools: Mapping[str, Tool]) -> Sequence[BaseRoute]:
        """The two probes, or none when ``path`` is ``None``."""
        if self.path is None:
            return ()
        return (
            Route(self.path, self._live, methods=["GET", "HEAD"]),
            Route(self.path + "/ready", self._ready, methods=["GET", "HEAD"]),
        )

    async def is_ready(self) -> bool:
        """Whether the lifespan started and every ping answered (within ``cache_seconds``)."""
        if not self._started():
            return False
        async with self._lock:  # concurrent probes wait for one ping instead of each sending one
            if time.monotonic() - self._checked_at >= self.cache_seconds:
                answered = await self._ping_all()
                if answered != self._answered:
                    _log.log(
                        logging.INFO if answered else logging.WARNING,
                        "readiness: %s",
                        "ready again" if answered else "not ready, a store or queue did not answer",
                    )
                self._answered = answered
                self._checked_at = time.monotonic()
            return self._answered

    async def _ping_all(self) -> bool:
        for ping in self._pings:
            try:
                with anyio.fail_after(self.ping_timeout_seconds):
                    await ping()
            except Exception as exc:
                _log.debug("readiness ping failed: %s", type(exc).__name__)
                return False
        return True

    async def _live(self, request: Request) -> Response:
        return Response(_LIVE, media_type="application/json", headers=_HEADERS)

    async def _ready(self, request: Request) -> Response:
        ready = await self.is_ready()
        return Response(
            _READY if ready else _NOT_READY,
            status_code=200 if ready else 503,
            media_type="application/json",
            headers=_HEADERS,
        )
