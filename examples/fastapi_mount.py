"""voicehooks mounted inside a FastAPI app, with the two lifespans composed.

What it shows:

* ``app.mount("/hooks", hooks)``: the platform posts to ``https://<host>/hooks/``, with the
  trailing slash (Starlette answers ``/hooks`` itself, with a redirect to ``/hooks/``). The
  rest of your API lives next to it, in the same process; nothing of FastAPI runs on the
  webhook path: voicehooks answers it itself.
* The lifespan composed. Starlette and FastAPI do not run a mounted app's lifespan, so the
  parent's lifespan enters ``hooks.lifespan()``. That starts the background runner, which
  then owns the status-update handlers and, at shutdown, waits for them before the process
  exits. (Without it the handlers still run, each in its request's task after the answer,
  but nothing drains them and a ``lifespan=`` given to ``VoiceHooks`` never runs.)
* State shared between the two: the status handler keeps the set of live calls, and a
  FastAPI route reports how many there are (a count: call ids and numbers stay inside).

Run it (FastAPI is not a voicehooks dependency: ``pip install fastapi``):

    VOICEHOOKS_SECRET=whsec_dev_only uvicorn fastapi_mount:app --app-dir examples --port 8000

and in another shell, with the same ``VOICEHOOKS_SECRET``:

    voicehooks send status-update --url http://127.0.0.1:8000/hooks/ --call-id demo-1
    curl http://127.0.0.1:8000/calls
    voicehooks send status-update --url http://127.0.0.1:8000/hooks/ --call-id demo-1 \\
        --status ended
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from voicehooks import CallStatus, StatusUpdate, VoiceHooks

hooks = VoiceHooks()  # secret(s) from VOICEHOOKS_SECRET

LIVE_CALLS: set[str] = set()


@hooks.on("status-update")
async def track_live_calls(event: StatusUpdate) -> None:
    if event.status == CallStatus.IN_PROGRESS:
        LIVE_CALLS.add(event.call.id)
    elif event.status.startswith(CallStatus.ENDED):  # "ended" and "ended-with-error"
        LIVE_CALLS.discard(event.call.id)


@asynccontextmanager
async def lifespan(parent: FastAPI) -> AsyncIterator[None]:
    # Your own startup goes here, around or before voicehooks'.
    async with hooks.lifespan():
        yield
    # Reached once voicehooks has drained its background handlers.


app = FastAPI(lifespan=lifespan)
app.mount("/hooks", hooks)


@app.get("/calls")
async def live_calls() -> dict[str, int]:
    """How many calls are in progress right now."""
    return {"live": len(LIVE_CALLS)}
