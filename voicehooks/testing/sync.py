"""``SyncWebhookClient``: the in-memory client for plain (non-async) tests.

It is ``WebhookClient`` driven through an anyio blocking portal: an event loop in a thread of
its own runs the app, and every method blocks until its coroutine there is done (the way
Starlette's ``TestClient`` works). There is one implementation of each request, the async
one; this class only carries calls across.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal

from .client import ASGIApp, Response, WebhookClient

__all__ = ["SyncWebhookClient"]

P = ParamSpec("P")
T = TypeVar("T")


class SyncWebhookClient:
    """Sends signed deliveries to an ASGI app in memory, from synchronous code.

    The same client as ``WebhookClient``, with the same arguments and methods, minus
    ``await``. ``with SyncWebhookClient(app) as client:`` runs the app's lifespan, like
    ``async with WebhookClient(app)``; without ``with``, each request runs to its very end,
    background handlers included, on an event loop of its own.

    Args:
        app: The ASGI app: a ``VoiceHooks`` app or a parent that mounts one.
        secret: Signs every request; see ``WebhookClient``.
        path: Where the webhook endpoint is: the mount path when mounted.
        clock: Returns the Unix time used for ``X-Webhook-Timestamp``.
        raise_exceptions: Raise a tool's or handler's unexpected exception from the call;
            see ``WebhookClient``.

    Example:
        >>> from voicehooks import VoiceHooks
        >>> from voicehooks.testing import SyncWebhookClient
        >>> app = VoiceHooks(secret="whsec_test")
        >>> @app.tool
        ... def add(a: int, b: int) -> int:
        ...     '''Add two numbers.'''
        ...     return a + b
        >>> with SyncWebhookClient(app, secret="whsec_test") as client:
        ...     print(client.call_tool("add", a=2, b=3))
        5
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        secret: str | None = None,
        path: str = "/",
        clock: Callable[[], float] = time.time,
        raise_exceptions: bool = True,
    ) -> None:
        self.client = WebhookClient(
            app, secret=secret, path=path, clock=clock, raise_exceptions=raise_exceptions
        )
        self._portal: BlockingPortal | None = None
        self._exit_stack: ExitStack | None = None

    def __enter__(self) -> SyncWebhookClient:
        """Start an event loop in a thread and the app's lifespan on it."""
        with ExitStack() as stack:
            portal = stack.enter_context(start_blocking_portal())
            # One task enters and leaves the async client: its task group demands it.
            lifespan: AbstractContextManager[Any] = portal.wrap_async_context_manager(self.client)
            stack.enter_context(lifespan)
            self._portal, self._exit_stack = portal, stack.pop_all()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Wait for requests and background work, shut the app down, stop the loop."""
        stack, self._exit_stack, self._portal = self._exit_stack, None, None
        assert stack is not None
        stack.__exit__(exc_type, exc, tb)

    def _call(self, function: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
        call = functools.partial(function, *args, **kwargs)
        if self._portal is not None:
            return self._portal.call(call)
        with start_blocking_portal() as portal:
            return portal.call(call)

    @property
    def secret(self) -> str | None:
        """The secret requests are signed with, or ``None`` for unsigned requests."""
        return self.client.secret

    def signed_headers(
        self, body: bytes, *, timestamp: int | None = None, event: str | None = None
    ) -> dict[str, str]:
        """See ``WebhookClient.signed_headers``."""
        return self.client.signed_headers(body, timestamp=timestamp, event=event)

    def post(
        self,
        body: bytes | Mapping[str, Any],
        *,
        headers: Mapping[str, str] | None = None,
        signed: bool = True,
        timestamp: int | None = None,
        method: str = "POST",
        path: str | None = None,
        chunks: Sequence[bytes] | None = None,
    ) -> Response:
        """See ``WebhookClient.post``."""
        return self._call(
            self.client.post,
            body,
            headers=headers,
            signed=signed,
            timestamp=timestamp,
            method=method,
            path=path,
            chunks=chunks,
        )

    def request(
        self, method: str, path: str, body: Sequence[bytes], headers: Sequence[tuple[str, str]]
    ) -> Response:
        """See ``WebhookClient.request``."""
        return self._call(self.client.request, method, path, body, headers)

    def call_tools(self, *calls: Mapping[str, Any], **envelope: Any) -> list[Any]:
        """See ``WebhookClient.call_tools``."""
        return self._call(self.client.call_tools, *calls, **envelope)

    def call_tool(self, name: str, /, **arguments: Any) -> Any:
        """See ``WebhookClient.call_tool``."""
        return self._call(self.client.call_tool, name, **arguments)

    def assistant_request(self, **fields: Any) -> Any:
        """See ``WebhookClient.assistant_request``."""
        return self._call(self.client.assistant_request, **fields)

    def status_update(self, status: str = "in-progress", **fields: Any) -> Response:
        """See ``WebhookClient.status_update``."""
        return self._call(self.client.status_update, status, **fields)

    def end_of_call_report(self, **fields: Any) -> Response:
        """See ``WebhookClient.end_of_call_report``."""
        return self._call(self.client.end_of_call_report, **fields)

    def wait_for_background(self, timeout_seconds: float = 10.0) -> None:
        """See ``WebhookClient.wait_for_background``."""
        self._call(self.client.wait_for_background, timeout_seconds)
