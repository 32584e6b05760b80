"""Proofs read from the chain: an agent's ownership, its token metadata, settlement records.

Every fact a proof asserts comes from the chain (the contract's state, its events), so a
reader can check it without trusting our tables; our `chain_jobs` row adds only where the job
is (`pending`: not on chain yet, and why). With the chain off (no CHAIN_RPC_URL) the ownership
and metadata routes answer 404 and settlements carry no proof.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from common.errors import ApiError, ErrorCode
from common.validation import is_uuid
from control_plane.chain.client import (
    ChainClient,
    ChainRejected,
    ChainUnavailable,
    settlement_key,
    token_id_of,
)
from control_plane.chain.schemas import Ownership, SettlementProof, TokenMetadata
from control_plane.earnings.schemas import SettlementOut, SettlementPage
from control_plane.state import ControlPlaneState

PLATFORM = "AgentLink"
_AMOUNT_UNITS = Decimal(10) ** 8
_TOKEN_HEX_DIGITS = 64


def _chain(state: ControlPlaneState) -> ChainClient:
    if state.chain is None:
        raise ApiError(ErrorCode.RESOURCE_NOT_FOUND, "On-chain proof is not enabled here.")
    return state.chain


def _unavailable() -> ApiError:
    return ApiError(ErrorCode.UPSTREAM_UNAVAILABLE, "The chain node is unavailable; try again.")


async def ownership(state: ControlPlaneState, agent_id: str) -> Ownership:
    chain = _chain(state)
    if not is_uuid(agent_id):
        raise ApiError(ErrorCode.AGENT_NOT_FOUND)
    job = await state.db.fetchrow(
        """SELECT status, last_error, block_number FROM chain_jobs
           WHERE kind = 'mint_agent' AND subject_id = $1""",
        agent_id,
    )
    if job is None:  # never published: there is no token to prove
        raise ApiError(ErrorCode.AGENT_NOT_FOUND)
    token_id = token_id_of(agent_id)
    try:
        token = await chain.token(token_id)
        minted = None if token is None else await chain.find_mint_tx(token_id, job["block_number"])
        uri = None if token is None else await chain.uri(token_id)
        chain_id = await chain.chain_id()
    except (ChainUnavailable, ChainRejected):
        raise _unavailable() from None
    return Ownership(
        agent_id=agent_id,
        token_id=str(token_id),
        token_id_hex=f"{token_id:064x}",
        status=job["status"],
        verified=token is not None,
        contract=chain.contract_address,
        chain_id=chain_id,
        owner=None if token is None else token.holder,
        creator=None if token is None else token.creator,
        minted_at=None if token is None else datetime.fromtimestamp(token.minted_at, UTC),
        tx_hash=None if minted is None else minted.tx_hash,
        block_number=None if minted is None else minted.block_number,
        metadata_uri=uri,
        reason=None if job["status"] == "confirmed" else job["last_error"],
    )


async def token_metadata(state: ControlPlaneState, token_hex: str) -> TokenMetadata:
    """The metadata an ERC-1155 client fetches from `uri(id)` with `{id}` replaced."""
    chain = _chain(state)
    digits = token_hex.lower().removeprefix("0x")
    if len(digits) != _TOKEN_HEX_DIGITS or any(c not in "0123456789abcdef" for c in digits):
        raise ApiError(ErrorCode.RESOURCE_NOT_FOUND, "A token id is 64 hexadecimal digits.")
    token_id = int(digits, 16)
    row = await state.db.fetchrow(
        "SELECT id::text, name, description FROM agents WHERE token_id = $1", Decimal(token_id)
    )
    if row is None:
        raise ApiError(ErrorCode.RESOURCE_NOT_FOUND, "No agent token with this id.")
    try:
        token = await chain.token(token_id)
    except (ChainUnavailable, ChainRejected):
        raise _unavailable() from None
    if token is None:
        raise ApiError(ErrorCode.RESOURCE_NOT_FOUND, "No agent token with this id.")
    return TokenMetadata(
        name=row["name"],
        description=row["description"] or "",
        agent_id=row["id"],
        creator=token.creator,
        created_at=token.minted_at,
        platform=PLATFORM,
    )


async def with_settlement_proofs(state: ControlPlaneState, page: SettlementPage) -> SettlementPage:
    """The page with each settlement's proof (none with the chain off). A chain that does not
    answer leaves the proofs unverified with the reason; the list itself still answers."""
    chain = state.chain
    if chain is None or not page.settlements:
        return page
    jobs = {
        str(row["subject_id"]): row
        for row in await state.db.fetch(
            """SELECT subject_id, status, last_error, block_number FROM chain_jobs
               WHERE kind = 'record_settlement' AND subject_id = ANY($1::uuid[])""",
            [settlement.id for settlement in page.settlements],
        )
    }
    try:
        chain_id: int | None = await chain.chain_id()
    except (ChainUnavailable, ChainRejected):
        chain_id = None
    proofs = [
        await _settlement_proof(chain, chain_id, settlement, jobs.get(settlement.id))
        for settlement in page.settlements
    ]
    return SettlementPage(
        [_with_proof(s, proof) for s, proof in zip(page.settlements, proofs, strict=True)],
        page.next_cursor,
    )


def _with_proof(settlement: SettlementOut, proof: SettlementProof) -> SettlementOut:
    settlement.proof = proof
    return settlement


async def _settlement_proof(
    chain: ChainClient, chain_id: int | None, settlement: SettlementOut, job: object
) -> SettlementProof:
    key = settlement_key(settlement.id)
    status = "pending" if job is None else str(job["status"])  # type: ignore[index]
    reason = None if job is None or status == "confirmed" else job["last_error"]  # type: ignore[index]
    proof = SettlementProof(
        status=status, verified=False, contract=chain.contract_address, chain_id=chain_id,
        settlement_key="0x" + key.hex(), creator=None, amount_units=None, period_start=None,
        period_end=None, tx_hash=None, block_number=None, reason=reason,
    )  # fmt: skip
    if chain_id is None:
        proof.reason = "the chain node is unavailable"
        return proof
    try:
        record = await chain.settlement(key)
        hint = None if job is None else job["block_number"]  # type: ignore[index]
        found = None if record is None else await chain.find_settlement_tx(key, hint)
    except (ChainUnavailable, ChainRejected):
        proof.reason = "the chain node is unavailable"
        return proof
    if record is None:
        return proof
    proof.creator = record.creator
    proof.amount_units = str(record.amount)
    proof.period_start, proof.period_end = record.period_start, record.period_end
    if found is not None:
        proof.tx_hash, proof.block_number = found.tx_hash, found.block_number
    proof.verified = (
        record.amount == int(Decimal(settlement.net) * _AMOUNT_UNITS)
        and record.period_start == int(settlement.period_start.timestamp())
        and record.period_end == int(settlement.period_end.timestamp())
    )
    if not proof.verified:
        proof.reason = "the chain's record differs from this settlement"
    return proof
