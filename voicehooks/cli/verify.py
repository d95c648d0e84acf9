"""``voicehooks verify``: check a captured delivery and explain why it does not verify.

The checks are the app's own (``voicehooks.core.signing.Verifier``), run one at a time so each
failure can be named: a missing or repeated header, a malformed timestamp or signature, clock
skew beyond the tolerance, no configured secret matching. When no secret matches, the usual
accidents are tried (a trailing newline added by an editor, JSON parsed and re-serialised by
a logger or a framework, a secret pasted with its quotes) and named when one explains it.
Nothing here prints a secret, a signature or the body.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from voicehooks.core import environment as variables
from voicehooks.core.exceptions import SignatureError
from voicehooks.core.signing import DEFAULT_TOLERANCE_SECONDS, Verifier, is_milliseconds

from .environment import configured_secrets, env_file_option

__all__ = ["verify"]


@click.command()
@click.option(
    "--body",
    "body_path",
    required=True,
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="The captured request body, byte for byte.",
)
@click.option(
    "--header",
    "header_lines",
    multiple=True,
    metavar="'NAME: VALUE'",
    help="A captured header; repeat for each (X-Webhook-Signature, X-Webhook-Timestamp).",
)
@click.option(
    "--headers",
    "headers_path",
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="A file of captured 'Name: value' lines (a request line and blanks are skipped).",
)
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0),
    default=DEFAULT_TOLERANCE_SECONDS,
    show_default=True,
    help="Largest accepted clock distance, in seconds.",
)
@click.option(
    "--at",
    "at",
    type=float,
    metavar="UNIX_TIME",
    help="Judge the timestamp as of this time (when it was captured) instead of now.",
)
@env_file_option
def verify(
    body_path: str,
    header_lines: tuple[str, ...],
    headers_path: str | None,
    tolerance: float,
    at: float | None,
) -> None:
    """Check a captured delivery against the configured secrets, and say why it fails.

    Uses the secrets in VOICEHOOKS_SECRET (comma-separated) or VOICEHOOKS_SECRET_FILE.
    Explains missing or malformed headers, clock skew, a secret that does not match, and
    bodies changed after signing (re-encoded JSON, an added trailing newline). Never prints
    a secret or a signature. Exit code 0 if it verifies, 1 if not, 2 on a usage error.

    \b
    Examples:
        voicehooks verify --body body.json \\
            --header 'X-Webhook-Timestamp: 1767182400' \\
            --header 'X-Webhook-Signature: sha256=4cdb…'
        voicehooks verify --body body.json --headers headers.txt --at 1767182400
    """
    body = _read_bytes(body_path, "--body")
    lines = list(header_lines)
    if headers_path is not None:
        lines = _read_bytes(headers_path, "--headers").decode("latin-1").splitlines() + lines
    headers = _parse_headers(lines)
    secrets = configured_secrets()
    if not secrets:
        raise click.UsageError(
            f"no secret to check against: set {variables.SECRET} (comma-separated for "
            f"several) or {variables.SECRET_FILE}, or pass --env-file FILE"
        )
    now = time.time() if at is None else at
    ok, report = _diagnose(body, headers, secrets, tolerance, now, at is not None)
    for line in report:
        click.echo(line)
    if not ok:
        sys.exit(1)


def _read_bytes(path: str, option: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise click.BadParameter(
            f"cannot read {path!r}: {exc.strerror}", param_hint=option
        ) from None


def _parse_headers(lines: Sequence[str]) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or line.endswith(("HTTP/1.1", "HTTP/1.0", "HTTP/2")):
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip() or " " in name.strip():
            raise click.BadParameter(
                "a header must look like 'X-Webhook-Timestamp: 1767182400'", param_hint="--header"
            )
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return headers


def _diagnose(
    body: bytes,
    headers: Mapping[str, list[str]],
    secrets: Sequence[str],
    tolerance: float,
    now: float,
    at_given: bool,
) -> tuple[bool, list[str]]:
    """Return whether the capture verifies, and the lines that explain it."""
    stamps = headers.get("x-webhook-timestamp", [])
    signatures = headers.get("x-webhook-signature", [])
    for name, values in (("X-Webhook-Timestamp", stamps), ("X-Webhook-Signature", signatures)):
        if len(values) > 1:
            return False, [f"FAIL: {len(values)} {name} headers; the app rejects more than one."]
    if not stamps:
        return False, [
            "FAIL: no X-Webhook-Timestamp header. The platform sends it with every signed "
            "delivery; capture it with the body (--header or --headers)."
        ]
    if not signatures:
        return False, [
            "FAIL: no X-Webhook-Signature header. The platform only signs when the assistant "
            "has a webhook_secret; set one, or capture the header too."
        ]
    stamp, value = stamps[0], signatures[0]
    if not (stamp.isascii() and stamp.isdigit()):
        return False, ["FAIL: X-Webhook-Timestamp is not a whole number of Unix seconds."]
    problem = _signature_format_problem(value)
    if problem:
        return False, [f"FAIL: X-Webhook-Signature {problem}."]
    lines = []
    if not value.startswith("sha256="):
        lines.append("note: the signature has no 'sha256=' prefix (the older form); accepted.")
    if is_milliseconds(stamp):
        lines.append("note: X-Webhook-Timestamp is in milliseconds; read as such.")
    skew = now - int(stamp) / (1000 if is_milliseconds(stamp) else 1)
    when = "as of --at" if at_given else "now"
    age = f"{abs(skew):.0f} s {'old' if skew >= 0 else 'in the future'} {when}"
    fresh = abs(skew) <= tolerance
    index = _matching_secret(body, stamp, value, secrets)
    count = f"of {len(secrets)} configured"
    if index is not None and fresh:
        lines.append(f"OK: verifies with secret #{index + 1} {count}; the timestamp is {age}.")
        return True, lines
    if index is not None:
        lines.append(
            f"FAIL: the signature matches secret #{index + 1} {count}, but the timestamp is "
            f"{age}, beyond the {tolerance:g} s tolerance: a server would answer 401."
        )
        lines.append(
            "  Captured earlier? Judge it as of then: --at UNIX_TIME. Live traffic? The "
            "server's clock is off; sync it (NTP)."
        )
        return False, lines
    lines.append(f"FAIL: the signature matches none of the {len(secrets)} configured secret(s).")
    if not fresh:
        lines.append(f"  Also, the timestamp is {age}, beyond the {tolerance:g} s tolerance.")
    lines.extend(f"  {hint}" for hint in _mismatch_hints(body, stamp, value, secrets))
    return False, lines


def _signature_format_problem(value: str) -> str | None:
    digest = value.removeprefix("sha256=")
    if digest is not value and len(digest) == 64 and _is_hex(digest):
        return None
    if digest is value:
        prefix, sep, _ = value.partition("=")
        if sep and prefix.isalnum() and len(prefix) <= 10:
            return f"has the prefix '{prefix}='; the platform sends 'sha256=' and 64 hex digits"
        if len(value) == 64 and _is_hex(value):
            return None
    return (
        f"is not 'sha256=' followed by 64 hex characters (it has {len(digest)} characters "
        "after the prefix); was it cut off when captured?"
    )


def _is_hex(text: str) -> bool:
    return all(char in "0123456789abcdefABCDEF" for char in text)


def _matching_secret(body: bytes, stamp: str, value: str, secrets: Sequence[str]) -> int | None:
    try:
        return Verifier(secrets, tolerance_seconds=None).verify(body, stamp, value)
    except SignatureError:
        return None


def _mismatch_hints(body: bytes, stamp: str, value: str, secrets: Sequence[str]) -> list[str]:
    """Try the usual ways a body or secret changes between platform and capture."""
    for label, variant in _body_variants(body):
        index = _matching_secret(variant, stamp, value, secrets)
        if index is not None:
            return [
                f"The body was changed after signing: {label}, it verifies with secret "
                f"#{index + 1}. Verify the raw bytes exactly as received; do not parse and "
                "re-serialise the JSON, or edit or re-save the capture."
            ]
    for index, secret in enumerate(secrets):
        unquoted = secret.strip("'\"")
        if unquoted in ("", secret):
            continue
        if _matching_secret(body, stamp, value, [unquoted]) is not None:
            return [
                f"Secret #{index + 1} matches once its surrounding quotes are removed: "
                f"take the quotes out of {variables.SECRET}."
            ]
    return [
        f"Most likely the secret differs: compare {variables.SECRET} with the assistant's "
        "webhook_secret (during a rotation list both, comma-separated).",
        "Otherwise the body or the timestamp changed after signing: capture the raw bytes.",
    ]


def _body_variants(body: bytes) -> Iterator[tuple[str, bytes]]:
    if body.endswith((b"\n", b"\r")):
        yield "with its trailing newline stripped", body.rstrip(b"\r\n")
    if body.startswith(b"\xef\xbb\xbf"):
        yield "without its byte-order mark", body[3:]
    if b"\r\n" in body:
        yield "with CRLF line endings turned into LF", body.replace(b"\r\n", b"\n")
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return
    forms: list[tuple[str, dict[str, Any]]] = [
        ("compact", {"separators": (",", ":"), "ensure_ascii": False}),
        ("compact, ASCII-escaped", {"separators": (",", ":")}),
        ("with spaces after , and :", {"ensure_ascii": False}),
        ("with spaces, ASCII-escaped", {}),
        ("pretty-printed with 2 spaces", {"indent": 2, "ensure_ascii": False}),
        ("pretty-printed with 4 spaces", {"indent": 4, "ensure_ascii": False}),
    ]
    for label, options in forms:
        text = json.dumps(value, **options).encode()
        if text != body:
            yield f"it is valid JSON, and re-serialised {label}", text
