"""The proof routes over real HTTP against a control plane on a real chain node: ownership and
token metadata read from the chain (a transfer shows, our table does not matter), settlements
listed with their records, 404 with the chain off, 503 while the node does not answer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
from eth_account import Account
from web3 import Web3

from common.domain import UserType
from control_plane.auth.principal import Principal
from control_plane.auth.tokens import issue_access_token
from control_plane.chain.client import ChainClient, token_id_of
from control_plane.chain.outbox import ChainOutbox
from control_plane.chain.settings import ChainSettings
from devstack.chain_node import LocalChainNode
from tests.control_plane.api_client import assert_error, bearer
from tests.control_plane.chain.conftest import make_jobs_due
from tests.control_plane.chain.test_outbox import job_of, published_agent, settled_day
from tests.factories import make_agent
from tests.processes import TEST_JWT_SECRET


async def creator_token(db: asyncpg.Pool, agent_id: str) -> str:
    row = await db.fetchrow(
        """SELECT u.id, u.redis_shard FROM agents a JOIN users u ON u.id = a.creator_id
           WHERE a.id = $1""",
        agent_id,
    )
    principal = Principal(str(row["id"]), UserType.CREATOR, None, row["redis_shard"])
    return issue_access_token(TEST_JWT_SECRET, principal, ttl_s=900)


def send_as(w3: Web3, key: str, transaction: dict[str, Any]) -> None:
    account = Account.from_key(key)
    base = w3.eth.get_block("latest")["baseFeePerGas"]
    nonce = w3.eth.get_transaction_count(account.address, "pending")
    signed = account.sign_transaction(
        {"nonce": nonce, "chainId": w3.eth.chain_id, "maxFeePerGas": 2 * base + 10**9,
         "maxPriorityFeePerGas": 10**9, "type": 2, "gas": 200_000, "value": 0, **transaction}
    )  # fmt: skip
    receipt = w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(signed.raw_transaction)
    )
    assert receipt["status"] == 1


async def test_ownership_and_metadata_are_read_from_the_chain_and_follow_a_transfer(
    chain_api: str,
    chain_db: asyncpg.Pool,
    chain_client: ChainClient,
    chain_settings: ChainSettings,
    chain_node: LocalChainNode,
) -> None:
    creator = Account.create()
    agent_id = await published_agent(chain_db, creator.address)
    async with httpx.AsyncClient(base_url=chain_api, timeout=60) as client:
        before = (await client.get(f"/api/v1/agents/{agent_id}/ownership")).json()
        assert (before["status"], before["verified"], before["owner"]) == ("pending", False, None)
        await ChainOutbox(chain_db, chain_client, chain_settings).run_once()
        response = await client.get(f"/api/v1/agents/{agent_id}/ownership")
        assert response.status_code == 200
        proof = response.json()
        job = await job_of(chain_db, agent_id)
        assert proof["verified"] is True
        assert proof["status"] == "confirmed"
        assert (proof["owner"], proof["creator"]) == (creator.address, creator.address)
        assert proof["token_id"] == str(token_id_of(agent_id))
        assert proof["tx_hash"] == job["tx_hash"]
        assert proof["block_number"] == job["block_number"]
        assert proof["contract"] == chain_settings.contract_address
        assert proof["chain_id"] == await chain_client.chain_id()
        assert proof["metadata_uri"].endswith(f"/api/v1/tokens/{proof['token_id_hex']}")

        # Seed property 30: the token's metadata names the agent, its creator and its creation.
        metadata = (await client.get(f"/api/v1/tokens/{proof['token_id_hex']}")).json()
        assert metadata == {
            "name": "test agent", "description": "for tests", "agent_id": agent_id,
            "creator": creator.address, "created_at": int(
                datetime.fromisoformat(proof["minted_at"]).timestamp()
            ), "platform": "AgentLink",
        }  # fmt: skip

        # The holder transfers the token on chain: the proof follows the chain, not our table.
        w3 = Web3(Web3.HTTPProvider(chain_node.url))
        send_as(
            w3, chain_settings.signer_key, {"to": creator.address, "value": 10**18, "gas": 21000}
        )
        buyer = Account.create().address
        registry = w3.eth.contract(
            address=chain_settings.contract_address, abi=chain_client._contract.abi
        )
        data = registry.encode_abi(
            "safeTransferFrom", args=[creator.address, buyer, token_id_of(agent_id), 1, b""]
        )
        send_as(
            w3,
            "0x" + bytes(creator.key).hex(),
            {"to": chain_settings.contract_address, "data": data},
        )
        await chain_db.execute(
            "UPDATE agents SET token_tx_hash = $2 WHERE id = $1", agent_id, "0x" + "0" * 64
        )
        after = (await client.get(f"/api/v1/agents/{agent_id}/ownership")).json()
        assert (after["owner"], after["creator"]) == (buyer, creator.address)
        assert after["tx_hash"] == job["tx_hash"]


async def test_ownership_of_what_has_no_token_is_a_404(
    chain_api: str, chain_db: asyncpg.Pool, control_url: str
) -> None:
    draft = await make_agent(chain_db, status="draft")
    async with httpx.AsyncClient(base_url=chain_api, timeout=60) as client:
        for agent_id in (draft.agent_id, "00000000-0000-4000-8000-000000000000", "not-a-uuid"):
            assert_error(await client.get(f"/api/v1/agents/{agent_id}/ownership"), 404, "40401")
        for token in ("12", "zz" * 32, "00" * 32):
            assert_error(await client.get(f"/api/v1/tokens/{token}"), 404, "40404")
    async with httpx.AsyncClient(base_url=control_url, timeout=60) as chain_off:
        response = await chain_off.get(f"/api/v1/agents/{draft.agent_id}/ownership")
        assert_error(response, 404, "40404")


async def test_ownership_while_the_node_does_not_answer_is_a_503(
    chain_api: str, chain_db: asyncpg.Pool, chain_node: LocalChainNode
) -> None:
    agent_id = await published_agent(chain_db, Account.create().address)
    async with httpx.AsyncClient(base_url=chain_api, timeout=60) as client:
        chain_node.pause()
        try:
            response = await client.get(f"/api/v1/agents/{agent_id}/ownership")
        finally:
            chain_node.resume()
        assert_error(response, 503, "50301")
        assert (await client.get(f"/api/v1/agents/{agent_id}/ownership")).status_code == 200


async def test_a_creators_settlements_carry_their_on_chain_proof(
    chain_api: str,
    chain_db: asyncpg.Pool,
    chain_client: ChainClient,
    chain_settings: ChainSettings,
) -> None:
    wallet = Account.create().address
    agent_id = await published_agent(chain_db, wallet)
    start = datetime(2026, 11, 29, tzinfo=UTC)
    settlement_id = await settled_day(chain_db, agent_id, start, ("10", "2", "8"))
    headers = bearer(await creator_token(chain_db, agent_id))
    async with httpx.AsyncClient(base_url=chain_api, headers=headers, timeout=60) as client:

        async def proof() -> dict[str, Any]:
            response = await client.get("/api/v1/creators/me/settlements")
            assert response.status_code == 200, response.text
            [settlement] = response.json()["settlements"]
            assert settlement["id"] == settlement_id
            return dict(settlement["proof"])

        pending = await proof()
        assert (pending["status"], pending["verified"], pending["tx_hash"]) == (
            "pending",
            False,
            None,
        )
        outbox = ChainOutbox(chain_db, chain_client, chain_settings)
        for _ in range(3):
            await outbox.run_once()
            await make_jobs_due(chain_db)
        recorded = await proof()
        job = await job_of(chain_db, settlement_id)
        assert recorded["verified"] is True
        assert recorded["status"] == "confirmed"
        assert recorded["tx_hash"] == job["tx_hash"]
        assert (recorded["creator"], recorded["amount_units"]) == (wallet, "800000000")
        assert recorded["settlement_key"] == "0x" + settlement_id.replace("-", "").rjust(64, "0")
        # Our row changed after the fact no longer matches what the chain recorded.
        await chain_db.execute(
            """UPDATE settlements SET amount = amount + 1, net_amount = net_amount + 1
               WHERE id = $1""",
            settlement_id,
        )
        tampered = await proof()
        assert tampered["verified"] is False
        assert tampered["reason"] == "the chain's record differs from this settlement"
