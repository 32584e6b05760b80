"""The Redis keyspace, in one place. Every key the project writes is named here.

Layout (DESIGN.md, "Scaling past one Redis primary"): every user has a virtual shard
`S` in 0..1023, chosen at registration; API keys are generated so that
`SHA-256(key) mod 1024 == S`, so the gateway knows the shard from the key alone. Everything a
user owns lives under the hash tag `{sS}`, so one admission script touches one cluster slot
for the user's part; agent records live under their own tag `{aID}`.

| key | type | holds | written by | TTL |
|---|---|---|---|---|
| `ak:{sS}:<key_hash>` | hash | `user`, `key`, `status` (ok/revoked/unknown) | gateway cold load, control plane (revoke) | 24 h (`unknown`: 60 s) |
| `usr:{sS}:<user_id>` | hash | `status` (active/suspended/deleted), `tier` (free/paid) | gateway cold load, control plane | 24 h |
| `quota:{sS}:<user_id>` | string | live quota units remaining | cold load (load_quota.lua), admission, commit, payments (adjust_quota.lua) | none |
| `qadj:{sS}:<user_id>` | hash | `_seq` (the `quotas.adjust_seq` the balance was loaded at), quota adjustment id → units applied | load_quota.lua, adjust_quota.lua (control plane payments) | none |
| `trial:{sS}:<user_id>` | hash | agent_id → trial calls used (0..FREE_TRIAL_CALLS) | cold load (HSETNX), admission, commit | none |
| `rl:{sS}:<user_id>` | zset | admitted call ids scored by admission time (ms) | admission | 60 s |
| `krl:{sS}:<key_hash>` | zset | the same, per API key with its own `rate_limit` (migration 0012) | admission | 60 s |
| `kspend:{sS}` | hash | key id + `:` + bucket → quota units a capped key spent in that bucket (`d<day>`, `m<yyyymm>` UTC, `t` total) | admission, commit, reaper; cold key load (HSETNX from call_logs) | none |
| `resv:{sS}` | hash | call_id (the gateway's id of one call) → reservation (prelude.lua's `encode_reservation`; it keeps the client's request id) | admission, commit, reaper | none |
| `resvq:{sS}` | zset | call_id scored by reservation deadline (ms) | admission, commit, reaper | none |
| `usage:{sS}` | stream | usage events (see `common/usage_events.py`) | commit, reaper | entries deleted by the worker once written to Postgres |
| `usage:dead` | stream | usage entries the worker could not parse or store, with the reason | worker | capped by `USAGE_DEAD_LETTER_MAXLEN` |
| `login:acct:<sha>`, `login:acctip:<sha>`, `login:ip:<ip>` | string | failed-login counters per account, account+IP, IP (control_plane/auth/throttle.py) | control plane | the throttle window |
| `login:wait:<sha>` | string | the account's backoff after its failure ceiling | control plane | the backoff |
| `login:known:<sha>` | string | an account+IP pair that logged in (exempt from the backoff) | control plane | 30 days |
| `ff:all` | hash | feature flag → `1`/`0` (control_plane/feature_flags; every process's flag snapshot reads it, common/feature_flags.py) | control plane | 30 s |
| `agent:{aID}` | hash | `status`, `version`, `units` (quota units per call), `knowledge` (knowledge version, 0: none; common/knowledge/records.py) | gateway cold load, control plane | 24 h (`unknown`: 30 s) |
| `pgkey:{sS}:<user_id>` | string | the developer's playground key, sealed with the key ring (control_plane/developers/session_keys.py) | control plane | the key's lifetime |
| `pgkey-lock:{sS}:<user_id>` | string | lock while a playground key is minted | control plane | 10 s |
| `pgkey:expiry` | zset | playground key ids scored by expiry (ms), for the worker's sweep | control plane, worker | none |
| `dash:rot:<sha>` | string | the sealed token pair a refresh token was rotated into (dashboard sessions, parallel tabs) | control plane | `DASHBOARD_REFRESH_GRACE_S` |
| `dash:rotlock:<sha>` | string | lock while a dashboard refresh token is rotated | control plane | 10 s |
| `dash:jti:<jti>` | string | an access token ended by a dashboard logout | control plane | the token's remaining life |
| `dash:out:<user_id>` | string | "log out everywhere": access tokens issued up to this time (s) are refused | control plane | the access-token lifetime |

The record hashes' fields (`ak:`, `usr:`, `agent:`) are defined once, in `common/records.py`;
the scan patterns a cache clear deletes them by are `RECORD_PATTERNS`.

The usage stream is per shard so that the commit script (reservation, refund, event) stays
inside one slot; the worker reads all 1024 streams with one consumer group name. On a single
primary (v1) one XREADGROUP names all 1024 streams; under Redis Cluster that read must be
split per node (cross-slot), and reap.lua's quota/trial keys, which it completes from the
prefixes `quota_prefix(S)` / `trials_prefix(S)` rather than declaring, stay in the same slot
by construction.

Quota and trial counters have no TTL: they are the live balance; Postgres catches up through
the usage stream. Purchases, refunds and manual credits change it through `adjust_quota.lua`,
which applies each Postgres `quota_adjustments` row once (`qadj:`), so a retried or
reconciled credit never counts twice. The Redis server must run with `maxmemory-policy noeviction`.
"""

from __future__ import annotations

import hashlib

# Kept importable from here; the records' TTLs live with their fields in common/records.py.
from common.records import RECORD_TTL_S, UNKNOWN_AGENT_TTL_S, UNKNOWN_KEY_TTL_S
from crypto.api_keys import SHARD_COUNT

__all__ = ["RECORD_TTL_S", "UNKNOWN_AGENT_TTL_S", "UNKNOWN_KEY_TTL_S"]

USAGE_CONSUMER_GROUP = "usage-ingest"
USAGE_DEAD_LETTER_STREAM = "usage:dead"
FEATURE_FLAGS = "ff:all"

_API_KEY_RECORD, _USER_RECORD, _AGENT_RECORD = "ak:", "usr:", "agent:"
# The rebuildable records by kind, as SCAN patterns (what a cache clear may delete).
RECORD_PATTERNS: dict[str, str] = {
    "api_keys": _API_KEY_RECORD + "*",
    "users": _USER_RECORD + "*",
    "agents": _AGENT_RECORD + "*",
}


# Every shard's hash tag, built once: a call names about fifteen keys.
_SHARD_TAGS = tuple("{s" + str(shard) + "}" for shard in range(SHARD_COUNT))


def shard_tag(shard: int) -> str:
    if not 0 <= shard < SHARD_COUNT:
        raise ValueError(f"shard must be in 0..{SHARD_COUNT - 1}")
    return _SHARD_TAGS[shard]


def api_key_record(shard: int, key_hash: str) -> str:
    return f"{_API_KEY_RECORD}{shard_tag(shard)}:{key_hash}"


def user_record(shard: int, user_id: str) -> str:
    return f"{_USER_RECORD}{shard_tag(shard)}:{user_id}"


def quota_prefix(shard: int) -> str:
    return f"quota:{shard_tag(shard)}:"


def quota(shard: int, user_id: str) -> str:
    return quota_prefix(shard) + user_id


def quota_adjustments(shard: int, user_id: str) -> str:
    return f"qadj:{shard_tag(shard)}:{user_id}"


def trials_prefix(shard: int) -> str:
    return f"trial:{shard_tag(shard)}:"


def trials(shard: int, user_id: str) -> str:
    return trials_prefix(shard) + user_id


def rate_window(shard: int, user_id: str) -> str:
    return f"rl:{shard_tag(shard)}:{user_id}"


def key_rate_window(shard: int, key_hash: str) -> str:
    return f"krl:{shard_tag(shard)}:{key_hash}"


def key_spend(shard: int) -> str:
    return f"kspend:{shard_tag(shard)}"


def reservations(shard: int) -> str:
    return f"resv:{shard_tag(shard)}"


def reservation_deadlines(shard: int) -> str:
    return f"resvq:{shard_tag(shard)}"


def usage_stream(shard: int) -> str:
    return f"usage:{shard_tag(shard)}"


def all_usage_streams() -> list[str]:
    return [usage_stream(shard) for shard in range(SHARD_COUNT)]


def agent_record(agent_id: str) -> str:
    return _AGENT_RECORD + "{a" + agent_id + "}"


def playground_key(shard: int, user_id: str) -> str:
    return f"pgkey:{shard_tag(shard)}:{user_id}"


def playground_key_lock(shard: int, user_id: str) -> str:
    return f"pgkey-lock:{shard_tag(shard)}:{user_id}"


PLAYGROUND_KEY_EXPIRIES = "pgkey:expiry"


def dashboard_rotation(refresh_token_hash: str) -> str:
    return f"dash:rot:{refresh_token_hash}"


def dashboard_rotation_lock(refresh_token_hash: str) -> str:
    return f"dash:rotlock:{refresh_token_hash}"


def dashboard_ended_access_token(jti: str) -> str:
    return f"dash:jti:{jti}"


def dashboard_logged_out_before(user_id: str) -> str:
    return f"dash:out:{user_id}"


def login_failures_of_account(email: str) -> str:
    """Hashed: no addresses in Redis."""
    return "login:acct:" + hashlib.sha256(email.encode()).hexdigest()[:32]


def login_failures_from_ip(ip: str | None) -> str:
    return f"login:ip:{ip or 'unknown'}"


def _account_from_ip(email: str, ip: str | None) -> str:
    return hashlib.sha256(f"{email}\n{ip or 'unknown'}".encode()).hexdigest()[:32]


def login_failures_of_account_from_ip(email: str, ip: str | None) -> str:
    return "login:acctip:" + _account_from_ip(email, ip)


def login_known_ip(email: str, ip: str | None) -> str:
    return "login:known:" + _account_from_ip(email, ip)


def login_backoff_of_account(email: str) -> str:
    return "login:wait:" + hashlib.sha256(email.encode()).hexdigest()[:32]
