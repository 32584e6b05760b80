"""The registry contract's own tests, on an in-process py-evm chain (eth-tester): ERC-1155
balances, transfers and events, the agent-token and settlement-record rules, access control,
and that the committed artifact is exactly what the source compiles to."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
import vyper
from eth_tester.exceptions import TransactionFailed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD
from web3.providers.eth_tester import EthereumTesterProvider

from control_plane.chain import build
from control_plane.chain.artifact import registry_artifact

URI = "https://control.agentlink.test/api/v1/tokens/{id}"
TOKEN = 0x1F2E3D4C5B6A79880123456789ABCDEF  # an agent UUID read as an integer
SETTLEMENT = (0xA1B2C3D4E5F60718293A4B5C6D7E8F90).to_bytes(32, "big")
# A revert, as web3 reports it over JSON-RPC and as eth-tester reports it in process.
REVERTED = (ContractLogicError, TransactionFailed)

# A receiver contract that accepts single transfers (the ERC-1155 safe-transfer handshake).
ACCEPTING_RECEIVER = """
# pragma version ==0.4.3
# pragma evm-version cancun
@external
def onERC1155Received(
    operator: address, sender: address, id: uint256, amount: uint256, data: Bytes[1024]
) -> bytes4:
    return 0xf23a6e61
"""


@pytest.fixture(scope="module")
def w3() -> Web3:
    return Web3(EthereumTesterProvider())


@pytest.fixture
def registry(w3: Web3) -> Contract:
    """A freshly deployed registry, owned by account 0."""
    artifact = registry_artifact()
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    tx = factory.constructor(URI).transact({"from": w3.eth.accounts[0]})
    address = w3.eth.wait_for_transaction_receipt(tx)["contractAddress"]
    return w3.eth.contract(address=address, abi=artifact.abi)


def _send(w3: Web3, call: Any, sender: str) -> Any:
    return w3.eth.wait_for_transaction_receipt(call.transact({"from": sender}))


def _accounts(w3: Web3) -> tuple[str, str, str, str]:
    owner, creator, buyer, stranger = w3.eth.accounts[:4]
    return owner, creator, buyer, stranger


@pytest.fixture(scope="module")
def fresh_artifact() -> str:
    """The artifact compiled from the source now (once: a compile takes seconds here)."""
    return build.render(build.compile_artifact())


def test_the_committed_artifact_is_what_the_source_compiles_to(fresh_artifact: str) -> None:
    assert build.ARTIFACT.read_text(encoding="utf-8") == fresh_artifact
    assert build.is_current(build.ARTIFACT, fresh_artifact)
    assert json.loads(fresh_artifact)["compiler"] == f"vyper {vyper.__version__}"


def test_a_stale_artifact_is_caught(tmp_path: Any, fresh_artifact: str) -> None:
    stale = tmp_path / "AgentLinkRegistry.json"
    stale.write_text(fresh_artifact.replace('"bytecode": "0x', '"bytecode": "0x00'))
    assert not build.is_current(stale, fresh_artifact)
    assert not build.is_current(tmp_path / "missing.json", fresh_artifact)


def test_mint_gives_the_creator_the_one_token_and_logs_it(w3: Web3, registry: Contract) -> None:
    owner, creator, _, _ = _accounts(w3)
    receipt = _send(w3, registry.functions.mintAgent(creator, TOKEN), owner)
    assert registry.functions.balanceOf(creator, TOKEN).call() == 1
    assert registry.functions.balanceOf(owner, TOKEN).call() == 0
    assert registry.functions.holderOf(TOKEN).call() == creator
    assert registry.functions.creatorOf(TOKEN).call() == creator
    block = w3.eth.get_block(receipt["blockNumber"])
    assert registry.functions.mintedAt(TOKEN).call() == block["timestamp"]
    assert registry.functions.totalMinted().call() == 1
    (transfer,) = registry.events.TransferSingle().process_receipt(receipt, errors=DISCARD)
    assert transfer["args"] == {
        "operator": owner, "sender": "0x" + "0" * 40, "receiver": creator, "id": TOKEN, "value": 1
    }  # fmt: skip
    (minted,) = registry.events.AgentMinted().process_receipt(receipt, errors=DISCARD)
    assert minted["args"]["id"] == TOKEN
    assert minted["args"]["creator"] == creator


def test_a_token_is_minted_once(w3: Web3, registry: Contract) -> None:
    owner, creator, buyer, _ = _accounts(w3)
    _send(w3, registry.functions.mintAgent(creator, TOKEN), owner)
    for wallet in (creator, buyer):
        with pytest.raises(REVERTED, match="already minted"):
            _send(w3, registry.functions.mintAgent(wallet, TOKEN), owner)
    assert registry.functions.totalMinted().call() == 1
    assert registry.functions.balanceOf(buyer, TOKEN).call() == 0


def test_only_the_owner_mints_and_records(w3: Web3, registry: Contract) -> None:
    _, creator, _, stranger = _accounts(w3)
    with pytest.raises(REVERTED, match="only owner"):
        _send(w3, registry.functions.mintAgent(stranger, TOKEN), stranger)
    with pytest.raises(REVERTED, match="only owner"):
        _send(w3, registry.functions.mintAgent(creator, TOKEN), creator)
    with pytest.raises(REVERTED, match="only owner"):
        _send(w3, registry.functions.recordSettlement(SETTLEMENT, stranger, 1, 2, 5), stranger)
    with pytest.raises(REVERTED, match="only owner"):
        _send(w3, registry.functions.setBaseURI("https://evil.test/{id}"), stranger)
    with pytest.raises(REVERTED, match="only owner"):
        _send(w3, registry.functions.transferOwnership(stranger), stranger)
    assert registry.functions.totalMinted().call() == 0
    assert registry.functions.uri(TOKEN).call() == URI


def test_the_zero_address_is_refused(w3: Web3, registry: Contract) -> None:
    owner = w3.eth.accounts[0]
    zero = "0x" + "0" * 40
    with pytest.raises(REVERTED, match="zero address"):
        _send(w3, registry.functions.mintAgent(zero, TOKEN), owner)
    with pytest.raises(REVERTED, match="zero address"):
        _send(w3, registry.functions.recordSettlement(SETTLEMENT, zero, 1, 2, 5), owner)


def test_ownership_moves_with_a_transfer(w3: Web3, registry: Contract) -> None:
    owner, creator, buyer, stranger = _accounts(w3)
    _send(w3, registry.functions.mintAgent(creator, TOKEN), owner)
    # Nobody but the holder (or an operator the holder approved) moves the token, the
    # contract's owner included.
    for outsider in (stranger, owner):
        with pytest.raises(REVERTED, match="not approved"):
            _send(w3, registry.functions.safeTransferFrom(creator, buyer, TOKEN, 1, b""), outsider)
    receipt = _send(w3, registry.functions.safeTransferFrom(creator, buyer, TOKEN, 1, b""), creator)
    (transfer,) = registry.events.TransferSingle().process_receipt(receipt, errors=DISCARD)
    assert transfer["args"]["sender"] == creator
    assert transfer["args"]["receiver"] == buyer
    assert registry.functions.holderOf(TOKEN).call() == buyer
    assert registry.functions.creatorOf(TOKEN).call() == creator  # provenance stays
    assert registry.functions.balanceOfBatch([creator, buyer], [TOKEN, TOKEN]).call() == [0, 1]
    with pytest.raises(REVERTED, match="insufficient balance"):
        _send(w3, registry.functions.safeTransferFrom(creator, buyer, TOKEN, 1, b""), creator)


def test_an_approved_operator_transfers(w3: Web3, registry: Contract) -> None:
    owner, creator, buyer, operator = _accounts(w3)
    _send(w3, registry.functions.mintAgent(creator, TOKEN), owner)
    receipt = _send(w3, registry.functions.setApprovalForAll(operator, True), creator)
    (approval,) = registry.events.ApprovalForAll().process_receipt(receipt, errors=DISCARD)
    assert approval["args"] == {"account": creator, "operator": operator, "approved": True}
    assert registry.functions.isApprovedForAll(creator, operator).call()
    _send(w3, registry.functions.safeBatchTransferFrom(creator, buyer, [TOKEN], [1], b""), operator)
    assert registry.functions.holderOf(TOKEN).call() == buyer
    _send(w3, registry.functions.setApprovalForAll(operator, False), creator)
    assert not registry.functions.isApprovedForAll(creator, operator).call()


def test_a_contract_receiver_must_accept(w3: Web3, registry: Contract) -> None:
    owner, creator, _, _ = _accounts(w3)
    _send(w3, registry.functions.mintAgent(creator, TOKEN), owner)
    # The registry itself has no onERC1155Received: the transfer is refused, nothing moves.
    with pytest.raises(REVERTED):
        _send(
            w3,
            registry.functions.safeTransferFrom(creator, registry.address, TOKEN, 1, b""),
            creator,
        )
    assert registry.functions.holderOf(TOKEN).call() == creator
    compiled = vyper.compile_code(ACCEPTING_RECEIVER, output_formats=["abi", "bytecode"])
    factory = w3.eth.contract(abi=compiled["abi"], bytecode=compiled["bytecode"])
    receiver = _send(w3, factory.constructor(), owner)["contractAddress"]
    _send(w3, registry.functions.safeTransferFrom(creator, receiver, TOKEN, 1, b""), creator)
    assert registry.functions.holderOf(TOKEN).call() == receiver


def test_a_settlement_is_recorded_once(w3: Web3, registry: Contract) -> None:
    owner, creator, _, _ = _accounts(w3)
    call = registry.functions.recordSettlement(SETTLEMENT, creator, 1000, 2000, 12_345_678)
    receipt = _send(w3, call, owner)
    (event,) = registry.events.SettlementRecorded().process_receipt(receipt, errors=DISCARD)
    assert event["args"] == {
        "settlement_id": SETTLEMENT, "creator": creator, "period_start": 1000,
        "period_end": 2000, "amount": 12_345_678,
    }  # fmt: skip
    block = w3.eth.get_block(receipt["blockNumber"])
    assert registry.functions.settlements(SETTLEMENT).call() == (
        creator, 1000, 2000, 12_345_678, block["timestamp"]
    )  # fmt: skip
    with pytest.raises(REVERTED, match="already recorded"):
        _send(w3, call, owner)
    assert registry.functions.settlementCount(creator).call() == 1
    with pytest.raises(REVERTED, match="empty period"):
        _send(w3, registry.functions.recordSettlement(b"\x01" * 32, creator, 5, 5, 1), owner)


def test_the_erc165_interfaces(registry: Contract) -> None:
    supports = registry.functions.supportsInterface
    assert supports(bytes.fromhex("01ffc9a7")).call()  # ERC-165
    assert supports(bytes.fromhex("d9b67a26")).call()  # ERC-1155
    assert supports(bytes.fromhex("0e89341c")).call()  # ERC-1155 metadata URI
    assert not supports(bytes.fromhex("80ac58cd")).call()  # ERC-721
    assert not supports(bytes.fromhex("ffffffff")).call()


def test_ownership_of_the_contract_moves_to_a_new_signer(w3: Web3, registry: Contract) -> None:
    owner, creator, _, new_signer = _accounts(w3)
    _send(w3, registry.functions.transferOwnership(new_signer), owner)
    assert registry.functions.owner().call() == new_signer
    with pytest.raises(REVERTED, match="only owner"):
        _send(w3, registry.functions.mintAgent(creator, TOKEN), owner)
    _send(w3, registry.functions.mintAgent(creator, TOKEN), new_signer)


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(moves=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), max_size=6))
def test_a_token_always_has_exactly_one_holder(
    w3: Web3, registry: Contract, moves: list[tuple[int, int]]
) -> None:
    """Whatever transfers are tried (some refused), the supply stays one and `holderOf` is the
    one wallet whose balance is one."""
    owner = w3.eth.accounts[0]
    wallets = list(w3.eth.accounts[1:4])
    token = TOKEN + 1 + registry.functions.totalMinted().call()  # a new token per example
    _send(w3, registry.functions.mintAgent(wallets[0], token), owner)
    for source, target in moves:
        call = registry.functions.safeTransferFrom(wallets[source], wallets[target], token, 1, b"")
        with contextlib.suppress(*REVERTED):  # refused when the source does not hold it
            _send(w3, call, wallets[source])
    balances = registry.functions.balanceOfBatch(wallets, [token] * 3).call()
    assert sorted(balances) == [0, 0, 1]
    assert registry.functions.holderOf(token).call() == wallets[balances.index(1)]
