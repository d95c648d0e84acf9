"""Test kit for voicehooks apps: a signed in-memory client, event factories and a clock.

Use it in your own test suite the way you would use Starlette's ``TestClient``. Tests are
async; run them with anyio's pytest plugin (installed with anyio) or pytest-asyncio:

    import pytest
    from voicehooks.testing import WebhookClient

    from myapp import app

    pytestmark = pytest.mark.anyio


    async def test_repair_status() -> None:
        async with WebhookClient(app) as client:
            result = await client.call_tool("check_repair_status", order_number="WO-2291")
        assert result == {"order_number": "WO-2291", "status": "ready for pickup"}

What is in here:

* ``WebhookClient`` sends deliveries to an ASGI app in memory, no socket and no server, signed
  exactly as the platform signs them. It drives a ``VoiceHooks`` app, or a Starlette/FastAPI
  app that mounts one (pass ``path=``). ``call_tool`` returns one tool's normalized result;
  ``assistant_request`` returns the decoded answer; ``status_update`` and
  ``end_of_call_report`` return the ``Response`` (``status_code``, ``headers``, ``content``,
  ``text``, ``json()``, named as in httpx); ``post`` sends anything at all.
* ``SyncWebhookClient`` is the same client for plain ``def test_...()`` functions, like
  Starlette's ``TestClient``: the same methods, without ``await``.
* A bug in a tool or handler fails the test: the client raises the exception again, as
  itself (``raise_exceptions=False`` answers as production does instead). Without
  ``secret=``, the client signs with the first secret the app accepts.
* Factories build the JSON payload of each event as a plain dict, with realistic defaults
  taken from the platform's documentation: ``tool_call`` and ``tool_calls``,
  ``assistant_request``, ``status_update``, ``end_of_call_report``. Every keyword a factory
  does not know becomes a field of ``message`` and replaces the default of the same name, so
  ``status_update("ended", end_reason="max_duration")`` or ``tool_calls(..., timestamp="...")``
  build the edge case you need. A fresh call id is made up unless you pass ``call_id=``.
* ``run_scenario(path, app)`` runs a whole-call scenario file (one call id through
  assistant-request, tool calls, status updates and the report, with expectations) and
  returns a report; ``report.check()`` fails the test with a readable account. The format is
  in ``voicehooks.testing.scenarios``; ``voicehooks simulate`` runs the same file.
* ``FakePlatform`` fakes the platform's REST endpoints a receiver and the tools call (call
  control, calls, assistants, MCP servers with a real ``/test``, workflows), in-process
  (``transport()``) or on a loopback port (``serve()``), with the real API's auth, limits and
  error bodies; it records every request (needs the ``api`` extra).
* ``ManualClock`` is a clock that moves only when told to, for ``WebhookClient(clock=...)``
  and the app's ``Verifier`` (``app.verifier.clock``): test the 300 s freshness window
  without sleeping.
* ``results_from_response`` reads a ``tool-calls`` answer as the platform does (one result
  per call id); ``normalize_result`` is what a tool's return value becomes on the wire.

With or without ``async with``:

* ``async with WebhookClient(app) as client:`` runs the app's lifespan (your ``lifespan=``
  setup and teardown, and the background runner), like a server does. Each answer comes back
  as soon as it is sent while background handlers go on running, as in production; call
  ``await client.wait_for_background()`` to wait for them, and leaving the block waits for
  them too, then shuts the app down.
* ``WebhookClient(app)`` alone runs no lifespan; each request then runs to its very end,
  background handlers included, before the answer is returned.

Examples:
    >>> import anyio
    >>> from voicehooks import VoiceHooks
    >>> from voicehooks.testing import WebhookClient
    >>> app = VoiceHooks(secret="whsec_test")
    >>> @app.tool
    ... async def add(a: int, b: int) -> int:
    ...     '''Add two numbers.'''
    ...     return a + b
    >>> async def main() -> None:
    ...     async with WebhookClient(app, secret="whsec_test") as client:
    ...         print(await client.call_tool("add", a=2, b=3))
    >>> anyio.run(main)
    5
"""

from voicehooks.pipeline.toolcalls import normalize_result, results_from_response

from .client import ManualClock, Response, WebhookClient
from .factories import (
    CUSTOMER_NUMBER,
    PHONE_NUMBER,
    assistant_request,
    end_of_call_report,
    status_update,
    tool_call,
    tool_calls,
)
from .fake_platform import FakePlatform, RecordedRequest
from .scenarios import Scenario, ScenarioError, ScenarioReport, run_scenario
from .sync import SyncWebhookClient

__all__ = [
    "CUSTOMER_NUMBER",
    "FakePlatform",
    "ManualClock",
    "PHONE_NUMBER",
    "RecordedRequest",
    "Response",
    "Scenario",
    "ScenarioError",
    "ScenarioReport",
    "SyncWebhookClient",
    "WebhookClient",
    "assistant_request",
    "end_of_call_report",
    "normalize_result",
    "results_from_response",
    "run_scenario",
    "status_update",
    "tool_call",
    "tool_calls",
]
