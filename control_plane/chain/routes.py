"""On-chain proof routes: path → handler. Ownership and token metadata are public (listed in
`control_plane.routes.PUBLIC_OPERATIONS`): anyone may check what the chain says."""

from __future__ import annotations

from starlette.responses import Response

from control_plane.api import ApiRoute, Context, json_response
from control_plane.chain import proofs
from control_plane.chain.schemas import Ownership, TokenMetadata

# The chain changes only by new blocks; a short cache spares the node repeated reads.
_PUBLIC_CACHE = {"Cache-Control": "public, max-age=15"}


async def agent_ownership(context: Context) -> Response:
    proof = await proofs.ownership(context.state, context.path["agent_id"])
    return json_response(proof, headers=_PUBLIC_CACHE)


async def token_metadata(context: Context) -> Response:
    metadata = await proofs.token_metadata(context.state, context.path["token_id"])
    return json_response(metadata, headers=_PUBLIC_CACHE)


OWNERSHIP = "/api/v1/agents/{agent_id}/ownership"
METADATA = "/api/v1/tokens/{token_id}"
ROUTES = [
    ApiRoute("GET", OWNERSHIP, agent_ownership,
             "The agent's ERC-1155 token as the chain has it: token id, owner, contract, "
             "chain id, mint transaction (read from the chain, not our tables)",
             response=Ownership, tags=("chain",)),
    ApiRoute("GET", METADATA, token_metadata,
             "ERC-1155 metadata of an agent token ({token_id}: 64 hex digits, as in uri(id))",
             response=TokenMetadata, tags=("chain",)),
]  # fmt: skip
