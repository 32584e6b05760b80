"""Request and response bodies of the developer routes.

A key's plaintext appears in exactly one type, `CreatedApiKey`, the answer to its creation;
no listing type has a field for it or for its hash.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, UnsetType

from control_plane.schema_types import Moment

KeyName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class CreateKeyRequest(msgspec.Struct, forbid_unknown_fields=True):
    name: KeyName


AgentId = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    ),
]
MAX_ALLOWED_AGENTS = 100
AgentIds = Annotated[list[AgentId], msgspec.Meta(min_length=1, max_length=MAX_ALLOWED_AGENTS)]
MAX_GRACE_S = 30 * 24 * 3600


class SpendCap(msgspec.Struct, forbid_unknown_fields=True):
    """At most `units` quota units per UTC `day`, per UTC `month`, or in `total`."""

    units: Annotated[int, msgspec.Meta(ge=1, le=10**12)]
    period: Literal["day", "month", "total"]


class KeyControlsPatch(msgspec.Struct, forbid_unknown_fields=True):
    """`PATCH /developers/keys/{id}`: a field left out is unchanged, `null` clears it."""

    name: KeyName | UnsetType = UNSET
    spend_cap: SpendCap | UnsetType | None = UNSET
    # Calls per rate window (60 s), on top of the account's own limit.
    rate_limit: Annotated[int, msgspec.Meta(ge=1, le=1000000)] | UnsetType | None = UNSET
    expires_at: Moment | UnsetType | None = UNSET
    allowed_agents: AgentIds | UnsetType | None = UNSET


class RotateKeyRequest(msgspec.Struct, forbid_unknown_fields=True):
    """The old key keeps working `grace_seconds` more (0: it stops now)."""

    grace_seconds: Annotated[int, msgspec.Meta(ge=0, le=MAX_GRACE_S)] = 3600


class KeyListQuery(msgspec.Struct, forbid_unknown_fields=True):
    include_revoked: bool = True
    # "api": the developer's own keys; "playground": the dashboard playground's session keys.
    scope: Literal["api", "playground"] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=100)] = 100
    cursor: Annotated[str, msgspec.Meta(min_length=1, max_length=512)] | None = None


class UsageQuery(msgspec.Struct, forbid_unknown_fields=True):
    # [from, to): default the last 30 days up to now; at most 366 days.
    from_: Moment | None = msgspec.field(default=None, name="from")
    to: Moment | None = None


class QuotaOut(msgspec.Struct):
    total: int  # units bought
    used: int  # units charged, as Postgres has recorded them so far
    free: int  # free units granted at registration
    remaining: int  # the gateway's live balance when it holds one, else total + free - used


class DeveloperProfile(msgspec.Struct):
    id: str
    email: str
    user_type: str
    status: str
    rate_tier: str
    email_verified: bool
    created_at: datetime
    quota: QuotaOut
    active_keys: int
    max_active_keys: int


class ApiKeyOut(msgspec.Struct):
    id: str
    name: str | None
    prefix: str  # "ak_" + the key's next 5 characters, to recognise it
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool
    revoked_at: datetime | None
    # "playground" for a key the dashboard's playground minted (short-lived); None otherwise.
    scope: str | None = None
    expires_at: datetime | None = None
    # The key's controls (PATCH /developers/keys/{id}); None: no such control.
    spend_cap: SpendCap | None = None
    spend_used: int | None = None  # units spent in the cap's current period (live)
    rate_limit: int | None = None
    allowed_agents: list[str] | None = None


class ApiKeyPage(msgspec.Struct):
    keys: list[ApiKeyOut]
    next_cursor: str | None


class CreatedApiKey(msgspec.Struct):
    id: str
    name: str
    prefix: str
    created_at: datetime
    key: str  # the plaintext, shown this once: only its SHA-256 is stored
    warning: str = "Store this key now: it cannot be shown again."


class UsageTotals(msgspec.Struct):
    """Counts of calls; per agent, day and key too (those add what they are of)."""

    calls: int
    billable_calls: int
    successful_calls: int
    failed_calls: int
    units: int  # quota units charged
    cost_usd: str
    input_tokens: int
    output_tokens: int


class AgentUsage(UsageTotals, kw_only=True):
    agent_id: str
    agent_name: str | None


class DayUsage(UsageTotals, kw_only=True):
    date: date  # UTC day


class KeyUsage(UsageTotals, kw_only=True):
    key_id: str
    key_name: str | None
    key_prefix: str | None
    scope: str | None  # "playground" for the dashboard playground's keys


class UsageReport(msgspec.Struct):
    from_: datetime = msgspec.field(name="from")
    to: datetime
    totals: UsageTotals
    by_agent: list[AgentUsage]
    by_day: list[DayUsage]
    by_key: list[KeyUsage] = []


class TrialUsage(msgspec.Struct):
    agent_id: str
    agent_name: str | None
    used: int
    remaining: int


class TrialList(msgspec.Struct):
    trial_calls: int  # free calls per agent (FREE_TRIAL_CALLS)
    agents: list[TrialUsage]  # agents the developer has used trials on, most used first
