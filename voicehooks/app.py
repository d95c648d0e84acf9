"""``VoiceHooks``, the app: make one, register tools and handlers on it, serve it.

    from voicehooks import VoiceHooks

    app = VoiceHooks()  # the secret from VOICEHOOKS_SECRET


    @app.tool
    async def check_repair_status(order_number: str) -> dict[str, str]:
        '''Return the repair status of a work order.'''
        ...

``voicehooks run myapp:app`` serves it; so does any ASGI server (uvicorn, gunicorn with
uvicorn workers), alone or mounted in a Starlette or FastAPI app. ``app.tools`` holds the
registered tools (``voicehooks.tools.Tool``), ``app.tool_definitions(url)`` what the
assistant declares, and ``app.lifespan()`` the startup and shutdown to compose when mounted.
"""

# How a delivery goes through (DESIGN.md draws the pipeline): a POST to the app's path goes
# straight through ``_handle``: headers are read once, the body is streamed in under a size
# cap, the signature is checked over the exact bytes, the body is decoded into a typed event
# in one pass, and the dispatcher's answer is sent as JSON. Every other ASGI message
# (lifespan, other paths, websockets) goes to a Starlette ``Router``, which runs the lifespan
# protocol, serves what observers contribute (``GET /metrics``) and answers unknown paths with
# a JSON 404. This is the one module that composes across the subpackages: the constructor
# builds each collaborator once, in the order they need each other, from the settings values;
# nothing is patched in afterwards. The hot path is raw ASGI on purpose: a Request object, a
# Response object and a middleware stack would triple the cost of a one-call tool request.

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any, Final

import anyio
import msgspec
from starlette.datastructures import State
from starlette.routing import Router
from starlette.types import Receive, Scope, Send

from .core import environment
from .core.events import Event, UnknownEventType, decode_delivery
from .core.exceptions import (
    ConfigurationError,
    MethodNotAllowed,
    PayloadError,
    PayloadTooLarge,
    RequestError,
    RequestTimeout,
    SignatureError,
    Unavailable,
    UnsupportedMediaType,
)
from .core.http import JSON, is_json
from .core.logline import log_delivery
from .core.logs import describe, loggable, masked
from .core.records import Delivery, DeliveryOutcome
from .core.running import Threads, within
from .core.signing import Verifier, is_milliseconds
from .core.tasks import TaskOwner
from .live.control import CallControl
from .live.reconcile import Reconciler
from .mcp import McpEndpoint, offered
from .observe.health import Health
from .observe.observers import Observer, ObserverSet
from .observe.recording import REPLAY_HEADER
from .pipeline.dispatch import EMPTY, Dispatcher
from .pipeline.routing import Registry
from .settings import (
    Background,
    Deadlines,
    Duplicates,
    Limits,
    Mcp,
    Platform,
    Privacy,
    deprecated_keywords,
)
from .state.dedupe import Deduplicator
from .state.stores import DeliveryStore, default_store
from .tools.definition import UnknownArguments
from .tools.sensitive import Tokens, mask_body
from .work.durable import DurableSink, default_queue
from .work.jobs import Job, JobSink
from .work.queue import WorkQueue
from .work.runner import BackgroundRunner
from .work.sealing import sealer_for

__all__ = ["VoiceHooks", "resolve_secrets"]

_log = logging.getLogger("voicehooks")

Lifespan = Callable[["VoiceHooks"], AbstractAsyncContextManager[Any]]

_EXTRA_HEADERS: Final[dict[int, list[tuple[bytes, bytes]]]] = {
    405: [(b"allow", b"POST")],
    # The body was not read to its end: the connection cannot carry another request.
    408: [(b"connection", b"close")],
    413: [(b"connection", b"close")],
}
_NO_HEADERS: Final[list[tuple[bytes, bytes]]] = []
_REJECTION_LEVEL: Final = {503: logging.DEBUG}
_encode = msgspec.json.Encoder().encode
# A value in one of msgspec's messages ("Invalid value 'x' - at `$.message.type`"): the
# sender's data, which a 400 never repeats (SECURITY.md). Types and paths are in backticks.
_VALUE: Final = re.compile(r"'(?:[^'\\]|\\.)*'")


class VoiceHooks(Registry):
    """A webhook receiver for the HMS Sovereign / VoiceDock voice platform, as an ASGI app.

    Args:
        secret: The webhook secret, or several (all accepted: rotate without downtime). Read
            from ``VOICEHOOKS_SECRET`` (comma-separated) or the file named by
            ``VOICEHOOKS_SECRET_FILE`` when omitted.
        path: The path the platform posts to.
        verify_signatures: Switch signature checks off for local experiments only; every
            startup then logs a warning.
        deadlines: How long answers, bodies, background jobs and shutdown may take.
        limits: Body size, timestamp tolerance, and the threads user functions may hold.
        background: Work after the answer: its bounds here, or a durable queue.
        duplicates: Once-only processing of redeliveries; ``None`` switches it off.
        platform: The way back to the platform's REST API (``LiveCall``, late results of
            slow tools, reconciliation of lost reports).
        privacy: Where personal data goes: redacted handlers, raw recordings, the languages
            redaction reads, the key of ``Sensitive`` arguments' tokens.
        mcp: The tools over MCP, for the platform's MCP servers: served at ``Mcp.path`` when
            a token is set (``Mcp.tokens`` or ``VOICEHOOKS_MCP_TOKEN``), absent otherwise.
        lifespan: ``lifespan(app)`` returning an async context manager, for setup and
            teardown (a database pool, say); keep what handlers need on ``app.state``.
        observers: Told about every delivery, tool call and job (see ``voicehooks.observe``);
            an observer may serve routes beside the webhook (``PrometheusObserver``:
            ``GET /metrics``). ``VOICEHOOKS_METRICS=1`` (``voicehooks run --metrics``) adds a
            ``PrometheusObserver`` unless one is given. The health probes (``GET /healthz``,
            ``GET /healthz/ready``) are a ``Health`` observer, added unless one is given.
        unknown_arguments: What tools do with arguments their definition lacks: ``"ignore"``
            them or ``"forbid"`` the call (an error for the model naming the nearest
            parameter); a tool's own ``unknown_arguments=`` wins.
        **deprecated: The keyword arguments of 0.1 and 0.2 (``tool_timeout_seconds=``,
            ``store=``, ...), for one release: each warns with its replacement.

    Attributes:
        development: Development mode, set by ``voicehooks dev`` (its inspector): a delivery
            with ``X-Voicehooks-Replay`` is a replay (``CallContext.is_replay``), and with the
            value ``bypass-dedupe`` it runs even if it is a duplicate. Outside development
            mode the header is ignored: it is not signed, and anyone could send it.

    Examples:
        >>> from voicehooks import Deadlines, VoiceHooks
        >>> app = VoiceHooks(secret="whsec_example", deadlines=Deadlines(tool_seconds=6.0))
    """

    def __init__(
        self,
        secret: str | Sequence[str] | None = None,
        *,
        path: str = "/",
        verify_signatures: bool = True,
        deadlines: Deadlines = Deadlines(),  # noqa: B008  (frozen values: safe to share)
        limits: Limits = Limits(),  # noqa: B008
        background: Background = Background(),  # noqa: B008
        duplicates: Duplicates | None = Duplicates(),  # noqa: B008
        platform: Platform = Platform(),  # noqa: B008
        privacy: Privacy = Privacy(),  # noqa: B008
        mcp: Mcp = Mcp(),  # noqa: B008
        lifespan: Lifespan | None = None,
        observers: Sequence[Observer] = (),
        unknown_arguments: UnknownArguments = "ignore",
        **deprecated: Any,
    ) -> None:
        super().__init__()
        if deprecated:
            given = {
                "deadlines": deadlines,
                "limits": limits,
                "background": background,
                "duplicates": duplicates,
                "platform": platform,
            }
            folded, observers = deprecated_keywords(deprecated, given, observers)
            deadlines, limits, background = (
                folded["deadlines"],
                folded["limits"],
                folded["background"],
            )
            duplicates, platform = folded["duplicates"], folded["platform"]
        if not path.startswith("/"):
            raise ConfigurationError(f"path must start with '/', got {path!r}")
        if unknown_arguments not in ("ignore", "forbid"):
            raise ConfigurationError(
                f"unknown_arguments must be 'ignore' or 'forbid', got {unknown_arguments!r}"
            )
        self.unknown_arguments = unknown_arguments
        self.deadlines, self.limits, self.background = deadlines, limits, background
        self.duplicates, self.platform = duplicates, platform
        self.privacy = privacy
        self.path = path
        trimmed = path.rstrip("/")
        self._paths = frozenset({trimmed, trimmed + "/"})
        self.state = State()
        self.development = False
        self._user_lifespan = lifespan
        self._warned_milliseconds = False

        self.verify_signatures = verify_signatures
        self.verifier: Verifier | None = None
        secrets = resolve_secrets(secret)
        self._secret_count = len(secrets)
        if verify_signatures:
            if not secrets:
                raise ConfigurationError(
                    f"No webhook secret. Set {environment.SECRET} (several: comma-separated), "
                    f"point {environment.SECRET_FILE} at a file, or pass VoiceHooks(secret=...). "
                    "For local experiments only, VoiceHooks(verify_signatures=False) accepts "
                    "unsigned requests."
                )
            self.verifier = Verifier(secrets, tolerance_seconds=limits.timestamp_tolerance_seconds)
        else:
            _warn_unverified()

        # Built once, each after what it needs; see DESIGN.md for the picture.
        self.tasks = TaskOwner(deadlines.shutdown_grace_seconds)
        self.store: DeliveryStore | None = None
        deduplicator = None
        if duplicates is not None:
            self.store = duplicates.store if duplicates.store is not None else default_store()
            deduplicator = Deduplicator(
                self.store,
                ttl_seconds=duplicates.ttl_seconds,
                store_failure=duplicates.store_failure,
            )
        background_threads = Threads(limits.max_background_threads, limits.max_abandoned_threads)
        self.call_control = CallControl(
            platform.api,
            self.store,
            platform.command_limit,
            self.undelivered_hooks,
            background_threads,
            self.tasks,
        )
        self.runner = BackgroundRunner(
            self.tasks,
            max_concurrency=background.max_running,
            max_queued=background.max_queued_jobs,
            max_queued_bytes=background.max_queued_bytes,
        )
        queue = background.queue if background.queue is not None else default_queue()
        self.durable: DurableSink | None = None
        sink: JobSink = self.runner
        if queue is not None:
            sink = self.durable = DurableSink(
                queue,
                self.runner,
                failure=background.queue_failure,
                once=deduplicator,
                sealer=sealer_for(background.queue_key),
            )
        self.observers = ObserverSet()
        memory = duplicates if duplicates is not None else Duplicates()
        self.dispatcher = Dispatcher(
            self,
            tool_timeout_seconds=deadlines.tool_seconds,
            assistant_request_timeout_seconds=deadlines.assistant_request_seconds,
            background_timeout_seconds=deadlines.background_seconds,
            live_threads=Threads(limits.max_threads, limits.max_abandoned_threads),
            background_threads=background_threads,
            deduplicator=deduplicator,
            observers=self.observers,
            sink=sink,
            runner=self.runner,
            control=self.call_control,
            # Intents and call state need a store even when deliveries are not deduplicated:
            # then the call control's, in this process's memory.
            intents=Deduplicator(
                self.call_control.store,
                ttl_seconds=memory.intent_ttl_seconds,
                store_failure=memory.store_failure,
            ),
            call_state_max_bytes=memory.call_state_max_bytes,
            call_state_ttl_seconds=memory.call_state_ttl_seconds,
            tokens=Tokens(privacy.token_key),
            redact_languages=privacy.languages if privacy.redact_handlers else None,
        )
        self.reconciler: Reconciler | None = None
        if platform.reconcile is not None:
            self.reconciler = Reconciler(
                self.call_control.api, self.call_control.store, self._reconciled, platform.reconcile
            )
        self.mcp = mcp
        self.mcp_endpoint: McpEndpoint | None = None
        self._mcp_paths: frozenset[str] = frozenset()
        tokens = mcp.resolved_tokens()
        if tokens:
            trimmed = mcp.path.rstrip("/")
            self._mcp_paths = frozenset({trimmed, trimmed + "/"})
            if self._mcp_paths & self._paths:
                raise ConfigurationError(
                    f"Mcp(path={mcp.path!r}) is the webhook's path too: give one another path"
                )
            self.mcp_endpoint = McpEndpoint(
                self,
                tokens,
                deadline_seconds=mcp.deadline_seconds,
                answerer=self.dispatcher.tool_calls,
                observers=self.observers,
                read_body=self._read_body,
                answered=self._answered,
                server_version=_version(),
            )
        self._router = Router(default=_not_found, lifespan=lambda _: self.lifespan())
        if environment.metrics_switched_on():  # voicehooks run --metrics
            from .observe.metrics import PrometheusObserver

            if not any(isinstance(observer, PrometheusObserver) for observer in observers):
                observers = [*observers, PrometheusObserver()]
        self._serving = False  # the lifespan started and has not ended: readiness
        if not any(isinstance(observer, Health) for observer in observers):
            observers = [*observers, Health()]  # GET /healthz, /healthz/ready
        for observer in observers:
            self.add_observer(observer)

    @property
    def queue(self) -> WorkQueue | None:
        """The durable queue, or ``None`` when jobs run in this process."""
        return self.durable.queue if self.durable is not None else None

    def add_observer(self, observer: Observer) -> Observer:
        """Install ``observer``: it is told about every delivery, tool call and job, and the
        app serves its ``routes`` beside the webhook.

        Raises:
            ConfigurationError: One of its routes is the webhook's own path.
        """
        routes = list(observer.routes(self.tools))
        for route in routes:
            path = getattr(route, "path", None)
            if path in self._paths or path in self._mcp_paths:
                what = "webhook" if path in self._paths else "MCP endpoint"
                raise ConfigurationError(
                    f"{type(observer).__name__} serves {path}: give the {what} another path"
                )
        if isinstance(observer, Health):  # readiness is the app's: the lifespan and its Redis
            self.health = observer  # voicehooks worker serves the same probes on its port
            pings = [getattr(self.store, "ping", None), getattr(self.queue, "ping", None)]
            observer.watch(lambda: self._serving, [ping for ping in pings if ping is not None])
        self.observers.add(observer)
        self._router.routes.extend(routes)
        return observer

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[Any]:
        """Run the user's lifespan and own background work; drain it on exit.

        ``voicehooks run`` and any ASGI server call this through the lifespan protocol. A
        parent app that mounts this one must enter it from its own lifespan, because mounted
        apps' lifespans are not run:

            @asynccontextmanager
            async def parent_lifespan(parent):
                async with hooks.lifespan():
                    yield

        Shutdown drains every background task (jobs, slow tools, reconciliation) once,
        within ``Deadlines.shutdown_grace_seconds`` in all, before the API client closes
        and before the user's teardown, which the work may still need.
        """
        if not self.verify_signatures:
            _warn_unverified()
        user = self._user_lifespan(self) if self._user_lifespan else nullcontext()
        if self.store is not None:
            await _open_store(self.store)
        if self.durable is not None:
            await self.durable.open()
        needs_api = self.uses_call_control or self.reconciler is not None
        if self.mcp_endpoint is not None:
            _log_offer(self)
        try:
            async with user as state, self.call_control.running(needs_api), self.tasks.owning():
                if self.reconciler is not None:
                    self.reconciler.start(self.tasks)
                self._serving = True
                try:
                    yield state
                finally:
                    self._serving = False
        finally:
            self.dispatcher.live_threads.close()
            self.dispatcher.background_threads.close()
            if self.store is not None:
                await _close_store(self.store)
            if self.durable is not None:
                await self.durable.aclose()

    async def _reconciled(self, body: bytes) -> bool:
        """Hand a report built by reconciliation to the dispatcher; ``False`` if refused."""
        delivery = Delivery(())
        delivery.body = body
        delivery.event = event = decode_delivery(body)
        delivery.event_type, delivery.call_id = event.type, event.call.id
        try:
            _, jobs = await self.dispatcher.answer(delivery)
        except Unavailable:
            return False
        if jobs:
            await self.dispatcher.start(jobs)
        return True

    # -- ASGI ---------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point."""
        if scope["type"] == "http":
            path = _route_path(scope)
            if path in self._paths:
                await self._handle(scope, receive, send)
                return
            if path in self._mcp_paths:
                assert self.mcp_endpoint is not None
                await self.mcp_endpoint(scope, receive, send)
                return
        await self._router(scope, receive, send)

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        delivery = Delivery(scope["headers"])
        observers = self.observers
        if observers.active:
            observers.delivery_started(delivery)
        jobs: Sequence[Job] = ()  # this process's work, started once the answer is out
        extra = _NO_HEADERS
        try:
            event = await self._receive_event(scope, receive, delivery)
            if event is None:  # the client went away before its body arrived
                delivery.outcome = DeliveryOutcome.DISCONNECTED
                self._answered(delivery)
                return
            body, jobs = await self.dispatcher.answer(delivery)
            status = 200
        except RequestError as exc:
            status = exc.status
            body = _encode({"error": str(exc)})
            extra = _rejection_headers(exc)
            # An Unavailable was logged where it arose, once per episode: not once per request.
            level = _REJECTION_LEVEL.get(status, logging.WARNING)
            if status == 405 and scope["method"] in ("GET", "HEAD"):
                level = logging.DEBUG  # a load balancer's default probe, GET /, every few seconds
            _log.log(level, "rejected %d: %s", status, exc)
        except UnknownEventType as exc:
            status, body = 200, EMPTY
            delivery.event_type, delivery.call_id = exc.event_type, exc.call_id
            delivery.outcome = DeliveryOutcome.UNKNOWN_EVENT
            if self.dispatcher.unknown_events.first(exc.event_type):
                _log.warning(
                    "unknown event type '%s' (call %s) answered {}; "
                    "a newer voicehooks may handle it",
                    loggable(exc.event_type),
                    masked(exc.call_id),
                )
        except Exception as exc:
            # A bug in voicehooks itself: user code is caught inside the dispatcher.
            _log.error("internal error while answering a delivery: %s", describe(exc))
            status, body = 500, b'{"error":"internal error"}'
            delivery.outcome = DeliveryOutcome.INTERNAL_ERROR
        await _send(send, status, body, extra)
        delivery.status, delivery.answer = status, body
        if not delivery.outcome:
            delivery.outcome = DeliveryOutcome.ANSWERED if status < 400 else _rejected(status)
        self._answered(delivery)
        if status == 200:  # a refused delivery changed nothing, and comes again
            if self.reconciler is not None and delivery.event is not None:
                await self.reconciler.note(delivery.event)
            if jobs:
                await self.dispatcher.start(jobs)

    def _answered(self, delivery: Delivery) -> None:
        delivery.duration_seconds = time.perf_counter() - delivery.started
        if delivery.event_type is not None and _log.isEnabledFor(logging.INFO):
            log_delivery(delivery)
        if self.observers.active:
            if delivery.masks:  # Sensitive tool arguments: observers keep only their tokens
                if delivery.body is not None:
                    delivery.body = mask_body(delivery.body, delivery.masks)
                delivery.answer = mask_body(delivery.answer, delivery.masks)
            self.observers.delivery_answered(delivery)

    async def _receive_event(
        self, scope: Scope, receive: Receive, delivery: Delivery
    ) -> Event | None:
        if scope["method"] != "POST":
            raise MethodNotAllowed(f"method {scope['method']} is not allowed; the platform POSTs")
        content_type = timestamp = signature = None
        declared = -1
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"x-webhook-signature":
                if signature is not None:
                    raise SignatureError("more than one X-Webhook-Signature header")
                signature = value
            elif name == b"x-webhook-timestamp":
                if timestamp is not None:
                    raise SignatureError("more than one X-Webhook-Timestamp header")
                timestamp = value
            elif name == b"content-length" and value.isdigit():
                # More digits than any real length is too large, without int()'s digit limit.
                declared = int(value) if len(value) <= 18 else self.limits.max_body_bytes + 1
        if content_type != JSON and not is_json(content_type):
            raise UnsupportedMediaType("Content-Type must be application/json")
        if declared > self.limits.max_body_bytes:
            raise PayloadTooLarge(self._too_large())
        if self.development:  # never read in production: the header is not signed
            _read_replay_header(scope["headers"], delivery)
        body = await self._read_body(receive)
        if body is None:
            return None
        delivery.body = body
        verifier = self.verifier
        if verifier is not None:
            stamp = timestamp.decode("latin-1") if timestamp is not None else None
            index = verifier.verify(
                body, stamp, signature.decode("latin-1") if signature is not None else None
            )
            if self._secret_count > 1 and _log.isEnabledFor(logging.DEBUG):
                _log.debug("signature matched secret #%d of %d", index + 1, self._secret_count)
            # Seconds have 10 digits until the year 2286: only a longer stamp needs a look.
            if (
                stamp is not None
                and len(stamp) > 10
                and not self._warned_milliseconds
                and is_milliseconds(stamp)
            ):
                self._warned_milliseconds = True
                _log.warning("X-Webhook-Timestamp arrives in milliseconds; read as such")
        try:
            event = decode_delivery(body)
        except msgspec.ValidationError as exc:
            fit = _VALUE.sub("(a value)", str(exc))  # msgspec quotes the offending value
            raise PayloadError(f"the payload does not fit the webhook envelope: {fit}") from None
        except msgspec.DecodeError as exc:
            raise PayloadError(f"the body is not valid JSON: {exc}") from None
        delivery.event, delivery.event_type, delivery.call_id = event, event.type, event.call.id
        if event.decode_issues:
            _log.warning(
                "%s (call %s) kept with %d field(s) that could not be read, given their "
                "defaults: %s",
                event.type,
                masked(event.call.id),
                len(event.decode_issues),
                ", ".join(f"{i.path} (expected {i.expected})" for i in event.decode_issues[:20]),
            )
        return event

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The body under ``Limits.max_body_bytes`` and ``Deadlines.body_seconds``; ``None``
        if the client went away first."""
        budget = self.deadlines.body_seconds
        started = time.monotonic()
        # Usually the whole body is already buffered: one message, taken without a timer.
        finished, message = await within(budget, receive())
        if finished:
            if message["type"] != "http.request":
                return None
            body: bytes = message.get("body", b"")
            size = len(body)
            if size > self.limits.max_body_bytes:
                raise PayloadTooLarge(self._too_large())
            if not message.get("more_body", False):
                return body
            left = budget - (time.monotonic() - started)
            finished, body = await within(left, self._read_more(receive, body, size))
        if not finished:
            raise RequestTimeout(f"the body did not arrive within {budget:g} s")
        read: bytes | None = body
        return read

    async def _read_more(self, receive: Receive, first: bytes, size: int) -> bytes | None:
        chunks = [first]
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            # Checked per chunk, so an oversized body is refused without being held in memory.
            if size > self.limits.max_body_bytes:
                raise PayloadTooLarge(self._too_large())
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self) -> str:
        return f"the body is larger than the limit of {self.limits.max_body_bytes} bytes"


def _read_replay_header(headers: Sequence[tuple[bytes, bytes]], delivery: Delivery) -> None:
    for name, value in headers:
        if name == REPLAY_HEADER:
            delivery.is_replay = True
            delivery.bypass_dedupe = value == b"bypass-dedupe"


def _rejected(status: int) -> str:
    return f"rejected_{status}"


def _rejection_headers(exc: RequestError) -> list[tuple[bytes, bytes]]:
    if isinstance(exc, Unavailable) and exc.retry_after_seconds is not None:
        return [(b"retry-after", str(exc.retry_after_seconds).encode())]
    return _EXTRA_HEADERS.get(exc.status, _NO_HEADERS)


async def _send(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    headers = [(b"content-type", JSON), (b"content-length", str(len(body)).encode()), *extra]
    try:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    except OSError:
        _log.info("the client disconnected before the answer (%d) was sent", status)


async def _open_store(store: DeliveryStore) -> None:
    # A store that is down at startup is no reason not to start: deliveries meet it as a
    # store fault, handled the way store_failure says.
    try:
        await store.open()
    except Exception as exc:
        _log.error("the duplicate-delivery store is not ready at startup: %s", exc)


async def _close_store(store: DeliveryStore) -> None:
    # Shielded and bounded: shutdown must neither be cut short here nor hang on the store.
    with anyio.move_on_after(2.0, shield=True):
        try:
            await store.aclose()
        except Exception as exc:
            _log.warning("closing the duplicate-delivery store failed: %s", exc)


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1000})
        return
    if scope.get("method") == "POST":  # a misconfigured webhook URL, most likely
        _log.warning(
            "rejected 404: POST to '%s', which is not the webhook endpoint (check the URL the "
            "platform is given against the app's path and mount point)",
            loggable(scope["path"]),
        )
    await _send(send, 404, b'{"error":"not found: the webhook endpoint is at the app\'s path"}', [])


def _route_path(scope: Scope) -> str:
    # Starlette's rule for mounted apps: ``path`` is absolute, ``root_path`` is the mount point.
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :]
    return path


def resolve_secrets(secret: str | Sequence[str] | None) -> list[str]:
    """The secrets to accept: ``secret`` if given, else ``VOICEHOOKS_SECRET`` (comma-separated)
    or the lines of the file named by ``VOICEHOOKS_SECRET_FILE``.
    """
    if secret is None:
        return environment.secrets()
    candidates = [secret] if isinstance(secret, str) else list(secret)
    secrets = [s.strip() for s in candidates if s.strip()]
    if not secrets:
        raise ConfigurationError("secret= was given but is empty")
    return secrets


def _version() -> str:
    from . import __version__  # the package imports this module

    return __version__


def _log_offer(app: VoiceHooks) -> None:
    tools, withheld = offered(app)
    path = app.mcp.path
    _log.info("MCP endpoint at %s offers %d tool(s)", path, len(tools))
    if withheld:
        _log.warning(
            "MCP endpoint at %s withholds %d tool(s) that need a call: %s",
            path,
            len(withheld),
            "; ".join(f"{name} ({reason})" for name, reason in withheld.items()),
        )


def _warn_unverified() -> None:
    _log.warning(
        "signature verification is OFF (verify_signatures=False): anyone who can reach this "
        "endpoint can send it events. Never run like this in production."
    )
