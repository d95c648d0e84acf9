"""``voicehooks send``: post a signed sample event to a running app and explain the answer.

The sample comes from ``voicehooks.testing``'s factories, so it has the platform's shape; the
request goes out through the standard library's ``http.client`` (no extra dependency). Tool
results are read back with ``voicehooks.results_from_response``, the same normalizer the
test client uses, and shown one per call. Rejections are explained in words: a 401 most
likely means the two sides hold different secrets.
"""

from __future__ import annotations

import difflib
import http.client
import json
import shlex
import ssl
import sys
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

from voicehooks.core import environment as variables
from voicehooks.core.signing import sign
from voicehooks.pipeline.toolcalls import results_from_response
from voicehooks.testing import (
    assistant_request,
    end_of_call_report,
    status_update,
    tool_call,
    tool_calls,
)

from .environment import configured_secrets, env_file_option

__all__ = ["send"]

# The events a sample is made for; tool-calls, which takes --tool, is built apart. Any other
# type can still be sent from a file (--data): the platform has more than voicehooks knows.
_SAMPLES: dict[str, Callable[..., dict[str, Any]]] = {
    "assistant-request": assistant_request,
    "status-update": status_update,
    "end-of-call-report": end_of_call_report,
}
_SAMPLED = ["tool-calls", *_SAMPLES]


@click.command()
@click.argument("event", metavar="EVENT")
@click.option(
    "--url",
    default="http://127.0.0.1:8000/",
    show_default=True,
    help="Where the app listens, its path included.",
)
@click.option(
    "--tool",
    "tool_names",
    multiple=True,
    metavar="NAME",
    help="tool-calls: the tool to call. Repeat for several calls in one delivery.",
)
@click.option(
    "--args",
    "arguments",
    multiple=True,
    metavar="JSON",
    help="tool-calls: a JSON object of arguments, one per --tool, in the same order "
    "(none at all: every tool gets {}).",
)
@click.option("--caller", metavar="NUMBER", help="The caller's number (E.164, e.g. +3165...).")
@click.option("--call-id", metavar="ID", help="The call id; a fresh UUID by default.")
@click.option(
    "--status",
    metavar="STATUS",
    help="status-update: the new call status.  [default: in-progress]",
)
@click.option(
    "--data",
    type=click.Path(dir_okay=False, allow_dash=True),
    metavar="FILE",
    help="Send this file's bytes as the whole body instead of a sample ('-': stdin).",
)
@click.option("--timestamp", type=int, metavar="UNIX_TIME", help="Sign as of this time.")
@click.option("--unsigned", is_flag=True, help="Send no signature (servers run unverified).")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=15.0,
    show_default=True,
    help="Seconds to wait for the answer.",
)
@env_file_option
def send(
    event: str,
    url: str,
    tool_names: tuple[str, ...],
    arguments: tuple[str, ...],
    caller: str | None,
    call_id: str | None,
    status: str | None,
    data: str | None,
    timestamp: int | None,
    unsigned: bool,
    timeout: float,
) -> None:
    """Send a signed sample EVENT to a running app and show its answer.

    EVENT is tool-calls, assistant-request, status-update or end-of-call-report, or with
    --data any event type. The sample is what the platform sends (voicehooks.testing's
    factories), signed with the first secret in VOICEHOOKS_SECRET. Prints the HTTP
    status, the time to the answer and the answer; tool results one per call. Exit code 0
    on a 2xx, 1 on an HTTP error or no answer, 2 on a usage error.

    \b
    Examples:
        voicehooks send tool-calls --url http://127.0.0.1:8000/ \\
            --tool check_repair_status --args '{"order_number": "WO-2291"}'
        voicehooks send tool-calls --tool a --args '{"x": 1}' --tool b --args '{}'
        voicehooks send assistant-request --caller +31655018342
        voicehooks send status-update --status ended --env-file .env
        voicehooks send end-of-call-report --data captured-report.json
    """
    if data is not None:
        given = [name for name, value in _sample_options(tool_names, caller, call_id, status)]
        if given:
            raise click.UsageError(
                f"--data sends the file as it is; drop {', '.join(given)} or edit the file"
            )
        body, calls = _body_from_file(_read_data(data), event, data)
    else:
        body, calls = _sample(event, tool_names, arguments, caller, call_id, status)
    stamp = int(time.time()) if timestamp is None else timestamp
    headers = sign(body, None, stamp, event=event)
    if not unsigned:
        secrets = configured_secrets()
        if not secrets:
            raise click.UsageError(
                f"no secret to sign with: set {variables.SECRET} to the server's secret (the "
                f"first of a comma-separated list signs), or {variables.SECRET_FILE}, or pass "
                "--env-file FILE. --unsigned sends no signature."
            )
        headers = sign(body, secrets[0], stamp, event=event)
    status_code, reason, answer, location, milliseconds = _post(url, body, headers, timeout)
    click.echo(f"{status_code} {reason} in {milliseconds:.1f} ms")
    decoded = _json_or_none(answer)
    if 200 <= status_code < 300:
        _show_answer(event, decoded, answer, calls)
        return
    if 300 <= status_code < 400 and location:
        click.echo(
            f"redirected to {location}: the platform may not follow a redirect with a POST. "
            "Use that URL, in --url and in the assistant's webhook_url (a mounted app "
            "answers at its path with the trailing slash).",
            err=True,
        )
    else:
        _show_rejection(status_code, decoded, answer, url)
    sys.exit(1)


def _read_data(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise click.BadParameter(
            f"cannot read {path!r}: {exc.strerror}", param_hint="--data"
        ) from None


def _sample_options(
    tool_names: Sequence[str], caller: str | None, call_id: str | None, status: str | None
) -> list[tuple[str, object]]:
    options = [("--tool", tool_names), ("--caller", caller), ("--call-id", call_id)]
    options.append(("--status", status))
    return [(name, value) for name, value in options if value]


def _sample(
    event: str,
    tool_names: Sequence[str],
    arguments: Sequence[str],
    caller: str | None,
    call_id: str | None,
    status: str | None,
) -> tuple[bytes, list[tuple[str, str]]]:
    """Build a sample delivery; return its bytes and the (tool call id, name) of each call."""
    if event != "tool-calls" and (tool_names or arguments):
        raise click.UsageError(f"--tool and --args belong to tool-calls, not {event}")
    if event != "status-update" and status:
        raise click.UsageError(f"--status belongs to status-update, not {event}")
    envelope: dict[str, Any] = {"call_id": call_id}
    if caller is not None:
        envelope["customer_number"] = caller
    if event == "tool-calls":
        calls = [tool_call(name, args) for name, args in _pair(tool_names, arguments)]
        payload = tool_calls(*calls, **envelope)
        ids = [(call["id"], call["function"]["name"]) for call in calls]
        return json.dumps(payload).encode(), ids
    factory = _SAMPLES.get(event)
    if factory is None:
        raise click.UsageError(_no_sample(event))
    if event == "status-update":
        envelope["status"] = status or "in-progress"
    return json.dumps(factory(**envelope)).encode(), []


def _no_sample(event: str) -> str:
    close = difflib.get_close_matches(event, _SAMPLED, n=1)
    known = ", ".join(_SAMPLED)
    if close:
        return f"there is no sample of {event!r}; did you mean {close[0]}? Samples: {known}"
    return (
        f"there is no sample of {event!r} (samples: {known}); to send a delivery of another "
        f"type, save one and send it as it is: voicehooks send {event} --data FILE"
    )


def _pair(names: Sequence[str], arguments: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    if not names:
        raise click.UsageError(
            "tool-calls needs a tool: --tool NAME [--args JSON]. "
            "`voicehooks routes TARGET` lists the app's tools."
        )
    if arguments and len(arguments) != len(names):
        raise click.UsageError(
            f"{len(names)} --tool but {len(arguments)} --args: give one --args per --tool, in "
            "the same order (--args '{}' for a tool without arguments), or none at all"
        )
    parsed: list[dict[str, Any]] = []
    for name, text in zip(names, arguments or ["{}"] * len(names), strict=True):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise click.UsageError(
                f"--args for {name} is not JSON ({exc.msg} at column {exc.colno}); quote it "
                """for the shell, like --args '{"order_number": "WO-2291"}'"""
            ) from None
        if not isinstance(value, dict):
            raise click.UsageError(f"--args for {name} must be a JSON object {{...}}")
        parsed.append(value)
    return list(zip(names, parsed, strict=True))


def _body_from_file(body: bytes, event: str, path: str) -> tuple[bytes, list[tuple[str, str]]]:
    message = _json_or_none(body)
    message = message.get("message") if isinstance(message, dict) else None
    if not isinstance(message, dict):
        return body, []  # sent anyway: a malformed body is a legitimate thing to try
    found = message.get("type")
    if isinstance(found, str) and found != event:
        raise click.UsageError(
            f"the file holds a {found} event, not {event}: voicehooks send "
            f"{shlex.quote(found)} --data {shlex.quote(path)}"
        )
    calls = message.get("tool_call_list") if event == "tool-calls" else None
    ids: list[tuple[str, str]] = []
    for call in calls if isinstance(calls, list) else []:
        function = call.get("function") if isinstance(call, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if isinstance(call, dict) and isinstance(call.get("id"), str):
            ids.append((call["id"], name if isinstance(name, str) else "?"))
    return body, ids


def _post(
    url: str, body: bytes, headers: Mapping[str, str], timeout: float
) -> tuple[int, str, bytes, str | None, float]:
    """POST ``body``; return status, reason, answer, Location and milliseconds, or exit 1."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(
            f"{url!r} is not an http(s) URL; write it like http://127.0.0.1:8000/",
            param_hint="--url",
        )
    try:
        port = parts.port
    except ValueError:
        raise click.BadParameter(f"{url!r} has an invalid port", param_hint="--url") from None
    connection_type = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_type(parts.hostname, port, timeout=timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    started = time.perf_counter()
    try:
        connection.request("POST", target, body=body, headers=dict(headers))
        response = connection.getresponse()
        answer = response.read()
    except ConnectionRefusedError:
        _fail(
            f"connection refused: the server is probably not running at {url}. Start it "
            "(`make run`, or `voicehooks run TARGET --port PORT`) or fix --url."
        )
    except TimeoutError:
        _fail(f"no answer from {url} within {timeout:g} s (--timeout).")
    except ssl.SSLError as exc:
        _fail(f"TLS failed with {url}: {exc.reason or exc}. Is it an https server?")
    except http.client.HTTPException as exc:
        _fail(f"{url} did not answer with valid HTTP ({type(exc).__name__}); is it the app?")
    except OSError as exc:
        _fail(f"cannot reach {url}: {exc.strerror or exc}. Check the host and port in --url.")
    finally:
        connection.close()
    milliseconds = (time.perf_counter() - started) * 1000
    location = response.getheader("location")
    return response.status, response.reason, answer, location, milliseconds


def _fail(message: str) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _show_answer(event: str, decoded: Any, raw: bytes, calls: list[tuple[str, str]]) -> None:
    if decoded is None:
        click.echo(f"answer (not JSON): {raw[:500].decode('utf-8', 'replace')}")
        return
    if event == "tool-calls" and calls:
        results = results_from_response(decoded, [call_id for call_id, _ in calls])
        for (call_id, name), result in zip(calls, results, strict=True):
            if isinstance(result, dict) and list(result) == ["error"]:
                click.echo(f"{name} [{call_id}]: error: {result['error']}")
            else:
                click.echo(f"{name} [{call_id}]: {_dump(result)}")
        return
    click.echo(f"answer: {_dump(decoded)}")
    if event == "assistant-request":
        click.echo(_describe_assistant_answer(decoded))
    elif event != "tool-calls":
        click.echo("acknowledged: the platform ignores this body; handlers run after it")


def _describe_assistant_answer(body: Any) -> str:
    if not isinstance(body, dict):
        return "not an object: the platform would use the saved configuration"
    if "error" in body:
        return f"the call is rejected; the caller hears: {body['error']}"
    if "assistant_id" in body:
        changed = ", ".join(sorted(body.get("assistant_override") or {})) or "nothing"
        return f"uses saved assistant {body['assistant_id']}, overriding: {changed}"
    if "assistant" in body:
        given = ", ".join(sorted(body["assistant"] or {})) or "nothing"
        return f"an inline configuration with: {given}"
    return "the call goes ahead with the assistant's saved configuration"


def _show_rejection(status: int, decoded: Any, raw: bytes, url: str) -> None:
    said = decoded.get("error") if isinstance(decoded, dict) else None
    if not isinstance(said, str):
        said = raw[:300].decode("utf-8", "replace") or "(an empty body)"
    click.echo(f"the server says: {said}")
    click.echo(_rejection_hint(status, said, url), err=True)


def _rejection_hint(status: int, said: str, url: str) -> str:
    if status == 401:
        if "X-Webhook-Timestamp is" in said:
            return (
                "The clocks differ: this machine's time (or --timestamp) and the server's are "
                "further apart than its tolerance. Sync the clocks, or drop --timestamp."
            )
        if "missing X-Webhook-" in said:
            return f"The server verifies signatures: drop --unsigned and set {variables.SECRET}."
        return (
            "The signature was refused: the secret used here probably differs from the "
            f"server's. Sign with the same value the server has in {variables.SECRET} (or in "
            f"its {variables.SECRET_FILE}), e.g. with --env-file FILE."
        )
    hints = {
        400: "The body does not fit the platform's envelope; check the --data file.",
        404: f"Nothing answers at {url}: put the app's path (or mount path) in --url.",
        405: "The server does not accept POST here; is --url the webhook endpoint?",
        413: "The body is larger than the server's max_body_bytes.",
        415: "The server wants Content-Type: application/json.",
    }
    if status in hints:
        return hints[status]
    if status >= 500:
        return "The server failed while answering; its log says why."
    return f"The server answered {status}; its log may say why."
