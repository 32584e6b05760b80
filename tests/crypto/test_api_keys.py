"""Developer API keys: uniqueness, shape, hashing, shard routing and safe comparison."""

from __future__ import annotations

import hashlib
import string
import zlib

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pytest_benchmark.fixture import BenchmarkFixture

from crypto.api_keys import (
    SHARD_COUNT,
    GeneratedApiKey,
    constant_time_equals,
    display_prefix,
    generate_api_key,
    hash_api_key,
    is_legacy_api_key,
    is_well_formed_api_key,
    random_shard,
    shard_of_key,
    shard_of_key_hash,
)

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
base62_bodies = st.text(alphabet=BASE62, min_size=32, max_size=32)
non_base62_characters = st.characters().filter(lambda character: character not in BASE62)
shards = st.integers(min_value=0, max_value=SHARD_COUNT - 1)


def base62(value: int, width: int) -> str:
    digits = ""
    for _ in range(width):
        value, digit = divmod(value, 62)
        digits = BASE62[digit] + digits
    return digits


def with_checksum(body: str) -> str:
    """The key format written out independently of the code: ak_ + body + base62(CRC32)."""
    return "ak_" + body + base62(zlib.crc32(("ak_" + body).encode()), 6)


def assert_consistent(generated: GeneratedApiKey, shard: int) -> None:
    assert len(generated.plaintext) == 41
    assert generated.plaintext == with_checksum(generated.plaintext[3:35])
    assert is_well_formed_api_key(generated.plaintext)
    assert not is_legacy_api_key(generated.plaintext)
    assert generated.shard == shard
    assert shard_of_key(generated.plaintext) == shard
    assert generated.key_hash == hashlib.sha256(generated.plaintext.encode()).hexdigest()
    assert int(generated.key_hash, 16) % SHARD_COUNT == shard
    assert generated.prefix == generated.plaintext[:8]


# --- generation ----------------------------------------------------------------------------


def test_property_2_id_uniqueness() -> None:
    """Property 2: ID Uniqueness — generated keys are distinct, well formed and in their shard."""
    generated = [generate_api_key(random_shard()) for _ in range(300)]

    for key in generated:
        assert_consistent(key, key.shard)
    assert len({key.plaintext for key in generated}) == len(generated)
    assert len({key.key_hash for key in generated}) == len(generated)
    # 9600 random characters: every base62 character shows up unless the encoder is broken
    # (a miss has probability below 1e-60 for a uniform source).
    assert set("".join(key.plaintext[3:] for key in generated)) == set(BASE62)


@settings(max_examples=50, deadline=None)
@given(shard=shards)
@example(shard=0)
@example(shard=SHARD_COUNT - 1)
def test_generated_key_hashes_to_the_requested_shard(shard: int) -> None:
    assert_consistent(generate_api_key(shard), shard)


@pytest.mark.parametrize("bad_shard", [-1, SHARD_COUNT, 10**9, True])
def test_generate_api_key_rejects_shards_out_of_range(bad_shard: int) -> None:
    with pytest.raises(ValueError, match="shard"):
        generate_api_key(bad_shard)


def test_random_shard_covers_the_range() -> None:
    drawn = {random_shard() for _ in range(20_000)}

    assert drawn <= set(range(SHARD_COUNT))
    assert len(drawn) > SHARD_COUNT * 0.99


def test_generated_key_repr_hides_the_plaintext() -> None:
    generated = generate_api_key(5)

    assert generated.plaintext not in repr(generated)
    assert generated.plaintext[8:] not in repr(generated)


# --- hashing and shards --------------------------------------------------------------------


def test_hash_api_key_is_hex_sha256() -> None:
    # FIPS 180-2 test vector for "abc".
    digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

    assert hash_api_key("abc") == digest
    assert shard_of_key_hash(digest) == 0x1AD
    assert shard_of_key("abc") == 0x1AD


@settings(max_examples=200)
@given(digest=st.binary(min_size=32, max_size=32))
def test_shard_of_key_hash_is_the_digest_mod_shard_count(digest: bytes) -> None:
    expected = int.from_bytes(digest, "big") % SHARD_COUNT

    assert shard_of_key_hash(digest.hex()) == expected
    assert shard_of_key_hash(digest.hex().upper()) == expected


@pytest.mark.parametrize(
    "bad_hash",
    [
        "",
        "0" * 63,
        "0" * 65,
        "g" * 64,
        "0x" + "0" * 62,
        " " + "0" * 63,
        "0" * 63 + "\n",
        "\u0663" * 64,
    ],
)
def test_shard_of_key_hash_rejects_malformed_hashes(bad_hash: str) -> None:
    with pytest.raises(ValueError, match="64 hexadecimal"):
        shard_of_key_hash(bad_hash)


# --- shape check ---------------------------------------------------------------------------


@settings(max_examples=200)
@given(body=base62_bodies)
def test_well_formed_keys_are_accepted(body: str) -> None:
    assert is_well_formed_api_key(with_checksum(body))
    assert is_well_formed_api_key("ak_" + body)  # legacy shape: the gateway's set decides
    assert is_legacy_api_key("ak_" + body)


@settings(max_examples=300)
@given(data=st.data(), body=base62_bodies)
def test_any_single_character_change_breaks_the_checksum(data: st.DataObject, body: str) -> None:
    """A CRC catches every one-character typo; a forged 41-character key fails alike."""
    key = with_checksum(body)
    position = data.draw(st.integers(min_value=3, max_value=40), label="position")
    other = data.draw(st.sampled_from(BASE62).filter(lambda c: c != key[position]), label="c")

    assert not is_well_formed_api_key(key[:position] + other + key[position + 1 :])


@settings(max_examples=200)
@given(body=base62_bodies, checksum=st.text(alphabet=BASE62, min_size=6, max_size=6))
def test_a_random_checksum_is_refused_unless_it_is_the_right_one(body: str, checksum: str) -> None:
    key = "ak_" + body + checksum

    assert is_well_formed_api_key(key) is (key == with_checksum(body))


@settings(max_examples=200)
@given(prefix=st.text(max_size=4).filter(lambda prefix: prefix != "ak_"), body=base62_bodies)
@example(prefix="AK_", body="a" * 32)
@example(prefix="ak-", body="a" * 32)
@example(prefix="ak", body="a" * 32)
@example(prefix="", body="a" * 32)
def test_wrong_prefix_is_rejected(prefix: str, body: str) -> None:
    assert not is_well_formed_api_key(prefix + body)


@pytest.mark.parametrize("length", [0, 1, 31, 33, 37, 39, 64])
def test_wrong_body_length_is_rejected(length: int) -> None:
    assert not is_well_formed_api_key("ak_" + "a" * length)


@settings(max_examples=200)
@given(data=st.data(), body=base62_bodies, intruder=non_base62_characters)
def test_any_non_base62_character_is_rejected(
    data: st.DataObject, body: str, intruder: str
) -> None:
    position = data.draw(st.integers(min_value=0, max_value=31), label="position")
    key = "ak_" + body[:position] + intruder + body[position + 1 :]

    assert not is_well_formed_api_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "ak_" + "\u0663" * 32,  # Arabic-Indic digit three
        "ak_" + "\uff10" * 32,  # full-width digit zero
        "ak_" + "é" * 32,
        "ak_" + "a" * 31 + "\n",
        "ak_" + "a" * 32 + "\n",
        " ak_" + "a" * 32,
        "ak_" + "a" * 16 + " " + "a" * 15,
        "ak_" + "a" * 31 + "_",
        "ak_" + "a" * 31 + "-",
    ],
)
def test_lookalike_keys_are_rejected(key: str) -> None:
    assert not is_well_formed_api_key(key)


def test_shape_check_never_raises_on_non_strings() -> None:
    assert not is_well_formed_api_key(b"ak_" + b"a" * 32)  # type: ignore[arg-type]
    assert not is_well_formed_api_key(None)  # type: ignore[arg-type]


# --- display and comparison ----------------------------------------------------------------


def test_display_prefix_is_the_first_eight_characters() -> None:
    assert display_prefix("ak_AbCdEfGhIjKlMnOpQrStUvWxYz012345") == "ak_AbCdE"
    assert len(generate_api_key(0).prefix) == 8


@settings(max_examples=200)
@given(a=st.text(), b=st.text())
@example(a="ak_same", b="ak_same")
@example(a="é", b="e")
@example(a="\ud800", b="\ud800")
@example(a="\ud800", b="\ud801")
@example(a="", b="")
@example(a="abc", b="abcd")
def test_constant_time_equals_agrees_with_equality(a: str, b: str) -> None:
    assert constant_time_equals(a, b) is (a == b)
    assert constant_time_equals(a, a)


def test_generate_api_key_benchmark(benchmark: BenchmarkFixture) -> None:
    """Timing of the shard-targeted generation: `pytest --benchmark-enable -k benchmark`."""
    generated = benchmark(generate_api_key, 777)

    assert_consistent(generated, 777)
