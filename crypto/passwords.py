"""Password hashing with argon2id, with transparent upgrades of old hashes at login.

The stored string carries its own salt and parameters, so changing the parameters here never
locks anyone out: `PasswordHashing.verify` still checks old hashes and hands back a new hash
made with the current parameters, for the login handler to store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import RFC_9106_LOW_MEMORY

# argon2-cffi's minimum: 8 KiB of memory per lane.
_MIN_MEMORY_KIB_PER_LANE = 8


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    """The outcome of a login check; `new_hash`, when set, should replace the stored hash."""

    ok: bool
    new_hash: str | None = field(default=None, repr=False)


class PasswordHashing:
    """argon2id hashing; the defaults are RFC 9106's low-memory profile (64 MiB, 3 passes)."""

    __slots__ = ("_hasher",)

    def __init__(
        self,
        *,
        time_cost: int = RFC_9106_LOW_MEMORY.time_cost,
        memory_cost: int = RFC_9106_LOW_MEMORY.memory_cost,
        parallelism: int = RFC_9106_LOW_MEMORY.parallelism,
    ) -> None:
        """`memory_cost` is in KiB. Tests pass tiny values to stay fast."""
        if time_cost < 1 or parallelism < 1:
            raise ValueError("time_cost and parallelism must be at least 1")
        if memory_cost < _MIN_MEMORY_KIB_PER_LANE * parallelism:
            raise ValueError(
                f"memory_cost must be at least {_MIN_MEMORY_KIB_PER_LANE} KiB per lane "
                f"({_MIN_MEMORY_KIB_PER_LANE * parallelism} KiB for parallelism {parallelism})"
            )
        # argon2id is PasswordHasher's default type.
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism
        )

    def hash(self, password: str) -> str:
        """A new salted hash of `password`, in the standard `$argon2id$...` encoding.

        A password that is not encodable as UTF-8 (a lone surrogate) raises `ValueError`.
        """
        return self._hasher.hash(password)

    def verify(self, stored_hash: str, password: str) -> PasswordCheck:
        """Check a password; a mismatch or an unreadable stored hash is `ok=False`, not an error."""
        try:
            self._hasher.verify(stored_hash, password)
        except (VerificationError, InvalidHashError, UnicodeEncodeError):
            # UnicodeEncodeError: a non-ASCII stored hash is corrupt, and a password with a lone
            # surrogate (valid in JSON) can never have been hashed, so neither can match.
            return PasswordCheck(ok=False)
        return PasswordCheck(ok=True, new_hash=self._rehash_if_outdated(stored_hash, password))

    def _rehash_if_outdated(self, stored_hash: str, password: str) -> str | None:
        try:
            outdated = self._hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            # It verified, so argon2 could read it; a hash we cannot parse is outdated anyway.
            outdated = True
        return self._hasher.hash(password) if outdated else None
