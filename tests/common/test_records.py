"""The hot records' fields, as both apps write them and admit.lua reads them."""

from __future__ import annotations

from decimal import Decimal

from common.records import (
    RECORD_TTL_S,
    UNKNOWN_AGENT_TTL_S,
    UNKNOWN_KEY_TTL_S,
    AgentRecord,
    KeyControls,
    KeyRecord,
    UserRecord,
    UserSession,
)


def test_key_records() -> None:
    live = KeyRecord.of(user_id="u", key_id="k", revoked=False)
    no_controls = {"expires": "0", "rate": "0", "cap": "0", "cap_period": "", "agents": ""}
    assert live.to_fields() == {"status": "ok", "user": "u", "key": "k", **no_controls}
    controlled = KeyRecord.of(
        user_id="u", key_id="k", revoked=False,
        controls=KeyControls(expires_ms=5, rate=7, cap=9, cap_period="day", agents="a,b"),
    )  # fmt: skip
    assert controlled.to_fields() == {"status": "ok", "user": "u", "key": "k", "expires": "5",
                                      "rate": "7", "cap": "9", "cap_period": "day",
                                      "agents": "a,b"}  # fmt: skip
    assert KeyRecord.of(user_id="u", key_id="k", revoked=True).to_fields()["status"] == "revoked"
    assert live.ttl_s == RECORD_TTL_S
    unknown = KeyRecord.unknown()
    assert unknown.to_fields() == {"status": "unknown"}  # no owner: admit.lua answers BAD_KEY
    assert unknown.ttl_s == UNKNOWN_KEY_TTL_S


def test_user_records() -> None:
    record = UserRecord("suspended", "paid")
    assert record.to_fields() == {"status": "suspended", "tier": "paid"}
    assert record.ttl_s == RECORD_TTL_S
    admin = UserRecord("active", "free", UserSession("admin", "support", 4))
    assert admin.to_fields() == {
        "status": "active", "tier": "free", "type": "admin", "role": "support", "gen": "4"
    }  # fmt: skip
    developer = UserRecord("active", "paid", UserSession("developer", None, 0))
    assert developer.to_fields()["role"] == ""


def test_agent_records_carry_the_units_a_call_costs() -> None:
    record = AgentRecord.priced(
        status="active", version=3, price_per_call=Decimal("0.025"), unit_price=Decimal("0.01")
    )
    assert record.to_fields() == {"status": "active", "version": "3", "units": "3"}
    assert record.ttl_s == RECORD_TTL_S
    assert AgentRecord.unknown().to_fields() == {"status": "unknown"}
    assert AgentRecord.unknown().ttl_s == UNKNOWN_AGENT_TTL_S
