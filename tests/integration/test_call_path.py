"""How many package modules one plain tool call runs code in (issue 20: at most 10).

Counted with ``sys.setprofile`` around the ASGI call alone, so the test kit, the body's
encoding and the answer's decoding are not counted; the app's own path is. A symptom, not a
goal: the number says how many rooms a request walks through, and a newcomer reads each.
"""

from __future__ import annotations

import sys
from collections.abc import MutableMapping
from pathlib import Path
from types import FrameType
from typing import Any

import msgspec
import pytest

import voicehooks
from voicehooks import VoiceHooks, sign
from voicehooks.testing import tool_call, tool_calls

pytestmark = pytest.mark.anyio

PACKAGE = Path(voicehooks.__file__).resolve().parent
SECRET = "whsec_call_path"


def modules_run(app: VoiceHooks, body: bytes) -> tuple[set[str], bytes]:
    """The package modules whose code runs while ``app`` answers ``body``, and the answer."""
    headers = [(k.lower().encode(), v.encode()) for k, v in sign(body, SECRET).items()]
    scope: dict[str, Any] = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), *headers],
    }
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    seen: set[str] = set()

    def profile(frame: FrameType, event: str, arg: object) -> None:
        path = Path(frame.f_code.co_filename)
        if path.is_relative_to(PACKAGE):
            seen.add(".".join(path.relative_to(PACKAGE).with_suffix("").parts))

    async def call() -> None:
        sys.setprofile(profile)
        try:
            await app(scope, receive, send)
        finally:
            sys.setprofile(None)

    import anyio

    anyio.run(call)
    return seen, sent[-1]["body"]


def test_one_plain_tool_call_runs_code_in_at_most_ten_package_modules() -> None:
    app = VoiceHooks(secret=SECRET)

    @app.tool
    async def check_order(order_number: str) -> str:
        """Look up an order."""
        return f"{order_number} is ready"

    body = msgspec.json.encode(tool_calls(tool_call("check_order", {"order_number": "WO-1"})))
    modules, answer = modules_run(app, body)
    assert msgspec.json.decode(answer)["results"][0]["result"] == "WO-1 is ready"
    assert not any(module.startswith("testing") for module in modules)
    # 11 before the house was rebuilt (issue 20); the test file's own tool is not counted.
    assert len(modules) <= 10, ", ".join(sorted(modules))
