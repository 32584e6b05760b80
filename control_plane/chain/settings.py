"""Settings of the on-chain proof: which chain, which contract, who signs, how sure to be."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from common.settings import Environ, EnvSettings, SettingsError, env_float, env_int, env_str

_KEY = re.compile(r"0x[0-9a-fA-F]{64}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


@dataclass(frozen=True, slots=True)
class ChainSettings(EnvSettings):
    """
    | variable | default | meaning |
    |---|---|---|
    | `CHAIN_RPC_URL` | (empty: chain off) | EVM JSON-RPC endpoint; `./dev up` and the chain tests start a local node |
    | `CHAIN_SIGNER_KEY` | (required with an RPC URL) | private key (0x + 64 hex) that owns the registry contract; never logged |
    | `CHAIN_CONTRACT_ADDRESS` | (required with an RPC URL) | the deployed AgentLinkRegistry |
    | `CHAIN_CONFIRMATIONS` | 1 | a transaction counts once its block is this many blocks deep (1: mined) |
    | `CHAIN_INTERVAL_S` | 2 | how often the worker sends and confirms chain jobs |
    | `CHAIN_RETRY_MAX_S` | 300 | longest wait between attempts on a job (chain down, no wallet yet) |
    | `CHAIN_LEASE_S` | 120 | a job held longer than this by a worker is taken over by another |
    | `CHAIN_RPC_TIMEOUT_S` | 10 | timeout of one JSON-RPC request |
    """  # noqa: E501

    rpc_url: str
    signer_key: str = field(repr=False)
    contract_address: str
    confirmations: int
    interval_s: float
    retry_max_s: float
    lease_s: float
    rpc_timeout_s: float

    @property
    def enabled(self) -> bool:
        return bool(self.rpc_url)

    @classmethod
    def from_env(cls, env: Environ | None = None) -> ChainSettings:
        env = os.environ if env is None else env
        rpc_url = env_str(env, "CHAIN_RPC_URL", "")
        signer_key = env_str(env, "CHAIN_SIGNER_KEY", "")
        contract = env_str(env, "CHAIN_CONTRACT_ADDRESS", "")
        if rpc_url:
            if not rpc_url.startswith(("http://", "https://")):
                raise SettingsError("CHAIN_RPC_URL must be an http(s) URL")
            if _KEY.fullmatch(signer_key) is None:
                raise SettingsError("CHAIN_SIGNER_KEY must be 0x followed by 64 hex digits")
            if _ADDRESS.fullmatch(contract) is None:
                raise SettingsError("CHAIN_CONTRACT_ADDRESS must be 0x followed by 40 hex digits")
        return cls(
            rpc_url=rpc_url,
            signer_key=signer_key,
            contract_address=contract,
            confirmations=env_int(env, "CHAIN_CONFIRMATIONS", 1, minimum=1),
            interval_s=env_float(env, "CHAIN_INTERVAL_S", 2.0, minimum=0.05),
            retry_max_s=env_float(env, "CHAIN_RETRY_MAX_S", 300.0, minimum=0.1),
            lease_s=env_float(env, "CHAIN_LEASE_S", 120.0, minimum=1.0),
            rpc_timeout_s=env_float(env, "CHAIN_RPC_TIMEOUT_S", 10.0, minimum=0.1),
        )
