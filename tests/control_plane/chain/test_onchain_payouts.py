"""On-chain payouts against a real JSON-RPC node (devstack/chain_node.py) and real Postgres: a
withdrawal requested over HTTP paid from the vault in the stablecoin end to end; a worker
killed at any point of the payout resumed without paying twice; a payout the vault refuses
(when estimated, or mined and reverted) surfaced as a failed withdrawal with its amount back
on the balance (issue 11's rule, property 32)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio

from common.domain import UserType
from control_plane.auth.principal import Principal
from control_plane.auth.tokens import issue_access_token
from control_plane.chain.artifact import payouts_artifact, stablecoin_artifact
from control_plane.chain.client import ZERO_ADDRESS, ChainClient, withdrawal_key
from control_plane.chain.job_store import forget_chain
from control_plane.chain.outbox import ChainOutbox
from control_plane.chain.settings import ChainSettings
from control_plane.earnings.payouts import build_providers
from control_plane.earnings.payouts.base import InFlight, Payout, PayoutOutcome
from control_plane.earnings.payouts.onchain import OnchainPayouts
from control_plane.earnings.settings import EarningsSettings
from control_plane.earnings.withdrawals import (
    WithdrawalRefused,
    WithdrawalRequest,
    process_payouts,
    request_withdrawal,
)
from control_plane.payments.settings import PaymentSettings
from devstack.chain_node import LocalChainNode
from tests.control_plane.chain.conftest import (
    chain_settings_for,
    forget_broadcasts,
    make_jobs_due,
    mine,
    requeue_jobs,
    serve_chain_api,
)
from tests.control_plane.chain.test_outbox import (
    KilledAfterBroadcast,
    KilledBeforeBroadcast,
    WorkerKilled,
    expire_lease,
    new_wallet,
    run_until_killed,
)
from tests.control_plane.earnings.helpers import balances, earnings_settings, fund
from tests.factories import make_user, set_wallet, shard_of
from tests.processes import TEST_JWT_SECRET

VAULT_FUNDS = 1_000 * 10**6  # a thousand of the 6-decimal local stablecoin


@dataclass(frozen=True)
class PayoutChain:
    vault: str
    coin: str
    treasury: ChainSettings  # the stablecoin's issuer (mints, blocks accounts)


@pytest_asyncio.fixture
async def payout_chain(
    chain_node: LocalChainNode, signer_key: str, treasury_key: str
) -> PayoutChain:
    """A stablecoin issued by the treasury and a vault owned by the signer, funded."""
    treasury = chain_settings_for(chain_node, treasury_key, ZERO_ADDRESS)
    issuer = ChainClient(treasury)
    owner = ChainClient(chain_settings_for(chain_node, signer_key, ZERO_ADDRESS))
    try:
        coin = await issuer.deploy_contract(stablecoin_artifact(), "AgentLink Local USD", "lUSD")
        vault = await owner.deploy_contract(payouts_artifact(), coin)
        await issuer.transact(coin, stablecoin_artifact(), "mint", vault, VAULT_FUNDS)
    finally:
        await issuer.aclose()
        await owner.aclose()
    return PayoutChain(vault, coin, treasury)


@pytest.fixture
def payout_settings(
    chain_node: LocalChainNode, signer_key: str, registry_address: str, payout_chain: PayoutChain
) -> ChainSettings:
    return chain_settings_for(chain_node, signer_key, registry_address, payout_chain.vault)


@pytest_asyncio.fixture
async def payout_client(payout_settings: ChainSettings) -> Any:
    client = ChainClient(payout_settings)
    yield client
    await client.aclose()


async def block(chain: PayoutChain, wallet: str, blocked: bool = True) -> None:
    """The stablecoin's issuer blocks (or frees) a wallet, as USDC's blacklist does."""
    issuer = ChainClient(chain.treasury)
    try:
        await issuer.transact(chain.coin, stablecoin_artifact(), "setBlocked", wallet, blocked)
    finally:
        await issuer.aclose()


async def creator_with(db: asyncpg.Pool, balance: Decimal, wallet: str | None) -> str:
    creator = await make_user(db, "creator")
    await fund(db, creator, balance)
    await set_wallet(db, creator, wallet)
    return creator


def config() -> EarningsSettings:
    # Every payout due at once in these tests: no lease or backoff to wait out.
    return dataclasses.replace(
        earnings_settings(PAYOUT_PROVIDERS="ledger"),
        payout_interval_s=0.0,
        payout_lease_s=60.0,
    )


async def withdraw(db: asyncpg.Pool, creator: str, amount: str) -> str:
    row, _ = await request_withdrawal(
        db, config(), WithdrawalRequest(creator, Decimal(amount), "onchain")
    )
    return str(row["id"])


async def withdrawal(db: asyncpg.Pool, withdrawal_id: str) -> asyncpg.Record:
    row = await db.fetchrow("SELECT * FROM withdrawals WHERE id = $1", withdrawal_id)
    assert row is not None
    return row


async def pay_job(db: asyncpg.Pool, withdrawal_id: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await db.fetchrow(
        "SELECT * FROM chain_jobs WHERE kind = 'pay_withdrawal' AND subject_id = $1",
        withdrawal_id,
    )
    return row


async def payouts_due(db: asyncpg.Pool) -> None:
    await db.execute(
        "UPDATE withdrawals SET next_attempt_at = now() WHERE status IN ('pending', 'processing')"
    )


async def run_payouts(db: asyncpg.Pool) -> None:
    await payouts_due(db)
    await process_payouts(db, {"onchain": OnchainPayouts(db)}, config())


# ---------------------------------------------------------------------------- end to end


@pytest.fixture
def payout_api(
    chain_database_url: str, servers: Any, payout_settings: ChainSettings
) -> Iterator[str]:
    with serve_chain_api(
        chain_database_url, servers.redis_url, payout_settings, PAYOUT_PROVIDERS="ledger,onchain"
    ) as url:
        yield url


async def bearer_for(db: asyncpg.Pool, user_id: str) -> dict[str, str]:
    shard = await shard_of(db, user_id)
    principal = Principal(user_id, UserType.CREATOR, None, shard)
    return {"Authorization": f"Bearer {issue_access_token(TEST_JWT_SECRET, principal, ttl_s=900)}"}


async def test_a_withdrawal_requested_over_http_is_paid_on_chain_to_the_cent(
    payout_api: str,
    chain_db: asyncpg.Pool,
    payout_client: ChainClient,
    payout_settings: ChainSettings,
) -> None:
    wallet = new_wallet()
    creator = await creator_with(chain_db, Decimal("60.00"), wallet)
    headers = await bearer_for(chain_db, creator)
    async with httpx.AsyncClient(base_url=payout_api, timeout=60, headers=headers) as client:
        response = await client.post(
            "/api/v1/creators/me/withdrawals", json={"amount": "25.00", "method": "onchain"}
        )
        assert response.status_code == 201, response.text
        created = response.json()
        assert (created["method"], created["destination"], created["net_amount"]) == (
            "onchain",
            wallet,
            "20",
        )
        withdrawal_id = created["id"]
        assert (await balances(chain_db, creator))["available_balance"] == Decimal("35.00")

        await run_payouts(chain_db)  # the payout worker hands it to the chain outbox
        in_flight = await withdrawal(chain_db, withdrawal_id)
        assert in_flight["status"] == "processing"
        assert in_flight["last_error"].startswith("on chain: pending")
        outbox = ChainOutbox(chain_db, payout_client, payout_settings)
        assert await outbox.run_once() == 1  # signed, stored, sent, mined, confirmed

        listed = (await client.get("/api/v1/creators/me/withdrawals")).json()["withdrawals"]
    [done] = listed
    job = await pay_job(chain_db, withdrawal_id)
    assert job is not None
    assert job["status"] == "confirmed"
    assert (done["status"], done["tx_hash"], done["reference"]) == (
        "completed",
        job["tx_hash"],
        job["tx_hash"],
    )
    assert job["contract_address"] == payout_client.payouts_address
    # The chain says so: 20.00 USD is 20,000,000 units of the 6-decimal stablecoin.
    assert await payout_client.token_balance(wallet) == 20_000_000
    assert await payout_client.vault_funds() == VAULT_FUNDS - 20_000_000
    record = await payout_client.payment(withdrawal_key(withdrawal_id))
    assert record is not None
    assert (record.recipient, record.units) == (wallet, 20_000_000)
    found = await payout_client.find_payment_tx(withdrawal_key(withdrawal_id))
    assert found is not None
    assert found.tx_hash == job["tx_hash"]
    assert (await balances(chain_db, creator))["available_balance"] == Decimal("35.00")
    # Looking again, and re-queueing the job by hand, pays nothing more.
    nonce = await payout_client.confirmed_nonce()
    await run_payouts(chain_db)
    await requeue_jobs(chain_db)
    await outbox.run_once()
    assert await payout_client.confirmed_nonce() == nonce
    assert await payout_client.token_balance(wallet) == 20_000_000


async def test_the_wallet_is_checked_and_copied_when_the_withdrawal_is_requested(
    chain_db: asyncpg.Pool, payout_client: ChainClient, payout_settings: ChainSettings
) -> None:
    """Seed property 10 before any money moves, and a later wallet change never redirects a
    withdrawal already on its way."""
    nobody = await creator_with(chain_db, Decimal(50), None)
    with pytest.raises(WithdrawalRefused) as refused:
        await withdraw(chain_db, nobody, "20")
    assert refused.value.reason == "no_destination"
    wallet = new_wallet()
    index = next(i for i, char in enumerate(wallet) if i > 1 and char.isalpha())
    mistyped = wallet[:index] + wallet[index].swapcase() + wallet[index + 1 :]
    creator = await creator_with(chain_db, Decimal(50), mistyped)
    with pytest.raises(WithdrawalRefused, match="invalid"):
        await withdraw(chain_db, creator, "20")
    assert (await balances(chain_db, creator))["available_balance"] == Decimal(50)

    await set_wallet(chain_db, creator, wallet.lower())
    withdrawal_id = await withdraw(chain_db, creator, "20")
    assert (await withdrawal(chain_db, withdrawal_id))["destination"] == wallet  # checksummed
    elsewhere = new_wallet()
    await set_wallet(chain_db, creator, elsewhere)
    await run_payouts(chain_db)
    await ChainOutbox(chain_db, payout_client, payout_settings).run_once()
    assert (await withdrawal(chain_db, withdrawal_id))["status"] == "completed"
    assert await payout_client.token_balance(wallet) == 16_000_000
    assert await payout_client.token_balance(elsewhere) == 0


# ---------------------------------------------------------------------- killed mid-payout


@pytest.mark.parametrize("dying", [KilledAfterBroadcast, KilledBeforeBroadcast])
async def test_a_worker_killed_mid_payout_resumes_and_pays_once(
    chain_db: asyncpg.Pool,
    payout_client: ChainClient,
    payout_settings: ChainSettings,
    dying: type[ChainClient],
) -> None:
    wallet = new_wallet()
    creator = await creator_with(chain_db, Decimal(100), wallet)
    withdrawal_id = await withdraw(chain_db, creator, "50")
    await run_payouts(chain_db)
    nonce_before = await payout_client.confirmed_nonce()
    await run_until_killed(chain_db, dying(payout_settings), payout_settings)
    stored = await pay_job(chain_db, withdrawal_id)
    assert stored is not None
    assert (stored["status"], stored["signed_tx"] is not None) == ("sent", True)
    # The payout worker looks meanwhile: still in flight, still one job, nothing refunded.
    await run_payouts(chain_db)
    assert (await withdrawal(chain_db, withdrawal_id))["status"] == "processing"
    assert await chain_db.fetchval("SELECT count(*) FROM chain_jobs") == 1
    assert (await balances(chain_db, creator))["available_balance"] == Decimal(50)

    await expire_lease(chain_db)  # another worker takes over
    await ChainOutbox(chain_db, payout_client, payout_settings).run_once()
    done = await withdrawal(chain_db, withdrawal_id)
    job = await pay_job(chain_db, withdrawal_id)
    assert job is not None
    assert (done["status"], done["tx_hash"], job["tx_hash"]) == (
        "completed",
        stored["tx_hash"],
        stored["tx_hash"],
    )
    assert await payout_client.token_balance(wallet) == 40_000_000  # 50 - 20% fee, once
    assert await payout_client.vault_funds() == VAULT_FUNDS - 40_000_000
    assert await payout_client.confirmed_nonce() == nonce_before + 1


async def test_a_payment_our_rows_forgot_is_adopted_from_the_vault_not_paid_again(
    chain_db: asyncpg.Pool, payout_client: ChainClient, payout_settings: ChainSettings
) -> None:
    """The worker died after the chain mined the payment but before any of it reached our
    job (as if the row were restored from a backup): the vault's record is found first."""
    wallet = new_wallet()
    creator = await creator_with(chain_db, Decimal(30), wallet)
    withdrawal_id = await withdraw(chain_db, creator, "30")
    await run_payouts(chain_db)
    outbox = ChainOutbox(chain_db, payout_client, payout_settings)
    await outbox.run_once()
    paid = (await pay_job(chain_db, withdrawal_id) or {})["tx_hash"]
    await forget_broadcasts(chain_db)
    await chain_db.execute(
        """UPDATE withdrawals SET status = 'processing', tx_hash = NULL, completed_at = NULL,
                                  provider_reference = NULL WHERE id = $1""",
        withdrawal_id,
    )
    nonce = await payout_client.confirmed_nonce()
    await outbox.run_once()
    done = await withdrawal(chain_db, withdrawal_id)
    assert (done["status"], done["tx_hash"]) == ("completed", paid)
    assert await payout_client.confirmed_nonce() == nonce
    assert await payout_client.token_balance(wallet) == 24_000_000


async def test_the_payout_worker_killed_after_handing_over_writes_one_job(
    chain_db: asyncpg.Pool, payout_client: ChainClient, payout_settings: ChainSettings
) -> None:
    wallet = new_wallet()
    creator = await creator_with(chain_db, Decimal(20), wallet)
    withdrawal_id = await withdraw(chain_db, creator, "20")

    class DiesAfterHandingOver(OnchainPayouts):
        async def pay(self, payout: Payout) -> PayoutOutcome:
            await super().pay(payout)
            raise WorkerKilled

    with pytest.raises(WorkerKilled):
        await process_payouts(chain_db, {"onchain": DiesAfterHandingOver(chain_db)}, config())
    await run_payouts(chain_db)  # after the lease: asked again (`find`), nothing new written
    await run_payouts(chain_db)
    assert await chain_db.fetchval("SELECT count(*) FROM chain_jobs") == 1
    await ChainOutbox(chain_db, payout_client, payout_settings).run_once()
    assert (await withdrawal(chain_db, withdrawal_id))["status"] == "completed"
    assert await payout_client.token_balance(wallet) == 16_000_000


# ------------------------------------------------------------------------------- reverts


async def test_a_payout_the_vault_refuses_fails_the_withdrawal_and_refunds_it(
    chain_db: asyncpg.Pool,
    payout_client: ChainClient,
    payout_settings: ChainSettings,
    payout_chain: PayoutChain,
) -> None:
    """Refused when estimated (a wallet the stablecoin blocks, a vault too short): nothing is
    sent, the withdrawal fails with the vault's reason and its amount is available again."""
    blocked, rich = new_wallet(), new_wallet()
    await block(payout_chain, blocked)
    first = await creator_with(chain_db, Decimal(40), blocked)
    second = await creator_with(chain_db, Decimal(2000), rich)
    refused_wallet = await withdraw(chain_db, first, "40")
    too_much = await withdraw(chain_db, second, "1500")  # net 1200 > the vault's 1000
    await run_payouts(chain_db)
    nonce = await payout_client.confirmed_nonce()
    await ChainOutbox(chain_db, payout_client, payout_settings).run_once()
    for withdrawal_id, creator, balance, reason in (
        (refused_wallet, first, Decimal(40), "blocked account"),
        (too_much, second, Decimal(2000), "vault balance too low"),
    ):
        failed = await withdrawal(chain_db, withdrawal_id)
        assert failed["status"] == "failed"
        assert reason in failed["failure_reason"]
        job = await pay_job(chain_db, withdrawal_id)
        assert job is not None
        assert (job["status"], job["tx_hash"]) == ("failed", None)
        assert (await balances(chain_db, creator))["available_balance"] == balance
    assert await payout_client.confirmed_nonce() == nonce
    assert await payout_client.vault_funds() == VAULT_FUNDS
    await run_payouts(chain_db)  # a failed withdrawal is never picked up again
    assert (await balances(chain_db, first))["available_balance"] == Decimal(40)


async def test_a_payout_reverted_on_chain_fails_the_withdrawal_and_refunds_it_once_deep(
    chain_db: asyncpg.Pool,
    chain_node: LocalChainNode,
    signer_key: str,
    registry_address: str,
    payout_chain: PayoutChain,
) -> None:
    """Signed while the vault would pay, mined after the stablecoin blocked the wallet: the
    transaction reverts on chain. The withdrawal fails (and is refunded) only once the revert
    is CHAIN_CONFIRMATIONS deep."""
    settings = chain_settings_for(
        chain_node, signer_key, registry_address, payout_chain.vault, confirmations=2
    )
    client = ChainClient(settings)
    wallet = new_wallet()
    creator = await creator_with(chain_db, Decimal(25), wallet)
    withdrawal_id = await withdraw(chain_db, creator, "25")
    await run_payouts(chain_db)
    await run_until_killed(chain_db, KilledBeforeBroadcast(settings), settings)
    try:
        await block(payout_chain, wallet)
        await expire_lease(chain_db)
        outbox = ChainOutbox(chain_db, client, settings)
        await outbox.run_once()  # the stored bytes go out and revert in their block
        job = await pay_job(chain_db, withdrawal_id)
        assert job is not None
        receipt = await client.receipt(job["tx_hash"])
        assert receipt is not None
        assert not receipt.succeeded
        assert (await withdrawal(chain_db, withdrawal_id))["status"] == "processing"
        assert (await balances(chain_db, creator))["available_balance"] == Decimal(0)
        mine(chain_node, 1)
        await make_jobs_due(chain_db)
        await outbox.run_once()
    finally:
        await client.aclose()
    failed = await withdrawal(chain_db, withdrawal_id)
    assert failed["status"] == "failed"
    assert "reverted" in failed["failure_reason"]
    assert (await balances(chain_db, creator))["available_balance"] == Decimal(25)
    assert await client_token_balance(settings, wallet) == 0


async def client_token_balance(settings: ChainSettings, wallet: str) -> int:
    client = ChainClient(settings)
    try:
        return await client.token_balance(wallet)
    finally:
        await client.aclose()


# --------------------------------------------------------------------------- wiring


async def test_onchain_is_offered_only_with_a_vault_and_ended_payouts_survive_a_new_chain(
    chain_db: asyncpg.Pool, payout_client: ChainClient, payout_settings: ChainSettings
) -> None:
    payments = PaymentSettings.from_env({})
    assert "onchain" in build_providers(payments, payout_settings, chain_db)
    without_vault = dataclasses.replace(payout_settings, payouts_address="")
    assert "onchain" not in build_providers(payments, without_vault, chain_db)

    wallet = new_wallet()
    creator = await creator_with(chain_db, Decimal(20), wallet)
    paid = await withdraw(chain_db, creator, "10")
    await run_payouts(chain_db)
    await ChainOutbox(chain_db, payout_client, payout_settings).run_once()
    waiting = await withdraw(chain_db, creator, "10")
    await run_payouts(chain_db)
    outcome = await OnchainPayouts(chain_db).find(
        Payout(waiting, creator, Decimal(8), "usd", wallet)
    )
    assert isinstance(outcome, InFlight)
    before = await pay_job(chain_db, paid)
    # A new (local) chain: open jobs start over there, a paid withdrawal is never paid again.
    await forget_chain(chain_db)
    after = await pay_job(chain_db, paid)
    assert after is not None
    assert before is not None
    assert (after["status"], after["tx_hash"]) == ("confirmed", before["tx_hash"])
    assert (await pay_job(chain_db, waiting) or {})["status"] == "pending"


async def test_a_payout_signed_for_another_vault_is_never_paid_from_the_new_one(
    chain_db: asyncpg.Pool, payout_chain: PayoutChain, payout_settings: ChainSettings
) -> None:
    """CHAIN_PAYOUTS_ADDRESS changed while a payout was in flight: the old vault may still
    pay it (its stored transaction), so the new vault never does; it waits, saying why."""
    wallet = new_wallet()
    creator = await creator_with(chain_db, Decimal(10), wallet)
    withdrawal_id = await withdraw(chain_db, creator, "10")
    await run_payouts(chain_db)
    await run_until_killed(chain_db, KilledBeforeBroadcast(payout_settings), payout_settings)
    owner = ChainClient(payout_settings)
    issuer = ChainClient(payout_chain.treasury)
    try:
        new_vault = await owner.deploy_contract(payouts_artifact(), payout_chain.coin)
        await issuer.transact(payout_chain.coin, stablecoin_artifact(), "mint", new_vault, 10**9)
    finally:
        await owner.aclose()
        await issuer.aclose()
    moved = dataclasses.replace(payout_settings, payouts_address=new_vault)
    client = ChainClient(moved)
    try:
        await expire_lease(chain_db)
        await ChainOutbox(chain_db, client, moved).run_once()
        job = await pay_job(chain_db, withdrawal_id)
        assert job is not None
        assert (job["status"], job["contract_address"]) == ("sent", payout_chain.vault)
        assert job["last_error"] == f"signed for the vault {payout_chain.vault}, not {new_vault}"
        assert await client.vault_funds() == 10**9
        assert await client.payment(withdrawal_key(withdrawal_id)) is None
        assert (await withdrawal(chain_db, withdrawal_id))["status"] == "processing"
    finally:
        await client.aclose()
    # Back on the vault it was signed for, the stored transaction pays it, once.
    await expire_lease(chain_db)
    old = ChainClient(payout_settings)
    try:
        await ChainOutbox(chain_db, old, payout_settings).run_once()
        assert (await withdrawal(chain_db, withdrawal_id))["status"] == "completed"
        assert await old.token_balance(wallet) == 8_000_000
    finally:
        await old.aclose()
