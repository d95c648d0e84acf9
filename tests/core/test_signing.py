"""voicehooks.core.signing: the platform's HMAC scheme, the spec's vector, every way to get it
wrong."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicehooks.core.exceptions import ConfigurationError, SignatureError
from voicehooks.core.signing import Verifier, is_milliseconds, sign, signature

# PLATFORM.md 1.5
VECTOR_SECRET = "whsec_voicehooks_demo_7f3a"
VECTOR_TIMESTAMP = 1767182400
VECTOR_BODY = (
    b'{"message":{"type":"status-update","timestamp":"2025-12-31T12:00:00.000Z","call":'
    b'{"id":"3f8c2d1e-6b7a-4c59-9e0d-2a1b4c6d8e0f","type":"inbound_phone_call",'
    b'"status":"in-progress"}}}'
)
VECTOR_HEADER = "sha256=4cdb939e0755c42896c6767397fd10b1a5d94148641e4662c1a3a9759ecd83cd"


def at(seconds: float) -> Verifier:
    return Verifier([VECTOR_SECRET], clock=lambda: seconds)


def test_the_spec_test_vector_signs_to_the_documented_header() -> None:
    assert signature(VECTOR_BODY, VECTOR_SECRET, VECTOR_TIMESTAMP) == VECTOR_HEADER
    headers = sign(VECTOR_BODY, VECTOR_SECRET, VECTOR_TIMESTAMP)
    assert headers["x-webhook-signature"] == VECTOR_HEADER
    assert headers["x-webhook-timestamp"] == str(VECTOR_TIMESTAMP)


def test_the_spec_test_vector_verifies() -> None:
    assert at(VECTOR_TIMESTAMP).verify(VECTOR_BODY, str(VECTOR_TIMESTAMP), VECTOR_HEADER) == 0


def test_an_independent_implementation_of_the_documented_algorithm_is_accepted() -> None:
    # Written from PLATFORM.md's prose, not from voicehooks.core.signing.
    body = b'{"message": {"type": "tool-calls"}}'
    payload = b"1767182400." + body
    digest = hmac.new(b"another-secret", payload, hashlib.sha256).hexdigest()
    verifier = Verifier(["another-secret"], clock=lambda: 1767182400)
    assert verifier.verify(body, "1767182400", "sha256=" + digest) == 0
    assert verifier.verify(body, "1767182400", digest) == 0  # the older, unprefixed form


def test_sign_encodes_str_bodies_and_names_the_event() -> None:
    headers = sign("{}", "s", 5, event="tool-calls")
    assert headers["x-webhook-event"] == "tool-calls"
    assert headers["x-webhook-signature"] == signature(b"{}", "s", 5)


def test_sign_defaults_to_now() -> None:
    headers = sign(b"{}", "s")
    assert abs(int(headers["x-webhook-timestamp"]) - __import__("time").time()) < 5


def test_the_matching_secret_is_reported_by_index_during_rotation() -> None:
    verifier = Verifier(["old", VECTOR_SECRET, "newer"], clock=lambda: VECTOR_TIMESTAMP)
    assert verifier.verify(VECTOR_BODY, str(VECTOR_TIMESTAMP), VECTOR_HEADER) == 1


def test_uppercase_hex_is_accepted() -> None:
    upper = "sha256=" + VECTOR_HEADER.removeprefix("sha256=").upper()
    assert at(VECTOR_TIMESTAMP).verify(VECTOR_BODY, str(VECTOR_TIMESTAMP), upper) == 0


@pytest.mark.parametrize(
    ("timestamp", "header", "body", "now", "reason"),
    [
        (None, VECTOR_HEADER, VECTOR_BODY, VECTOR_TIMESTAMP, "missing X-Webhook-Timestamp"),
        ("", VECTOR_HEADER, VECTOR_BODY, VECTOR_TIMESTAMP, "not a whole number"),
        ("17671824OO", VECTOR_HEADER, VECTOR_BODY, VECTOR_TIMESTAMP, "not a whole number"),
        ("-1767182400", VECTOR_HEADER, VECTOR_BODY, VECTOR_TIMESTAMP, "not a whole number"),
        ("1767182400.5", VECTOR_HEADER, VECTOR_BODY, VECTOR_TIMESTAMP, "not a whole number"),
        ("١٧٦٧١٨٢٤٠٠", VECTOR_HEADER, VECTOR_BODY, VECTOR_TIMESTAMP, "not a whole number"),
        ("1767182400", None, VECTOR_BODY, VECTOR_TIMESTAMP, "missing X-Webhook-Signature"),
        ("1767182400", "sha256=", VECTOR_BODY, VECTOR_TIMESTAMP, "64 hex"),
        ("1767182400", "sha1=" + "0" * 64, VECTOR_BODY, VECTOR_TIMESTAMP, "64 hex"),
        ("1767182400", VECTOR_HEADER[:-1], VECTOR_BODY, VECTOR_TIMESTAMP, "64 hex"),
        ("1767182400", VECTOR_HEADER + "0", VECTOR_BODY, VECTOR_TIMESTAMP, "64 hex"),
        ("1767182400", "sha256=" + "g" * 64, VECTOR_BODY, VECTOR_TIMESTAMP, "64 hex"),
        ("1767182400", "sha256=" + " " * 64, VECTOR_BODY, VECTOR_TIMESTAMP, "64 hex"),
        ("1767182400", VECTOR_HEADER, VECTOR_BODY, VECTOR_TIMESTAMP + 301, "301 s old"),
        ("1767182400", VECTOR_HEADER, VECTOR_BODY, VECTOR_TIMESTAMP - 301, "in the future"),
        ("1767182400", VECTOR_HEADER, VECTOR_BODY + b" ", VECTOR_TIMESTAMP, "does not match"),
        ("1767182401", VECTOR_HEADER, VECTOR_BODY, VECTOR_TIMESTAMP, "does not match"),
        ("1767182400", "sha256=" + "0" * 64, VECTOR_BODY, VECTOR_TIMESTAMP, "does not match"),
    ],
    ids=[
        "missing-timestamp",
        "empty-timestamp",
        "non-numeric-timestamp",
        "negative-timestamp",
        "fractional-timestamp",
        "non-ascii-digits",
        "missing-signature",
        "prefix-only",
        "wrong-algorithm-prefix",
        "short-signature",
        "long-signature",
        "non-hex-signature",
        "spaces-signature",
        "stale",
        "future",
        "tampered-body",
        "tampered-timestamp",
        "wrong-secret",
    ],
)
def test_bad_signatures_are_rejected_with_a_reason(
    timestamp: str | None, header: str | None, body: bytes, now: float, reason: str
) -> None:
    with pytest.raises(SignatureError, match=reason):
        at(now).verify(body, timestamp, header)


def test_rejection_messages_never_contain_the_secret_or_the_signature() -> None:
    with pytest.raises(SignatureError) as info:
        at(VECTOR_TIMESTAMP).verify(VECTOR_BODY, "1767182400", "sha256=" + "1" * 64)
    assert VECTOR_SECRET not in str(info.value)
    assert "1" * 64 not in str(info.value)


def test_the_tolerance_is_inclusive_and_configurable() -> None:
    verifier = Verifier([VECTOR_SECRET], tolerance_seconds=10, clock=lambda: VECTOR_TIMESTAMP + 10)
    assert verifier.verify(VECTOR_BODY, str(VECTOR_TIMESTAMP), VECTOR_HEADER) == 0
    verifier = Verifier([VECTOR_SECRET], tolerance_seconds=9, clock=lambda: VECTOR_TIMESTAMP + 10)
    with pytest.raises(SignatureError, match="tolerance is 9 s"):
        verifier.verify(VECTOR_BODY, str(VECTOR_TIMESTAMP), VECTOR_HEADER)


def test_the_freshness_check_can_be_switched_off() -> None:
    verifier = Verifier([VECTOR_SECRET], tolerance_seconds=None, clock=lambda: 4e9)
    assert verifier.verify(VECTOR_BODY, str(VECTOR_TIMESTAMP), VECTOR_HEADER) == 0


def test_a_millisecond_timestamp_is_read_as_milliseconds() -> None:
    millis = str(VECTOR_TIMESTAMP * 1000 + 250)
    assert is_milliseconds(millis)
    assert not is_milliseconds(str(VECTOR_TIMESTAMP))
    assert at(VECTOR_TIMESTAMP).check_timestamp(millis) == pytest.approx(VECTOR_TIMESTAMP + 0.25)
    header = signature(VECTOR_BODY, VECTOR_SECRET, millis)
    assert at(VECTOR_TIMESTAMP).verify(VECTOR_BODY, millis, header) == 0


@pytest.mark.parametrize("secrets", [[], [""], ["ok", ""]])
def test_a_verifier_needs_non_empty_secrets(secrets: list[str]) -> None:
    with pytest.raises(ConfigurationError):
        Verifier(secrets)


def test_a_negative_tolerance_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="tolerance_seconds"):
        Verifier(["s"], tolerance_seconds=-1)


@given(
    body=st.binary(max_size=2048),
    secret=st.text(min_size=1, max_size=64),
    stamp=st.integers(0, 10**10),
)
def test_sign_then_verify_round_trips(body: bytes, secret: str, stamp: int) -> None:
    headers = sign(body, secret, stamp)
    verifier = Verifier([secret], tolerance_seconds=None)
    assert (
        verifier.verify(body, headers["x-webhook-timestamp"], headers["x-webhook-signature"]) == 0
    )


@given(body=st.binary(max_size=256), flip=st.integers(0, 255))
def test_any_changed_byte_breaks_the_signature(body: bytes, flip: int) -> None:
    headers = sign(body, "s", 100)
    tampered = bytes([flip]) + body[1:] if body and body[0] != flip else body + b"x"
    with pytest.raises(SignatureError):
        Verifier(["s"], tolerance_seconds=None).verify(
            tampered, headers["x-webhook-timestamp"], headers["x-webhook-signature"]
        )


def test_a_skew_just_past_the_tolerance_is_not_rounded_into_it() -> None:
    with pytest.raises(SignatureError, match=r"is 300\.4 s in the future; the tolerance is 300 s"):
        at(VECTOR_TIMESTAMP - 300.4).verify(VECTOR_BODY, str(VECTOR_TIMESTAMP), VECTOR_HEADER)
    with pytest.raises(SignatureError, match=r"is 300\.1 s old"):
        at(VECTOR_TIMESTAMP + 300.04).verify(VECTOR_BODY, str(VECTOR_TIMESTAMP), VECTOR_HEADER)
