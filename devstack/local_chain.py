"""`./dev up`'s chain when no CHAIN_RPC_URL is set: the local node (devstack/chain_node.py),
the registry deployed on it, the payout vault deployed against a local stablecoin and funded
with LOCAL_VAULT_FUNDING_USD of it, every chain job started over (the node's chain is new each
start, so tokens and records minted on the last one are gone; payouts that ended stay ended),
and the demo creator given a wallet so the demo agent's token can be minted."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import asyncpg
from eth_account import Account

from control_plane.chain.artifact import payouts_artifact, stablecoin_artifact
from control_plane.chain.client import ZERO_ADDRESS, ChainClient, token_id_of
from control_plane.chain.job_store import forget_chain
from control_plane.chain.settings import ChainSettings
from devstack.chain_node import LocalChainNode
from devstack.envfile import read_env_file, write_env_file

# Stored in local-secrets.env under a name no process reads: it becomes CHAIN_SIGNER_KEY only
# for the local node, never over a real chain's key.
_SIGNER_VARIABLE = "LOCAL_CHAIN_SIGNER_KEY"
# What the local vault holds at start: a million of the local stablecoin.
LOCAL_VAULT_FUNDING_USD = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class LocalChain:
    node: LocalChainNode
    env: dict[str, str]  # CHAIN_* for the control plane and the worker
    stablecoin: str  # the local stablecoin the vault pays in


def local_signer_key(secrets_file: Path) -> str:
    stored = read_env_file(secrets_file)
    if _SIGNER_VARIABLE not in stored:
        stored[_SIGNER_VARIABLE] = "0x" + bytes(Account.create().key).hex()
        write_env_file(secrets_file, stored)
    return stored[_SIGNER_VARIABLE]


def start_local_chain(
    *,
    port: int,
    log: Path,
    secrets_file: Path,
    database_url: str,
    control_url: str,
    demo_agent: str,
) -> LocalChain:
    """Start the node, deploy and fund, reset the jobs, give the demo creator a wallet."""
    key = local_signer_key(secrets_file)
    node = LocalChainNode(port, [Account.from_key(key).address], log)
    node.start()
    try:
        registry, vault, coin = asyncio.run(
            _prepare(node.url, key, f"{control_url}/api/v1/tokens/{{id}}", database_url, demo_agent)
        )
    except BaseException:
        node.stop()
        raise
    env = {"CHAIN_RPC_URL": node.url, "CHAIN_SIGNER_KEY": key, "CHAIN_CONTRACT_ADDRESS": registry,
           "CHAIN_PAYOUTS_ADDRESS": vault, "CHAIN_INTERVAL_S": "1"}  # fmt: skip
    return LocalChain(node, env, coin)


async def deploy_payouts(client: ChainClient, funding_usd: Decimal) -> tuple[str, str]:
    """A local stablecoin and a payout vault paying in it, funded: (vault, stablecoin)."""
    coin = await client.deploy_contract(stablecoin_artifact(), "AgentLink Local USD", "lUSD")
    vault = await client.deploy_contract(payouts_artifact(), coin)
    decimals = 6  # LocalStablecoin's
    units = int(funding_usd.scaleb(decimals))
    await client.transact(coin, stablecoin_artifact(), "mint", vault, units)
    return vault, coin


async def _prepare(
    rpc_url: str, key: str, uri_template: str, database_url: str, demo_agent: str
) -> tuple[str, str, str]:
    settings = ChainSettings.from_env(
        {"CHAIN_RPC_URL": rpc_url, "CHAIN_SIGNER_KEY": key, "CHAIN_CONTRACT_ADDRESS": ZERO_ADDRESS}
    )
    client = ChainClient(settings)
    try:
        address = await client.deploy(uri_template)
        vault, coin = await deploy_payouts(client, LOCAL_VAULT_FUNDING_USD)
    finally:
        await client.aclose()
    db = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        await forget_chain(db)
        await db.execute(
            """UPDATE users SET wallet_address = $2
               WHERE id = (SELECT creator_id FROM agents WHERE id = $1)
                 AND wallet_address IS NULL""",
            demo_agent,
            Account.create().address,
        )
    finally:
        await db.close()
    return address, vault, coin


def demo_token_line(database_url: str, agent_id: str, timeout_s: float = 30.0) -> str:
    """The banner's line about the demo agent's token, once the worker has minted it."""
    token_id = token_id_of(agent_id)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        row = asyncio.run(_job(database_url, agent_id))
        if row is not None and row["status"] == "confirmed":
            return f"Demo agent token id: {token_id} (minted, tx {row['tx_hash']})"
        if row is not None and row["status"] == "failed":
            return f"Demo agent token id: {token_id} (mint failed: {row['last_error']})"
        time.sleep(0.5)
    return f"Demo agent token id: {token_id} (not minted yet; see the worker log)"


async def _job(database_url: str, agent_id: str) -> asyncpg.Record | None:
    connection = await asyncpg.connect(database_url)
    try:
        row: asyncpg.Record | None = await connection.fetchrow(
            """SELECT status, tx_hash, last_error FROM chain_jobs
               WHERE kind = 'mint_agent' AND subject_id = $1""",
            agent_id,
        )
        return row
    finally:
        await connection.close()
