"""Every secret-handling primitive of AgentLink, in small modules with one job each.

- `envelope`: AES-256-GCM encryption of agent configs, with a key ring for rotation;
- `api_keys`: developer API keys, their hashes and the Redis shard each key routes to;
- `passwords`: argon2id password hashing with rehash-on-login;
- `webhook_signing`: timestamped HMAC-SHA256 signatures of outgoing webhooks;
- `errors`: the `CryptoError` exception tree they share.

This package imports nothing from the apps, so both the gateway and the control plane use it.
"""

from crypto.api_keys import (
    SHARD_COUNT,
    GeneratedApiKey,
    constant_time_equals,
    display_prefix,
    generate_api_key,
    hash_api_key,
    is_well_formed_api_key,
    random_shard,
    shard_of_key,
    shard_of_key_hash,
)
from crypto.envelope import KeyRing, generate_key, key_id_of
from crypto.errors import CryptoError, DecryptionError, SignatureError, UnknownKeyError
from crypto.passwords import PasswordCheck, PasswordHashing
from crypto.webhook_signing import generate_webhook_secret

__all__ = [
    "SHARD_COUNT",
    "CryptoError",
    "DecryptionError",
    "GeneratedApiKey",
    "KeyRing",
    "PasswordCheck",
    "PasswordHashing",
    "SignatureError",
    "UnknownKeyError",
    "constant_time_equals",
    "display_prefix",
    "generate_api_key",
    "generate_key",
    "generate_webhook_secret",
    "hash_api_key",
    "is_well_formed_api_key",
    "key_id_of",
    "random_shard",
    "shard_of_key",
    "shard_of_key_hash",
]
