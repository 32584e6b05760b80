"""The payout vault's and the local stablecoin's own tests, on an in-process py-evm chain
(eth-tester): a withdrawal id is paid once (a second payment reverts), only the owner pays or
sweeps, a vault short of funds or a wallet the stablecoin blocks reverts the payment and moves
nothing, events and records say what was paid; and every committed artifact is what its
source compiles to."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from eth_tester.exceptions import TransactionFailed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD
from web3.providers.eth_tester import EthereumTesterProvider

from control_plane.chain import build
from control_plane.chain.artifact import ContractArtifact, payouts_artifact, stablecoin_artifact

REVERTED = (ContractLogicError, TransactionFailed)
WITHDRAWAL = (0x5EEDF00D0123456789ABCDEF01234567).to_bytes(32, "big")
ZERO = "0x" + "0" * 40
FUNDS = 1_000 * 10**6  # a thousand of the 6-decimal stablecoin


@pytest.fixture(scope="module")
def w3() -> Web3:
    return Web3(EthereumTesterProvider())


def _deploy(w3: Web3, artifact: ContractArtifact, sender: str, *args: Any) -> Contract:
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    tx = factory.constructor(*args).transact({"from": sender})
    address = w3.eth.wait_for_transaction_receipt(tx)["contractAddress"]
    return w3.eth.contract(address=address, abi=artifact.abi)


def _send(w3: Web3, call: Any, sender: str) -> Any:
    return w3.eth.wait_for_transaction_receipt(call.transact({"from": sender}))


@pytest.fixture
def coin(w3: Web3) -> Contract:
    """A stablecoin issued by account 1 (not the vault's owner)."""
    return _deploy(w3, stablecoin_artifact(), w3.eth.accounts[1], "AgentLink Local USD", "lUSD")


@pytest.fixture
def vault(w3: Web3, coin: Contract) -> Contract:
    """A vault owned by account 0, funded with FUNDS."""
    vault = _deploy(w3, payouts_artifact(), w3.eth.accounts[0], coin.address)
    _send(w3, coin.functions.mint(vault.address, FUNDS), w3.eth.accounts[1])
    return vault


def test_a_payment_moves_the_stablecoin_records_it_and_logs_it(
    w3: Web3, coin: Contract, vault: Contract
) -> None:
    owner, creator = w3.eth.accounts[0], w3.eth.accounts[2]
    before = coin.functions.balanceOf(creator).call()
    receipt = _send(w3, vault.functions.pay(WITHDRAWAL, creator, 25_500_000), owner)
    assert coin.functions.balanceOf(creator).call() == before + 25_500_000
    assert vault.functions.funds().call() == FUNDS - 25_500_000
    recipient, amount, paid_at = vault.functions.payments(WITHDRAWAL).call()
    assert (recipient, amount) == (creator, 25_500_000)
    assert paid_at == w3.eth.get_block(receipt["blockNumber"])["timestamp"]
    assert (vault.functions.paymentCount().call(), vault.functions.totalPaid().call()) == (
        1,
        25_500_000,
    )
    (paid,) = vault.events.WithdrawalPaid().process_receipt(receipt, errors=DISCARD)
    assert paid["args"] == {"withdrawal_id": WITHDRAWAL, "recipient": creator, "amount": 25_500_000}
    (transfer,) = coin.events.Transfer().process_receipt(receipt, errors=DISCARD)
    assert transfer["args"] == {"sender": vault.address, "receiver": creator, "value": 25_500_000}


def test_a_withdrawal_id_is_paid_once(w3: Web3, coin: Contract, vault: Contract) -> None:
    owner, creator, other = w3.eth.accounts[0], w3.eth.accounts[2], w3.eth.accounts[3]
    _send(w3, vault.functions.pay(WITHDRAWAL, creator, 10**6), owner)
    for recipient, amount in ((creator, 10**6), (other, 5 * 10**6)):
        with pytest.raises(REVERTED, match="already paid"):
            _send(w3, vault.functions.pay(WITHDRAWAL, recipient, amount), owner)
    assert vault.functions.funds().call() == FUNDS - 10**6
    assert coin.functions.balanceOf(other).call() == 0
    assert vault.functions.paymentCount().call() == 1


def test_only_the_owner_pays_sweeps_or_hands_the_vault_over(
    w3: Web3, coin: Contract, vault: Contract
) -> None:
    creator, stranger = w3.eth.accounts[2], w3.eth.accounts[4]
    with pytest.raises(REVERTED, match="only owner"):
        _send(w3, vault.functions.pay(WITHDRAWAL, stranger, 10**6), stranger)
    with pytest.raises(REVERTED, match="only owner"):
        _send(w3, vault.functions.pay(WITHDRAWAL, creator, 10**6), creator)
    with pytest.raises(REVERTED, match="only owner"):
        _send(w3, vault.functions.sweep(stranger, FUNDS), stranger)
    with pytest.raises(REVERTED, match="only owner"):
        _send(w3, vault.functions.transferOwnership(stranger), stranger)
    assert vault.functions.funds().call() == FUNDS
    assert vault.functions.payments(WITHDRAWAL).call()[0] == ZERO


def test_the_owner_sweeps_and_a_new_owner_takes_over(
    w3: Web3, coin: Contract, vault: Contract
) -> None:
    owner, successor = w3.eth.accounts[0], w3.eth.accounts[5]
    _send(w3, vault.functions.transferOwnership(successor), owner)
    with pytest.raises(REVERTED, match="only owner"):
        _send(w3, vault.functions.sweep(owner, 1), owner)
    _send(w3, vault.functions.sweep(successor, 400 * 10**6), successor)
    assert vault.functions.funds().call() == FUNDS - 400 * 10**6
    assert coin.functions.balanceOf(successor).call() == 400 * 10**6


def test_a_short_vault_a_blocked_wallet_and_bad_arguments_revert_and_move_nothing(
    w3: Web3, coin: Contract, vault: Contract
) -> None:
    owner, issuer, creator = w3.eth.accounts[0], w3.eth.accounts[1], w3.eth.accounts[2]
    with pytest.raises(REVERTED, match="vault balance too low"):
        _send(w3, vault.functions.pay(WITHDRAWAL, creator, FUNDS + 1), owner)
    with pytest.raises(REVERTED, match="zero address"):
        _send(w3, vault.functions.pay(WITHDRAWAL, ZERO, 1), owner)
    with pytest.raises(REVERTED, match="zero amount"):
        _send(w3, vault.functions.pay(WITHDRAWAL, creator, 0), owner)
    _send(w3, coin.functions.setBlocked(creator, True), issuer)
    with pytest.raises(REVERTED, match="blocked account"):
        _send(w3, vault.functions.pay(WITHDRAWAL, creator, 10**6), owner)
    # Nothing moved, nothing recorded: the id can still be paid once the wallet is free.
    assert vault.functions.funds().call() == FUNDS
    assert vault.functions.payments(WITHDRAWAL).call()[0] == ZERO
    _send(w3, coin.functions.setBlocked(creator, False), issuer)
    _send(w3, vault.functions.pay(WITHDRAWAL, creator, 10**6), owner)
    assert vault.functions.payments(WITHDRAWAL).call()[1] == 10**6


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(amounts=st.lists(st.integers(min_value=1, max_value=50 * 10**6), min_size=1, max_size=8))
def test_payments_never_exceed_the_funds_and_each_id_pays_once(
    w3: Web3, coin: Contract, amounts: list[int]
) -> None:
    """However the payments come, the vault pays each id once and never more than it holds:
    what left the vault is exactly the sum of the recorded payments."""
    owner, issuer, creator = w3.eth.accounts[0], w3.eth.accounts[1], w3.eth.accounts[6]
    vault = _deploy(w3, payouts_artifact(), owner, coin.address)
    funds = 100 * 10**6
    _send(w3, coin.functions.mint(vault.address, funds), issuer)
    paid = 0
    for index, amount in enumerate(amounts):
        key = index.to_bytes(32, "big")
        for _attempt in range(2):  # every payment tried twice: the second always reverts
            try:
                _send(w3, vault.functions.pay(key, creator, amount), owner)
                paid += amount
            except REVERTED:
                pass
    assert paid <= funds
    assert vault.functions.totalPaid().call() == paid
    assert vault.functions.funds().call() == funds - paid


def test_the_stablecoin_is_a_plain_erc20(w3: Web3, coin: Contract) -> None:
    issuer, holder, spender, stranger = w3.eth.accounts[1], *w3.eth.accounts[7:10]
    assert (coin.functions.decimals().call(), coin.functions.symbol().call()) == (6, "lUSD")
    with pytest.raises(REVERTED, match="only owner"):
        _send(w3, coin.functions.mint(stranger, 1), stranger)
    with pytest.raises(REVERTED, match="only owner"):
        _send(w3, coin.functions.setBlocked(holder, True), stranger)
    _send(w3, coin.functions.mint(holder, 100), issuer)
    assert coin.functions.totalSupply().call() == 100
    with pytest.raises(REVERTED, match="insufficient balance"):
        _send(w3, coin.functions.transfer(stranger, 101), holder)
    _send(w3, coin.functions.approve(spender, 30), holder)
    with pytest.raises(REVERTED, match="insufficient allowance"):
        _send(w3, coin.functions.transferFrom(holder, stranger, 31), spender)
    _send(w3, coin.functions.transferFrom(holder, stranger, 30), spender)
    assert coin.functions.allowance(holder, spender).call() == 0
    assert [coin.functions.balanceOf(a).call() for a in (holder, stranger)] == [70, 30]


# ------------------------------------------------------------------------- artifacts


@pytest.mark.parametrize("source", build.sources(), ids=lambda path: path.stem)
def test_every_committed_artifact_is_what_its_source_compiles_to(source: Path) -> None:
    fresh = build.render(build.compile_artifact(source))
    assert build.artifact_path(source).read_text(encoding="utf-8") == fresh


def test_the_build_check_catches_a_stale_artifact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `./dev lint` runs: `--check` passes on the committed artifacts and fails when one
    of them (not the registry's) is not its source's; it writes nothing."""
    assert {path.stem for path in build.sources()} >= {
        "AgentLinkRegistry", "AgentLinkPayouts", "LocalStablecoin"
    }  # fmt: skip
    for path in build.CONTRACTS.iterdir():
        shutil.copy(path, tmp_path / path.name)
    monkeypatch.setattr(build, "CONTRACTS", tmp_path)
    assert build.main(["--check"]) == 0
    vault = tmp_path / "AgentLinkPayouts.vy"
    vault.write_text(vault.read_text().replace('"zero amount"', '"nothing to pay"'))
    stale = (tmp_path / "AgentLinkPayouts.json").read_text()
    assert build.main(["--check"]) == 1
    assert (tmp_path / "AgentLinkPayouts.json").read_text() == stale
    assert build.main([]) == 0  # `./dev contracts` rewrites it
    assert build.main(["--check"]) == 0
