"""Keccak-256 and EIP-55 checksums, the primitives behind wallet validation (seed property
10), checked against published vectors and against hashlib's SHA-3 (same permutation)."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control_plane.creators.keccak import _sponge, keccak256
from control_plane.creators.wallet import (
    InvalidAddress,
    checksum_address,
    normalise_wallet_address,
)

# The test addresses of EIP-55 itself.
EIP55_ADDRESSES = [
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]


@pytest.mark.parametrize(
    ("data", "digest"),
    [
        (b"", "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"),
        (b"abc", "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"),
        (
            b"The quick brown fox jumps over the lazy dog",
            "4d741b6f1eb29cb2a9b9911c82f56fa8d73b04959d3d9d222895df6c0b28aa15",
        ),
    ],
)
def test_keccak256_vectors(data: bytes, digest: str) -> None:
    assert keccak256(data).hex() == digest


def test_keccak256_is_not_sha3_256() -> None:
    assert keccak256(b"") != hashlib.sha3_256(b"").digest()


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=600))
def test_the_sponge_with_sha3_padding_is_sha3_256(data: bytes) -> None:
    """Same permutation and sponge as FIPS 202, across block boundaries (136-byte rate)."""
    assert _sponge(data, 0x06) == hashlib.sha3_256(data).digest()


@pytest.mark.parametrize("address", EIP55_ADDRESSES)
def test_eip55_vectors(address: str) -> None:
    assert checksum_address(address.lower()) == address
    assert checksum_address("0x" + address[2:].upper()) == address
    assert normalise_wallet_address(address) == address
    assert normalise_wallet_address(address.lower()) == address
    assert normalise_wallet_address("0x" + address[2:].upper()) == address


@pytest.mark.parametrize("address", EIP55_ADDRESSES)
def test_one_flipped_letter_breaks_the_checksum(address: str) -> None:
    for index, char in enumerate(address[2:], start=2):
        if char.isalpha():
            flipped = address[:index] + char.swapcase() + address[index + 1 :]
            with pytest.raises(InvalidAddress):
                normalise_wallet_address(flipped)


_SHAPE = re.compile(r"0x[0-9a-fA-F]{40}")


def oracle_accepts(text: str) -> bool:
    """The rule, stated independently of the implementation's control flow."""
    if _SHAPE.fullmatch(text) is None:
        return False
    digits = text[2:]
    return digits in (digits.lower(), digits.upper()) or checksum_address(text) == text


hex_digits = st.text(alphabet="0123456789abcdefABCDEF", min_size=40, max_size=40)
addresses = st.one_of(
    st.text(max_size=60),
    hex_digits.map(lambda digits: "0x" + digits),  # random case: almost always a bad checksum
    hex_digits.map(lambda digits: "0x" + digits.lower()),
    hex_digits.map(lambda digits: "0x" + digits.upper()),
    hex_digits.map(lambda digits: checksum_address("0x" + digits)),
    st.text(alphabet="0123456789abcdefABCDEFgxX \n", min_size=38, max_size=44).map(
        lambda digits: "0x" + digits
    ),
    hex_digits.map(lambda digits: "0X" + digits.lower()),
    hex_digits.map(lambda digits: " 0x" + digits.lower()),
    hex_digits.map(lambda digits: "0x" + digits.lower() + "\n"),
)


@settings(max_examples=500, deadline=None)
@given(text=addresses)
def test_property_10_wallet_address_validation(text: str) -> None:
    """Property 10: Wallet Address Validation. Exactly `0x` + 40 hex digits is accepted,
    mixed case only with its right EIP-55 checksum; an accepted address comes back as the
    same address in its checksummed spelling."""
    try:
        canonical = normalise_wallet_address(text)
    except InvalidAddress:
        assert not oracle_accepts(text)
        return
    assert oracle_accepts(text)
    assert canonical.lower() == text.lower()
    assert checksum_address(canonical) == canonical
