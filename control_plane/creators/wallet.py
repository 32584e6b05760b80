"""Ethereum address validation with EIP-55 checksums (seed property 10).

An address is `0x` followed by 40 hex digits. All-lowercase or all-uppercase hex carries no
checksum and is accepted as such; mixed case is an EIP-55 checksum and must be right, so a
mistyped character in a copied address is caught before any payout goes to it. Accepted
addresses are stored in their checksummed form, one canonical spelling per address.
"""

from __future__ import annotations

import re

from control_plane.creators.keccak import keccak256

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


class InvalidAddress(ValueError):
    """Not an Ethereum address, or a mixed-case one whose EIP-55 checksum is wrong."""


def checksum_address(address: str) -> str:
    """The EIP-55 spelling of a well-formed address: a hex letter is upper case exactly when
    the matching nibble of keccak256(lowercase hex digits) is 8 or more."""
    digits = address[2:].lower()
    nibbles = keccak256(digits.encode("ascii")).hex()
    return "0x" + "".join(
        char.upper() if char.isalpha() and int(nibbles[i], 16) >= 8 else char
        for i, char in enumerate(digits)
    )


def normalise_wallet_address(raw: str) -> str:
    """The checksummed form of `raw`, or `InvalidAddress`. Nothing is trimmed or guessed."""
    if _ADDRESS.fullmatch(raw) is None:
        raise InvalidAddress("Expected 0x followed by 40 hexadecimal digits.")
    digits = raw[2:]
    canonical = checksum_address(raw)
    if digits not in (digits.lower(), digits.upper()) and raw != canonical:
        raise InvalidAddress("The mixed-case address does not match its EIP-55 checksum.")
    return canonical
