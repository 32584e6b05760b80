"""Keccak-256 (the original Keccak submission, as Ethereum uses it), in pure Python.

Not `hashlib.sha3_256`: FIPS 202 SHA-3 pads with the domain bits `01` (first pad byte 0x06),
the Keccak Ethereum adopted pads with none (0x01), so the two give different digests for the
same input. No Keccak library is a dependency of the project and hashing a 40-character
address is all it is used for (EIP-55 checksums), so a compact implementation of the sponge
is enough. `_sponge` takes the padding byte so the tests can check the permutation against
`hashlib.sha3_256` as well as against Keccak-256 vectors.
"""

from __future__ import annotations

_MASK = (1 << 64) - 1
_RATE_256 = 136  # bytes: 1600-bit state minus a 512-bit capacity
_KECCAK_PAD = 0x01
_SHA3_PAD = 0x06

# Rotation offsets r[x][y] of the rho step, lane (x, y) at index x + 5 * y.
_ROTATIONS = (
    (0, 36, 3, 41, 18),
    (1, 44, 10, 45, 2),
    (62, 6, 43, 15, 61),
    (28, 55, 25, 21, 56),
    (27, 20, 39, 8, 14),
)


def _round_constants() -> tuple[int, ...]:
    """The 24 iota constants, from the LFSR that defines them (FIPS 202, algorithm 5)."""
    constants = []
    lfsr = 1
    for _ in range(24):
        constant = 0
        for j in range(7):
            lfsr = ((lfsr << 1) ^ ((lfsr >> 7) * 0x71)) % 256
            if lfsr & 2:
                constant ^= 1 << ((1 << j) - 1)
        constants.append(constant)
    return tuple(constants)


_ROUND_CONSTANTS = _round_constants()


def _rotl(value: int, shift: int) -> int:
    return ((value << shift) | (value >> (64 - shift))) & _MASK


def _permute(lanes: list[int]) -> list[int]:
    for constant in _ROUND_CONSTANTS:
        # theta
        columns = [lanes[x] ^ lanes[x + 5] ^ lanes[x + 10] ^ lanes[x + 15] ^ lanes[x + 20]
                   for x in range(5)]  # fmt: skip
        for x in range(5):
            mix = columns[(x - 1) % 5] ^ _rotl(columns[(x + 1) % 5], 1)
            for y in range(0, 25, 5):
                lanes[x + y] ^= mix
        # rho and pi
        moved = [0] * 25
        for x in range(5):
            for y in range(5):
                moved[y + 5 * ((2 * x + 3 * y) % 5)] = _rotl(lanes[x + 5 * y], _ROTATIONS[x][y])
        # chi
        lanes = [
            moved[i] ^ (~moved[(i + 1) % 5 + i - i % 5] & moved[(i + 2) % 5 + i - i % 5])
            for i in range(25)
        ]
        # iota
        lanes[0] ^= constant
    return lanes


def _sponge(data: bytes, pad: int, rate: int = _RATE_256, digest_size: int = 32) -> bytes:
    padded = bytearray(data)
    padded.append(pad)
    padded.extend(b"\x00" * (-len(padded) % rate))
    padded[-1] |= 0x80
    lanes = [0] * 25
    for start in range(0, len(padded), rate):
        block = padded[start : start + rate]
        for i in range(rate // 8):
            lanes[i] ^= int.from_bytes(block[8 * i : 8 * i + 8], "little")
        lanes = _permute(lanes)
    output = b"".join(lane.to_bytes(8, "little") for lane in lanes[: rate // 8])
    return output[:digest_size]  # 32 bytes fit in one squeeze at this rate


def keccak256(data: bytes) -> bytes:
    """Keccak-256 digest of `data` (Ethereum's hash)."""
    return _sponge(data, _KECCAK_PAD)
