"""The inspector's HTML: server-rendered pages that read well without JavaScript.

Every value is escaped. Links and buttons are real ``<a>`` and ``<button>`` elements, so the
keyboard reaches everything in document order; ``inspector.js`` only enhances (live updates,
replay without leaving the page).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from html import escape
from typing import Any, Final

from voicehooks.observe import DeliveryOutcome, ToolOutcome

from .masking import mask, mask_id, mask_phone_numbers
from .store import Entry

__all__ = [
    "DUPLICATE_NOTE",
    "PREFIX",
    "deliveries_fragment",
    "delivery_page",
    "index_page",
    "is_duplicate",
    "message_page",
]

PREFIX: Final = "/_voicehooks"


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title>"
        f'<link rel="stylesheet" href="{PREFIX}/static/inspector.css">'
        f'<script src="{PREFIX}/static/inspector.js" defer></script>'
        f'</head><body><header><a class="home" href="{PREFIX}/">voicehooks inspector</a>'
        "<span>development only: deliveries stay in this process's memory</span></header>"
        f"<main>{body}</main></body></html>"
    )


def index_page(entries: list[Entry], capacity: int) -> str:
    """The list of recent deliveries, grouped by call, newest first."""
    body = (
        "<h1>Recent deliveries</h1>"
        f"<p>The last {capacity} deliveries are kept, newest first, grouped by call. "
        f'This list updates by itself; without JavaScript, <a href="{PREFIX}/">reload</a>.</p>'
        f'<div id="calls" aria-live="polite">{deliveries_fragment(entries)}</div>'
    )
    return _page("voicehooks inspector", body)


def deliveries_fragment(entries: list[Entry]) -> str:
    """The groups of the list page; the live update swaps this in."""
    if not entries:
        return (
            '<p class="empty">No deliveries yet. Send one: <code>voicehooks send tool-calls '
            "--tool NAME --args '{}'</code>, or point the platform's webhook here.</p>"
        )
    groups: dict[str, list[Entry]] = {}
    for entry in entries:  # newest first, so a call's group sits where its newest is
        groups.setdefault(entry.delivery.call_id or "", []).append(entry)
    return "".join(_group(call_id, group) for call_id, group in groups.items())


def _group(call_id: str, entries: list[Entry]) -> str:
    title = f"Call <code>{escape(mask_id(call_id))}</code>" if call_id else "Refused or not decoded"
    rows = "".join(_row(entry) for entry in entries)
    return (
        f'<section class="call"><h2>{title}</h2><table><thead><tr><th scope="col">Delivery</th>'
        '<th scope="col">Time (UTC)</th><th scope="col">Event</th><th scope="col">Status</th>'
        '<th scope="col">Latency</th><th scope="col">Tools</th></tr></thead>'
        f"<tbody>{rows}</tbody></table></section>"
    )


def _row(entry: Entry) -> str:
    delivery = entry.delivery
    tools = "".join(
        f'<li>{escape(run.name)} <span class="outcome {_tone(run.outcome)}">'
        f"{escape(run.outcome or 'running')}</span> {_ms(run.duration_seconds)}</li>"
        for run in entry.tools
    )
    replay = ' <span class="tag">replay</span>' if delivery.is_replay else ""
    return (
        f'<tr class="delivery" data-id="{entry.id}">'
        f'<td><a href="{PREFIX}/deliveries/{entry.id}">#{entry.id}</a>{replay}</td>'
        f"<td>{_time(delivery.received_at)}</td>"
        f"<td>{escape(delivery.event_type or '-')}{_over(delivery.transport)}</td>"
        f'<td><span class="status {_status_tone(delivery.status)}">{delivery.status}</span> '
        f"{escape(delivery.outcome)}</td>"
        f"<td>{_ms(delivery.duration_seconds)}</td>"
        f'<td><ul class="tools">{tools}</ul></td></tr>'
    )


def delivery_page(entry: Entry, *, reveal: bool, replays: Iterable[Entry]) -> str:
    """One delivery: facts, tools, the event (masked unless ``reveal``), answer, log lines."""
    delivery = entry.delivery
    link = f"{PREFIX}/deliveries/{entry.id}"
    if reveal:
        privacy = f'Personal data is shown. <a href="{link}">Hide it</a>.'
    else:
        privacy = (
            "Phone numbers, what was said and tool arguments are hidden. "
            f'<a href="{link}?reveal=1">Show personal data</a>.'
        )
    call_id = delivery.call_id or "-"
    facts = [
        ("Call", f"<code>{escape(call_id if reveal else mask_id(call_id))}</code>"),
        ("Event", escape(delivery.event_type or "-") + _over(delivery.transport)),
        ("Received (UTC)", _time(delivery.received_at)),
        ("Status", f"{delivery.status} {escape(delivery.outcome)}"),
        ("Latency", _ms(delivery.duration_seconds)),
        ("Replay", _replay_fact(entry)),
    ]
    if is_duplicate(entry):
        facts.append(("Duplicate", DUPLICATE_NOTE))
    done = ", ".join(f'<a href="{PREFIX}/deliveries/{r.id}">#{r.id}</a>' for r in replays)
    if done:
        facts.append(("Replayed as", done))
    facts_html = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts)
    tools = "".join(
        f"<tr><td>{escape(run.name)}</td><td><code>{escape(run.tool_call_id)}</code></td>"
        f'<td><span class="outcome {_tone(run.outcome)}">{escape(run.outcome)}</span></td>'
        f"<td>{_ms(run.duration_seconds)}</td></tr>"
        for run in entry.tools
    )
    tools_html = (
        '<h2>Tools</h2><table><thead><tr><th scope="col">Tool</th><th scope="col">Call id</th>'
        f'<th scope="col">Outcome</th><th scope="col">Time</th></tr></thead><tbody>{tools}'
        "</tbody></table>"
        if tools
        else ""
    )
    body = (
        f"<h1>Delivery #{entry.id}: {escape(delivery.event_type or 'not decoded')}</h1>"
        f"<dl>{facts_html}</dl>{_replay_form(entry)}{tools_html}"
        f'<h2>Event</h2><p class="privacy">{privacy}</p>'
        f"<pre>{escape(_event_text(entry, reveal))}</pre>"
        f"<h2>Answer sent</h2><pre>{escape(_answer_text(entry, reveal))}</pre>"
        f"<h2>Headers</h2><pre>{escape(_headers_text(entry))}</pre>"
        f"<h2>Log lines</h2>{_logs(entry)}"
    )
    return _page(f"Delivery #{entry.id}", body)


DUPLICATE_NOTE: Final = (
    "answered from the first delivery: the tool did not run again (replay with "
    "\u201cRun it again even if it is a duplicate\u201d to run it)"
)


def is_duplicate(entry: Entry) -> bool:
    """Whether the app answered ``entry`` from an earlier delivery, running nothing again."""
    if entry.delivery.outcome == DeliveryOutcome.DUPLICATE:
        return True
    return bool(entry.tools) and all(r.outcome == ToolOutcome.DUPLICATE for r in entry.tools)


def message_page(title: str, text: str) -> str:
    """A short page for 404s and refusals."""
    return _page(title, f"<h1>{escape(title)}</h1><p>{escape(text)}</p>")


def _replay_fact(entry: Entry) -> str:
    if not entry.delivery.is_replay:
        return "no"
    if entry.replay_of is None:
        return "yes"
    return f'yes, of <a href="{PREFIX}/deliveries/{entry.replay_of}">#{entry.replay_of}</a>'


def _over(transport: str) -> str:
    return " (MCP)" if transport == "mcp" else ""


def _replay_form(entry: Entry) -> str:
    if entry.delivery.transport != "webhook":
        return '<p class="note">Nothing to replay: an MCP call is not a webhook delivery.</p>'
    if entry.delivery.body is None or entry.delivery.event_type is None:
        return '<p class="note">Nothing to replay: this request was refused before decoding.</p>'
    return (
        f'<form class="replay" method="post" action="{PREFIX}/deliveries/{entry.id}/replay">'
        '<label><input type="checkbox" name="bypass_dedupe" value="1"> Run it again even if '
        'it is a duplicate</label> <button type="submit">Replay</button> '
        '<output role="status" aria-live="polite"></output></form>'
        '<p class="note">A replay is signed again as of now with the app\'s secret, and the '
        "app sees <code>CallContext.is_replay</code>.</p>"
    )


def _event_text(entry: Entry, reveal: bool) -> str:
    body = entry.delivery.body
    if body is None:
        return "(the body never arrived)"
    try:
        decoded = json.loads(body)
    except ValueError:
        return "(not JSON; hidden)" if not reveal else body.decode("utf-8", "replace")
    return _pretty(decoded if reveal else mask(decoded))


def _answer_text(entry: Entry, reveal: bool) -> str:
    answer = entry.delivery.answer
    if not answer:
        return "(none)"
    try:
        decoded = json.loads(answer)
    except ValueError:
        return answer.decode("utf-8", "replace")
    return _pretty(decoded if reveal else mask_phone_numbers(decoded))


def _headers_text(entry: Entry) -> str:
    return "\n".join(f"{name}: {value}" for name, value in entry.signed_headers.items())


def _logs(entry: Entry) -> str:
    if not entry.logs:
        return "<p>None.</p>"
    more = f"\n… {entry.left_out} more lines left out" if entry.left_out else ""
    return f'<pre class="logs">{escape(chr(10).join(entry.logs) + more)}</pre>'


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _time(stamp: float) -> str:
    moment = datetime.datetime.fromtimestamp(stamp, datetime.UTC)
    text = moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
    return f'<time datetime="{moment.isoformat()}">{text}</time>'


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}&nbsp;ms"


def _status_tone(status: int) -> str:
    return "good" if 200 <= status < 300 else "bad"


def _tone(outcome: str) -> str:
    if outcome in ("ok", "interim", "started", "duplicate"):
        return "good"
    return "warn" if outcome == "error" else "bad"  # a ToolError is an answer, not a failure
