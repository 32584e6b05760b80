"""The chain outbox against a real JSON-RPC node (devstack/chain_node.py) and real Postgres:
jobs written with the business change, one token and one record however often a job runs,
a worker killed between sending and recording, a node that stops answering and comes back,
wallets checked before minting, confirmations counted."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from eth_account import Account

from control_plane.agents import repository as agents
from control_plane.chain.client import ChainClient, settlement_key, token_id_of
from control_plane.chain.job_store import forget_chain
from control_plane.chain.outbox import ChainOutbox
from control_plane.chain.settings import ChainSettings
from devstack.chain_node import LocalChainNode
from tests.control_plane.chain.conftest import (
    chain_settings_for,
    forget_broadcasts,
    make_jobs_due,
    mine,
    requeue_jobs,
)
from tests.factories import make_agent, set_wallet


class WorkerKilled(BaseException):
    """The worker process dying at this line: nothing after it runs, no handler sees it."""


class KilledAfterBroadcast(ChainClient):
    async def broadcast(self, raw: bytes) -> None:
        await super().broadcast(raw)
        raise WorkerKilled


class KilledBeforeBroadcast(ChainClient):
    async def broadcast(self, raw: bytes) -> None:
        raise WorkerKilled


async def run_until_killed(db: asyncpg.Pool, dying: ChainClient, settings: ChainSettings) -> None:
    """One outbox round with a client that dies mid-job (`WorkerKilled`), then closed."""
    try:
        with pytest.raises(WorkerKilled):
            await ChainOutbox(db, dying, settings).run_once()
    finally:
        await dying.aclose()


def new_wallet() -> str:
    return str(Account.create().address)


async def settled_day(
    db: asyncpg.Pool, agent_id: str, start: datetime, money: tuple[str, str, str]
) -> str:
    """A settled day's settlement for the agent's creator, as `settle_due` leaves one;
    `money` is (amount, platform fee, net amount)."""
    amount, fee, net = money
    creator_id = await db.fetchval("SELECT creator_id FROM agents WHERE id = $1", agent_id)
    settlement_id = await db.fetchval(
        """INSERT INTO settlements (creator_id, period_start, period_end, amount,
                                    platform_fee, net_amount, status, settled_at)
           VALUES ($1, $2, $3, $4, $5, $6, 'settled', now())
           RETURNING id""",
        creator_id, start, start + timedelta(days=1), Decimal(amount), Decimal(fee), Decimal(net),
    )  # fmt: skip
    return str(settlement_id)


async def published_agent(db: asyncpg.Pool, wallet: str | None) -> str:
    agent = await make_agent(db)
    if wallet is not None:
        await set_wallet(db, agent.creator_id, wallet)
    return agent.agent_id


async def job_of(db: asyncpg.Pool, subject_id: str) -> asyncpg.Record:
    row = await db.fetchrow("SELECT * FROM chain_jobs WHERE subject_id = $1", subject_id)
    assert row is not None
    return row


async def expire_lease(db: asyncpg.Pool) -> None:
    """What time does for a dead worker's jobs: the lease runs out, the job is due."""
    await db.execute(
        "UPDATE chain_jobs SET locked_until = now() - interval '1 second', next_attempt_at = now()"
    )


async def drain(outbox: ChainOutbox, db: asyncpg.Pool, rounds: int = 10) -> None:
    for _ in range(rounds):
        await outbox.run_once()
        open_jobs = await db.fetchval(
            "SELECT count(*) FROM chain_jobs WHERE status IN ('pending', 'sent')"
        )
        if open_jobs == 0:
            return
        await make_jobs_due(db)


async def test_publishing_writes_the_job_in_its_transaction_and_a_republish_adds_none(
    chain_db: asyncpg.Pool,
) -> None:
    agent_id = await published_agent(chain_db, None)
    job = await job_of(chain_db, agent_id)
    assert (job["kind"], job["status"], job["tx_hash"]) == ("mint_agent", "pending", None)
    async with chain_db.acquire() as connection, connection.transaction():
        await agents.set_status(connection, agent_id, "inactive")
        await agents.set_status(connection, agent_id, "active")
    assert await chain_db.fetchval("SELECT count(*) FROM chain_jobs") == 1
    # A publication rolled back leaves no job behind.
    draft = await make_agent(chain_db, status="draft")
    with pytest.raises(RuntimeError):
        await publish_then_fail(chain_db, draft.agent_id)
    assert (
        await chain_db.fetchval(
            "SELECT count(*) FROM chain_jobs WHERE subject_id = $1", draft.agent_id
        )
        == 0
    )


async def publish_then_fail(db: asyncpg.Pool, agent_id: str) -> None:
    async with db.acquire() as connection, connection.transaction():
        await agents.set_status(connection, agent_id, "active")
        raise RuntimeError("the publication fails after the status change")


async def test_a_published_agent_is_minted_once_to_its_creator_and_written_back(
    chain_db: asyncpg.Pool, chain_client: ChainClient, chain_settings: ChainSettings
) -> None:
    wallet = new_wallet()
    agent_id = await published_agent(chain_db, wallet)
    outbox = ChainOutbox(chain_db, chain_client, chain_settings)
    nonce_before = await chain_client.confirmed_nonce()
    assert await outbox.run_once() == 1
    job = await job_of(chain_db, agent_id)
    assert job["status"] == "confirmed"
    token = await chain_client.token(token_id_of(agent_id))
    assert token is not None
    assert token.holder == wallet
    assert token.creator == wallet
    assert await chain_client.balance_of(wallet, token_id_of(agent_id)) == 1
    row = await chain_db.fetchrow(
        "SELECT token_id, token_tx_hash FROM agents WHERE id = $1", agent_id
    )
    assert row["token_id"] == Decimal(token_id_of(agent_id))
    assert row["token_tx_hash"] == job["tx_hash"]
    found = await chain_client.find_mint_tx(token_id_of(agent_id))
    assert found is not None
    assert found.tx_hash == job["tx_hash"]
    # Running again, and re-queueing the confirmed job by hand, sends nothing more.
    assert await outbox.run_once() == 0
    await requeue_jobs(chain_db)
    await outbox.run_once()
    assert await chain_client.confirmed_nonce() == nonce_before + 1
    assert (await job_of(chain_db, agent_id))["tx_hash"] == job["tx_hash"]


async def test_two_workers_at_once_send_one_transaction_per_job(
    chain_db: asyncpg.Pool, chain_settings: ChainSettings
) -> None:
    agent_ids = [await published_agent(chain_db, new_wallet()) for _ in range(6)]
    clients = [ChainClient(chain_settings) for _ in range(3)]
    try:
        nonce_before = await clients[0].confirmed_nonce()
        outboxes = [ChainOutbox(chain_db, client, chain_settings) for client in clients]
        for _ in range(3):
            await asyncio.gather(*(outbox.run_once() for outbox in outboxes))
        statuses = await chain_db.fetch("SELECT status, tx_hash FROM chain_jobs")
        assert {row["status"] for row in statuses} == {"confirmed"}
        assert len({row["tx_hash"] for row in statuses}) == len(agent_ids)
        assert await clients[0].confirmed_nonce() == nonce_before + len(agent_ids)
        for agent_id in agent_ids:
            assert await clients[0].token(token_id_of(agent_id)) is not None
    finally:
        for client in clients:
            await client.aclose()


async def test_a_worker_killed_after_sending_is_resolved_by_its_stored_hash(
    chain_db: asyncpg.Pool, chain_settings: ChainSettings, chain_client: ChainClient
) -> None:
    agent_id = await published_agent(chain_db, new_wallet())
    nonce_before = await chain_client.confirmed_nonce()
    await run_until_killed(chain_db, KilledAfterBroadcast(chain_settings), chain_settings)
    job = await job_of(chain_db, agent_id)
    assert job["status"] == "sent"
    assert job["tx_hash"] is not None
    await expire_lease(chain_db)
    await ChainOutbox(chain_db, chain_client, chain_settings).run_once()
    after = await job_of(chain_db, agent_id)
    assert (after["status"], after["tx_hash"]) == ("confirmed", job["tx_hash"])
    assert await chain_client.confirmed_nonce() == nonce_before + 1


async def signed_not_sent(db: asyncpg.Pool, settings: ChainSettings) -> tuple[str, asyncpg.Record]:
    """A new agent whose mint the worker signed and stored, then died before sending;
    returns (agent id, its job)."""
    agent_id = await published_agent(db, new_wallet())
    await run_until_killed(db, KilledBeforeBroadcast(settings), settings)
    stored = await job_of(db, agent_id)
    assert stored["status"] == "sent"
    return agent_id, stored


async def test_a_worker_killed_before_sending_sends_the_same_transaction_later(
    chain_db: asyncpg.Pool, chain_settings: ChainSettings, chain_client: ChainClient
) -> None:
    agent_id, stored = await signed_not_sent(chain_db, chain_settings)
    assert not await chain_client.is_known(stored["tx_hash"])
    await expire_lease(chain_db)
    await ChainOutbox(chain_db, chain_client, chain_settings).run_once()
    after = await job_of(chain_db, agent_id)
    assert (after["status"], after["tx_hash"]) == ("confirmed", stored["tx_hash"])


async def test_a_stored_transaction_whose_nonce_was_spent_is_replaced_not_doubled(
    chain_db: asyncpg.Pool, chain_settings: ChainSettings, chain_client: ChainClient
) -> None:
    first, stale = await signed_not_sent(chain_db, chain_settings)
    # Another job takes the nonce the stored transaction was signed with.
    second = await published_agent(chain_db, new_wallet())
    outbox = ChainOutbox(chain_db, chain_client, chain_settings)
    await outbox.run_once()  # the first's lease still holds: only the second goes out
    assert (await job_of(chain_db, second))["tx_nonce"] == stale["tx_nonce"]
    await expire_lease(chain_db)
    await outbox.run_once()
    replaced = await job_of(chain_db, first)
    assert replaced["status"] == "confirmed"
    assert replaced["tx_hash"] != stale["tx_hash"]
    assert not await chain_client.is_known(stale["tx_hash"])
    assert await chain_client.token(token_id_of(first)) is not None


async def test_work_the_chain_has_but_our_row_forgot_is_adopted_not_redone(
    chain_db: asyncpg.Pool, chain_settings: ChainSettings, chain_client: ChainClient
) -> None:
    agent_id = await published_agent(chain_db, new_wallet())
    outbox = ChainOutbox(chain_db, chain_client, chain_settings)
    await outbox.run_once()
    original = (await job_of(chain_db, agent_id))["tx_hash"]
    nonce = await chain_client.confirmed_nonce()
    # As if the worker died after the chain mined it but before any of it reached our row.
    await forget_broadcasts(chain_db)
    await chain_db.execute("UPDATE agents SET token_id = NULL, token_tx_hash = NULL")
    await outbox.run_once()
    job = await job_of(chain_db, agent_id)
    assert (job["status"], job["tx_hash"]) == ("confirmed", original)
    assert await chain_client.confirmed_nonce() == nonce
    assert (
        await chain_db.fetchval("SELECT token_tx_hash FROM agents WHERE id = $1", agent_id)
        == original
    )


async def test_the_chain_down_then_back(
    chain_db: asyncpg.Pool,
    chain_node: LocalChainNode,
    chain_settings: ChainSettings,
    chain_client: ChainClient,
) -> None:
    settings = dataclasses.replace(chain_settings, rpc_timeout_s=0.5)
    client = ChainClient(settings)
    agent_id = await published_agent(chain_db, new_wallet())
    outbox = ChainOutbox(chain_db, client, settings)
    try:
        chain_node.pause()
        try:
            for _ in range(2):
                await outbox.run_once()  # no exception escapes: the job waits
                await make_jobs_due(chain_db)
            job = await job_of(chain_db, agent_id)
            assert job["status"] in ("pending", "sent")
            assert job["last_error"].startswith("chain unavailable")
            assert job["attempts"] == 2
        finally:
            chain_node.resume()
        # Back: the same worker's next runs (a client whose timeout fits a loaded box).
        await drain(ChainOutbox(chain_db, chain_client, chain_settings), chain_db)
        job = await job_of(chain_db, agent_id)
        assert job["status"] == "confirmed"
        token = await chain_client.token(token_id_of(agent_id))
        assert token is not None
        found = await chain_client.find_mint_tx(token_id_of(agent_id))
        assert found is not None
        assert found.tx_hash == job["tx_hash"]
    finally:
        await client.aclose()


async def test_the_backoff_grows_while_the_chain_is_down(
    chain_db: asyncpg.Pool, signer_key: str, registry_address: str, tmp_path: Any
) -> None:
    from devstack.servers import free_port

    nowhere = LocalChainNode(free_port(), [], tmp_path / "unused.log")  # never started
    settings = chain_settings_for(nowhere, signer_key, registry_address, retry_max_s=60.0)
    client = ChainClient(settings)
    agent_id = await published_agent(chain_db, new_wallet())
    outbox = ChainOutbox(chain_db, client, settings)
    waits = []
    try:
        for _ in range(4):
            await outbox.run_once()
            job = await job_of(chain_db, agent_id)
            waits.append((job["next_attempt_at"] - job["updated_at"]).total_seconds())
            await make_jobs_due(chain_db)
    finally:
        await client.aclose()
    assert job["status"] == "pending"
    assert "unavailable" in job["last_error"]
    # Jittered into [ceiling / 2, ceiling], the ceiling doubling: each wait's range is above
    # the last one's lower bound, and the fourth is at least 4x the first's ceiling / 2.
    assert waits[3] >= 0.05 * 2**4 / 2 > waits[0]


async def test_no_wallet_waits_and_a_bad_checksum_is_never_minted_to(
    chain_db: asyncpg.Pool, chain_client: ChainClient, chain_settings: ChainSettings
) -> None:
    """Seed property 10: only a valid Ethereum address receives a token."""
    agent_id = await published_agent(chain_db, None)
    outbox = ChainOutbox(chain_db, chain_client, chain_settings)
    await outbox.run_once()
    job = await job_of(chain_db, agent_id)
    assert (job["status"], job["last_error"]) == (
        "pending",
        "waiting for the creator's wallet address",
    )
    wallet = new_wallet()
    # Mixed case with one letter's case flipped: the EIP-55 checksum no longer matches.
    index = next(i for i, char in enumerate(wallet) if i > 1 and char.isalpha())
    flipped = wallet[:index] + wallet[index].swapcase() + wallet[index + 1 :]
    creator = await chain_db.fetchval("SELECT creator_id FROM agents WHERE id = $1", agent_id)
    await set_wallet(chain_db, creator, flipped)
    await make_jobs_due(chain_db)
    await outbox.run_once()
    job = await job_of(chain_db, agent_id)
    assert job["status"] == "pending"
    assert "checksum" in job["last_error"]
    assert job["tx_hash"] is None
    assert await chain_client.token(token_id_of(agent_id)) is None
    await set_wallet(chain_db, creator, wallet)
    await make_jobs_due(chain_db)
    await outbox.run_once()
    token = await chain_client.token(token_id_of(agent_id))
    assert token is not None
    assert token.holder == wallet


async def test_a_job_is_confirmed_only_after_its_confirmations(
    chain_db: asyncpg.Pool, chain_node: LocalChainNode, signer_key: str, registry_address: str
) -> None:
    settings = chain_settings_for(chain_node, signer_key, registry_address, confirmations=3)
    client = ChainClient(settings)
    try:
        agent_id = await published_agent(chain_db, new_wallet())
        outbox = ChainOutbox(chain_db, client, settings)
        await outbox.run_once()
        job = await job_of(chain_db, agent_id)
        assert (job["status"], job["last_error"]) == ("sent", "1 of 3 confirmations")
        assert (
            await chain_db.fetchval("SELECT token_id FROM agents WHERE id = $1", agent_id) is None
        )
        mine(chain_node, 1)
        await make_jobs_due(chain_db)
        await drain(outbox, chain_db, rounds=1)
        assert (await job_of(chain_db, agent_id))["last_error"] == "2 of 3 confirmations"
        mine(chain_node, 1)
        await make_jobs_due(chain_db)
        await drain(outbox, chain_db, rounds=1)
        assert (await job_of(chain_db, agent_id))["status"] == "confirmed"
    finally:
        await client.aclose()


async def test_a_settlement_is_recorded_on_chain_once_with_its_amount_and_period(
    chain_db: asyncpg.Pool, chain_client: ChainClient, chain_settings: ChainSettings
) -> None:
    wallet = new_wallet()
    agent_id = await published_agent(chain_db, wallet)
    start = datetime(2026, 11, 30, tzinfo=UTC)
    settlement_id = await settled_day(
        chain_db, agent_id, start, ("12.34567891", "2.46913578", "9.87654313")
    )
    outbox = ChainOutbox(chain_db, chain_client, chain_settings)
    await drain(outbox, chain_db)
    record = await chain_client.settlement(settlement_key(settlement_id))
    assert record is not None
    assert record.creator == wallet
    assert record.amount == 987654313
    assert (record.period_start, record.period_end) == (
        int(start.timestamp()),
        int((start + timedelta(days=1)).timestamp()),
    )
    job = await job_of(chain_db, settlement_id)
    assert job["status"] == "confirmed"
    assert (
        await chain_db.fetchval("SELECT tx_hash FROM settlements WHERE id = $1", settlement_id)
        == job["tx_hash"]
    )
    nonce = await chain_client.confirmed_nonce()
    await requeue_jobs(chain_db)
    await drain(outbox, chain_db)
    assert await chain_client.confirmed_nonce() == nonce


async def test_a_new_chain_starts_every_job_over(
    chain_db: asyncpg.Pool,
    chain_client: ChainClient,
    chain_settings: ChainSettings,
    chain_node: LocalChainNode,
    signer_key: str,
) -> None:
    agent_id = await published_agent(chain_db, new_wallet())
    await ChainOutbox(chain_db, chain_client, chain_settings).run_once()
    assert await forget_chain(chain_db) == 1
    assert await chain_db.fetchval("SELECT token_id FROM agents WHERE id = $1", agent_id) is None
    fresh = ChainClient(chain_settings_for(chain_node, signer_key, chain_client.contract_address))
    try:
        new_address = await fresh.deploy("http://127.0.0.1/{id}")
    finally:
        await fresh.aclose()
    settings = chain_settings_for(chain_node, signer_key, new_address)
    client = ChainClient(settings)
    try:
        await ChainOutbox(chain_db, client, settings).run_once()
        job = await job_of(chain_db, agent_id)
        assert (job["status"], job["contract_address"]) == ("confirmed", new_address)
        assert await client.token(token_id_of(agent_id)) is not None
    finally:
        await client.aclose()


async def test_event_look_ups_start_at_chain_start_block(
    chain_db: asyncpg.Pool, chain_client: ChainClient, chain_settings: ChainSettings
) -> None:
    """CHAIN_START_BLOCK bounds the scan: a mint below it is not searched for, at it it is."""
    agent_id = await published_agent(chain_db, new_wallet())
    await ChainOutbox(chain_db, chain_client, chain_settings).run_once()
    block = (await job_of(chain_db, agent_id))["block_number"]
    token_id = token_id_of(agent_id)
    for start, found in ((block, True), (block + 1, False)):
        client = ChainClient(dataclasses.replace(chain_settings, start_block=start))
        try:
            receipt = await client.find_mint_tx(token_id)
        finally:
            await client.aclose()
        assert (receipt is not None) is found, start
