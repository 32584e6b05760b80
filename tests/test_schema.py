"""The schema itself refuses bad data: these tests go around the application on purpose.

The database is shared by the whole session, so every test makes its own rows (fresh UUIDs
and emails) and never assumes a table is empty. Property tests run their database calls
inside the test body against the session pool; hypothesis never drives a fixture.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

# Database round trips make examples slow and uneven; a modest count keeps the suite quick.
DB_SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ENVELOPE = bytes(range(64))  # stands in for an AES-GCM envelope: the schema only sizes it
WALLET = re.compile(r"0x[0-9a-fA-F]{40}")


# --- row builders ----------------------------------------------------------------------------


async def make_user(conn: asyncpg.Connection, **columns: Any) -> uuid.UUID:
    values: dict[str, Any] = {
        "email": f"user-{uuid.uuid4().hex}@example.com",
        "password_hash": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        "user_type": "developer",
        "redis_shard": 7,
        **columns,
    }
    return await _insert(conn, "users", values)


async def make_agent(
    conn: asyncpg.Connection, creator_id: uuid.UUID | None = None, **columns: Any
) -> uuid.UUID:
    if creator_id is None:
        creator_id = await make_user(conn, user_type="creator")
    values: dict[str, Any] = {
        "creator_id": creator_id,
        "name": "Test agent",
        "config_encrypted": ENVELOPE,
        "config_key_id": "k1",
        "price_per_call": Decimal("0.01"),
        **columns,
    }
    return await _insert(conn, "agents", values)


async def _insert(conn: asyncpg.Connection, table: str, values: dict[str, Any]) -> uuid.UUID:
    columns = ", ".join(values)
    placeholders = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    row_id: uuid.UUID = await conn.fetchval(
        f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) RETURNING id",
        *values.values(),
    )
    return row_id


def call_log(**columns: Any) -> dict[str, Any]:
    return {
        "agent_id": uuid.uuid4(),
        "agent_version": 1,
        "api_key_id": uuid.uuid4(),
        "user_id": uuid.uuid4(),
        "request_id": str(uuid.uuid4()),
        "units": 1,
        "billable": True,
        "status": "success",
        "cost_usd": Decimal("0.01"),
        "created_at": datetime.now(UTC),
        **columns,
    }


async def insert_call_log(conn: asyncpg.Connection, row: dict[str, Any]) -> str:
    """Insert idempotently, the way the usage worker does; returns the command tag."""
    columns = ", ".join(row)
    placeholders = ", ".join(f"${i}" for i in range(1, len(row) + 1))
    status: str = await conn.execute(
        f"INSERT INTO call_logs ({columns}) VALUES ({placeholders})"
        " ON CONFLICT (request_id, created_at) DO NOTHING",
        *row.values(),
    )
    return status


@pytest.fixture
async def conn(db_pool: asyncpg.Pool) -> Any:
    async with db_pool.acquire() as connection:
        yield connection


# --- users -------------------------------------------------------------------------------------


async def test_a_valid_user_gets_the_documented_defaults(conn: asyncpg.Connection) -> None:
    user = await make_user(conn)
    row = await conn.fetchrow("SELECT * FROM users WHERE id = $1", user)
    assert row["status"] == "active"
    assert row["rate_tier"] == "free"
    assert row["email_verified"] is False
    assert row["admin_role"] is None


async def test_user_type_must_be_known(conn: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await make_user(conn, user_type="superuser")
    assert refused.value.constraint_name == "users_user_type_valid"


async def test_admin_role_is_only_for_admins(conn: asyncpg.Connection) -> None:
    await make_user(conn, user_type="admin", admin_role="moderator")
    await make_user(conn, user_type="admin")  # no role: no permissions, but a valid row

    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await make_user(conn, user_type="developer", admin_role="super_admin")
    assert refused.value.constraint_name == "users_admin_role_only_for_admins"

    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await make_user(conn, user_type="admin", admin_role="owner")
    assert refused.value.constraint_name == "users_admin_role_valid"


@pytest.mark.parametrize("column", ["status", "rate_tier"])
async def test_user_status_and_tier_must_be_known(conn: asyncpg.Connection, column: str) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await make_user(conn, **{column: "gold"})


@pytest.mark.parametrize(("shard", "valid"), [(-1, False), (0, True), (1023, True), (1024, False)])
async def test_redis_shard_is_in_0_to_1023(
    conn: asyncpg.Connection, shard: int, *, valid: bool
) -> None:
    if valid:
        await make_user(conn, redis_shard=shard)
        return
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await make_user(conn, redis_shard=shard)
    assert refused.value.constraint_name == "users_redis_shard_range"


async def test_redis_shard_is_required(conn: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.NotNullViolationError):
        await make_user(conn, redis_shard=None)


_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=50)
_wallets = st.one_of(
    st.from_regex(WALLET, fullmatch=True),
    # Near misses: right shape, one thing wrong.
    st.from_regex(r"0[xX][0-9a-fA-F]{39,41}", fullmatch=True),
    st.from_regex(r"0x[0-9a-fA-F]{39}[g-zG-Z ]", fullmatch=True),
    st.from_regex(r"0x[0-9a-fA-F]{40}\n", fullmatch=True),
    _text,
)


@DB_SETTINGS
@given(address=_wallets)
async def test_wallet_address_is_accepted_exactly_when_it_is_0x_and_40_hex(
    db_pool: asyncpg.Pool, address: str
) -> None:
    """Seed property 10, held by the database itself."""
    async with db_pool.acquire() as connection:
        if WALLET.fullmatch(address):
            await make_user(connection, wallet_address=address)
        else:
            with pytest.raises(asyncpg.CheckViolationError):
                await make_user(connection, wallet_address=address)


async def test_wallet_address_may_be_absent(conn: asyncpg.Connection) -> None:
    await make_user(conn, wallet_address=None)


async def test_email_is_unique_case_insensitively(conn: asyncpg.Connection) -> None:
    local = f"Ada.{uuid.uuid4().hex}"
    await make_user(conn, email=f"{local}@Example.COM")

    with pytest.raises(asyncpg.UniqueViolationError) as refused:
        await make_user(conn, email=f"{local.lower()}@example.com")
    assert refused.value.constraint_name == "users_email_lower_key"


@pytest.mark.parametrize("email", ["", "no-at-sign", "two@@example.com", "sp ace@example.com"])
async def test_email_must_look_like_an_address(conn: asyncpg.Connection, email: str) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await make_user(conn, email=email)


async def test_updated_at_is_bumped_by_the_database(conn: asyncpg.Connection) -> None:
    long_ago = datetime(2000, 1, 1, tzinfo=UTC)
    user = await make_user(conn, updated_at=long_ago)
    await conn.execute("UPDATE users SET email_verified = true WHERE id = $1", user)
    assert await conn.fetchval("SELECT updated_at FROM users WHERE id = $1", user) > long_ago


# --- creators and agents ------------------------------------------------------------------------


@pytest.mark.parametrize("column", ["total_earnings", "pending_earnings"])
async def test_creator_earnings_cannot_go_negative(conn: asyncpg.Connection, column: str) -> None:
    creator = await make_user(conn, user_type="creator")
    await conn.execute(
        "INSERT INTO creator_profiles (user_id, display_name) VALUES ($1, 'Ada')", creator
    )
    await conn.execute(
        f"UPDATE creator_profiles SET {column} = {column} + 5 WHERE user_id = $1", creator
    )

    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await conn.execute(
            f"UPDATE creator_profiles SET {column} = {column} - 5.00000001 WHERE user_id = $1",
            creator,
        )
    assert refused.value.constraint_name == f"creator_profiles_{column}_nonnegative"


async def test_agent_status_must_be_known(conn: asyncpg.Connection) -> None:
    agent = await make_agent(conn)
    assert await conn.fetchval("SELECT status FROM agents WHERE id = $1", agent) == "draft"

    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await conn.execute("UPDATE agents SET status = 'published' WHERE id = $1", agent)
    assert refused.value.constraint_name == "agents_status_valid"


async def test_an_active_agent_has_a_publication_time(conn: asyncpg.Connection) -> None:
    agent = await make_agent(conn)
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await conn.execute("UPDATE agents SET status = 'active' WHERE id = $1", agent)
    assert refused.value.constraint_name == "agents_active_has_published_at"

    await conn.execute(
        "UPDATE agents SET status = 'active', published_at = now() WHERE id = $1", agent
    )


@pytest.mark.parametrize("price", [Decimal(0), Decimal(-1), Decimal("0.0000001")])
async def test_price_must_be_positive(conn: asyncpg.Connection, price: Decimal) -> None:
    # 0.0000001 rounds to 0 at six decimals, so it is refused rather than stored as free.
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await make_agent(conn, price_per_call=price)
    assert refused.value.constraint_name == "agents_price_per_call_range"


async def test_price_has_a_hard_ceiling(conn: asyncpg.Connection) -> None:
    await make_agent(conn, price_per_call=Decimal("999999.999999"))
    with pytest.raises(asyncpg.NumericValueOutOfRangeError):
        await make_agent(conn, price_per_call=Decimal(1_000_000))


async def test_agent_must_belong_to_an_existing_user(conn: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await make_agent(conn, creator_id=uuid.uuid4())


async def test_a_user_with_agents_cannot_be_hard_deleted(conn: asyncpg.Connection) -> None:
    creator = await make_user(conn, user_type="creator")
    await make_agent(conn, creator)
    # ON DELETE RESTRICT reports SQLSTATE 23001, not the 23503 of a missing parent.
    with pytest.raises(asyncpg.RestrictViolationError) as refused:
        await conn.execute("DELETE FROM users WHERE id = $1", creator)
    assert refused.value.constraint_name == "agents_creator_id_fkey"


async def test_a_users_keys_go_with_the_user(conn: asyncpg.Connection) -> None:
    user = await make_user(conn)
    await conn.execute(
        "INSERT INTO api_keys (user_id, key_hash, key_prefix) VALUES ($1, $2, 'ak_Ab3dE')",
        user,
        uuid.uuid4().hex * 2,
    )
    await conn.execute("DELETE FROM users WHERE id = $1", user)
    assert await conn.fetchval("SELECT count(*) FROM api_keys WHERE user_id = $1", user) == 0


async def test_config_key_id_and_envelope_are_checked(conn: asyncpg.Connection) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await make_agent(conn, config_key_id="bad key id!")
    assert refused.value.constraint_name == "agents_config_key_id_format"
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await make_agent(conn, config_encrypted=b"too short to hold nonce+tag")
    assert refused.value.constraint_name == "agents_config_encrypted_size"


async def test_agent_versions_are_unique_per_agent(conn: asyncpg.Connection) -> None:
    agent = await make_agent(conn)
    insert = (
        "INSERT INTO agent_versions (agent_id, version, config_encrypted, config_key_id,"
        " price_per_call, name) VALUES ($1, $2, $3, 'k1', 0.01, 'v')"
    )
    await conn.execute(insert, agent, 1, ENVELOPE)
    await conn.execute(insert, agent, 2, ENVELOPE)
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute(insert, agent, 2, ENVELOPE)


async def test_average_rating_is_derived_exactly_from_the_sum(conn: asyncpg.Connection) -> None:
    agent = await make_agent(conn)
    assert await conn.fetchval("SELECT average_rating FROM agents WHERE id = $1", agent) == 0
    await conn.execute("UPDATE agents SET rating_sum = 14, review_count = 3 WHERE id = $1", agent)
    assert await conn.fetchval("SELECT average_rating FROM agents WHERE id = $1", agent) == Decimal(
        "4.67"
    )

    # Every rating is 1..5, so three reviews sum to 3..15.
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await conn.execute("UPDATE agents SET rating_sum = 16 WHERE id = $1", agent)
    assert refused.value.constraint_name == "agents_rating_sum_bounds"
    with pytest.raises(asyncpg.GeneratedAlwaysError):
        await conn.execute("UPDATE agents SET average_rating = 5 WHERE id = $1", agent)


async def test_search_vector_finds_an_agent_by_a_word_of_its_description(
    conn: asyncpg.Connection,
) -> None:
    # A made-up word, so other tests' agents cannot match.
    word = "zorb" + "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex[:10])
    in_description = await make_agent(
        conn, description=f"Summarises quarterly reports about {word} for busy teams."
    )
    in_name = await make_agent(conn, name=f"{word} helper", description="Something else.")
    await make_agent(conn, description="Summarises quarterly reports about nothing special.")

    # Stemming: the query says "summarise", the description "Summarises".
    rows = await conn.fetch(
        "SELECT id FROM agents, websearch_to_tsquery('english', $1) AS q"
        " WHERE search_vector @@ q ORDER BY ts_rank(search_vector, q) DESC",
        f"{word} summarise",
    )
    assert [row["id"] for row in rows] == [in_description]

    # A hit in the name (weight A) outranks one in the description (weight C).
    rows = await conn.fetch(
        "SELECT id FROM agents, websearch_to_tsquery('english', $1) AS q"
        " WHERE search_vector @@ q ORDER BY ts_rank(search_vector, q) DESC",
        word,
    )
    assert [row["id"] for row in rows] == [in_name, in_description]


async def test_search_vector_follows_edits(conn: asyncpg.Connection) -> None:
    agent = await make_agent(conn, description="plain")
    word = "qux" + uuid.uuid4().hex[:8].translate(str.maketrans("0123456789", "ghijklmnop"))
    await conn.execute("UPDATE agents SET description = $2 WHERE id = $1", agent, word)
    assert (
        await conn.fetchval(
            "SELECT id FROM agents WHERE search_vector @@ plainto_tsquery('english', $1)", word
        )
        == agent
    )


# --- reviews -----------------------------------------------------------------------------------


@DB_SETTINGS
@given(rating=st.integers(min_value=-3, max_value=9))
async def test_rating_is_accepted_exactly_when_it_is_1_to_5(
    db_pool: asyncpg.Pool, rating: int
) -> None:
    async with db_pool.acquire() as connection:
        agent = await make_agent(connection)
        reviewer = await make_user(connection)
        insert = "INSERT INTO reviews (agent_id, user_id, rating) VALUES ($1, $2, $3)"
        if 1 <= rating <= 5:
            await connection.execute(insert, agent, reviewer, rating)
        else:
            with pytest.raises(asyncpg.CheckViolationError) as refused:
                await connection.execute(insert, agent, reviewer, rating)
            assert refused.value.constraint_name == "reviews_rating_range"


async def test_one_review_per_agent_and_user(conn: asyncpg.Connection) -> None:
    agent = await make_agent(conn)
    reviewer = await make_user(conn)
    insert = "INSERT INTO reviews (agent_id, user_id, rating) VALUES ($1, $2, $3)"
    await conn.execute(insert, agent, reviewer, 4)
    await conn.execute(insert, agent, await make_user(conn), 2)  # someone else: fine

    with pytest.raises(asyncpg.UniqueViolationError) as refused:
        await conn.execute(insert, agent, reviewer, 5)
    assert refused.value.constraint_name == "reviews_agent_user_key"


# --- developer access ---------------------------------------------------------------------------


async def test_key_hash_is_lowercase_hex_sha256(conn: asyncpg.Connection) -> None:
    user = await make_user(conn)
    insert = "INSERT INTO api_keys (user_id, key_hash, key_prefix) VALUES ($1, $2, 'ak_Ab3dE')"
    good = uuid.uuid4().hex * 2
    await conn.execute(insert, user, good)
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute(insert, await make_user(conn), good)
    for bad in (good.upper(), good[:63], good[:63] + "g"):
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(insert, user, bad)


async def test_trial_calls_are_counted_uncapped_and_never_negative(
    conn: asyncpg.Connection,
) -> None:
    """Seed property 25 is enforced by admission with FREE_TRIAL_CALLS (migration 0010): the
    row counts every trial call made, whatever the setting was, and refuses a negative."""
    developer, agent = await make_user(conn), await make_agent(conn)
    await conn.execute(
        "INSERT INTO trial_usage (user_id, agent_id, calls_used) VALUES ($1, $2, 3)",
        developer,
        agent,
    )
    await conn.execute(
        "UPDATE trial_usage SET calls_used = calls_used + 4 WHERE user_id = $1 AND agent_id = $2",
        developer,
        agent,
    )
    assert (
        await conn.fetchval("SELECT calls_used FROM trial_usage WHERE user_id = $1", developer) == 7
    )
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await conn.execute(
            "UPDATE trial_usage SET calls_used = -1 WHERE user_id = $1 AND agent_id = $2",
            developer,
            agent,
        )
    assert refused.value.constraint_name == "trial_usage_calls_used_range"
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute(
            "INSERT INTO trial_usage (user_id, agent_id) VALUES ($1, $2)", developer, agent
        )


async def test_new_quota_rows_start_with_100_free_units(conn: asyncpg.Connection) -> None:
    """Seed property 35."""
    user = await make_user(conn)
    await conn.execute("INSERT INTO quotas (user_id) VALUES ($1)", user)
    row = await conn.fetchrow("SELECT * FROM quotas WHERE user_id = $1", user)
    assert (row["free_quota"], row["total_quota"], row["used_quota"]) == (100, 0, 0)
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute("UPDATE quotas SET used_quota = -1 WHERE user_id = $1", user)


# --- money -------------------------------------------------------------------------------------


async def _settle(
    conn: asyncpg.Connection,
    creator: uuid.UUID,
    period: tuple[datetime, datetime],
    amounts: tuple[str, str, str],
) -> None:
    """Insert a settlement of (amount, platform_fee, net_amount) for [start, end)."""
    amount, fee, net = (Decimal(value) for value in amounts)
    await conn.execute(
        "INSERT INTO settlements (creator_id, period_start, period_end, amount, platform_fee,"
        " net_amount) VALUES ($1, $2, $3, $4, $5, $6)",
        creator,
        *period,
        amount,
        fee,
        net,
    )


async def test_settlement_net_is_amount_minus_fee(conn: asyncpg.Connection) -> None:
    """Seed property 15, to the last of eight decimals."""
    creator = await make_user(conn, user_type="creator")
    jan, feb, mar = (datetime(2025, m, 1, tzinfo=UTC) for m in (1, 2, 3))
    await _settle(conn, creator, (jan, feb), ("100.00000001", "20.00000000", "80.00000001"))

    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await _settle(conn, creator, (feb, mar), ("100", "20", "80.00000001"))
    assert refused.value.constraint_name == "settlements_net_is_amount_minus_fee"
    with pytest.raises(asyncpg.CheckViolationError):  # a fee larger than the amount
        await _settle(conn, creator, (feb, mar), ("10", "20", "-10"))


async def test_settlement_periods_of_one_creator_never_overlap(conn: asyncpg.Connection) -> None:
    creator = await make_user(conn, user_type="creator")
    jan, feb, mar = (datetime(2025, m, 1, tzinfo=UTC) for m in (1, 2, 3))
    await _settle(conn, creator, (jan, feb), ("10", "2", "8"))
    await _settle(conn, creator, (feb, mar), ("10", "2", "8"))  # adjacent, half-open: fine
    other = await make_user(conn, user_type="creator")
    await _settle(conn, other, (jan, mar), ("1", "0", "1"))

    with pytest.raises(asyncpg.UniqueViolationError):
        await _settle(conn, creator, (jan, feb), ("10", "2", "8"))
    with pytest.raises(asyncpg.ExclusionViolationError) as refused:
        await _settle(conn, creator, (jan + timedelta(days=10), feb), ("5", "1", "4"))
    assert refused.value.constraint_name == "settlements_no_overlapping_periods"


async def test_withdrawal_net_is_amount_minus_fee(conn: asyncpg.Connection) -> None:
    """Seed property 16."""
    creator = await make_user(conn, user_type="creator")
    insert = (
        "INSERT INTO withdrawals (creator_id, amount, fee, net_amount, wallet_address)"
        " VALUES ($1, $2, $3, $4, $5)"
    )
    wallet = "0x" + "ab" * 20
    await conn.execute(insert, creator, Decimal(100), Decimal(20), Decimal(80), wallet)
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await conn.execute(insert, creator, Decimal(100), Decimal(20), Decimal(100), wallet)
    assert refused.value.constraint_name == "withdrawals_net_is_amount_minus_fee"
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await conn.execute(insert, creator, Decimal(100), Decimal(20), Decimal(80), "0x12")
    assert refused.value.constraint_name == "withdrawals_wallet_address_format"


async def test_a_provider_payment_is_recorded_once(conn: asyncpg.Connection) -> None:
    user = await make_user(conn)
    payment_id = f"cs_{uuid.uuid4().hex}"
    insert = (
        "INSERT INTO payments (user_id, amount_usd, quota_purchased, payment_method, payment_id)"
        " VALUES ($1, 10, 1000, $2, $3)"
    )
    await conn.execute(insert, user, "stripe", payment_id)
    await conn.execute(insert, user, "coinbase", payment_id)  # another provider's namespace
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute(insert, user, "stripe", payment_id)
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(insert, user, "paypal", f"x_{uuid.uuid4().hex}")


async def test_a_redelivered_payment_event_is_a_no_op(conn: asyncpg.Connection) -> None:
    event_id = f"evt_{uuid.uuid4().hex}"
    insert = (
        "INSERT INTO payment_events (provider, event_id, payload) VALUES ('stripe', $1, $2)"
        " ON CONFLICT (provider, event_id) DO NOTHING"
    )
    assert await conn.execute(insert, event_id, {"n": 1}) == "INSERT 0 1"
    assert await conn.execute(insert, event_id, {"n": 2}) == "INSERT 0 0"
    assert await conn.fetchval(
        "SELECT payload FROM payment_events WHERE event_id = $1", event_id
    ) == {"n": 1}


# --- webhooks ----------------------------------------------------------------------------------


async def _webhook(conn: asyncpg.Connection, url: str, events: object = None) -> uuid.UUID:
    return await _insert(
        conn,
        "webhooks",
        {
            "user_id": await make_user(conn),
            "url": url,
            "events": ["quota.low"] if events is None else events,
            "secret_encrypted": ENVELOPE,
        },
    )


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "javascript:alert(1)",
        "example.com/hook",
        "https://",
        "https://exa mple.com/",
        "HTTPS://example.com/",
    ],
)
async def test_webhook_url_must_be_http_or_https(conn: asyncpg.Connection, url: str) -> None:
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await _webhook(conn, url)
    assert refused.value.constraint_name == "webhooks_url_http"


@pytest.mark.parametrize(
    "url", ["https://example.com", "http://localhost:8080/hook?x=1", "https://h.example/a#b"]
)
async def test_webhook_url_accepts_http_and_https(conn: asyncpg.Connection, url: str) -> None:
    await _webhook(conn, url)


@pytest.mark.parametrize("events", [{"quota.low": True}, "quota.low", [], [1, 2], ["ok", None]])
async def test_webhook_events_are_a_nonempty_array_of_names(
    conn: asyncpg.Connection, events: object
) -> None:
    with pytest.raises(asyncpg.CheckViolationError):
        await _webhook(conn, "https://example.com/hook", events)


async def test_webhook_deliveries_are_idempotent_and_bounded(conn: asyncpg.Connection) -> None:
    webhook = await _webhook(conn, "https://example.com/hook")
    insert = (
        "INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, payload)"
        " VALUES ($1, $2, 'quota.low', '{}') ON CONFLICT (webhook_id, event_id) DO NOTHING"
    )
    assert await conn.execute(insert, webhook, "evt-1") == "INSERT 0 1"
    assert await conn.execute(insert, webhook, "evt-1") == "INSERT 0 0"
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(
            "UPDATE webhook_deliveries SET attempts = 11 WHERE webhook_id = $1", webhook
        )

    await conn.execute("DELETE FROM webhooks WHERE id = $1", webhook)
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM webhook_deliveries WHERE webhook_id = $1", webhook
        )
        == 0
    )


# --- call logs ---------------------------------------------------------------------------------


async def test_a_redelivered_usage_event_is_logged_once(conn: asyncpg.Connection) -> None:
    event = call_log()
    assert await insert_call_log(conn, event) == "INSERT 0 1"
    # Redelivered: same request id and same event timestamp, fresh row id.
    assert await insert_call_log(conn, {**event, "units": 99}) == "INSERT 0 0"
    rows = await conn.fetch(
        "SELECT units FROM call_logs WHERE request_id = $1", event["request_id"]
    )
    assert [row["units"] for row in rows] == [1]


async def test_unbillable_calls_charge_no_units(conn: asyncpg.Connection) -> None:
    await insert_call_log(conn, call_log(billable=False, status="error", units=0, cost_usd=0))
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await insert_call_log(conn, call_log(billable=False, status="error", units=1))
    assert refused.value.constraint_name == "call_logs_unbillable_costs_no_units"
    with pytest.raises(asyncpg.CheckViolationError) as refused:
        await insert_call_log(conn, call_log(billable=True, status="timeout"))
    assert refused.value.constraint_name == "call_logs_billable_status"
    with pytest.raises(asyncpg.CheckViolationError):
        await insert_call_log(conn, call_log(status="exploded"))


async def test_the_migration_created_last_this_and_the_next_two_months(
    conn: asyncpg.Connection,
) -> None:
    this_month = datetime.now(UTC).date().replace(day=1)
    wanted = [_shift_month(this_month, delta) for delta in (-1, 0, 1, 2)]
    partitions = await _partitions(conn)
    for month in wanted:
        assert f"call_logs_{month:%Y_%m}" in partitions


async def test_rows_land_in_their_utc_month(conn: asyncpg.Connection) -> None:
    await conn.fetchval("SELECT ensure_call_log_partitions('2024-02-01', 2)")
    last_instant_of_february = datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC)
    cases = {
        last_instant_of_february: "call_logs_2024_02",
        last_instant_of_february + timedelta(microseconds=1): "call_logs_2024_03",
        datetime(2024, 2, 1, tzinfo=UTC): "call_logs_2024_02",
    }
    # Month bounds are UTC whatever the session says: in Los Angeles the first instant of
    # March is still February 29th, and must land in March all the same.
    await conn.execute("SET TIME ZONE 'America/Los_Angeles'")
    try:
        for created_at, partition in cases.items():
            event = call_log(created_at=created_at)
            await insert_call_log(conn, event)
            landed = await conn.fetchval(
                "SELECT tableoid::regclass::text FROM call_logs"
                " WHERE request_id = $1 AND created_at = $2",
                event["request_id"],
                created_at,
            )
            assert landed == partition, created_at
    finally:
        await conn.execute("RESET TIME ZONE")


async def test_a_month_without_a_partition_is_refused_not_swallowed(
    conn: asyncpg.Connection,
) -> None:
    with pytest.raises(asyncpg.CheckViolationError, match="no partition"):
        await insert_call_log(conn, call_log(created_at=datetime(1990, 6, 15, tzinfo=UTC)))


async def test_ensure_partitions_creates_future_months_idempotently(
    conn: asyncpg.Connection,
) -> None:
    # Across a year boundary, from a mid-month date.
    created = await conn.fetchval("SELECT ensure_call_log_partitions('2099-11-17', 3)")
    assert created == 3
    partitions = await _partitions(conn)
    assert {"call_logs_2099_11", "call_logs_2099_12", "call_logs_2100_01"} <= partitions

    assert await conn.fetchval("SELECT ensure_call_log_partitions('2099-11-01', 3)") == 0
    assert await conn.fetchval("SELECT ensure_call_log_partitions('2099-12-01', 3)") == 1
    assert await conn.fetchval("SELECT ensure_call_log_partitions('2099-12-01', 0)") == 0

    # A new partition carries the parent's constraints and idempotency key.
    event = call_log(created_at=datetime(2100, 1, 31, 12, tzinfo=UTC))
    assert await insert_call_log(conn, event) == "INSERT 0 1"
    assert await insert_call_log(conn, event) == "INSERT 0 0"
    with pytest.raises(asyncpg.CheckViolationError):
        await insert_call_log(conn, call_log(created_at=event["created_at"], units=-1))


@pytest.mark.parametrize("months", [-1, 121])
async def test_ensure_partitions_refuses_silly_arguments(
    conn: asyncpg.Connection, months: int
) -> None:
    with pytest.raises(asyncpg.InvalidParameterValueError):
        await conn.fetchval("SELECT ensure_call_log_partitions('2030-01-01', $1)", months)


async def test_ensure_partitions_does_not_mistake_a_stray_table_for_a_partition(
    conn: asyncpg.Connection,
) -> None:
    await conn.execute("CREATE TABLE call_logs_2098_05 (LIKE call_logs)")
    try:
        with pytest.raises(asyncpg.DuplicateTableError):
            await conn.fetchval("SELECT ensure_call_log_partitions('2098-05-01', 1)")
    finally:
        await conn.execute("DROP TABLE call_logs_2098_05")


async def test_concurrent_partition_creation_does_not_collide(db_pool: asyncpg.Pool) -> None:
    async def ensure() -> int:
        async with db_pool.acquire() as connection, connection.transaction():
            created: int = await connection.fetchval(
                "SELECT ensure_call_log_partitions('2097-01-01', 6)"
            )
            return created

    results = await asyncio.gather(ensure(), ensure(), ensure())
    assert sorted(results) == [0, 0, 6]


async def test_creating_a_partition_waits_for_neither_writers_nor_readers(
    db_pool: asyncpg.Pool,
) -> None:
    """ATTACH takes SHARE UPDATE EXCLUSIVE, which open inserts and reads do not block."""
    async with (
        db_pool.acquire() as writer,
        db_pool.acquire() as reader,
        writer.transaction(),
        reader.transaction(),
    ):
        await insert_call_log(writer, call_log())
        await reader.fetchval("SELECT count(*) FROM call_logs WHERE user_id = $1", uuid.uuid4())
        async with db_pool.acquire() as worker, worker.transaction():
            await worker.execute("SET LOCAL lock_timeout = '2s'")
            created = await worker.fetchval("SELECT ensure_call_log_partitions('2096-03-01', 1)")
            assert created == 1


def _shift_month(month: date, delta: int) -> date:
    index = month.year * 12 + month.month - 1 + delta
    return date(index // 12, index % 12 + 1, 1)


async def _partitions(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch(
        "SELECT inhrelid::regclass::text AS name FROM pg_inherits"
        " WHERE inhparent = 'call_logs'::regclass"
    )
    return {row["name"] for row in rows}


# --- knowledge base ----------------------------------------------------------------------------


async def _knowledge_file(conn: asyncpg.Connection, agent: uuid.UUID) -> uuid.UUID:
    return await _insert(
        conn,
        "knowledge_files",
        {
            "agent_id": agent,
            "filename": "handbook.md",
            "file_type": "text/markdown",
            "file_size": 1234,
            "storage_key": f"kb/{uuid.uuid4()}",
            "content_sha256": uuid.uuid4().hex * 2,
        },
    )


def _vector(*head: float) -> str:
    """A 384-dimensional vector literal, zero after the given leading components."""
    return "[" + ",".join(str(x) for x in [*head, *([0.0] * (384 - len(head)))]) + "]"


async def test_embedding_is_a_pgvector_column_when_the_server_has_pgvector(
    conn: asyncpg.Connection,
) -> None:
    available = await conn.fetchval(
        "SELECT count(*) > 0 FROM pg_available_extensions WHERE name = 'vector'"
    )
    column_type = await conn.fetchval(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = 'knowledge_chunks'::regclass AND attname = 'embedding'"
    )
    assert column_type == ("vector(384)" if available else "real[]")
    if available:
        index = await conn.fetchval(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'knowledge_chunks_embedding_idx'"
        )
        assert "USING hnsw" in index
        assert "halfvec_cosine_ops" in index  # over half-precision copies (0020)


async def test_chunks_are_ranked_by_cosine_distance(conn: asyncpg.Connection) -> None:
    if await conn.fetchval("SELECT count(*) = 0 FROM pg_extension WHERE extname = 'vector'"):
        pytest.skip("this server has no pgvector; the real[] fallback is tested elsewhere")
    agent = await make_agent(conn)
    file_id = await _knowledge_file(conn, agent)
    insert = (
        "INSERT INTO knowledge_chunks (agent_id, file_id, chunk_index, content, embedding)"
        " VALUES ($1, $2, $3, $4, $5::text::vector)"
    )
    # Cosine distance ignores length: "far" is long but points the wrong way.
    await conn.execute(insert, agent, file_id, 0, "near", _vector(1.0, 0.1))
    await conn.execute(insert, agent, file_id, 1, "middle", _vector(1.0, 1.0))
    await conn.execute(insert, agent, file_id, 2, "far", _vector(-50.0, 3.0))
    # Another agent's identical chunk must never be retrieved for this one.
    other = await make_agent(conn)
    await conn.execute(insert, other, await _knowledge_file(conn, other), 0, "x", _vector(1.0))

    rows = await conn.fetch(
        "SELECT content, embedding <=> $2::text::vector AS distance FROM knowledge_chunks"
        " WHERE agent_id = $1 ORDER BY embedding <=> $2::text::vector LIMIT 3",
        agent,
        _vector(1.0),
    )
    assert [row["content"] for row in rows] == ["near", "middle", "far"]
    assert rows[0]["distance"] < 0.01

    with pytest.raises(asyncpg.DataError, match="384"):
        await conn.execute(insert, agent, file_id, 3, "short", "[1,2,3]")


async def test_a_chunks_vector_and_tsvector_stay_in_its_row(conn: asyncpg.Connection) -> None:
    """What retrieval reads of every candidate (vector, tsvector) is never a TOAST fetch, even
    when a 1,000-character chunk makes the row pass the 2 KB threshold (0018, 0019)."""
    if await conn.fetchval("SELECT count(*) = 0 FROM pg_extension WHERE extname = 'vector'"):
        pytest.skip("this server has no pgvector; the real[] fallback is tested elsewhere")
    agent = await make_agent(conn)
    file_id = await _knowledge_file(conn, agent)
    # Distinct made-up words: neither the text nor its tsvector compresses much.
    text = " ".join(f"q{uuid.uuid4().hex[:8]}" for _ in range(110))
    await conn.execute(
        "INSERT INTO knowledge_chunks (agent_id, file_id, chunk_index, content, embedding)"
        " VALUES ($1, $2, 0, $3, $4::text::vector)",
        agent, file_id, text, _vector(*[0.001 * i for i in range(384)]),
    )  # fmt: skip
    row = await conn.fetchrow(
        "SELECT pg_column_size(content_tsv) AS tsv_size,"
        "       pg_column_toast_chunk_id(content_tsv) AS tsv_toast,"
        "       pg_column_toast_chunk_id(embedding) AS vector_toast"
        " FROM knowledge_chunks WHERE file_id = $1",
        file_id,
    )
    assert row["tsv_size"] > 900  # the case in point: with the vector, past the threshold
    assert row["tsv_toast"] is None
    assert row["vector_toast"] is None


async def test_a_chunk_cannot_claim_another_agent_than_its_file(conn: asyncpg.Connection) -> None:
    agent, other = await make_agent(conn), await make_agent(conn)
    file_id = await _knowledge_file(conn, agent)
    insert = (
        "INSERT INTO knowledge_chunks (agent_id, file_id, chunk_index, content)"
        " VALUES ($1, $2, $3, 'text')"
    )
    await conn.execute(insert, agent, file_id, 0)
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute(insert, agent, file_id, 0)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute(insert, other, file_id, 1)

    await conn.execute("DELETE FROM knowledge_files WHERE id = $1", file_id)
    assert (
        await conn.fetchval("SELECT count(*) FROM knowledge_chunks WHERE file_id = $1", file_id)
        == 0
    )


# --- admin -------------------------------------------------------------------------------------


async def test_audit_log_is_append_only(conn: asyncpg.Connection) -> None:
    entry = await conn.fetchval(
        "INSERT INTO audit_log (actor_id, actor_role, action, target_type, target_id, ip)"
        " VALUES ($1, 'moderator', 'review.reject', 'review', 'r1', '10.0.0.1') RETURNING id",
        uuid.uuid4(),
    )
    with pytest.raises(asyncpg.RestrictViolationError):
        await conn.execute("UPDATE audit_log SET action = 'review.approve' WHERE id = $1", entry)
    with pytest.raises(asyncpg.RestrictViolationError):
        await conn.execute("DELETE FROM audit_log WHERE id = $1", entry)


async def test_feature_flags_are_seeded(conn: asyncpg.Connection) -> None:
    flags = {row["key"]: row["enabled"] for row in await conn.fetch("SELECT * FROM feature_flags")}
    assert {
        "enable_crypto_payments",
        "enable_blockchain_mint",
        "enable_rag",
        "enable_webhooks",
        "enable_trial_mode",
        "maintenance_mode",
    } <= flags.keys()
    assert flags["maintenance_mode"] is False
    assert flags["enable_trial_mode"] is True
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute("INSERT INTO feature_flags (key) VALUES ('Not A Key')")
