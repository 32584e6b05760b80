"""What the chain routes answer: proofs read from the chain, beside what our tables say."""

from __future__ import annotations

from datetime import datetime

import msgspec


class Ownership(msgspec.Struct):
    """An agent's token as the chain has it. `owner`, `creator`, `minted_at`, `tx_hash` and
    `block_number` are read from the chain (the contract's state and its AgentMinted event);
    `verified` is whether the chain holds the token at all. `status` is our job's
    (pending, sent, confirmed, failed) and `reason` why it is not confirmed yet."""

    agent_id: str
    token_id: str  # uint256 as decimal text: JSON numbers lose precision past 2^53
    token_id_hex: str  # the 64 hex digits ERC-1155 clients put in the metadata URI
    status: str
    verified: bool
    contract: str
    chain_id: int
    owner: str | None
    creator: str | None
    minted_at: datetime | None
    tx_hash: str | None
    block_number: int | None
    metadata_uri: str | None
    reason: str | None


class TokenMetadata(msgspec.Struct):
    """ERC-1155 metadata in the seed's shape (AgentTokenMetadata): name and description are
    the agent's now; agent_id, creator (the wallet minted to) and created_at (the mint's block
    time, Unix seconds) are read from the chain."""

    name: str
    description: str
    agent_id: str
    creator: str
    created_at: int
    platform: str


class SettlementProof(msgspec.Struct):
    """A settlement's record on chain. `verified`: the chain holds a record under this
    settlement's id with its period and net amount (10^-8 USD) exactly as our table has them."""

    status: str
    verified: bool
    contract: str
    chain_id: int | None
    settlement_key: str  # the bytes32 the record is stored under (the UUID, big-endian)
    creator: str | None
    amount_units: str | None  # net amount on chain, in 10^-8 USD, as decimal text
    period_start: int | None
    period_end: int | None
    tx_hash: str | None
    block_number: int | None
    reason: str | None
