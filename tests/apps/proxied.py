"""The app that tests/cli/test_serve.py serves behind a pretend proxy.

It logs what uvicorn put in each request's scope (client, scheme, root path, path), so a
test can see what ``voicehooks run``'s proxy options did with the forwarded headers.
"""

from __future__ import annotations

import logging

from starlette.types import Receive, Scope, Send

from voicehooks import VoiceHooks

log = logging.getLogger("voicehooks.proxied")


class ScopeLoggingHooks(VoiceHooks):
    """A ``VoiceHooks`` app that logs each HTTP request's scope before answering it."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host, _ = scope["client"]
            log.warning(
                "scope client=%s scheme=%s root_path=%s path=%s",
                host,
                scope["scheme"],
                scope.get("root_path", ""),
                scope["path"],
            )
        await super().__call__(scope, receive, send)


app = ScopeLoggingHooks()


@app.on("status-update")
async def track() -> None:
    """Nothing to do: the scope is what the test looks at."""
