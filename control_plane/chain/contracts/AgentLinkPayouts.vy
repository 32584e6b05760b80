# pragma version ==0.4.3
# pragma evm-version cancun
# pragma optimize gas
"""
@title AgentLink payouts: a vault that pays creators' withdrawals in a stablecoin
@notice AgentLink funds the vault with an ERC-20 stablecoin (a plain transfer to its address);
        its owner (AgentLink's signer) pays each withdrawal from it to the creator's wallet.
        Each payment is recorded under AgentLink's withdrawal id, once: a second payment of
        the same id reverts, so a retried or duplicated transaction can never pay twice.
        Anyone may read a payment (`payments`) and its `WithdrawalPaid` event.
@dev    The record is written before the token moves (checks, effects, interactions), and the
        token's answer is checked (a token that returns nothing counts as success, as some
        stablecoins do). A transfer the token refuses (the vault is short) reverts the payment.
"""

from ethereum.ercs import IERC20


event WithdrawalPaid:
    withdrawal_id: indexed(bytes32)
    recipient: indexed(address)
    amount: uint256


event Swept:
    receiver: indexed(address)
    amount: uint256


event OwnershipTransferred:
    previous_owner: indexed(address)
    new_owner: indexed(address)


struct Payment:
    recipient: address
    # In the token's own units (10**-decimals of one token).
    amount: uint256
    paid_at: uint64


owner: public(address)
token: public(IERC20)
payments: public(HashMap[bytes32, Payment])
paymentCount: public(uint256)
totalPaid: public(uint256)


@deploy
def __init__(token: IERC20):
    assert token.address != empty(address), "zero address"
    self.owner = msg.sender
    self.token = token
    log OwnershipTransferred(previous_owner=empty(address), new_owner=msg.sender)


@external
@nonreentrant
def pay(withdrawal_id: bytes32, recipient: address, amount: uint256):
    """Pay withdrawal `withdrawal_id`: `amount` token units to `recipient`. Reverts if that
    id was ever paid, if the vault holds too little, or for anyone but the owner."""
    assert msg.sender == self.owner, "only owner"
    assert recipient != empty(address), "zero address"
    assert amount > 0, "zero amount"
    assert self.payments[withdrawal_id].recipient == empty(address), "already paid"
    assert staticcall self.token.balanceOf(self) >= amount, "vault balance too low"
    self.payments[withdrawal_id] = Payment(
        recipient=recipient, amount=amount, paid_at=convert(block.timestamp, uint64)
    )
    self.paymentCount += 1
    self.totalPaid += amount
    assert extcall self.token.transfer(recipient, amount, default_return_value=True), "transfer refused"
    log WithdrawalPaid(withdrawal_id=withdrawal_id, recipient=recipient, amount=amount)


@view
@external
def funds() -> uint256:
    """What the vault can still pay, in token units."""
    return staticcall self.token.balanceOf(self)


@external
@nonreentrant
def sweep(receiver: address, amount: uint256):
    """Move funds out of the vault (retiring it, or moving to a new one)."""
    assert msg.sender == self.owner, "only owner"
    assert receiver != empty(address), "zero address"
    assert extcall self.token.transfer(receiver, amount, default_return_value=True), "transfer refused"
    log Swept(receiver=receiver, amount=amount)


@external
def transferOwnership(new_owner: address):
    assert msg.sender == self.owner, "only owner"
    assert new_owner != empty(address), "zero address"
    log OwnershipTransferred(previous_owner=self.owner, new_owner=new_owner)
    self.owner = new_owner
