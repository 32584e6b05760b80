"""The gateway's hot records in Redis: an API key, a user, an agent (names: common/keyspace.py).

Written by two apps — the gateway when it loads a cold record from Postgres
(gateway/records.py) and the control plane when a change commits (control_plane/gateway_sync.py)
— and read by admit.lua, so their fields are defined here once: each record's `to_fields()` is
exactly the hash admit.lua reads, and `ttl_s` how long Redis keeps it (every record can be
rebuilt from Postgres; an "unknown" one is a short negative cache).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from common.domain import units_for_price

RECORD_TTL_S = 24 * 3600
UNKNOWN_KEY_TTL_S = 60
UNKNOWN_AGENT_TTL_S = 30

UNKNOWN = "unknown"  # no such key or agent in Postgres


@dataclass(frozen=True, slots=True)
class KeyControls:
    """A key's own limits (migration 0012; 0 / "" = none), as admit.lua reads them:
    `expires_ms` (epoch ms), `rate` (calls per rate window), `cap` units per `cap_period`
    (day | month | total, UTC) and `agents` (comma-separated agent ids it may call)."""

    expires_ms: int = 0
    rate: int = 0
    cap: int = 0
    cap_period: str = ""
    agents: str = ""

    def to_fields(self) -> dict[str, str]:
        # Every field, always: a write-through replaces a control that was cleared.
        return {"expires": str(self.expires_ms), "rate": str(self.rate), "cap": str(self.cap),
                "cap_period": self.cap_period, "agents": self.agents}  # fmt: skip


NO_CONTROLS = KeyControls()

# The api_keys columns (migration 0012) `key_controls_of` reads.
KEY_CONTROL_COLUMNS = "spend_cap_units, spend_cap_period, rate_limit, expires_at, allowed_agents"


def key_controls_of(row: Any) -> KeyControls:
    """The controls of an api_keys row selected with `KEY_CONTROL_COLUMNS`."""
    expires: datetime | None = row["expires_at"]
    agents = row["allowed_agents"]
    return KeyControls(
        # At least 1: 0 means "no expiry" to admit.lua.
        expires_ms=max(1, int(expires.timestamp() * 1000)) if expires is not None else 0,
        rate=row["rate_limit"] or 0,
        cap=row["spend_cap_units"] or 0,
        cap_period=row["spend_cap_period"] or "",
        agents=",".join(str(agent) for agent in agents) if agents else "",
    )


_DAY_MS = 86_400_000
# How long a capped key's kspend:{sS} field lives after its last change (admit.lua, and the
# cold load in gateway/records.py): its period and a day more, so it outlives its bucket
# and every reservation's give-back; a total cap's field lives as long as the key.
SPEND_FIELD_TTL_MS = {"day": 2 * _DAY_MS, "month": 32 * _DAY_MS}


def spend_bucket(period: str, at: datetime) -> str:
    """The kspend:{sS} bucket a capped key's units count in at `at`, as admit.lua names it."""
    if period == "day":
        return f"d{int(at.timestamp() * 1000) // 86_400_000}"
    if period == "month":
        utc = at.astimezone(UTC)
        return f"m{utc.year * 100 + utc.month}"
    return "t"


def spend_bucket_start(period: str, at: datetime) -> datetime:
    """Where that bucket begins (total: the epoch)."""
    utc = at.astimezone(UTC)
    if period == "day":
        return utc.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        return utc.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return datetime(1970, 1, 1, tzinfo=UTC)


class _MaybeUnknown:
    """A record that may stand for "no such row in Postgres" (`status` unknown): a short
    negative cache (`UNKNOWN_TTL_S`) whose hash is the status alone."""

    __slots__ = ()
    UNKNOWN_TTL_S: ClassVar[int]
    status: str

    @property
    def ttl_s(self) -> int:
        return self.UNKNOWN_TTL_S if self.status == UNKNOWN else RECORD_TTL_S

    def to_fields(self) -> dict[str, str]:
        return {"status": UNKNOWN} if self.status == UNKNOWN else self._known_fields()

    def _known_fields(self) -> dict[str, str]:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class KeyRecord(_MaybeUnknown):
    """`ak:{sS}:<key_hash>`: `status` ok | revoked | unknown, the owner and key ids, and the
    key's controls."""

    UNKNOWN_TTL_S = UNKNOWN_KEY_TTL_S

    status: str
    user_id: str = ""
    key_id: str = ""
    controls: KeyControls = NO_CONTROLS

    @classmethod
    def of(
        cls, *, user_id: str, key_id: str, revoked: bool, controls: KeyControls = NO_CONTROLS
    ) -> KeyRecord:
        return cls("revoked" if revoked else "ok", user_id, key_id, controls)

    @classmethod
    def unknown(cls) -> KeyRecord:
        return cls(UNKNOWN)

    def _known_fields(self) -> dict[str, str]:
        return {"status": self.status, "user": self.user_id, "key": self.key_id,
                **self.controls.to_fields()}  # fmt: skip


@dataclass(frozen=True, slots=True)
class UserSession:
    """What the control plane checks an access token's claims against on every request
    (control_plane/auth/tokens.py): the user's type, admin role ("" for none) and token
    generation (`users.token_generation`, bumped to end every access token issued)."""

    user_type: str
    admin_role: str | None
    token_generation: int


@dataclass(frozen=True, slots=True)
class UserRecord:
    """`usr:{sS}:<user_id>`: `status` active | suspended | deleted, `tier` free | paid, and
    the session fields `type`, `role`, `gen` (`session`; None leaves them as the record has
    them: a status or tier change does not concern them)."""

    status: str
    tier: str
    session: UserSession | None = None

    ttl_s = RECORD_TTL_S

    def to_fields(self) -> dict[str, str]:
        fields = {"status": self.status, "tier": self.tier}
        if self.session is not None:
            fields["type"] = self.session.user_type
            fields["role"] = self.session.admin_role or ""
            fields["gen"] = str(self.session.token_generation)
        return fields


@dataclass(frozen=True, slots=True)
class AgentRecord(_MaybeUnknown):
    """`agent:{aID}`: `status` (the agents table's, or unknown), the current `version`, the
    quota `units` one call costs and the `knowledge` version (common/knowledge/records.py;
    None leaves the field as the record has it: a change that does not concern it)."""

    UNKNOWN_TTL_S = UNKNOWN_AGENT_TTL_S

    status: str
    version: int = 0
    units: int = 0
    knowledge: int | None = None

    @classmethod
    def priced(
        cls,
        *,
        status: str,
        version: int,
        price_per_call: Decimal,
        unit_price: Decimal,
        knowledge: int | None = None,
    ) -> AgentRecord:
        return cls(status, version, units_for_price(price_per_call, unit_price), knowledge)

    @classmethod
    def unknown(cls) -> AgentRecord:
        return cls(UNKNOWN)

    def _known_fields(self) -> dict[str, str]:
        fields = {"status": self.status, "version": str(self.version), "units": str(self.units)}
        if self.knowledge is not None:
            fields["knowledge"] = str(self.knowledge)
        return fields
