"""The registry contract's compiled artifact (contracts/AgentLinkRegistry.json), loaded once."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ARTIFACT = Path(__file__).parent / "contracts" / "AgentLinkRegistry.json"


@dataclass(frozen=True, slots=True)
class ContractArtifact:
    abi: list[dict[str, Any]]
    bytecode: str
    bytecode_runtime: str
    compiler: str


@cache
def registry_artifact() -> ContractArtifact:
    data = json.loads(ARTIFACT.read_text(encoding="utf-8"))
    return ContractArtifact(
        abi=data["abi"],
        bytecode=data["bytecode"],
        bytecode_runtime=data["bytecode_runtime"],
        compiler=data["compiler"],
    )
