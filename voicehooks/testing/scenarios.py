"""Whole-call scenarios: one call id through its life, written in TOML, checked step by step.

A scenario file names the steps of one call, in order; each step is one delivery with
expectations on its answer. The same file runs in memory against an app (``run_scenario``,
``voicehooks simulate SCENARIO TARGET``) or over HTTP against a running server
(``voicehooks simulate SCENARIO --url URL``), with the same outcome::

    name = "a caller asks about a repair"
    customer_number = "+31655018342"   # optional; call_id too (a fresh one per run otherwise)

    [[step]]
    event = "assistant-request"
    expect.answer = {}                 # the saved assistant, unchanged

    [[step]]
    id = "lookup"                      # a name later steps can refer to
    event = "tool-calls"
    tool = "check_repair_status"
    arguments = { order_number = "WO-2291" }
    expect.result = { status = "ready for pickup" }
    expect.within_ms = 500

    [[step]]
    event = "tool-calls"               # several calls in one delivery
    tools = [
        { name = "check_repair_status", arguments.order_number = "${lookup.result.order_number}" },
        { name = "check_repair_status", arguments = { order_number = "WO-0000" } },
    ]
    expect.results = [{ status = "ready for pickup" }, {}]

    [[step]]
    resend = "lookup"                  # the same delivery again: a redelivery
    expect.result = { status = "ready for pickup" }

    [[step]]
    event = "status-update"
    status = "ended"                   # default "in-progress"
    fields = { end_reason = "user_hangup" }

    [[step]]
    event = "end-of-call-report"
    fields = { duration_seconds = 61, summary = "Asked about WO-2291." }

Step keys: ``event`` (one of the four event names), ``id``, ``expect``, ``fields`` (other
``message`` fields, replacing the factory's defaults), ``metadata`` (``assistant.metadata``;
by default the metadata an assistant-request answer attached, as the platform echoes it),
``tool`` and ``arguments`` or ``tools`` (tool-calls), ``status`` (status-update), ``resend``.

References: a string ``"${lookup.result.order_number}"`` is replaced by that value of an
earlier step's outcome (keeping its type when the string is only the reference; spliced
into the text otherwise). The first name is a step's ``id`` (or its number, from 1) or
``call_id``; then ``status``, ``answer``, ``results``, ``result`` (the first result) or
``milliseconds``, then keys and list positions, separated by dots. A reference to a later or
unknown step is an error when the file is loaded.

Expectations (``expect.*``): ``status`` (default 200), ``answer``, ``results``, ``result``
(a table matches when each of its keys matches: extra keys in the answer are fine; a list
matches item by item and must have the same length; anything else must be equal), ``error``
(the first tool result is an error whose text contains this), ``within_ms``. A step with a
failed expectation does not stop the scenario; a reference that cannot be resolved does.
"""

from __future__ import annotations

import re
import time
import tomllib
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from voicehooks.core.events import EVENT_NAMES
from voicehooks.pipeline.toolcalls import results_from_response

from .client import ASGIApp, WebhookClient
from .factories import (
    CUSTOMER_NUMBER,
    assistant_request,
    end_of_call_report,
    status_update,
    tool_call,
    tool_calls,
)

__all__ = [
    "Scenario",
    "ScenarioError",
    "ScenarioReport",
    "StepOutcome",
    "Transport",
    "run",
    "run_scenario",
]

Transport = Callable[[bytes, str], Awaitable[tuple[int, bytes]]]
"""Sends one delivery (its body and event name) and returns the status and the answer's bytes."""

_REFERENCE = re.compile(r"\$\{([^}]*)\}")
_STEP_KEYS = {"event", "id", "expect", "fields", "metadata", "tool", "arguments", "tools"}
_STEP_KEYS |= {"status", "resend"}
_EXPECT_KEYS = {"status", "answer", "results", "result", "error", "within_ms"}
_OUTCOME_KEYS = {"status", "answer", "results", "result", "milliseconds"}


class ScenarioError(ValueError):
    """A scenario file that cannot run: the message names the step and the key."""


@dataclass(frozen=True)
class Step:
    """One delivery of a scenario, as written in the file."""

    number: int
    name: str
    event: str
    spec: Mapping[str, Any]


@dataclass(frozen=True)
class Scenario:
    """A parsed scenario file; ``Scenario.load(path)`` or ``Scenario.parse(text)``."""

    name: str
    steps: Sequence[Step]
    call_id: str | None = None
    customer_number: str | None = CUSTOMER_NUMBER

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        """Read and check a scenario file.

        Raises:
            ScenarioError: The file is not valid TOML or not a valid scenario.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScenarioError(f"cannot read {str(path)!r}: {exc.strerror}") from None
        return cls.parse(text, source=str(path))

    @classmethod
    def parse(cls, text: str, source: str = "<scenario>") -> Scenario:
        """Check a scenario given as TOML text; see the module docstring for the format."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ScenarioError(f"{source}: not valid TOML: {exc}") from None
        unknown = set(data) - {"name", "call_id", "customer_number", "step"}
        if unknown:
            raise ScenarioError(f"{source}: unknown top-level key(s) {sorted(unknown)}")
        tables = data.get("step")
        if not isinstance(tables, list) or not tables:
            raise ScenarioError(f"{source}: no steps; add [[step]] tables")
        steps: list[Step] = []
        for number, spec in enumerate(tables, 1):
            steps.append(_check_step(number, spec, steps, source))
        return cls(
            name=str(data.get("name", Path(source).stem)),
            steps=steps,
            call_id=data.get("call_id"),
            customer_number=data.get("customer_number", CUSTOMER_NUMBER),
        )


def _check_step(number: int, spec: dict[str, Any], earlier: list[Step], source: str) -> Step:
    where = f"{source}: step {number}"
    unknown = set(spec) - _STEP_KEYS
    if unknown:
        raise ScenarioError(f"{where}: unknown key(s) {sorted(unknown)}")
    names = {step.name: step for step in earlier}
    if "resend" in spec:
        target = names.get(str(spec["resend"]))
        if target is None:
            raise ScenarioError(f"{where}: resend {spec['resend']!r} names no earlier step")
        extra = set(spec) - {"resend", "id", "expect"}
        if extra:
            raise ScenarioError(f"{where}: resend sends the same body; drop {sorted(extra)}")
        event = target.event
    else:
        event = spec.get("event", "")
        if event not in EVENT_NAMES:
            raise ScenarioError(f"{where}: event must be one of {list(EVENT_NAMES)}, not {event!r}")
    if event == "tool-calls" and "resend" not in spec and ("tool" in spec) == ("tools" in spec):
        raise ScenarioError(f"{where}: a tool-calls step needs either tool = ... or tools = [...]")
    if event != "tool-calls" and {"tool", "tools", "arguments"} & set(spec):
        raise ScenarioError(f"{where}: tool, tools and arguments belong to tool-calls steps")
    if event != "status-update" and "status" in spec:
        raise ScenarioError(f"{where}: status belongs to status-update steps")
    expect = spec.get("expect", {})
    if not isinstance(expect, dict) or set(expect) - _EXPECT_KEYS:
        raise ScenarioError(f"{where}: expect takes {sorted(_EXPECT_KEYS)}")
    name = str(spec.get("id", number))
    if name in names or (name.isdigit() and name != str(number)):
        raise ScenarioError(f"{where}: id {name!r} is already taken")
    known = {"call_id", *names, *(str(step.number) for step in earlier)}
    for reference in _references(spec):
        head, _, rest = reference.partition(".")
        if head not in known:
            raise ScenarioError(
                f"{where}: ${{{reference}}} refers to {head!r}, which is not an earlier step"
            )
        key = rest.partition(".")[0]
        if head != "call_id" and key not in _OUTCOME_KEYS:
            raise ScenarioError(
                f"{where}: ${{{reference}}}: after the step comes one of {sorted(_OUTCOME_KEYS)}"
            )
    return Step(number, name, event, spec)


def _references(value: Any) -> list[str]:
    if isinstance(value, str):
        return _REFERENCE.findall(value)
    if isinstance(value, dict):
        return [ref for item in value.values() for ref in _references(item)]
    if isinstance(value, list):
        return [ref for item in value for ref in _references(item)]
    return []


# -- outcomes ---------------------------------------------------------------------------


@dataclass
class StepOutcome:
    """What one step sent back, and which expectations it missed."""

    number: int
    name: str
    event: str
    status: int
    answer: Any
    results: list[Any] | None
    milliseconds: float
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every expectation held."""
        return not self.failures

    def values(self) -> dict[str, Any]:
        """What references can read: ``status``, ``answer``, ``results``, ``result``, ..."""
        first = self.results[0] if self.results else None
        return {
            "status": self.status,
            "answer": self.answer,
            "results": self.results,
            "result": first,
            "milliseconds": self.milliseconds,
        }


@dataclass
class ScenarioReport:
    """The outcome of a run: one ``StepOutcome`` per step that ran."""

    name: str
    call_id: str
    steps: list[StepOutcome]
    error: str | None = None  # why the run stopped early (an unresolvable reference)

    @property
    def ok(self) -> bool:
        """Every step ran and met its expectations."""
        return self.error is None and all(step.ok for step in self.steps)

    def format(self, *, timing: bool = True) -> str:
        """A readable report: a line per step, its failures under it, then a summary."""
        lines = [f"scenario {self.name!r}, call {self.call_id}"]
        for step in self.steps:
            mark = "ok  " if step.ok else "FAIL"
            ms = f" {step.milliseconds:8.1f} ms" if timing else ""
            name = "" if step.name == str(step.number) else step.name
            lines.append(f"  {mark} {step.number:>3} {name:<12} {step.event:<18} {step.status}{ms}")
            lines.extend(f"         {failure}" for failure in step.failures)
        if self.error:
            lines.append(f"  stopped: {self.error}")
        failed = sum(not step.ok for step in self.steps)
        lines.append(f"{len(self.steps) - failed} passed, {failed} failed")
        return "\n".join(lines)

    def check(self) -> None:
        """Raise ``AssertionError`` with the report when anything failed (for pytest)."""
        if not self.ok:
            raise AssertionError(self.format())


# -- running ----------------------------------------------------------------------------


async def run(scenario: Scenario, send: Transport) -> ScenarioReport:
    """Run ``scenario``'s steps in order through ``send`` and check every expectation."""
    call_id = scenario.call_id or f"sim-{uuid.uuid4()}"
    report = ScenarioReport(scenario.name, call_id, [])
    values: dict[str, Any] = {"call_id": call_id}
    bodies: dict[str, bytes] = {}
    metadata: dict[str, Any] | None = None
    for step in scenario.steps:
        try:
            spec = _resolve(dict(step.spec), values)
        except LookupError as exc:
            report.error = f"step {step.number} ({step.name}): {exc}"
            break
        if "resend" in spec:
            body = bodies[str(spec["resend"])]
        else:
            payload = _payload(step.event, spec, scenario, call_id, metadata)
            body = msgspec.json.encode(payload)
        bodies[step.name] = bodies[str(step.number)] = body
        started = time.perf_counter()
        status, raw = await send(body, step.event)
        milliseconds = (time.perf_counter() - started) * 1000
        answer = _decode(raw)
        results = None
        if step.event == "tool-calls" and status == 200:
            ids = [call["id"] for call in msgspec.json.decode(body)["message"]["tool_call_list"]]
            results = results_from_response(answer, ids)
        outcome = StepOutcome(
            step.number, step.name, step.event, status, answer, results, milliseconds
        )
        outcome.failures = _failures(spec.get("expect", {}), outcome)
        report.steps.append(outcome)
        values[step.name] = values[str(step.number)] = outcome.values()
        if step.event == "assistant-request" and metadata is None:
            metadata = _metadata_from(answer)
    return report


async def run_scenario(
    scenario: str | Path | Scenario,
    app: ASGIApp,
    *,
    secret: str | None = None,
    path: str = "/",
    raise_exceptions: bool = True,
) -> ScenarioReport:
    """Run a scenario in memory against ``app``, its lifespan running as under a server.

    Args:
        scenario: A scenario file's path, or a parsed ``Scenario``.
        app: The ``VoiceHooks`` app (or a parent that mounts it at ``path``).
        secret: Signs the deliveries; ``VOICEHOOKS_SECRET``'s first entry when omitted.
        path: Where the webhook endpoint is.
        raise_exceptions: A bug in a tool or handler fails the run, raised as itself (see
            ``WebhookClient``); ``False`` answers it as in production, a step's failure.

    Returns:
        The report; call ``report.check()`` to fail a test with it.

    Example:
        ``(await run_scenario("scenarios/repair.toml", app)).check()``
    """
    loaded = scenario if isinstance(scenario, Scenario) else Scenario.load(scenario)
    client = WebhookClient(app, secret=secret, path=path, raise_exceptions=raise_exceptions)
    async with client:

        async def send(body: bytes, event: str) -> tuple[int, bytes]:
            response = await client.post(body, headers={"x-webhook-event": event})
            return response.status_code, response.content

        return await run(loaded, send)


def _payload(
    event: str,
    spec: Mapping[str, Any],
    scenario: Scenario,
    call_id: str,
    metadata: dict[str, Any] | None,
) -> dict[str, Any]:
    fields = dict(spec.get("fields", {}))
    envelope: dict[str, Any] = {"call_id": call_id, "customer_number": scenario.customer_number}
    if event == "assistant-request":
        return assistant_request(**envelope, **fields)
    envelope["metadata"] = spec.get("metadata", metadata)
    if event == "tool-calls":
        one = {"name": spec.get("tool"), "arguments": spec.get("arguments")}
        entries = spec.get("tools", [one])
        calls = [tool_call(e["name"], e.get("arguments"), id=e.get("id")) for e in entries]
        return tool_calls(*calls, **envelope, **fields)
    if event == "status-update":
        return status_update(spec.get("status", "in-progress"), **envelope, **fields)
    return end_of_call_report(**envelope, **fields)


def _metadata_from(answer: Any) -> dict[str, Any] | None:
    """The metadata an assistant-request answer attached, which later events carry."""
    if not isinstance(answer, dict):
        return None
    for key in ("assistant_override", "assistant"):
        block = answer.get(key)
        if isinstance(block, dict) and isinstance(block.get("metadata"), dict):
            return dict(block["metadata"])
    return None


def _resolve(value: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(value, dict):
        return {key: _resolve(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, values) for item in value]
    if not isinstance(value, str) or "${" not in value:
        return value
    whole = _REFERENCE.fullmatch(value)
    if whole:
        return _lookup(whole.group(1), values)
    return _REFERENCE.sub(lambda match: str(_lookup(match.group(1), values)), value)


def _lookup(reference: str, values: Mapping[str, Any]) -> Any:
    current: Any = values
    walked: list[str] = []
    for part in reference.split("."):
        walked.append(part)
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            raise LookupError(f"${{{reference}}}: {'.'.join(walked)!r} is not in the answer")
    return current


def _decode(raw: bytes) -> Any:
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return raw.decode("utf-8", "replace")


def _failures(expect: Mapping[str, Any], outcome: StepOutcome) -> list[str]:
    failures: list[str] = []
    wanted_status = expect.get("status", 200)
    if outcome.status != wanted_status:
        failures.append(f"status: expected {wanted_status}, got {outcome.status}")
    if "answer" in expect:
        failures += _mismatches(expect["answer"], outcome.answer, "answer")
    values = outcome.values()
    for key in ("results", "result"):
        if key in expect:
            failures += _mismatches(expect[key], values[key], key)
    if "error" in expect:
        first = values["result"]
        text = first.get("error") if isinstance(first, dict) else None
        if not isinstance(text, str) or expect["error"] not in text:
            failures.append(
                f"error: expected an error containing {expect['error']!r}, got {first!r}"
            )
    if "within_ms" in expect and outcome.milliseconds > expect["within_ms"]:
        failures.append(
            f"within_ms: answered in {outcome.milliseconds:.1f} ms, over {expect['within_ms']} ms"
        )
    return failures


def _mismatches(expected: Any, actual: Any, path: str) -> list[str]:
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected a table, got {actual!r}"]
        found: list[str] = []
        for key, value in expected.items():
            if key not in actual:
                found.append(f"{path}.{key}: missing (got keys {sorted(actual)})")
            else:
                found += _mismatches(value, actual[key], f"{path}.{key}")
        return found
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {len(expected)} items, got {actual!r}"]
        return [
            failure
            for index, (want, got) in enumerate(zip(expected, actual, strict=True))
            for failure in _mismatches(want, got, f"{path}[{index}]")
        ]
    if expected != actual or (type(expected) is bool) != (type(actual) is bool):
        return [f"{path}: expected {expected!r}, got {actual!r}"]
    return []
