"""The chain tests' bootstrap: a local EVM node (devstack/chain_node.py) for the session, a
freshly deployed registry per test, and a database of the test's own (the outbox works on every
due job, so other tests' publications must not be in its way).

Only tests that ask for these fixtures start the node: the rest of the suite never needs it.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio
from eth_account import Account

from common.db import create_pool
from common.migrations import migrate_url
from control_plane.chain.client import ZERO_ADDRESS, ChainClient
from control_plane.chain.settings import ChainSettings
from devstack.chain_node import LocalChainNode
from devstack.servers import free_port
from tests.processes import Servers, api_env, serve_api

URI_TEMPLATE = "http://127.0.0.1/api/v1/tokens/{id}"


@pytest.fixture(scope="session")
def signer_key() -> str:
    return "0x" + bytes(Account.create().key).hex()


@pytest.fixture(scope="session")
def treasury_key() -> str:
    """The stablecoin's issuer in the payout tests: a key other than the signer, so it can
    mint and block accounts without spending a nonce the outbox's stored transactions use."""
    return "0x" + bytes(Account.create().key).hex()


@pytest.fixture(scope="session")
def chain_node(signer_key: str, treasury_key: str) -> Iterator[LocalChainNode]:
    """The session's node; it mines only when a transaction comes (or `mine` is called), so
    the tests count confirmations exactly."""
    log = Path(tempfile.mkdtemp(prefix="agentlink-chain-")) / "chain-node.log"
    funded = [Account.from_key(key).address for key in (signer_key, treasury_key)]
    node = LocalChainNode(free_port(), funded, log, block_time_s=0)
    node.start()
    yield node
    node.stop()


def chain_settings_for(
    node: LocalChainNode,
    signer_key: str,
    contract: str,
    payouts_address: str = "",
    **overrides: float,
) -> ChainSettings:
    # A loaded box answers slowly: the timeout is for a node that does not answer at all.
    values: dict[str, float] = {
        "confirmations": 1, "interval_s": 0.05, "retry_max_s": 1.0, "lease_s": 30.0,
        "rpc_timeout_s": 15.0,
    }  # fmt: skip
    values.update(overrides)
    return ChainSettings(
        rpc_url=node.url,
        signer_key=signer_key,
        contract_address=contract,
        confirmations=int(values["confirmations"]),
        interval_s=values["interval_s"],
        retry_max_s=values["retry_max_s"],
        lease_s=values["lease_s"],
        rpc_timeout_s=values["rpc_timeout_s"],
        payouts_address=payouts_address,
        start_block=int(values.get("start_block", 0)),
    )


@pytest_asyncio.fixture
async def registry_address(chain_node: LocalChainNode, signer_key: str) -> str:
    """A registry deployed for this test alone."""
    deployer = ChainClient(chain_settings_for(chain_node, signer_key, ZERO_ADDRESS))
    try:
        return await deployer.deploy(URI_TEMPLATE)
    finally:
        await deployer.aclose()


@pytest.fixture
def chain_settings(
    chain_node: LocalChainNode, signer_key: str, registry_address: str
) -> ChainSettings:
    return chain_settings_for(chain_node, signer_key, registry_address)


@pytest_asyncio.fixture
async def chain_client(chain_settings: ChainSettings) -> AsyncIterator[ChainClient]:
    client = ChainClient(chain_settings)
    yield client
    await client.aclose()


@pytest_asyncio.fixture
async def chain_database_url(scratch_database_url: str) -> str:
    await migrate_url(scratch_database_url)
    return scratch_database_url


@pytest_asyncio.fixture
async def chain_db(chain_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(chain_database_url, min_size=1, max_size=6)
    yield pool
    await pool.close()


def mine(node: LocalChainNode, blocks: int = 1) -> None:
    """Mine empty blocks on the node (eth-tester's evm_mine)."""
    reply = httpx.post(
        node.url, json={"jsonrpc": "2.0", "id": 1, "method": "evm_mine", "params": [blocks]}
    ).json()
    assert "error" not in reply, reply


async def make_jobs_due(db: asyncpg.Pool) -> None:
    """Every chain job's back-off is over: the next run takes them."""
    await db.execute("UPDATE chain_jobs SET next_attempt_at = now()")


async def requeue_jobs(db: asyncpg.Pool) -> None:
    """Every chain job pending and due again, whatever it reached (a re-queue by hand)."""
    await db.execute("UPDATE chain_jobs SET status = 'pending', next_attempt_at = now()")


async def forget_broadcasts(db: asyncpg.Pool) -> None:
    """As if the worker died after the chain mined its transactions but before any of it
    reached our rows: every job pending again, with no transaction of its own."""
    await db.execute(
        """UPDATE chain_jobs SET status = 'pending', tx_hash = NULL, tx_nonce = NULL,
                                 signed_tx = NULL, block_number = NULL, confirmed_at = NULL"""
    )


@contextlib.contextmanager
def serve_chain_api(
    database_url: str, redis_url: str, chain: ChainSettings, **overrides: str
) -> Iterator[str]:
    """A control plane API on this database and `chain`'s node, contract and vault."""
    vault = {"CHAIN_PAYOUTS_ADDRESS": chain.payouts_address} if chain.payouts_address else {}
    env = api_env(
        database_url, redis_url, CHAIN_RPC_URL=chain.rpc_url, CHAIN_SIGNER_KEY=chain.signer_key,
        CHAIN_CONTRACT_ADDRESS=chain.contract_address, **(vault | overrides),
    )  # fmt: skip
    with serve_api(env) as url:
        yield url


@pytest.fixture
def chain_api(
    chain_database_url: str, servers: Servers, chain_settings: ChainSettings
) -> Iterator[str]:
    """A control plane API on the chain's database and node (proofs, tokens, job gauges)."""
    with serve_chain_api(
        chain_database_url, servers.redis_url, chain_settings, CHAIN_RPC_TIMEOUT_S="5"
    ) as url:
        yield url
