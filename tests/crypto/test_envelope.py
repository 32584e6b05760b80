"""AES-256-GCM envelopes: round trip, tamper detection, context binding and key rotation."""

from __future__ import annotations

import base64
import os

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from crypto.envelope import (
    ENVELOPE_FORMAT_V1,
    NONCE_BYTES,
    TAG_BYTES,
    KeyRing,
    generate_key,
    key_id_of,
)
from crypto.errors import CryptoError, DecryptionError, UnknownKeyError

KEY_1 = bytes(range(32))
KEY_2 = bytes(range(100, 132))

agent_ids = st.text(max_size=40)
versions = st.integers(min_value=0, max_value=2**63 - 1)


def ring(active: str = "k1", **keys: bytes) -> KeyRing:
    return KeyRing(keys or {"k1": KEY_1}, active)


def env_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode("ascii")


def sealed(
    plaintext: bytes = b"system prompt", agent_id: str = "agent-1", version: int = 3
) -> bytes:
    return ring().encrypt(plaintext, agent_id=agent_id, version=version)


# --- round trip ---------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(prompt=st.text(), agent_id=agent_ids, version=versions)
@example(prompt="", agent_id="", version=0)
@example(prompt="x" * 1_000_000, agent_id="agent-1", version=1)
@example(prompt="émoji 🤖 and NUL \x00 inside", agent_id="ä\x00gent", version=7)
def test_property_19_encryption_round_trip(prompt: str, agent_id: str, version: int) -> None:
    """Property 19: Encryption Round-Trip — decrypt(encrypt(x)) == x for any prompt and row."""
    plaintext = prompt.encode("utf-8")
    keys = ring()

    envelope = keys.encrypt(plaintext, agent_id=agent_id, version=version)

    assert keys.decrypt(envelope, agent_id=agent_id, version=version) == plaintext


def test_round_trip_of_a_multi_megabyte_config() -> None:
    plaintext = os.urandom(4 * 1024 * 1024)
    keys = ring()

    envelope = keys.encrypt(plaintext, agent_id="a", version=1)

    assert keys.decrypt(envelope, agent_id="a", version=1) == plaintext


def test_envelope_layout_is_format_key_id_nonce_then_ciphertext_and_tag() -> None:
    keys = KeyRing({"rotation_2024-01": KEY_1}, "rotation_2024-01")
    plaintext = b"hello"

    envelope = keys.encrypt(plaintext, agent_id="a", version=1)

    key_id = b"rotation_2024-01"
    assert envelope[0] == ENVELOPE_FORMAT_V1
    assert envelope[1] == len(key_id)
    assert envelope[2 : 2 + len(key_id)] == key_id
    assert len(envelope) == 2 + len(key_id) + NONCE_BYTES + len(plaintext) + TAG_BYTES
    assert plaintext not in envelope
    assert key_id_of(envelope) == "rotation_2024-01"


def test_same_plaintext_encrypts_to_different_envelopes_with_fresh_nonces() -> None:
    keys = ring()
    envelopes = [keys.encrypt(b"same", agent_id="a", version=1) for _ in range(50)]

    nonces = {envelope[4 : 4 + NONCE_BYTES] for envelope in envelopes}

    assert len(set(envelopes)) == 50
    assert len(nonces) == 50


# --- tamper detection and context binding ----------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(data=st.data(), plaintext=st.binary(max_size=200))
def test_flipping_any_single_byte_raises_decryption_error(
    data: st.DataObject, plaintext: bytes
) -> None:
    envelope = bytearray(sealed(plaintext))
    index = data.draw(st.integers(min_value=0, max_value=len(envelope) - 1), label="index")
    flip = data.draw(st.integers(min_value=1, max_value=255), label="xor mask")
    envelope[index] ^= flip

    with pytest.raises(DecryptionError):
        ring().decrypt(bytes(envelope), agent_id="agent-1", version=3)


def test_every_truncation_raises_decryption_error() -> None:
    envelope = sealed(b"a prompt of some length")

    for length in range(len(envelope)):
        with pytest.raises(DecryptionError):
            ring().decrypt(envelope[:length], agent_id="agent-1", version=3)


def test_appended_bytes_raise_decryption_error() -> None:
    with pytest.raises(DecryptionError):
        ring().decrypt(sealed() + b"\x00", agent_id="agent-1", version=3)


@settings(max_examples=200, deadline=None)
@given(garbage=st.binary(max_size=120))
@example(garbage=b"")
@example(garbage=b"\x01")
@example(garbage=b"\x01\x00" + bytes(40))
@example(garbage=b"\x01\xff" + bytes(40))
@example(garbage=b"\x01\x02\xc3\xa9" + bytes(40))
@example(garbage=b"\x01\x02k:" + bytes(40))
def test_arbitrary_bytes_raise_only_decryption_error(garbage: bytes) -> None:
    with pytest.raises(DecryptionError):
        ring().decrypt(garbage, agent_id="agent-1", version=3)


@settings(max_examples=100, deadline=None)
@given(agent_id=agent_ids, other_agent_id=agent_ids, version=versions)
def test_wrong_agent_id_raises_decryption_error(
    agent_id: str, other_agent_id: str, version: int
) -> None:
    keys = ring()
    envelope = keys.encrypt(b"prompt", agent_id=agent_id, version=version)

    if other_agent_id == agent_id:
        assert keys.decrypt(envelope, agent_id=other_agent_id, version=version) == b"prompt"
    else:
        with pytest.raises(DecryptionError):
            keys.decrypt(envelope, agent_id=other_agent_id, version=version)


@settings(max_examples=100, deadline=None)
@given(version=versions, other_version=versions)
def test_wrong_version_raises_decryption_error(version: int, other_version: int) -> None:
    keys = ring()
    envelope = keys.encrypt(b"prompt", agent_id="agent-1", version=version)

    if other_version == version:
        assert keys.decrypt(envelope, agent_id="agent-1", version=other_version) == b"prompt"
    else:
        with pytest.raises(DecryptionError):
            keys.decrypt(envelope, agent_id="agent-1", version=other_version)


# NUL and digits are the characters that could make two (agent id, version) pairs serialise
# to the same associated data if the encoding were ambiguous.
tricky_agent_ids = st.text(alphabet="a1\x00", max_size=4)
small_versions = st.integers(min_value=0, max_value=12)


@settings(max_examples=200, deadline=None)
@given(
    first=st.tuples(tricky_agent_ids, small_versions),
    second=st.tuples(tricky_agent_ids, small_versions),
)
@example(first=("a\x001", 2), second=("a", 12))
@example(first=("a\x001", 2), second=("a\x00", 12))
def test_associated_data_is_unambiguous(first: tuple[str, int], second: tuple[str, int]) -> None:
    keys = ring()
    envelope = keys.encrypt(b"prompt", agent_id=first[0], version=first[1])

    if first == second:
        assert keys.decrypt(envelope, agent_id=second[0], version=second[1]) == b"prompt"
    else:
        with pytest.raises(DecryptionError):
            keys.decrypt(envelope, agent_id=second[0], version=second[1])


def test_key_missing_from_ring_raises_unknown_key_error() -> None:
    envelope = ring("k9", k9=KEY_2).encrypt(b"prompt", agent_id="a", version=1)

    with pytest.raises(UnknownKeyError, match="k9"):
        ring().decrypt(envelope, agent_id="a", version=1)


def test_same_key_id_with_different_key_bytes_raises_plain_decryption_error() -> None:
    envelope = ring(k1=KEY_1).encrypt(b"prompt", agent_id="a", version=1)

    with pytest.raises(DecryptionError) as raised:
        ring(k1=KEY_2).decrypt(envelope, agent_id="a", version=1)

    assert not isinstance(raised.value, UnknownKeyError)


def test_error_tree() -> None:
    assert issubclass(UnknownKeyError, DecryptionError)
    assert issubclass(DecryptionError, CryptoError)
    assert not issubclass(CryptoError, ValueError)


def test_decryption_errors_reveal_neither_plaintext_nor_key() -> None:
    plaintext = b"TOP-SECRET-PROMPT"
    envelope = ring().encrypt(plaintext, agent_id="a", version=1)

    with pytest.raises(DecryptionError) as raised:
        ring().decrypt(envelope, agent_id="b", version=1)

    message = str(raised.value)
    assert "TOP-SECRET" not in message
    assert env_key(KEY_1) not in message
    assert KEY_1.hex() not in message
    assert raised.value.__cause__ is None


def test_unsupported_format_byte_raises_decryption_error() -> None:
    envelope = sealed()

    with pytest.raises(DecryptionError, match="format"):
        ring().decrypt(b"\x02" + envelope[1:], agent_id="agent-1", version=3)


# --- rotation ------------------------------------------------------------------------------


def test_rotation_from_k1_to_k2() -> None:
    old_ring = ring("k1", k1=KEY_1)
    old_envelope = old_ring.encrypt(b"prompt v3", agent_id="agent-1", version=3)
    rotating_ring = ring("k2", k1=KEY_1, k2=KEY_2)
    new_ring = ring("k2", k2=KEY_2)

    assert rotating_ring.decrypt(old_envelope, agent_id="agent-1", version=3) == b"prompt v3"
    assert rotating_ring.needs_rotation(old_envelope)

    new_envelope = rotating_ring.reencrypt(old_envelope, agent_id="agent-1", version=3)

    assert key_id_of(new_envelope) == "k2"
    assert not rotating_ring.needs_rotation(new_envelope)
    assert new_ring.decrypt(new_envelope, agent_id="agent-1", version=3) == b"prompt v3"
    with pytest.raises(UnknownKeyError):
        new_ring.decrypt(old_envelope, agent_id="agent-1", version=3)


def test_new_envelopes_use_the_active_key() -> None:
    keys = ring("k2", k1=KEY_1, k2=KEY_2)

    envelope = keys.encrypt(b"x", agent_id="a", version=1)

    assert key_id_of(envelope) == "k2"
    assert not keys.needs_rotation(envelope)


def test_reencrypt_keeps_the_binding_to_agent_and_version() -> None:
    keys = ring("k2", k1=KEY_1, k2=KEY_2)
    old_envelope = ring().encrypt(b"x", agent_id="a", version=1)

    with pytest.raises(DecryptionError):
        keys.reencrypt(old_envelope, agent_id="a", version=2)

    new_envelope = keys.reencrypt(old_envelope, agent_id="a", version=1)
    with pytest.raises(DecryptionError):
        keys.decrypt(new_envelope, agent_id="b", version=1)


def test_key_id_of_and_needs_rotation_reject_malformed_envelopes() -> None:
    with pytest.raises(DecryptionError):
        key_id_of(b"\x01\x02k1")
    with pytest.raises(DecryptionError):
        ring().needs_rotation(b"")


# --- key ring construction -----------------------------------------------------------------


@pytest.mark.parametrize("bad_key_id", ["", "k" * 33, "k 1", "k:1", "ké", "k,1", "k\n"])
def test_key_ring_rejects_malformed_key_ids(bad_key_id: str) -> None:
    with pytest.raises(ValueError, match="key id"):
        KeyRing({bad_key_id: KEY_1}, bad_key_id)


def test_key_ring_accepts_key_ids_up_to_32_characters() -> None:
    longest = "A-_9" * 8

    keys = KeyRing({longest: KEY_1}, longest)

    assert key_id_of(keys.encrypt(b"", agent_id="a", version=1)) == longest


@pytest.mark.parametrize("bad_key", [b"", bytes(16), bytes(31), bytes(33), bytes(64)])
def test_key_ring_rejects_keys_that_are_not_32_bytes(bad_key: bytes) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        KeyRing({"k1": bad_key}, "k1")


def test_key_ring_rejects_an_active_key_id_it_does_not_hold() -> None:
    with pytest.raises(ValueError, match="k2"):
        KeyRing({"k1": KEY_1}, "k2")


def test_key_ring_rejects_an_empty_mapping() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        KeyRing({}, "k1")


def test_key_ring_repr_shows_ids_but_no_key_material() -> None:
    keys = ring("k2", k1=KEY_1, k2=KEY_2)

    text = repr(keys)

    assert "k1" in text
    assert "k2" in text
    for key in (KEY_1, KEY_2):
        assert key.hex() not in text
        assert env_key(key) not in text
        assert repr(key) not in text
    assert keys.key_ids == frozenset({"k1", "k2"})
    assert keys.active_key_id == "k2"


# --- settings ------------------------------------------------------------------------------


def test_from_env_parses_several_keys() -> None:
    spec = f"k1:{env_key(KEY_1)},k2:{env_key(KEY_2)}"
    old_envelope = ring().encrypt(b"x", agent_id="a", version=1)

    keys = KeyRing.from_env(spec, active="k2")

    assert keys.active_key_id == "k2"
    assert keys.decrypt(old_envelope, agent_id="a", version=1) == b"x"
    assert (
        ring("k2", k2=KEY_2).decrypt(
            keys.encrypt(b"y", agent_id="a", version=1), agent_id="a", version=1
        )
        == b"y"
    )


def test_from_env_tolerates_whitespace_and_missing_padding() -> None:
    spec = f" k1 : {env_key(KEY_1).rstrip('=')} ,\n k2:{env_key(KEY_2)}\n"

    keys = KeyRing.from_env(spec, active="k1")

    assert keys.key_ids == frozenset({"k1", "k2"})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "entry 1"),
        ("k1", "entry 1"),
        (f"k1:{env_key(KEY_1)},", "entry 2"),
        (f":{env_key(KEY_1)}", "key id"),
        (f"k1:{env_key(KEY_1)},k1:{env_key(KEY_2)}", "more than once"),
        (f"k1:{env_key(bytes(16))}", "32 bytes"),
        (f"k1:{env_key(bytes(33))}", "32 bytes"),
        (f"k1:{env_key(KEY_1).replace('A', '+')}", "urlsafe base64"),
        (f"k1:{env_key(KEY_1)[:-3]}", "urlsafe base64"),
        (f"k1:{env_key(KEY_1)}==", "urlsafe base64"),
        (f"k2:{env_key(KEY_1)}", "active key id"),
    ],
)
def test_from_env_errors_are_clear_and_hold_no_key_material(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        KeyRing.from_env(spec, active="k1")

    text = str(raised.value)
    for key in (KEY_1, KEY_2, bytes(16), bytes(33)):
        encoded = env_key(key).rstrip("=")
        assert encoded[:20] not in text
        assert key.hex() not in text
    assert raised.value.__cause__ is None


def test_generate_key_yields_distinct_loadable_32_byte_keys() -> None:
    generated = {generate_key() for _ in range(20)}

    assert len(generated) == 20
    for encoded in generated:
        assert len(base64.urlsafe_b64decode(encoded)) == 32
        keys = KeyRing.from_env(f"fresh:{encoded}", active="fresh")
        envelope = keys.encrypt(b"x", agent_id="a", version=1)
        assert keys.decrypt(envelope, agent_id="a", version=1) == b"x"


# --- version secrets ------------------------------------------------------------------------


def test_a_version_secret_is_fixed_per_version_and_differs_across_everything_else() -> None:
    """The leak guard's canary comes from it: every gateway process must compute the same
    value for one agent version, and no other version, agent, purpose or key may share it."""
    envelope = sealed(agent_id="agent-1", version=3)
    secret = ring().version_secret(envelope, purpose=b"p", agent_id="agent-1", version=3)
    assert len(secret) == 32
    # Another process (another ring object from the same settings), another envelope of the
    # same version sealed with the same key: the same secret.
    again = ring().encrypt(b"other text", agent_id="agent-1", version=3)
    assert ring().version_secret(again, purpose=b"p", agent_id="agent-1", version=3) == secret
    others = {
        ring().version_secret(envelope, purpose=b"p", agent_id="agent-1", version=4),
        ring().version_secret(envelope, purpose=b"p", agent_id="agent-2", version=3),
        ring().version_secret(envelope, purpose=b"q", agent_id="agent-1", version=3),
        ring("k2", k2=KEY_2).version_secret(
            ring("k2", k2=KEY_2).encrypt(b"x", agent_id="agent-1", version=3),
            purpose=b"p", agent_id="agent-1", version=3,
        ),
    }  # fmt: skip
    assert secret not in others
    assert len(others) == 4
    # Not the encryption key, nor anything a reader of the envelope could compute from it.
    assert KEY_1 not in secret
    assert secret not in envelope


def test_a_version_secret_needs_the_key_that_sealed_the_envelope() -> None:
    envelope = ring("k2", k2=KEY_2).encrypt(b"x", agent_id="a", version=1)
    with pytest.raises(UnknownKeyError):
        ring().version_secret(envelope, purpose=b"p", agent_id="a", version=1)
    with pytest.raises(DecryptionError):
        ring().version_secret(b"\x01", purpose=b"p", agent_id="a", version=1)
