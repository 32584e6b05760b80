"""Compile the contracts into their committed artifacts.

    python -m control_plane.chain.build           # rewrite contracts/<Name>.json for each .vy
    python -m control_plane.chain.build --check   # exit 1 if any artifact is not its source's

Contracts: `AgentLinkRegistry` (agent tokens and settlement records), `AgentLinkPayouts` (the
payout vault), `LocalStablecoin` (the ERC-20 the local chain pays in). Each artifact carries
the ABI, the deployment and runtime bytecode, the compiler version and the source's SHA-256.
Vyper compiles deterministically (the version, EVM version and optimisation level are pinned
in each source's pragmas), so a fresh compile reproduces the committed bytes exactly; `./dev
lint` and a test check that it does. Vyper is a build-time tool only: the processes load the
JSON (artifact.py).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import vyper

CONTRACTS = Path(__file__).parent / "contracts"
SOURCE = CONTRACTS / "AgentLinkRegistry.vy"
ARTIFACT = CONTRACTS / "AgentLinkRegistry.json"


def sources() -> list[Path]:
    """Every contract source, in name order."""
    return sorted(CONTRACTS.glob("*.vy"))


def artifact_path(source: Path) -> Path:
    return source.with_suffix(".json")


def compile_artifact(source: Path = SOURCE) -> dict[str, Any]:
    """The artifact of `source`, freshly compiled."""
    text = source.read_text(encoding="utf-8")
    output = vyper.compile_code(text, output_formats=["abi", "bytecode", "bytecode_runtime"])
    return {
        "contract": source.stem,
        "compiler": f"vyper {vyper.__version__}",
        "source_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "abi": output["abi"],
        "bytecode": output["bytecode"],
        "bytecode_runtime": output["bytecode_runtime"],
    }


def render(artifact: dict[str, Any]) -> str:
    return json.dumps(artifact, indent=1, sort_keys=True) + "\n"


def is_current(artifact: Path, fresh: str) -> bool:
    """Whether the file at `artifact` is exactly `fresh` (a rendered compile)."""
    return artifact.exists() and artifact.read_text(encoding="utf-8") == fresh


def main(argv: list[str]) -> int:
    stale = 0
    for source in sources():
        fresh = render(compile_artifact(source))
        target = artifact_path(source)
        if "--check" not in argv:
            target.write_text(fresh, encoding="utf-8")
        elif not is_current(target, fresh):
            print(f"{target} is stale: run python -m control_plane.chain.build", file=sys.stderr)
            stale += 1
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
