"""``voicehooks verify``: whether a captured delivery verifies, and if not, why."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from voicehooks.cli import main
from voicehooks.core.signing import signature

# The test vector of PLATFORM.md 1.5.
SECRET = "whsec_voicehooks_demo_7f3a"
STAMP = "1767182400"
BODY = (
    b'{"message":{"type":"status-update","timestamp":"2025-12-31T12:00:00.000Z","call":{"id":'
    b'"3f8c2d1e-6b7a-4c59-9e0d-2a1b4c6d8e0f","type":"inbound_phone_call","status":"in-progress"}}}'
)
SIGNATURE = "sha256=4cdb939e0755c42896c6767397fd10b1a5d94148641e4662c1a3a9759ecd83cd"
CAPTURED_AT = str(int(STAMP) + 12)

Verify = Callable[..., Result]


@pytest.fixture
def verify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Verify:
    """Run ``voicehooks verify`` on a body and headers; checks nothing secret is printed."""
    monkeypatch.setenv("VOICEHOOKS_SECRET", SECRET)
    monkeypatch.delenv("VOICEHOOKS_SECRET_FILE", raising=False)

    def run(
        body: bytes = BODY,
        headers: tuple[str, ...] = (
            f"X-Webhook-Timestamp: {STAMP}",
            f"X-Webhook-Signature: {SIGNATURE}",
        ),
        *options: str,
        secrets: str | None = None,
    ) -> Result:
        path = tmp_path / "body.json"
        path.write_bytes(body)
        args = ["verify", "--body", str(path)]
        for header in headers:
            args += ["--header", header]
        env = {"VOICEHOOKS_SECRET": secrets} if secrets is not None else {}
        result = CliRunner(env=env).invoke(main, [*args, *options])
        for secret in (secrets or SECRET).split(","):
            assert secret.strip("'\" ") not in result.output
        for header in headers:
            _, _, value = header.partition(":")
            if header.lower().startswith("x-webhook-signature") and len(value.strip()) > 16:
                assert value.strip().removeprefix("sha256=") not in result.output
        return result

    return run


def test_the_spec_vector_verifies_as_of_its_capture_time(verify: Verify) -> None:
    result = verify(BODY, *_headers(), "--at", CAPTURED_AT)
    assert result.exit_code == 0
    assert result.output == (
        "OK: verifies with secret #1 of 1 configured; the timestamp is 12 s old as of --at.\n"
    )


def test_a_stale_capture_says_the_secret_is_right_and_the_clock_is_not(verify: Verify) -> None:
    result = verify()
    assert result.exit_code == 1
    assert "FAIL: the signature matches secret #1 of 1 configured, but the timestamp is" in (
        result.output
    )
    assert "s old now, beyond the 300 s tolerance: a server would answer 401." in result.output
    assert "--at UNIX_TIME" in result.output


@pytest.mark.parametrize(
    ("at", "tolerance", "expected"),
    [
        (str(int(STAMP) - 400), "300", "400 s in the future as of --at, beyond the 300 s"),
        (str(int(STAMP) + 400), "300", "400 s old as of --at, beyond the 300 s"),
        (str(int(STAMP) + 400), "600", "OK: verifies"),
        (str(int(STAMP) + 300), "300", "OK: verifies"),
    ],
)
def test_clock_skew_in_seconds_against_the_tolerance(
    verify: Verify, at: str, tolerance: str, expected: str
) -> None:
    result = verify(BODY, *_headers(), "--at", at, "--tolerance", tolerance)
    assert expected in result.output
    assert result.exit_code == (0 if expected.startswith("OK") else 1)


def test_the_matching_secret_is_named_by_position_during_a_rotation(verify: Verify) -> None:
    result = verify(BODY, *_headers(), "--at", CAPTURED_AT, secrets=f"whsec_new, {SECRET}")
    assert result.exit_code == 0
    assert "OK: verifies with secret #2 of 2 configured" in result.output


def test_no_matching_secret_points_at_the_secret(verify: Verify) -> None:
    result = verify(BODY, *_headers(), "--at", CAPTURED_AT, secrets="whsec_a,whsec_b")
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "FAIL: the signature matches none of the 2 configured secret(s).",
        "  Most likely the secret differs: compare VOICEHOOKS_SECRET with the assistant's "
        "webhook_secret (during a rotation list both, comma-separated).",
        "  Otherwise the body or the timestamp changed after signing: capture the raw bytes.",
    ]


def test_a_stale_capture_with_the_wrong_secret_reports_both(verify: Verify) -> None:
    result = verify(BODY, *_headers(), secrets="whsec_other")
    assert result.exit_code == 1
    assert "matches none of the 1 configured secret(s)" in result.output
    assert "Also, the timestamp is" in result.output


def test_a_secret_pasted_with_its_quotes_is_recognised(verify: Verify) -> None:
    result = verify(BODY, *_headers(), "--at", CAPTURED_AT, secrets=f'"{SECRET}"')
    assert result.exit_code == 1
    assert "Secret #1 matches once its surrounding quotes are removed" in result.output


def _pretty(indent: int) -> bytes:
    return json.dumps(json.loads(BODY), indent=indent).encode()


@pytest.mark.parametrize(
    ("body", "explanation"),
    [
        (BODY + b"\n", "with its trailing newline stripped, it verifies with secret #1"),
        (BODY + b"\r\n", "with its trailing newline stripped"),
        (b"\xef\xbb\xbf" + BODY, "without its byte-order mark"),
        (_pretty(2), "re-serialised compact, it verifies"),
        (_pretty(4), "re-serialised compact, it verifies"),
        (json.dumps(json.loads(BODY)).encode(), "re-serialised compact, it verifies"),
    ],
)
def test_a_body_changed_after_signing_is_recognised(
    verify: Verify, body: bytes, explanation: str
) -> None:
    result = verify(body, *_headers(), "--at", CAPTURED_AT)
    assert result.exit_code == 1
    assert "FAIL: the signature matches none of the 1 configured secret(s)." in result.output
    assert "The body was changed after signing" in result.output
    assert explanation in result.output
    assert "do not parse and re-serialise the JSON" in result.output


def test_a_body_signed_pretty_but_captured_compact_is_recognised(verify: Verify) -> None:
    pretty = _pretty(2)
    signed = signature(pretty, SECRET, STAMP)
    result = verify(BODY, *_headers(signed), "--at", CAPTURED_AT)
    assert result.exit_code == 1
    assert "re-serialised pretty-printed with 2 spaces, it verifies" in result.output


def test_crlf_line_endings_added_by_a_capture_are_recognised(verify: Verify) -> None:
    body = _pretty(2)
    result = verify(
        body.replace(b"\n", b"\r\n"), *_headers(signature(body, SECRET, STAMP)), "--at", STAMP
    )
    assert "with CRLF line endings turned into LF, it verifies" in result.output


@pytest.mark.parametrize(
    ("headers", "explanation"),
    [
        ((f"X-Webhook-Signature: {SIGNATURE}",), "FAIL: no X-Webhook-Timestamp header."),
        ((f"X-Webhook-Timestamp: {STAMP}",), "FAIL: no X-Webhook-Signature header."),
        (
            (f"X-Webhook-Timestamp: {STAMP}", f"X-Webhook-Timestamp: {STAMP}"),
            "FAIL: 2 X-Webhook-Timestamp headers; the app rejects more than one.",
        ),
        (
            ("X-Webhook-Timestamp: 2025-12-31T12:00:00Z", f"X-Webhook-Signature: {SIGNATURE}"),
            "FAIL: X-Webhook-Timestamp is not a whole number of Unix seconds.",
        ),
        (
            (f"X-Webhook-Timestamp: {STAMP}", "X-Webhook-Signature: sha1=0123abcd"),
            "has the prefix 'sha1='; the platform sends 'sha256=' and 64 hex digits",
        ),
        (
            (f"X-Webhook-Timestamp: {STAMP}", f"X-Webhook-Signature: {SIGNATURE[:40]}"),
            "is not 'sha256=' followed by 64 hex characters (it has 33 characters after the "
            "prefix); was it cut off when captured?",
        ),
        (
            (f"X-Webhook-Timestamp: {STAMP}", "X-Webhook-Signature: sha256=" + "z" * 64),
            "is not 'sha256=' followed by 64 hex characters",
        ),
    ],
)
def test_missing_repeated_and_malformed_headers_are_named(
    verify: Verify, headers: tuple[str, ...], explanation: str
) -> None:
    result = verify(BODY, headers, "--at", CAPTURED_AT)
    assert result.exit_code == 1
    assert explanation in result.output


def test_a_signature_without_the_prefix_is_accepted_with_a_note(verify: Verify) -> None:
    result = verify(BODY, *_headers(SIGNATURE.removeprefix("sha256=")), "--at", CAPTURED_AT)
    assert result.exit_code == 0
    assert "note: the signature has no 'sha256=' prefix (the older form); accepted." in (
        result.output
    )


def test_a_millisecond_timestamp_is_read_as_such(verify: Verify) -> None:
    millis = STAMP + "000"
    headers = (f"X-Webhook-Timestamp: {millis}", f"X-Webhook-Signature: {_sign(millis)}")
    result = verify(BODY, headers, "--at", CAPTURED_AT)
    assert result.exit_code == 0
    assert "note: X-Webhook-Timestamp is in milliseconds; read as such." in result.output
    assert "the timestamp is 12 s old" in result.output


def test_headers_come_from_a_captured_file(verify: Verify, tmp_path: Path) -> None:
    captured = tmp_path / "headers.txt"
    captured.write_text(
        "POST /hooks/ HTTP/1.1\n"
        "# captured by the proxy\n"
        "Host: hooks.example.com\n"
        "Content-Type: application/json\n"
        f"x-webhook-timestamp: {STAMP}\n"
        f"X-WEBHOOK-SIGNATURE:{SIGNATURE}\n"
        "\n"
    )
    result = verify(BODY, (), "--headers", str(captured), "--at", CAPTURED_AT)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--header", "no colon here"], "a header must look like 'X-Webhook-Timestamp:"),
        (["--headers", "/nonexistent/headers.txt"], "cannot read '/nonexistent/headers.txt'"),
        (["--tolerance", "-1"], "-1"),
    ],
)
def test_usage_errors_exit_2(verify: Verify, args: list[str], message: str) -> None:
    result = verify(BODY, (), *args)
    assert result.exit_code == 2
    assert message in result.output


def test_a_missing_body_file_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner(env={"VOICEHOOKS_SECRET": SECRET}).invoke(
        main, ["verify", "--body", str(tmp_path / "nope.json")]
    )
    assert result.exit_code == 2
    assert "cannot read" in result.output


def test_without_a_secret_it_says_where_to_put_one(verify: Verify) -> None:
    result = verify(BODY, *_headers(), secrets="")
    assert result.exit_code == 2
    assert "no secret to check against: set VOICEHOOKS_SECRET" in result.output


def test_the_secret_may_come_from_an_env_file(verify: Verify, tmp_path: Path) -> None:
    env_file = tmp_path / "capture.env"
    env_file.write_text(f"VOICEHOOKS_SECRET={SECRET}\n")
    result = verify(
        BODY, *_headers(), "--env-file", str(env_file), "--at", CAPTURED_AT, secrets="whsec_x"
    )
    assert result.exit_code == 0, result.output


def _sign(stamp: str) -> str:
    return signature(BODY, SECRET, stamp)


def _headers(value: str = SIGNATURE) -> tuple[tuple[str, ...]]:
    return ((f"X-Webhook-Timestamp: {STAMP}", f"X-Webhook-Signature: {value}"),)


def test_a_body_that_is_not_json_gets_the_general_hints(verify: Verify) -> None:
    result = verify(b"not json at all", *_headers(), "--at", CAPTURED_AT)
    assert result.exit_code == 1
    assert "Most likely the secret differs" in result.output
