"""Deterministic, pre-signed requests for every workload.

A ``Pool`` is a batch of requests of one workload, all signed at one timestamp before any
timing starts. Every request carries its own call id and tool call ids, so duplicate
suppression does real work on each one and never answers from its cache.

The body of every request of a pool is ``prefix + tail``: the prefix (envelope, assistant
configuration, transcript) is the same for the whole pool, the tail holds what differs
(``tool_call_list`` and ``call``). JSON object order is insignificant, so putting the varying
fields last changes nothing for a receiver, and it lets the HTTP load generator build each
request from a few small strings instead of holding every 30 KB body in memory. The HMAC
state over ``<timestamp>.<prefix>`` is computed once per pool and copied per request.

Content is seeded: the same seed, workload and stream give the same bytes in every process,
so each contender, in its own process, is measured on identical requests.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any, Final

import msgspec

__all__ = [
    "ALL_WORKLOADS",
    "DEFAULT_SEED",
    "DRIFTED_WORKLOADS",
    "GROWTH_CALLS",
    "GROWTH_REPORTS",
    "MAIN_WORKLOADS",
    "SECRET",
    "SYNC_WORKLOADS",
    "WORKLOADS",
    "Pool",
    "Workload",
    "make_pool",
]

SECRET: Final = "whsec_benchmark_only_not_a_real_secret"
"""Signs every benchmark request; never used anywhere else."""

MCP_TOKEN: Final = "mcp_benchmark_only_not_a_real_token"
"""The bearer token of the ``mcp`` workloads; never used anywhere else."""

DEFAULT_SEED: Final = 20260114


@dataclass(frozen=True)
class Workload:
    """One kind of request.

    ``calls`` is the number of tool calls of a ``tool-calls`` request; ``report_kib`` sizes an
    end-of-call-report's body by its transcript (``None``: the 80-message report); a
    ``drifted`` request carries ``"customer": null``, a drift the platform really sends (web
    calls), which the strict decode refuses and the tolerant path repairs. An ``mcp``
    request is a JSON-RPC ``tools/call`` to the MCP endpoint, as the platform's MCP client
    sends it: the tool's name and arguments, a bearer token, no signature.
    """

    name: str
    event: str
    summary: str
    calls: int = 1
    report_kib: int | None = None
    drifted: bool = False


WORKLOADS: Final[dict[str, Workload]] = {
    w.name: w
    for w in (
        Workload("tool-1", "tool-calls", "one call of an async tool"),
        Workload("tool-3", "tool-calls", "three calls of an async tool in one request", 3),
        Workload("report", "end-of-call-report", "~30 KB report, 80-message transcript"),
        Workload("assistant-request", "assistant-request", "inbound call; answer {}"),
        Workload("tool-1-sync", "tool-calls", "one call of a sync tool (thread hop)"),
    )
}
"""The workloads every level measures by default, by name."""

GROWTH_CALLS: Final[dict[int, str]] = {1: "tool-1", 3: "tool-3", 10: "tool-10", 30: "tool-30"}
"""How cost grows with the work: tool calls per request -> workload."""

GROWTH_REPORTS: Final[dict[int, str]] = {
    8: "report-8k",
    32: "report-32k",
    128: "report-128k",
    512: "report-512k",
}
"""How cost grows with the body: KiB of an end-of-call-report -> workload."""

DRIFTED_WORKLOADS: Final = ("tool-1-drifted",)
"""Bodies that take the tolerant decoding path (the feature-cost level)."""

ALL_WORKLOADS: Final[dict[str, Workload]] = {
    **WORKLOADS,
    **{
        w.name: w
        for w in (
            *(
                Workload(name, "tool-calls", f"{n} calls of an async tool in one request", n)
                for n, name in GROWTH_CALLS.items()
                if name not in WORKLOADS
            ),
            *(
                Workload(name, "end-of-call-report", f"~{kib} KiB report", report_kib=kib)
                for kib, name in GROWTH_REPORTS.items()
            ),
            Workload("tool-1-drifted", "tool-calls", "tool-1 with customer: null", drifted=True),
            Workload("mcp-tool-1", "mcp", "one MCP tools/call of the async tool (0.1 KB)"),
        )
    },
}
"""Every workload ``make_pool`` can build, by name."""

MAIN_WORKLOADS: Final = ("tool-1", "tool-3", "report", "assistant-request")
"""The workloads the targets apply to."""

SYNC_WORKLOADS: Final = ("tool-1-sync",)
"""Reported separately: they measure a worker thread as much as the framework."""

_encode = msgspec.json.Encoder().encode
_ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_VOCABULARY = (
    "the bike order repair brake chain wheel pickup friday morning afternoon shop "
    "appointment number check ready parts waiting invoice price warranty frame tyre "
    "gear battery motor service question caller assistant thanks sure moment please "
    "yes no tomorrow today week monday tuesday kade rijwielhuis confirm message text "
    "booked slot adjustment replace inspect estimate minutes hours euro payment card "
    "cash receipt"
)
_WORDS = _VOCABULARY.split()
_TRANSCRIPT_MESSAGES = 80


@dataclass
class Pool:
    """Requests of one workload, signed at ``timestamp``; request ``i`` is ``prefix + tails[i]``."""

    workload: str
    event: str
    timestamp: int
    prefix: bytes
    tails: list[bytes]
    signatures: list[str]

    def __len__(self) -> int:
        return len(self.tails)

    def body(self, i: int) -> bytes:
        """The body of request ``i``."""
        return self.prefix + self.tails[i]

    def headers(self, i: int) -> list[tuple[bytes, bytes]]:
        """The headers of request ``i`` as an ASGI server passes them (lower-case names)."""
        if self.event == "mcp":
            return [
                (b"host", b"127.0.0.1"),
                (b"user-agent", b"python-httpx/0.28"),
                (b"content-type", b"application/json"),
                (b"accept", b"application/json, text/event-stream"),
                (b"authorization", b"Bearer " + MCP_TOKEN.encode()),
                (b"mcp-protocol-version", b"2025-06-18"),
                (b"content-length", str(len(self.prefix) + len(self.tails[i])).encode()),
            ]
        return [
            (b"host", b"127.0.0.1"),
            (b"user-agent", b"HMS-Sovereign/1.0"),
            (b"content-type", b"application/json"),
            (b"x-webhook-event", self.event.encode()),
            (b"x-webhook-timestamp", str(self.timestamp).encode()),
            (b"x-webhook-signature", b"sha256=" + self.signatures[i].encode()),
            (b"content-length", str(len(self.prefix) + len(self.tails[i])).encode()),
        ]


def make_pool(
    workload: str,
    count: int,
    *,
    stream: str,
    secret: str = SECRET,
    seed: int = DEFAULT_SEED,
    timestamp: int | None = None,
) -> Pool:
    """Build and sign ``count`` distinct requests of ``workload``.

    Args:
        workload: A name from ``WORKLOADS``.
        count: How many requests.
        stream: Names the purpose (``"timing"``, ``"warmup"``, …): different streams never
            share an id, the same stream always gives the same requests.
        secret: The signing secret.
        seed: The content seed.
        timestamp: Unix seconds to sign at; now when omitted.
    """
    spec = ALL_WORKLOADS[workload]
    stamp = int(time.time()) if timestamp is None else timestamp
    if spec.event == "mcp":
        return _mcp_pool(workload, count, stream, seed, stamp)
    fixed = random.Random(f"{seed}:{spec.event}:fixed")
    message = _fixed_message(spec.event, stamp, fixed, spec.report_kib)
    if spec.drifted:
        message["customer"] = None
    prefix = _encode({"message": message})[:-2]
    rng = random.Random(f"{seed}:{workload}:{stream}")
    keyed = hmac.new(secret.encode(), f"{stamp}.".encode() + prefix, hashlib.sha256)
    tails: list[bytes] = []
    signatures: list[str] = []
    for _ in range(count):
        varying = _encode(_varying_fields(workload, rng))
        tail = b"," + varying[1:-1] + b"}}"
        mac = keyed.copy()
        mac.update(tail)
        tails.append(tail)
        signatures.append(mac.hexdigest())
    return Pool(workload, spec.event, stamp, prefix, tails, signatures)


def _mcp_pool(workload: str, count: int, stream: str, seed: int, stamp: int) -> Pool:
    """``count`` distinct ``tools/call`` requests of ``check_order``: order number and id vary."""
    rng = random.Random(f"{seed}:{workload}:{stream}")
    prefix = b'{"jsonrpc":"2.0","method":"tools/call","params":{"name":"check_order",'
    tails = [
        b'"arguments":{"order_number":"WO-%d"}},"id":%d}' % (rng.randrange(1000, 10000), i + 1)
        for i in range(count)
    ]
    return Pool(workload, "mcp", stamp, prefix, tails, [""] * count)


def _fixed_message(
    event: str, stamp: int, rng: random.Random, report_kib: int | None = None
) -> dict[str, Any]:
    at = datetime.datetime.fromtimestamp(stamp, datetime.UTC)
    message: dict[str, Any] = {
        "type": event,
        "timestamp": _iso(at),
        "phone_number": {
            "id": "b7e1c9a4-2f36-4d8b-9a15-6c0e3f2d7a81",
            "number": "+31302047715",
            "name": "Rijwielhuis Kade Service Line",
        },
        "customer": {"number": f"+316{rng.randrange(10**7, 10**8)}"},
    }
    if event == "tool-calls":
        message["assistant"] = _assistant_config(rng, analysis=False)
    elif event == "end-of-call-report":
        message["assistant"] = _assistant_config(rng, analysis=True)
        if report_kib is None:
            messages = [_turn(rng, i) for i in range(_TRANSCRIPT_MESSAGES)]
        else:
            messages = _transcript_of_size(rng, report_kib * 1024 - len(_encode(message)))
        message.update(
            duration_seconds=rng.randrange(120, 900),
            started_at=_iso(at - datetime.timedelta(minutes=8)),
            ended_at=_iso(at - datetime.timedelta(seconds=20)),
            end_reason="user_hangup",
            summary=_sentence(rng, 200, 300),
            messages=messages,
            analysis={
                "sentiment": rng.randrange(1, 11),
                "intent": "support",
                "resolved": True,
                "appointment_booked": rng.random() < 0.5,
                "follow_up_needed": False,
            },
            recording_url="https://recordings.voice-platform.example/calls/recording.mp3",
        )
    return message


def _turn(rng: random.Random, i: int) -> dict[str, str]:
    return {"role": "assistant" if i % 2 == 0 else "user", "content": _sentence(rng, 225, 405)}


def _transcript_of_size(rng: random.Random, size: int) -> list[dict[str, str]]:
    """Turns until the transcript is about ``size`` bytes of JSON."""
    size -= 700  # the summary, analysis, times and recording URL that follow it
    messages: list[dict[str, str]] = []
    while size > 0:
        turn = _turn(rng, len(messages))
        messages.append(turn)
        size -= len(_encode(turn)) + 1
    return messages


def _varying_fields(workload: str, rng: random.Random) -> dict[str, Any]:
    spec = ALL_WORKLOADS[workload]
    fields: dict[str, Any] = {}
    if spec.event == "tool-calls":
        tool = "check_order_sync" if workload.endswith("-sync") else "check_order"
        calls = spec.calls
        fields["tool_call_list"] = [
            {
                "id": "call_" + "".join(rng.choices(_ID_ALPHABET, k=24)),
                "type": "function",
                "function": {
                    "name": tool,
                    "arguments": {"order_number": f"WO-{rng.randrange(1000, 10000)}"},
                },
            }
            for _ in range(calls)
        ]
    status = {"tool-calls": "in-progress", "assistant-request": "ringing"}.get(spec.event, "ended")
    fields["call"] = {
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "type": "inbound_phone_call",
        "status": status,
    }
    return fields


def _assistant_config(rng: random.Random, *, analysis: bool) -> dict[str, Any]:
    config: dict[str, Any] = {
        "first_message": "Goedemorgen, Rijwielhuis Kade, waarmee kan ik helpen?",
        "max_duration_seconds": 600,
        "autonomous_silence_handling": True,
        "voicemail_detection": False,
        "stt_config": {"provider": "deepgram", "model": "nova-3-general", "language": "nl"},
        "llm_config": {
            "provider": "openai",
            "model": "gpt-4o-mini",
            "temperature": 0.4,
            "messages": [{"role": "system", "content": _sentence(rng, 300, 400)}],
            "tools": [
                {
                    "name": "check_order",
                    "description": "Return the repair status of a work order.",
                    "url": "https://hooks.rijwielhuis-kade.example/voice",
                    "async": False,
                    "parameters": {
                        "type": "object",
                        "properties": {"order_number": {"type": "string"}},
                        "required": ["order_number"],
                    },
                }
            ],
        },
        "tts_config": {"provider": "elevenlabs", "voice_id": "pNq7Rk2Lw4Xv9TbA1cDe"},
        "metadata": {
            "crm_contact_id": f"CNT-{rng.randrange(10000, 99999)}",
            "segment": "repair-customer",
            "source": "inbound-router",
        },
    }
    if analysis:
        config["analysis_plan"] = {
            "structured_data_plan": {
                "enabled": True,
                "schema": {
                    "type": "object",
                    "properties": {
                        "sentiment": {"type": "integer", "minimum": 1, "maximum": 10},
                        "intent": {"type": "string"},
                        "resolved": {"type": "boolean"},
                    },
                },
            },
            "min_messages_threshold": 3,
        }
    return config


def _sentence(rng: random.Random, low: int, high: int) -> str:
    target = rng.randrange(low, high)
    words: list[str] = []
    size = 0
    while size < target:
        word = rng.choice(_WORDS)
        words.append(word)
        size += len(word) + 1
    return " ".join(words).capitalize() + "."


def _iso(moment: datetime.datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
