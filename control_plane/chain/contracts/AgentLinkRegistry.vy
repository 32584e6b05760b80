# pragma version ==0.4.3
# pragma evm-version cancun
# pragma optimize gas
"""
@title AgentLink registry: agent tokens (ERC-1155) and creator settlement records
@notice One ERC-1155 token id per published agent (the agent's UUID read as an integer),
        minted once, with a supply of exactly one, to the creator's wallet. Each settlement
        AgentLink pays a creator is recorded once under AgentLink's settlement id. Only the
        owner (AgentLink's signer) mints and records; anyone may read, and a token's holder
        transfers it like any ERC-1155 token.
@dev    Idempotent by construction: a second mint of a token id, or a second record of a
        settlement id, reverts. That is what makes a retried transaction harmless.
"""

from ethereum.ercs import IERC165

implements: IERC165


interface IERC1155Receiver:
    def onERC1155Received(
        operator: address, sender: address, id: uint256, amount: uint256, data: Bytes[1024]
    ) -> bytes4: nonpayable
    def onERC1155BatchReceived(
        operator: address,
        sender: address,
        ids: DynArray[uint256, 128],
        amounts: DynArray[uint256, 128],
        data: Bytes[1024],
    ) -> bytes4: nonpayable


event TransferSingle:
    operator: indexed(address)
    sender: indexed(address)
    receiver: indexed(address)
    id: uint256
    value: uint256


event TransferBatch:
    operator: indexed(address)
    sender: indexed(address)
    receiver: indexed(address)
    ids: DynArray[uint256, 128]
    values: DynArray[uint256, 128]


event ApprovalForAll:
    account: indexed(address)
    operator: indexed(address)
    approved: bool


event URI:
    value: String[256]
    id: indexed(uint256)


event AgentMinted:
    id: indexed(uint256)
    creator: indexed(address)
    created_at: uint64


event SettlementRecorded:
    settlement_id: indexed(bytes32)
    creator: indexed(address)
    period_start: uint64
    period_end: uint64
    amount: uint256


event OwnershipTransferred:
    previous_owner: indexed(address)
    new_owner: indexed(address)


struct Settlement:
    creator: address
    period_start: uint64
    period_end: uint64
    # Net amount paid to the creator, in units of 10**-8 USD (the database's NUMERIC(20, 8)).
    amount: uint256
    recorded_at: uint64


ERC165_INTERFACE_ID: constant(bytes4) = 0x01ffc9a7
ERC1155_INTERFACE_ID: constant(bytes4) = 0xd9b67a26
ERC1155_METADATA_URI_INTERFACE_ID: constant(bytes4) = 0x0e89341c
ON_RECEIVED: constant(bytes4) = 0xf23a6e61
ON_BATCH_RECEIVED: constant(bytes4) = 0xbc197c81

owner: public(address)
# The ERC-1155 URI template: clients replace "{id}" with the token id as 64 lowercase hex digits.
base_uri: String[256]

balances: HashMap[uint256, HashMap[address, uint256]]
operators: HashMap[address, HashMap[address, bool]]

# A token's supply is one, so it has one holder; `holderOf` follows it through transfers.
holderOf: public(HashMap[uint256, address])
# The wallet a token was minted to and when (block time), for its metadata and proofs.
creatorOf: public(HashMap[uint256, address])
mintedAt: public(HashMap[uint256, uint64])
totalMinted: public(uint256)

settlements: public(HashMap[bytes32, Settlement])
settlementCount: public(HashMap[address, uint256])


@deploy
def __init__(uri_template: String[256]):
    self.owner = msg.sender
    self.base_uri = uri_template
    log OwnershipTransferred(previous_owner=empty(address), new_owner=msg.sender)


# -- ERC-165 / ERC-1155 ---------------------------------------------------------------------


@view
@external
def supportsInterface(interface_id: bytes4) -> bool:
    return interface_id in [
        ERC165_INTERFACE_ID, ERC1155_INTERFACE_ID, ERC1155_METADATA_URI_INTERFACE_ID
    ]


@view
@external
def uri(id: uint256) -> String[256]:
    return self.base_uri


@view
@external
def balanceOf(account: address, id: uint256) -> uint256:
    assert account != empty(address), "zero address"
    return self.balances[id][account]


@view
@external
def balanceOfBatch(
    accounts: DynArray[address, 128], ids: DynArray[uint256, 128]
) -> DynArray[uint256, 128]:
    assert len(accounts) == len(ids), "length mismatch"
    result: DynArray[uint256, 128] = []
    for i: uint256 in range(len(accounts), bound=128):
        result.append(self.balances[ids[i]][accounts[i]])
    return result


@external
def setApprovalForAll(operator: address, approved: bool):
    assert operator != msg.sender, "self approval"
    self.operators[msg.sender][operator] = approved
    log ApprovalForAll(account=msg.sender, operator=operator, approved=approved)


@view
@external
def isApprovedForAll(account: address, operator: address) -> bool:
    return self.operators[account][operator]


@internal
def _move(sender: address, receiver: address, id: uint256, amount: uint256):
    assert self.balances[id][sender] >= amount, "insufficient balance"
    self.balances[id][sender] -= amount
    self.balances[id][receiver] += amount
    if amount > 0:
        self.holderOf[id] = receiver


@external
def safeTransferFrom(
    sender: address, receiver: address, id: uint256, amount: uint256, data: Bytes[1024]
):
    assert receiver != empty(address), "zero address"
    assert sender == msg.sender or self.operators[sender][msg.sender], "not approved"
    self._move(sender, receiver, id, amount)
    log TransferSingle(operator=msg.sender, sender=sender, receiver=receiver, id=id, value=amount)
    if receiver.is_contract:
        answer: bytes4 = extcall IERC1155Receiver(receiver).onERC1155Received(
            msg.sender, sender, id, amount, data
        )
        assert answer == ON_RECEIVED, "receiver refused"


@external
def safeBatchTransferFrom(
    sender: address,
    receiver: address,
    ids: DynArray[uint256, 128],
    amounts: DynArray[uint256, 128],
    data: Bytes[1024],
):
    assert receiver != empty(address), "zero address"
    assert len(ids) == len(amounts), "length mismatch"
    assert sender == msg.sender or self.operators[sender][msg.sender], "not approved"
    for i: uint256 in range(len(ids), bound=128):
        self._move(sender, receiver, ids[i], amounts[i])
    log TransferBatch(operator=msg.sender, sender=sender, receiver=receiver, ids=ids, values=amounts)
    if receiver.is_contract:
        answer: bytes4 = extcall IERC1155Receiver(receiver).onERC1155BatchReceived(
            msg.sender, sender, ids, amounts, data
        )
        assert answer == ON_BATCH_RECEIVED, "receiver refused"


# -- AgentLink: agent tokens ----------------------------------------------------------------


@external
def mintAgent(creator: address, id: uint256):
    """Mint agent token `id` (supply one) to `creator`. Reverts if it was ever minted."""
    assert msg.sender == self.owner, "only owner"
    assert creator != empty(address), "zero address"
    assert self.mintedAt[id] == 0, "already minted"
    self.balances[id][creator] = 1
    self.holderOf[id] = creator
    self.creatorOf[id] = creator
    self.mintedAt[id] = convert(block.timestamp, uint64)
    self.totalMinted += 1
    log TransferSingle(operator=msg.sender, sender=empty(address), receiver=creator, id=id, value=1)
    log AgentMinted(id=id, creator=creator, created_at=convert(block.timestamp, uint64))
    if creator.is_contract:
        answer: bytes4 = extcall IERC1155Receiver(creator).onERC1155Received(
            msg.sender, empty(address), id, 1, b""
        )
        assert answer == ON_RECEIVED, "receiver refused"


# -- AgentLink: settlement records ----------------------------------------------------------


@external
def recordSettlement(
    settlement_id: bytes32,
    creator: address,
    period_start: uint64,
    period_end: uint64,
    amount: uint256,
):
    """Record settlement `settlement_id` once. Reverts if that id was ever recorded."""
    assert msg.sender == self.owner, "only owner"
    assert creator != empty(address), "zero address"
    assert period_end > period_start, "empty period"
    assert self.settlements[settlement_id].creator == empty(address), "already recorded"
    self.settlements[settlement_id] = Settlement(
        creator=creator,
        period_start=period_start,
        period_end=period_end,
        amount=amount,
        recorded_at=convert(block.timestamp, uint64),
    )
    self.settlementCount[creator] += 1
    log SettlementRecorded(
        settlement_id=settlement_id,
        creator=creator,
        period_start=period_start,
        period_end=period_end,
        amount=amount,
    )


# -- administration -------------------------------------------------------------------------


@external
def setBaseURI(uri_template: String[256]):
    assert msg.sender == self.owner, "only owner"
    self.base_uri = uri_template


@external
def transferOwnership(new_owner: address):
    assert msg.sender == self.owner, "only owner"
    assert new_owner != empty(address), "zero address"
    log OwnershipTransferred(previous_owner=self.owner, new_owner=new_owner)
    self.owner = new_owner
