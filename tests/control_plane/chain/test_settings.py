"""The chain's settings: off unless an RPC URL is set, then a signer and a contract required,
and the signer key never in a repr (so never in a log line that prints the settings)."""

from __future__ import annotations

import pytest

from common.settings import SettingsError
from control_plane.chain.settings import ChainSettings

KEY = "0x" + "4c" * 32
CONTRACT = "0x" + "ab" * 20


def test_without_an_rpc_url_the_chain_is_off() -> None:
    settings = ChainSettings.from_env({})
    assert not settings.enabled
    assert settings.confirmations == 1


def test_an_rpc_url_needs_a_signer_key_and_a_contract() -> None:
    with pytest.raises(SettingsError, match="CHAIN_SIGNER_KEY"):
        ChainSettings.from_env({"CHAIN_RPC_URL": "http://127.0.0.1:8545"})
    with pytest.raises(SettingsError, match="CHAIN_CONTRACT_ADDRESS"):
        ChainSettings.from_env({"CHAIN_RPC_URL": "http://127.0.0.1:8545", "CHAIN_SIGNER_KEY": KEY})
    with pytest.raises(SettingsError, match="CHAIN_RPC_URL"):
        ChainSettings.from_env(
            {
                "CHAIN_RPC_URL": "ws://node",
                "CHAIN_SIGNER_KEY": KEY,
                "CHAIN_CONTRACT_ADDRESS": CONTRACT,
            }
        )
    with pytest.raises(SettingsError, match="CHAIN_CONFIRMATIONS"):
        ChainSettings.from_env({"CHAIN_CONFIRMATIONS": "0"})


def test_the_signer_key_is_never_in_the_repr() -> None:
    settings = ChainSettings.from_env(
        {"CHAIN_RPC_URL": "https://rpc.example", "CHAIN_SIGNER_KEY": KEY,
         "CHAIN_CONTRACT_ADDRESS": CONTRACT, "CHAIN_CONFIRMATIONS": "12"}
    )  # fmt: skip
    assert settings.enabled
    assert settings.confirmations == 12
    assert KEY not in repr(settings)
    assert KEY[2:] not in repr(settings)


def test_the_declared_fields_read_the_start_block() -> None:
    base = {"CHAIN_RPC_URL": "http://127.0.0.1:8545", "CHAIN_SIGNER_KEY": KEY,
            "CHAIN_CONTRACT_ADDRESS": CONTRACT}  # fmt: skip
    assert ChainSettings.from_env(base).start_block == 0
    assert ChainSettings.from_env(base | {"CHAIN_START_BLOCK": "1234567"}).start_block == 1234567
    with pytest.raises(SettingsError, match="CHAIN_START_BLOCK"):
        ChainSettings.from_env(base | {"CHAIN_START_BLOCK": "-1"})
    with pytest.raises(SettingsError, match="CHAIN_CONTRACT_ADDRESS"):
        ChainSettings.from_env(base | {"CHAIN_CONTRACT_ADDRESS": "0x1234"})


def test_onchain_payouts_need_the_chain_and_a_vault() -> None:
    from control_plane.settings import WorkerSettings

    storage = {"DATABASE_URL": "postgresql://db", "REDIS_URL": "redis://redis"}
    chain = {"CHAIN_RPC_URL": "http://127.0.0.1:8545", "CHAIN_SIGNER_KEY": KEY,
             "CHAIN_CONTRACT_ADDRESS": CONTRACT}  # fmt: skip
    offered = {"PAYOUT_PROVIDERS": "ledger,onchain"}
    for missing in ({}, chain):
        with pytest.raises(SettingsError, match="CHAIN_PAYOUTS_ADDRESS"):
            WorkerSettings.from_env(storage | missing | offered)
    vault = {"CHAIN_PAYOUTS_ADDRESS": "0x" + "cd" * 20}
    settings = WorkerSettings.from_env(storage | chain | vault | offered)
    assert settings.earnings.payout_providers == ("ledger", "onchain")
    assert settings.chain.payouts_enabled
    with pytest.raises(SettingsError, match="CHAIN_PAYOUTS_ADDRESS"):
        ChainSettings.from_env(chain | {"CHAIN_PAYOUTS_ADDRESS": "0x1234"})
    assert not ChainSettings.from_env(vault).payouts_enabled  # a vault without a chain
