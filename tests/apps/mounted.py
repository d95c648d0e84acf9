"""A FastAPI app that mounts voicehooks with no lifespan wiring at all."""

from __future__ import annotations

import logging

import anyio
from fastapi import FastAPI

from voicehooks import VoiceHooks
from voicehooks.core.events import EndOfCallReport

hooks = VoiceHooks()
log = logging.getLogger("voicehooks.mounted")


@hooks.on("end-of-call-report")
async def on_report(event: EndOfCallReport) -> None:
    await anyio.sleep(0.2)
    log.warning("mounted report stored for call %s", event.call.id)


parent = FastAPI()
parent.mount("/hooks", hooks)


@parent.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}
