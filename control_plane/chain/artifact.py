"""The contracts' compiled artifacts (contracts/<Name>.json), each loaded once."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

CONTRACTS = Path(__file__).parent / "contracts"


@dataclass(frozen=True, slots=True)
class ContractArtifact:
    abi: list[dict[str, Any]]
    bytecode: str
    bytecode_runtime: str
    compiler: str


@cache
def contract_artifact(name: str) -> ContractArtifact:
    data = json.loads((CONTRACTS / f"{name}.json").read_text(encoding="utf-8"))
    return ContractArtifact(
        abi=data["abi"],
        bytecode=data["bytecode"],
        bytecode_runtime=data["bytecode_runtime"],
        compiler=data["compiler"],
    )


def registry_artifact() -> ContractArtifact:
    """AgentLinkRegistry: agent tokens (ERC-1155) and settlement records."""
    return contract_artifact("AgentLinkRegistry")


def payouts_artifact() -> ContractArtifact:
    """AgentLinkPayouts: the vault that pays withdrawals in a stablecoin, once per id."""
    return contract_artifact("AgentLinkPayouts")


def stablecoin_artifact() -> ContractArtifact:
    """LocalStablecoin: the local chain's ERC-20; its ABI reads any ERC-20's decimals and
    balances."""
    return contract_artifact("LocalStablecoin")
