"""``Inspector``: the app of ``voicehooks dev``, a VoiceHooks app with its inspector pages.

Requests under ``/_voicehooks/`` go to the inspector; everything else, the lifespan included,
goes to the app unchanged. The inspector answers only loopback clients that name a loopback
host (so a DNS-rebinding page cannot read it) unless ``allow_remote``, refuses a replay posted
from another origin, and sends ``Cache-Control: no-store`` and a strict Content-Security-Policy
(its script and style are files of its own; nothing comes from elsewhere).
"""

from __future__ import annotations

import importlib.resources
import logging
import os
import time
import urllib.parse
from collections.abc import AsyncIterator
from typing import Final

import anyio
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route, Router
from starlette.types import Message, Receive, Scope, Send

from voicehooks.app import VoiceHooks
from voicehooks.observe.recording import REPLAY_HEADER
from voicehooks.observe.toolstats import STATS_PATH, StatsEndpoint, ToolStats

from .pages import (
    PREFIX,
    deliveries_fragment,
    delivery_page,
    index_page,
    is_duplicate,
    message_page,
)
from .store import REPLAY_OF_HEADER, RecentDeliveries

__all__ = ["Inspector"]

_log = logging.getLogger("voicehooks")

LOOPBACK: Final = frozenset({"127.0.0.1", "::1", "localhost"})
STREAM_SECONDS: Final = 2.0  # a live page's stream ends, and reconnects, this often
_HEADERS: Final = {
    "cache-control": "no-store",
    "content-security-policy": "default-src 'self'; frame-ancestors 'none'",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}


class Inspector:
    """An ASGI app: ``app`` itself, plus the inspector pages at ``/_voicehooks/``.

    Installs a ``RecentDeliveries`` observer on ``app`` (and ``ToolStats``, served at
    ``/_voicehooks/tools.json`` for ``voicehooks tools --check --url``), captures log lines per
    delivery and switches ``app`` into development mode, where replays are honoured (see
    ``voicehooks.observe.recording.REPLAY_HEADER``).

    Args:
        app: The app to serve and inspect.
        secret: Signs replays; ``None`` sends them unsigned (an app with
            ``verify_signatures=False``).
        capacity: How many recent deliveries are kept (the oldest go first).
        allow_remote: Answer inspector requests from other hosts too. The pages show personal
            data on request and can replay deliveries: only on a trusted network.
        history: A file that carries the list across restarts: read now, written when the
            app shuts down (``voicehooks dev`` passes one so that a reload keeps the list).
    """

    def __init__(
        self,
        app: VoiceHooks,
        *,
        secret: str | None,
        capacity: int = 200,
        allow_remote: bool = False,
        history: str | os.PathLike[str] | None = None,
    ) -> None:
        self.app = app
        self.history = history
        self.secret = secret
        self.allow_remote = allow_remote
        self.recent = RecentDeliveries(capacity)
        app.add_observer(self.recent)
        app.development = True
        self.recent.capture_logs()
        if history is not None:
            self.recent.load(history)
        # Development: every tool is measured, for tools --check; the app's own ToolStats if
        # it has one, which then serves STATS_PATH itself.
        stats = next((o for o in app.observers.observers if isinstance(o, ToolStats)), None)
        self.tool_stats = stats if stats is not None else ToolStats()
        if stats is None:
            app.observers.add(self.tool_stats)
        self._router = Router(
            routes=[
                Route(STATS_PATH, StatsEndpoint(self.tool_stats, app.tools)),
                Route(f"{PREFIX}/", self._index),
                Route(f"{PREFIX}/fragment", self._fragment),
                Route(f"{PREFIX}/events", self._events),
                Route(f"{PREFIX}/deliveries/{{entry_id:int}}", self._delivery),
                Route(
                    f"{PREFIX}/deliveries/{{entry_id:int}}/replay", self._replay, methods=["POST"]
                ),
                Route(f"{PREFIX}/static/{{name}}", self._static),
            ],
            redirect_slashes=True,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point."""
        path = scope.get("path", "")
        if scope["type"] == "lifespan" and self.history is not None:
            await self.app(scope, receive, self._saving_at_shutdown(send))
        elif scope["type"] != "http" or not (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.app(scope, receive, send)
        elif not self._allowed(scope):
            page = message_page("Not here", "The inspector answers on this machine only.")
            await HTMLResponse(page, 403, headers=_HEADERS)(scope, receive, send)
        else:
            await self._router(scope, receive, send)

    def _saving_at_shutdown(self, send: Send) -> Send:
        async def send_then_save(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                assert self.history is not None
                try:
                    self.recent.save(self.history)
                except OSError as exc:
                    _log.warning("the inspector's list could not be kept: %s", exc.strerror)
            await send(message)

        return send_then_save

    def _allowed(self, scope: Scope) -> bool:
        if self.allow_remote:
            return True
        client = scope.get("client")
        host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
        name = urllib.parse.urlsplit(f"//{host}").hostname or ""
        return client is not None and client[0] in LOOPBACK and name in LOOPBACK

    # -- pages --

    async def _index(self, request: Request) -> Response:
        page = index_page(self.recent.newest_first(), self.recent.capacity)
        return HTMLResponse(page, headers=_HEADERS)

    async def _fragment(self, request: Request) -> Response:
        return HTMLResponse(deliveries_fragment(self.recent.newest_first()), headers=_HEADERS)

    async def _delivery(self, request: Request) -> Response:
        entry = self.recent.get(request.path_params["entry_id"])
        if entry is None:
            return _gone()
        replays = self.recent.replays_of(entry.id)
        page = delivery_page(
            entry, reveal=request.query_params.get("reveal") == "1", replays=replays
        )
        return HTMLResponse(page, headers=_HEADERS)

    async def _static(self, request: Request) -> Response:
        name = request.path_params["name"]
        types = {"inspector.css": "text/css", "inspector.js": "text/javascript"}
        if name not in types:
            return PlainTextResponse("not found", 404)
        text = importlib.resources.files(__package__).joinpath("static", name).read_text()
        return Response(text, media_type=types[name], headers=_HEADERS)

    # -- live updates --

    async def _events(self, request: Request) -> Response:
        watching = self.recent.watch()
        if watching is None:
            return PlainTextResponse("too many pages are watching", 503, headers=_HEADERS)

        async def stream() -> AsyncIterator[str]:
            # Short streams: a server that reloads or stops waits for open responses, and
            # uvicorn tells them nothing. The page reconnects at once and reloads the list.
            yield "retry: 250\n\n"
            with watching as ids:
                deadline = anyio.current_time() + STREAM_SECONDS
                while (remaining := deadline - anyio.current_time()) > 0:
                    entry_id = None
                    with anyio.move_on_after(remaining):  # no yield inside: a generator's
                        try:  # scope must not stay open across its suspensions
                            entry_id = await ids.receive()
                        except (anyio.EndOfStream, anyio.ClosedResourceError):
                            return
                    if entry_id is None:
                        return
                    yield f"event: delivery\ndata: {entry_id}\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream", headers=_HEADERS)

    # -- replay --

    async def _replay(self, request: Request) -> Response:
        wants_json = "application/json" in request.headers.get("accept", "")
        origin = request.headers.get("origin")
        if origin is not None and urllib.parse.urlsplit(origin).netloc != request.headers.get(
            "host"
        ):
            return _refuse("a replay must come from the inspector's own page", 403, wants_json)
        entry = self.recent.get(request.path_params["entry_id"])
        if entry is None:
            return _refuse("that delivery is no longer kept", 404, wants_json)
        delivery = entry.delivery
        if delivery.body is None or delivery.event_type is None:
            return _refuse("nothing to replay: it was refused before decoding", 409, wants_json)
        if delivery.transport != "webhook":
            return _refuse(
                "nothing to replay: an MCP call is not a webhook delivery", 409, wants_json
            )
        form = urllib.parse.parse_qs((await request.body()).decode("latin-1"))
        bypass = form.get("bypass_dedupe") == ["1"]
        status = await self.replay(entry.id, delivery.body, delivery.event_type, bypass)
        newest = self.recent.replays_of(entry.id)
        if not newest:  # pragma: no cover - the app records every delivery it answers
            return _refuse("the replay was not recorded", 500, wants_json)
        if wants_json:
            answer = {"id": newest[0].id, "status": status, "duplicate": is_duplicate(newest[0])}
            return JSONResponse(answer, headers=_HEADERS)
        return RedirectResponse(f"{PREFIX}/deliveries/{newest[0].id}", 303, headers=_HEADERS)

    async def replay(self, entry_id: int, body: bytes, event: str, bypass_dedupe: bool) -> int:
        """Send ``body`` to the app again, in memory, signed as of now; return the status."""
        from voicehooks.testing import WebhookClient  # the test kit is not needed to serve

        _log.info(
            "replaying delivery #%d%s", entry_id, " (bypassing duplicates)" if bypass_dedupe else ""
        )
        # A bug the replay meets is answered and logged as in production, not raised here.
        client = WebhookClient(
            self.app, secret=self.secret, path=self.app.path, raise_exceptions=False
        )
        headers = {
            "x-webhook-event": event,
            REPLAY_HEADER.decode(): "bypass-dedupe" if bypass_dedupe else "1",
            REPLAY_OF_HEADER.decode(): str(entry_id),
        }
        started = time.perf_counter()
        response = await client.post(body, headers=headers)
        _log.debug("replay answered in %.1f ms", (time.perf_counter() - started) * 1000)
        return response.status_code


def _gone() -> Response:
    page = message_page("Not kept", "That delivery is no longer kept (only the newest are).")
    return HTMLResponse(page, 404, headers=_HEADERS)


def _refuse(text: str, status: int, wants_json: bool) -> Response:
    if wants_json:
        return JSONResponse({"error": text}, status, headers=_HEADERS)
    return HTMLResponse(message_page("Not replayed", text), status, headers=_HEADERS)
