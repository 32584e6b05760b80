"""argon2id password hashing: verification, rehash on parameter change, corrupt hashes."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher, Type
from hypothesis import example, given, settings
from hypothesis import strategies as st

from crypto.passwords import PasswordCheck, PasswordHashing


def cheap(time_cost: int = 1) -> PasswordHashing:
    # Minimal argon2 work so that hypothesis can run many examples in milliseconds.
    return PasswordHashing(time_cost=time_cost, memory_cost=8, parallelism=1)


def test_correct_password_verifies_without_rehash() -> None:
    hashing = cheap()
    stored = hashing.hash("correct horse battery staple")

    assert hashing.verify(stored, "correct horse battery staple") == PasswordCheck(
        ok=True, new_hash=None
    )


def test_hash_is_salted_argon2id_with_the_configured_parameters() -> None:
    hashing = cheap()

    secret = "correct horse battery staple"
    first, second = hashing.hash(secret), hashing.hash(secret)

    assert first.startswith("$argon2id$v=19$m=8,t=1,p=1$")
    assert first != second
    assert secret not in first
    assert hashing.verify(first, secret).ok
    assert hashing.verify(second, secret).ok


@settings(max_examples=50, deadline=None)
@given(password=st.text(max_size=64), attempt=st.text(max_size=64))
@example(password="pw", attempt="pw ")
@example(password="pw", attempt="PW")
@example(password="pw", attempt="")
@example(password="", attempt="\x00")
def test_only_the_exact_password_verifies(password: str, attempt: str) -> None:
    hashing = cheap()
    stored = hashing.hash(password)

    check = hashing.verify(stored, attempt)

    assert check.ok is (attempt == password)
    assert check.new_hash is None


def test_changed_parameters_signal_a_rehash_on_successful_login() -> None:
    old_hash = cheap(time_cost=1).hash("pw")
    upgraded = cheap(time_cost=2)

    check = upgraded.verify(old_hash, "pw")

    assert check.ok
    assert check.new_hash is not None
    assert check.new_hash.startswith("$argon2id$v=19$m=8,t=2,p=1$")
    assert upgraded.verify(check.new_hash, "pw") == PasswordCheck(ok=True, new_hash=None)


def test_wrong_password_on_an_outdated_hash_does_not_rehash() -> None:
    old_hash = cheap(time_cost=1).hash("pw")

    assert cheap(time_cost=2).verify(old_hash, "not pw") == PasswordCheck(ok=False)


def test_argon2i_hash_still_verifies_and_is_upgraded_to_argon2id() -> None:
    legacy = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, type=Type.I).hash("pw")

    check = cheap().verify(legacy, "pw")

    assert check.ok
    assert check.new_hash is not None
    assert check.new_hash.startswith("$argon2id$")


@pytest.mark.parametrize(
    "stored_hash",
    [
        "",
        "garbage",
        "$argon2id$",
        "$argon2id$v=19$m=8,t=1,p=1$",
        "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",  # bcrypt
        "é",
        "\ud800",
    ],
)
def test_malformed_stored_hash_is_a_failed_check(stored_hash: str) -> None:
    assert cheap().verify(stored_hash, "pw") == PasswordCheck(ok=False)


def test_truncated_stored_hash_is_a_failed_check() -> None:
    stored = cheap().hash("pw")

    for length in range(0, len(stored), 7):
        assert not cheap().verify(stored[:length], "pw").ok


@settings(max_examples=100, deadline=None)
@given(stored_hash=st.text(max_size=120))
def test_arbitrary_stored_hash_text_never_raises(stored_hash: str) -> None:
    assert cheap().verify(stored_hash, "pw") == PasswordCheck(ok=False)


def test_password_with_a_lone_surrogate_fails_verification() -> None:
    stored = cheap().hash("pw")

    assert cheap().verify(stored, "pw\ud800") == PasswordCheck(ok=False)


@pytest.mark.parametrize(
    ("time_cost", "memory_cost", "parallelism"),
    [(0, 8, 1), (1, 8, 0), (1, 7, 1), (1, 15, 2)],
)
def test_constructor_rejects_impossible_parameters(
    time_cost: int, memory_cost: int, parallelism: int
) -> None:
    with pytest.raises(ValueError, match="must be at least"):
        PasswordHashing(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)


def test_defaults_are_the_rfc_9106_low_memory_profile() -> None:
    # One real-cost hash (about 0.1 s) to pin the production parameters.
    stored = PasswordHashing().hash("pw")

    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


def test_check_repr_hides_the_new_hash() -> None:
    check = cheap(time_cost=2).verify(cheap().hash("pw"), "pw")

    assert check.new_hash is not None
    assert check.new_hash not in repr(check)
