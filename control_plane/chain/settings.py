"""Settings of the on-chain proof and payouts: which chain, which contracts, who signs, how
sure to be, where the event scans start."""

from __future__ import annotations

import re
from dataclasses import dataclass

from common.settings import EnvSettings, SettingsError, env

_KEY = re.compile(r"0x[0-9a-fA-F]{64}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


# Each parser reads the empty text default too: empty is "not set".


def _rpc_url(name: str, raw: str) -> str:
    if raw and not raw.startswith(("http://", "https://")):
        raise SettingsError(f"{name} must be an http(s) URL")
    return raw


def _address(name: str, raw: str) -> str:
    if raw and _ADDRESS.fullmatch(raw) is None:
        raise SettingsError(f"{name} must be 0x followed by 40 hex digits")
    return raw


def _signer_key(name: str, raw: str) -> str:
    if raw and _KEY.fullmatch(raw) is None:
        raise SettingsError(f"{name} must be 0x followed by 64 hex digits")
    return raw


@dataclass(frozen=True, slots=True)
class ChainSettings(EnvSettings):
    """
    | variable | default | meaning |
    |---|---|---|
    | `CHAIN_RPC_URL` | (empty: chain off) | EVM JSON-RPC endpoint; `./dev up` and the chain tests start a local node |
    | `CHAIN_SIGNER_KEY` | (required with an RPC URL) | private key (0x + 64 hex) that owns the contracts; never logged |
    | `CHAIN_CONTRACT_ADDRESS` | (required with an RPC URL) | the deployed AgentLinkRegistry |
    | `CHAIN_PAYOUTS_ADDRESS` | (empty: no on-chain payouts) | the deployed AgentLinkPayouts vault (`PAYOUT_PROVIDERS` with `onchain` needs it) |
    | `CHAIN_START_BLOCK` | 0 | the block the contracts were deployed in: event look-ups never scan below it |
    | `CHAIN_CONFIRMATIONS` | 1 | a transaction counts once its block is this many blocks deep (1: mined) |
    | `CHAIN_INTERVAL_S` | 2 | how often the worker sends and confirms chain jobs |
    | `CHAIN_RETRY_MAX_S` | 300 | longest wait between attempts on a job (chain down, no wallet yet) |
    | `CHAIN_LEASE_S` | 120 | a job held longer than this by a worker is taken over by another |
    | `CHAIN_RPC_TIMEOUT_S` | 10 | timeout of one JSON-RPC request |
    """  # noqa: E501

    rpc_url: str = env("CHAIN_RPC_URL", "", parse=_rpc_url)
    signer_key: str = env("CHAIN_SIGNER_KEY", "", parse=_signer_key, secret=True)
    contract_address: str = env("CHAIN_CONTRACT_ADDRESS", "", parse=_address)
    confirmations: int = env("CHAIN_CONFIRMATIONS", 1, minimum=1)
    interval_s: float = env("CHAIN_INTERVAL_S", 2.0, minimum=0.05)
    retry_max_s: float = env("CHAIN_RETRY_MAX_S", 300.0, minimum=0.1)
    lease_s: float = env("CHAIN_LEASE_S", 120.0, minimum=1.0)
    rpc_timeout_s: float = env("CHAIN_RPC_TIMEOUT_S", 10.0, minimum=0.1)
    payouts_address: str = env("CHAIN_PAYOUTS_ADDRESS", "", parse=_address)
    start_block: int = env("CHAIN_START_BLOCK", 0, minimum=0)

    def __post_init__(self) -> None:
        if self.rpc_url and not self.signer_key:
            raise SettingsError("CHAIN_SIGNER_KEY must be 0x followed by 64 hex digits")
        if self.rpc_url and not self.contract_address:
            raise SettingsError("CHAIN_CONTRACT_ADDRESS must be 0x followed by 40 hex digits")

    @property
    def enabled(self) -> bool:
        return bool(self.rpc_url)

    @property
    def payouts_enabled(self) -> bool:
        """Whether withdrawals can be paid on chain: a chain and a payout vault."""
        return self.enabled and bool(self.payouts_address)
