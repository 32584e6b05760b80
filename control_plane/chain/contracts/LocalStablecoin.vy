# pragma version ==0.4.3
# pragma evm-version cancun
# pragma optimize gas
"""
@title Local stablecoin: the ERC-20 AgentLink pays creators in on a local chain
@notice A plain ERC-20 (6 decimals, like USDC) whose owner mints. It exists so the local node
        and the tests pay in a token with the real ERC-20 interface; on a real chain the payout
        vault is deployed against a real stablecoin instead. Like USDC's blacklist, the owner
        can block an account: transfers to or from it revert (the way a real stablecoin can
        refuse a payout to a creator's wallet).
"""

from ethereum.ercs import IERC20
from ethereum.ercs import IERC20Detailed

implements: IERC20
implements: IERC20Detailed

name: public(String[32])
symbol: public(String[8])
decimals: public(uint8)
totalSupply: public(uint256)
balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
owner: public(address)
blocked: public(HashMap[address, bool])


event Blocked:
    account: indexed(address)
    blocked: bool


@deploy
def __init__(name: String[32], symbol: String[8]):
    self.name = name
    self.symbol = symbol
    self.decimals = 6
    self.owner = msg.sender


@internal
def _transfer(sender: address, receiver: address, amount: uint256):
    assert receiver != empty(address), "zero address"
    assert not self.blocked[sender] and not self.blocked[receiver], "blocked account"
    assert self.balanceOf[sender] >= amount, "insufficient balance"
    self.balanceOf[sender] -= amount
    self.balanceOf[receiver] += amount
    log IERC20.Transfer(sender=sender, receiver=receiver, value=amount)


@external
def transfer(receiver: address, amount: uint256) -> bool:
    self._transfer(msg.sender, receiver, amount)
    return True


@external
def transferFrom(sender: address, receiver: address, amount: uint256) -> bool:
    assert self.allowance[sender][msg.sender] >= amount, "insufficient allowance"
    self.allowance[sender][msg.sender] -= amount
    self._transfer(sender, receiver, amount)
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    self.allowance[msg.sender][spender] = amount
    log IERC20.Approval(owner=msg.sender, spender=spender, value=amount)
    return True


@external
def mint(receiver: address, amount: uint256):
    assert msg.sender == self.owner, "only owner"
    assert receiver != empty(address), "zero address"
    self.totalSupply += amount
    self.balanceOf[receiver] += amount
    log IERC20.Transfer(sender=empty(address), receiver=receiver, value=amount)


@external
def setBlocked(account: address, blocked: bool):
    assert msg.sender == self.owner, "only owner"
    self.blocked[account] = blocked
    log Blocked(account=account, blocked=blocked)
