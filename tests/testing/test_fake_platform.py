"""FakePlatform on its own: the documented limits, headers and error bodies; in-process, served."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from voicehooks.testing import FakePlatform

pytestmark = pytest.mark.anyio

KEY = "vh-fake-key"
AUTH = {"authorization": f"Bearer {KEY}"}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def say(text: str = "hi") -> dict[str, Any]:
    return {"type": "say", "content": text, "end_after": False}


async def test_every_answer_carries_the_rate_limit_headers() -> None:
    platform = FakePlatform(api_key=KEY)
    async with httpx.AsyncClient(transport=platform.transport()) as http:
        ok = await http.post(f"{platform.base_url}/calls/c/control", json=say(), headers=AUTH)
        denied = await http.get(f"{platform.base_url}/calls/c")
        missing = await http.get(f"{platform.base_url}/assistants/x", headers=AUTH)
    assert ok.status_code == 200
    assert ok.json() == {"success": True}
    assert (ok.headers["x-ratelimit-limit"], ok.headers["x-ratelimit-remaining"]) == ("10", "9")
    assert int(ok.headers["x-ratelimit-reset"]) >= int(time.time())
    for response in (denied, missing):
        assert response.headers["x-ratelimit-limit"] == "100"
    assert denied.status_code == 401
    assert missing.status_code == 404


async def test_the_eleventh_command_in_a_window_is_429_until_the_first_leaves_it() -> None:
    clock = Clock()
    platform = FakePlatform(api_key=KEY, clock=clock)
    async with httpx.AsyncClient(transport=platform.transport()) as http:
        url = f"{platform.base_url}/calls/c/control"
        for _ in range(10):
            assert (await http.post(url, json=say(), headers=AUTH)).status_code == 200
            clock.now += 1
        refused = await http.post(url, json=say(), headers=AUTH)
        other_call = await http.post(
            f"{platform.base_url}/calls/d/control", json=say(), headers=AUTH
        )
        clock.now = 160.0  # the first command left the window
        again = await http.post(url, json=say(), headers=AUTH)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "50"
    assert refused.json() == {
        "error": "rate_limit_exceeded",
        "message": "Rate limit exceeded",
        "retry_after": 50,
    }
    assert other_call.status_code == 200
    assert again.status_code == 200
    assert platform.most_in_any_window("c") == 10


@pytest.mark.parametrize(
    ("command", "status"),
    [
        ({"type": "inject-context", "content": "x", "trigger_response": True}, 200),
        ({"type": "say", "content": "x"}, 200),
        ({"type": "end-call"}, 200),
        ({"type": "transfer", "destination": "+3120", "message": "bye"}, 200),
        ({"type": "transfer"}, 422),
        ({"type": "say", "content": 3}, 422),
        ({"type": "say", "content": "x", "volume": 11}, 422),
        ({"type": "dance"}, 422),
        (["not", "an", "object"], 422),
    ],
)
async def test_commands_are_checked_against_the_documented_fields(
    command: Any, status: int
) -> None:
    platform = FakePlatform(api_key=KEY, error_shape="codes")
    async with httpx.AsyncClient(transport=platform.transport()) as http:
        response = await http.post(
            f"{platform.base_url}/calls/c/control", json=command, headers=AUTH
        )
    assert response.status_code == status
    if status != 200:
        assert response.json()["error"]["code"] == "invalid_command"
        assert response.json()["error"]["type"] == "invalid_request_error"


async def test_ended_calls_and_injected_failures() -> None:
    platform = FakePlatform(api_key=KEY, ended_status=404)
    platform.end_call("gone")
    platform.fail_next(1, status=500, retry_after=2)
    async with httpx.AsyncClient(transport=platform.transport()) as http:
        failed = await http.post(f"{platform.base_url}/calls/c/control", json=say(), headers=AUTH)
        ended = await http.post(f"{platform.base_url}/calls/gone/control", json=say(), headers=AUTH)
    assert (failed.status_code, failed.headers["retry-after"]) == (500, "2")
    assert ended.status_code == 404
    assert ended.json()["error"] == "call_not_active"
    assert [r.status for r in platform.received()] == [500, 404]
    assert platform.accepted() == []


@pytest.mark.slow
def test_it_serves_over_a_real_socket() -> None:
    platform = FakePlatform(api_key=KEY)
    platform.add_assistant("a-1", {"name": "Desk"})
    with platform.serve() as base_url:
        assert base_url.startswith("http://127.0.0.1:")
        with httpx.Client() as http:
            sent = http.post(f"{base_url}/calls/c/control", json=say("served"), headers=AUTH)
            assistant = http.get(f"{base_url}/assistants/a-1", headers=AUTH)
    assert sent.status_code == 200
    assert assistant.json() == {"assistant": {"id": "a-1", "name": "Desk"}}
    assert platform.accepted("c")[0].body == say("served")
    with pytest.raises(httpx.ConnectError), httpx.Client() as http:
        http.get(f"{base_url}/calls/c", headers=AUTH)  # stopped with the block


def test_received_and_accepted_are_methods_and_commands_still_works_with_a_warning() -> None:
    platform = FakePlatform()
    assert platform.received() == platform.accepted() == []
    with pytest.warns(DeprecationWarning, match=r"received\(\)"):
        assert platform.commands == []
