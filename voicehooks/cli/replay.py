"""``voicehooks replay``: send recorded deliveries again and compare the answers.

A regression check after a code change: record real traffic with ``voicehooks run --record
FILE``, change the code, start it locally and replay the file against it. Answers are compared
as JSON (key order does not matter) together with the status; any difference is shown as a
unified diff and makes the exit code 1.

What it prints is redacted (``voicehooks.privacy``): the call ids and the diffs show
``[card]``, ``[phone]``, ... however the recording was made. A redacted recording's bodies
no longer match their signatures, so it replays only with ``--resign``.
"""

from __future__ import annotations

import difflib
import json
import sys
from collections.abc import Sequence
from typing import Any

import click

from voicehooks.observe.recording import REPLAY_HEADER, Recording, read_recording
from voicehooks.privacy import redact

from .environment import configured_secrets, env_file_option
from .posting import Poster

__all__ = ["replay"]

_FILTER_KEYS = ("event", "call", "tool", "status", "outcome")
_LANGUAGES = ("en", "nl")


@click.command()
@click.argument("recording_file", metavar="FILE", type=click.Path(dir_okay=False))
@click.option("--url", default="http://127.0.0.1:8000/", show_default=True, help="Where to send.")
@click.option("--resign", is_flag=True, help="Sign again with VOICEHOOKS_SECRET, as of now.")
@click.option(
    "--bypass-dedupe",
    is_flag=True,
    help="Ask the app to run duplicates again (honoured only by `voicehooks dev`).",
)
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="KEY=VALUE",
    help=f"Only these deliveries; KEY is one of {', '.join(_FILTER_KEYS)}. Repeat to narrow.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=15.0,
    show_default=True,
    help="Seconds to wait for each answer.",
)
@env_file_option
def replay(
    recording_file: str,
    url: str,
    resign: bool,
    bypass_dedupe: bool,
    filters: tuple[str, ...],
    timeout: float,
) -> None:
    """Send the deliveries recorded in FILE to --url again and compare the answers.

    Recorded signatures stay valid only within the server's tolerance (300 s by default):
    --resign signs each body again as of now. Prints one line per delivery and a diff for
    each answer that changed. Exit code 0 when every answer is the same, 1 otherwise.

    \b
    Examples:
        voicehooks replay deliveries.jsonl --url http://127.0.0.1:8000/ --resign
        voicehooks replay deliveries.jsonl --resign --filter event=tool-calls --filter tool=book
        voicehooks replay deliveries.jsonl --resign --bypass-dedupe --filter call=call-42
    """
    wanted = [_parse_filter(text) for text in filters]
    try:
        recordings = [r for r in read_recording(recording_file) if _matches(r, wanted)]
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    except OSError as exc:
        raise click.UsageError(f"cannot read {recording_file!r}: {exc.strerror}") from None
    if not resign and any(recording.redacted for recording in recordings):
        raise click.UsageError(
            f"{recording_file} is redacted: its bodies no longer match their signatures. "
            "Add --resign to sign them again with VOICEHOOKS_SECRET."
        )
    secret = None
    if resign:
        secrets = configured_secrets()
        if not secrets:
            raise click.UsageError("--resign needs the server's secret in VOICEHOOKS_SECRET")
        secret = secrets[0]
    poster = Poster(url, secret, timeout)
    different = refused = 0
    try:
        for number, recording in enumerate(recordings, 1):
            body = recording.body.encode()
            headers = poster.headers(body, recording.event) if resign else dict(recording.headers)
            if bypass_dedupe:
                headers[REPLAY_HEADER.decode()] = "bypass-dedupe"
            status, answer = poster.post(body, headers)
            refused += status == 401
            diff = _difference(recording, status, answer)
            different += bool(diff)
            mark = "DIFF" if diff else "same"
            call_id = _shown(recording.call_id or "None")
            click.echo(f"{mark} {number:>4} {recording.event:<18} call={call_id} {status}")
            for line in diff:
                click.echo(f"       {_shown(line)}")
    finally:
        poster.close()
    click.echo(
        f"{len(recordings)} replayed: {len(recordings) - different} same, {different} different"
    )
    if refused and not resign:
        click.echo(
            "401: recorded signatures expire with the server's tolerance; add --resign to sign "
            "again with VOICEHOOKS_SECRET.",
            err=True,
        )
    if different:
        sys.exit(1)


def _shown(text: str) -> str:
    return redact(text, languages=_LANGUAGES)


def _parse_filter(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or key not in _FILTER_KEYS:
        raise click.BadParameter(
            f"{text!r}: write KEY=VALUE with KEY one of {', '.join(_FILTER_KEYS)}",
            param_hint="--filter",
        )
    return key, value


def _matches(recording: Recording, wanted: Sequence[tuple[str, str]]) -> bool:
    for key, value in wanted:
        if key == "event" and recording.event != value:
            return False
        if key == "call" and recording.call_id != value:
            return False
        if key == "tool" and all(tool.name != value for tool in recording.tools):
            return False
        if key == "status" and str(recording.status) != value:
            return False
        if key == "outcome" and recording.outcome != value:
            return False
    return True


def _difference(recording: Recording, status: int, answer: bytes) -> list[str]:
    """The diff between the recorded and the new answer; empty when they are the same."""
    before = _json(recording.answer.encode())
    after = _json(answer)
    if status == recording.status and before == after:
        return []
    old = [f"status {recording.status}", *_pretty(before)]
    new = [f"status {status}", *_pretty(after)]
    return list(difflib.unified_diff(old, new, "recorded", "now", lineterm="", n=2))


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def _pretty(value: Any) -> list[str]:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).splitlines()
