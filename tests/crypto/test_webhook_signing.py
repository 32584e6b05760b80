"""Webhook signatures: round trip, tampering, replay window and malformed headers."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from crypto.errors import CryptoError, SignatureError
from crypto.webhook_signing import generate_webhook_secret, sign, verify

SECRET = "whsec_test-secret"
T0 = 1_700_000_000
secrets_ = st.one_of(st.binary(min_size=1, max_size=64), st.text(min_size=1, max_size=64))
timestamps = st.integers(min_value=0, max_value=2**40)


def v1_of(header: str) -> str:
    return header.split(",v1=")[1]


@settings(max_examples=200)
@given(secret=secrets_, body=st.binary(max_size=2048), timestamp=timestamps)
def test_signed_body_verifies(secret: bytes | str, body: bytes, timestamp: int) -> None:
    header = sign(secret, body, timestamp)

    verify(secret, body, header, now=timestamp)


def test_header_format_and_signed_payload() -> None:
    body = b'{"event":"agent.invoked"}'

    header = sign(SECRET, body, T0)

    expected = hmac.new(SECRET.encode(), f"{T0}.".encode() + body, hashlib.sha256).hexdigest()
    assert header == f"t={T0},v1={expected}"
    assert re.fullmatch(r"t=[0-9]+,v1=[0-9a-f]{64}", header)


def test_str_and_bytes_secrets_are_the_same_key() -> None:
    assert sign(SECRET, b"x", T0) == sign(SECRET.encode(), b"x", T0)


@settings(max_examples=100)
@given(body=st.binary(max_size=256), other_body=st.binary(max_size=256))
def test_tampered_body_is_rejected(body: bytes, other_body: bytes) -> None:
    header = sign(SECRET, body, T0)

    if other_body == body:
        verify(SECRET, other_body, header, now=T0)
    else:
        with pytest.raises(SignatureError, match="does not match"):
            verify(SECRET, other_body, header, now=T0)


def test_wrong_secret_is_rejected() -> None:
    header = sign(SECRET, b"body", T0)

    with pytest.raises(SignatureError, match="does not match"):
        verify("whsec_other", b"body", header, now=T0)


def test_replayed_signature_with_a_fresh_timestamp_is_rejected() -> None:
    old_header = sign(SECRET, b"body", T0)
    refreshed = f"t={T0 + 3600},v1={v1_of(old_header)}"

    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, b"body", refreshed, now=T0 + 3600)


@pytest.mark.parametrize("offset", [-300, -1, 0, 1, 300])
def test_timestamps_within_tolerance_are_accepted(offset: int) -> None:
    verify(SECRET, b"body", sign(SECRET, b"body", T0), now=T0 + offset)


@pytest.mark.parametrize("offset", [301, 3600, 10**9])
def test_expired_signature_is_rejected(offset: int) -> None:
    with pytest.raises(SignatureError, match="beyond 300s"):
        verify(SECRET, b"body", sign(SECRET, b"body", T0), now=T0 + offset)


@pytest.mark.parametrize("offset", [301, 3600])
def test_signature_from_the_future_is_rejected(offset: int) -> None:
    with pytest.raises(SignatureError, match="beyond 300s"):
        verify(SECRET, b"body", sign(SECRET, b"body", T0), now=T0 - offset)


def test_custom_tolerance() -> None:
    header = sign(SECRET, b"body", T0)

    verify(SECRET, b"body", header, now=T0 + 30, tolerance_seconds=30)
    with pytest.raises(SignatureError):
        verify(SECRET, b"body", header, now=T0 + 31, tolerance_seconds=30)


def test_any_matching_v1_entry_is_enough_during_secret_rotation() -> None:
    old_signature = v1_of(sign("whsec_old", b"body", T0))
    new_signature = v1_of(sign(SECRET, b"body", T0))

    verify(SECRET, b"body", f"t={T0},v1={old_signature},v1={new_signature}", now=T0)
    verify(SECRET, b"body", f"t={T0},v0=legacy,v1={new_signature}", now=T0)
    with pytest.raises(SignatureError, match="does not match"):
        verify(SECRET, b"body", f"t={T0},v1={old_signature},v1={old_signature}", now=T0)


VALID_V1 = "0" * 64


@pytest.mark.parametrize(
    "header",
    [
        "",
        ",",
        "t",
        "t=",
        f"v1={VALID_V1}",
        f"t={T0}",
        f"t={T0},v0=abc",
        f"t=abc,v1={VALID_V1}",
        f"t=+{T0},v1={VALID_V1}",
        f"t=-{T0},v1={VALID_V1}",
        f"t={T0}.5,v1={VALID_V1}",
        f"t=1_700_000_000,v1={VALID_V1}",
        "t=\u0661\u0667" + "\u0660" * 8 + f",v1={VALID_V1}",  # Arabic-Indic digits
        f"t={'9' * 40},v1={VALID_V1}",
        f"t={T0},t={T0},v1={VALID_V1}",
        f"t={T0},v1=",
        f"t={T0},v1={VALID_V1[:-1]}",
        f"t={T0},v1={VALID_V1}0",
        f"t={T0},v1={VALID_V1.upper().replace('0', 'A')}",
        f"t={T0},v1={'é' * 64}",
        f"t={T0};v1={VALID_V1}",
        f"t={T0},v1={VALID_V1},garbage",
    ],
)
def test_malformed_headers_raise_signature_error(header: str) -> None:
    with pytest.raises(SignatureError):
        verify(SECRET, b"body", header, now=T0)


@settings(max_examples=200)
@given(header=st.text(max_size=200))
@example(header="t=1,v1=" + "\ud800" * 64)
@example(header="t=" + "1" * 5000 + ",v1=" + VALID_V1)
def test_arbitrary_header_text_raises_only_signature_error(header: str) -> None:
    with pytest.raises(SignatureError):
        verify(SECRET, b"body", header, now=T0)


def test_signature_error_is_a_crypto_error_and_hides_the_expected_signature() -> None:
    header = sign(SECRET, b"body", T0)

    with pytest.raises(CryptoError) as raised:
        verify(SECRET, b"tampered", header, now=T0)

    expected = v1_of(sign(SECRET, b"tampered", T0))
    assert isinstance(raised.value, SignatureError)
    assert expected not in str(raised.value)
    assert SECRET not in str(raised.value)


def test_negative_timestamp_or_tolerance_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timestamp"):
        sign(SECRET, b"body", -1)
    with pytest.raises(ValueError, match="tolerance"):
        verify(SECRET, b"body", sign(SECRET, b"body", T0), now=T0, tolerance_seconds=-1)


def test_generated_secrets_are_prefixed_random_and_usable() -> None:
    generated = {generate_webhook_secret() for _ in range(50)}

    assert len(generated) == 50
    for secret in generated:
        assert re.fullmatch(r"whsec_[A-Za-z0-9_-]{43}", secret)
    secret = generated.pop()
    verify(secret, b"body", sign(secret, b"body", T0), now=T0)
