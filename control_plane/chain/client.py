"""The registry contract on an EVM chain, through web3's JSON-RPC client.

Reads (`token`, `settlement`, `find_*_tx`) go to the chain, never to our tables: they are the
proof. Writes are split in two so the outbox can store a transaction before it exists anywhere
else: `sign_*` builds and signs one (its hash is known from then on), `broadcast` sends those
exact bytes. Broadcasting the same bytes twice is one transaction, not two.

Faults: an unreachable or silent node raises `ChainUnavailable` (retry later); a node that
answers with an error raises `ChainRejected` (what it said, without our key or the bytes).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.contract import AsyncContract
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3Exception

from control_plane.chain.artifact import (
    ContractArtifact,
    payouts_artifact,
    registry_artifact,
    stablecoin_artifact,
)
from control_plane.chain.settings import ChainSettings

ZERO_ADDRESS = "0x" + "00" * 20
# Gas is estimated per transaction; this headroom covers a state change between the estimate
# and the block (another mint landing first changes nothing we write, but costs may shift).
_GAS_HEADROOM = 1.25


class ChainUnavailable(Exception):
    """The node did not answer (down, unreachable, timed out)."""


class ChainRejected(Exception):
    """The node answered with an error (a revert, a bad nonce, too little gas money)."""


class ChainReverted(ChainRejected):
    """The contract refused the call: it reverted (with its reason)."""


@dataclass(frozen=True, slots=True)
class SignedTx:
    tx_hash: str
    nonce: int
    raw: bytes


@dataclass(frozen=True, slots=True)
class Receipt:
    tx_hash: str
    block_number: int
    succeeded: bool


@dataclass(frozen=True, slots=True)
class TokenState:
    token_id: int
    holder: str
    creator: str
    minted_at: int


@dataclass(frozen=True, slots=True)
class SettlementRecord:
    settlement_id: bytes
    creator: str
    period_start: int
    period_end: int
    amount: int  # units of 10**-8 USD
    recorded_at: int


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    withdrawal_id: bytes
    recipient: str
    units: int  # the stablecoin's own units (10**-decimals of one token)
    paid_at: int


def token_id_of(agent_id: str) -> int:
    """An agent's token id: its UUID read as an integer (the contract's convention)."""
    return int(agent_id.replace("-", ""), 16)


def settlement_key(settlement_id: str) -> bytes:
    """A settlement's id on chain: its UUID as a big-endian bytes32."""
    return int(settlement_id.replace("-", ""), 16).to_bytes(32, "big")


def withdrawal_key(withdrawal_id: str) -> bytes:
    """A withdrawal's id in the payout vault: its UUID as a big-endian bytes32."""
    return settlement_key(withdrawal_id)


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


class ChainClient:
    """One JSON-RPC endpoint, one signer, the registry contract and, with CHAIN_PAYOUTS_ADDRESS,
    the payout vault. Built in a running loop."""

    def __init__(self, settings: ChainSettings) -> None:
        self._provider = AsyncHTTPProvider(
            settings.rpc_url,
            request_kwargs={"timeout": aiohttp.ClientTimeout(total=settings.rpc_timeout_s)},
            exception_retry_configuration=None,  # the outbox retries, with backoff
        )
        self._w3 = AsyncWeb3(self._provider)
        self._signer: LocalAccount = Account.from_key(settings.signer_key)
        self._timeout_s = settings.rpc_timeout_s
        self._start_block = settings.start_block
        self.contract_address = AsyncWeb3.to_checksum_address(settings.contract_address)
        self._contract: AsyncContract = self._w3.eth.contract(
            address=self.contract_address, abi=registry_artifact().abi
        )
        self.payouts_address: str | None = None
        self._vault: AsyncContract | None = None
        if settings.payouts_address:
            self.payouts_address = AsyncWeb3.to_checksum_address(settings.payouts_address)
            self._vault = self._w3.eth.contract(
                address=self.payouts_address, abi=payouts_artifact().abi
            )
        self._chain_id: int | None = None
        self._token_decimals: int | None = None

    @property
    def signer_address(self) -> str:
        return str(self._signer.address)

    async def aclose(self) -> None:
        await self._provider.disconnect()

    async def _rpc(self, awaitable: Any) -> Any:
        try:
            return await asyncio.wait_for(awaitable, timeout=self._timeout_s)
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            raise ChainUnavailable(type(error).__name__) from None
        except ContractLogicError as error:
            raise ChainReverted(error.message or "execution reverted") from None
        except TransactionNotFound:
            return None
        except Web3Exception as error:
            raise ChainRejected(str(error)[:300]) from None

    # -- reads ---------------------------------------------------------------------------------

    async def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(await self._rpc(self._w3.eth.chain_id))
        return self._chain_id

    async def block_number(self) -> int:
        return int(await self._rpc(self._w3.eth.block_number))

    async def token(self, token_id: int) -> TokenState | None:
        """The token as the chain has it; None if it was never minted."""
        functions = self._contract.functions
        minted_at = int(await self._rpc(functions.mintedAt(token_id).call()))
        if minted_at == 0:
            return None
        holder = await self._rpc(functions.holderOf(token_id).call())
        creator = await self._rpc(functions.creatorOf(token_id).call())
        return TokenState(token_id, str(holder), str(creator), minted_at)

    async def uri(self, token_id: int) -> str:
        """The token's metadata URI: the contract's template with `{id}` as 64 hex digits."""
        template = str(await self._rpc(self._contract.functions.uri(token_id).call()))
        return template.replace("{id}", f"{token_id:064x}")

    async def balance_of(self, account: str, token_id: int) -> int:
        address = AsyncWeb3.to_checksum_address(account)
        return int(await self._rpc(self._contract.functions.balanceOf(address, token_id).call()))

    async def settlement(self, settlement_id: bytes) -> SettlementRecord | None:
        """The settlement's record on chain; None if it was never recorded."""
        row = await self._rpc(self._contract.functions.settlements(settlement_id).call())
        creator, period_start, period_end, amount, recorded_at = row
        if creator == ZERO_ADDRESS:
            return None
        return SettlementRecord(
            settlement_id, str(creator), int(period_start), int(period_end), int(amount),
            int(recorded_at),
        )  # fmt: skip

    async def find_mint_tx(self, token_id: int, hint_block: int | None = None) -> Receipt | None:
        """The transaction that minted the token, from its AgentMinted event. `hint_block` (the
        block our table says) is searched first; the chain from CHAIN_START_BLOCK on only if
        the event is not there, so the answer is always the chain's."""
        return await self._find_event(
            self._contract.events.AgentMinted, {"id": token_id}, hint_block
        )

    async def find_settlement_tx(
        self, settlement_id: bytes, hint_block: int | None = None
    ) -> Receipt | None:
        """The transaction that recorded the settlement, from its SettlementRecorded event."""
        event = self._contract.events.SettlementRecorded
        return await self._find_event(event, {"settlement_id": settlement_id}, hint_block)

    async def _find_event(
        self, event: Any, filters: dict[str, Any], hint_block: int | None
    ) -> Receipt | None:
        if hint_block is not None:
            logs = await self._rpc(
                event.get_logs(argument_filters=filters, from_block=hint_block, to_block=hint_block)
            )
            if logs:
                return await self.receipt(_hex(logs[0]["transactionHash"]))
        logs = await self._rpc(
            event.get_logs(argument_filters=filters, from_block=self._start_block)
        )
        if not logs:
            return None
        return await self.receipt(_hex(logs[0]["transactionHash"]))

    # -- the payout vault ----------------------------------------------------------------------

    def _payouts(self) -> AsyncContract:
        if self._vault is None:
            raise ChainRejected("CHAIN_PAYOUTS_ADDRESS is not set")
        return self._vault

    async def payment(self, key: bytes) -> PaymentRecord | None:
        """The vault's payment of a withdrawal; None if it was never paid."""
        row = await self._rpc(self._payouts().functions.payments(key).call())
        recipient, units, paid_at = row
        if recipient == ZERO_ADDRESS:
            return None
        return PaymentRecord(key, str(recipient), int(units), int(paid_at))

    async def find_payment_tx(self, key: bytes, hint_block: int | None = None) -> Receipt | None:
        """The transaction that paid the withdrawal, from its WithdrawalPaid event."""
        event = self._payouts().events.WithdrawalPaid
        return await self._find_event(event, {"withdrawal_id": key}, hint_block)

    async def _token(self) -> AsyncContract:
        address = await self._rpc(self._payouts().functions.token().call())
        token: AsyncContract = self._w3.eth.contract(address=address, abi=stablecoin_artifact().abi)
        return token

    async def token_units(self, amount: Decimal) -> int:
        """`amount` (USD, whole cents) in the vault's stablecoin units, exactly."""
        if self._token_decimals is None:
            token = await self._token()
            self._token_decimals = int(await self._rpc(token.functions.decimals().call()))
        units = amount.scaleb(self._token_decimals)
        if units != units.to_integral_value():
            raise ChainRejected(f"the stablecoin has {self._token_decimals} decimals only")
        return int(units)

    async def vault_funds(self) -> int:
        """What the vault can still pay, in stablecoin units."""
        return int(await self._rpc(self._payouts().functions.funds().call()))

    async def token_balance(self, account: str) -> int:
        """An account's balance of the vault's stablecoin, in its units."""
        token = await self._token()
        address = AsyncWeb3.to_checksum_address(account)
        return int(await self._rpc(token.functions.balanceOf(address).call()))

    async def receipt(self, tx_hash: str) -> Receipt | None:
        """The transaction's receipt; None while it is not in a block (or unknown)."""
        receipt = await self._rpc(self._w3.eth.get_transaction_receipt(tx_hash))  # type: ignore[arg-type]
        if receipt is None or receipt.get("blockNumber") is None:
            return None
        return Receipt(tx_hash, int(receipt["blockNumber"]), int(receipt["status"]) == 1)

    async def is_known(self, tx_hash: str) -> bool:
        """Whether the node has the transaction at all (in a block or waiting for one)."""
        found = await self._rpc(self._w3.eth.get_transaction(tx_hash))  # type: ignore[arg-type]
        return found is not None

    async def confirmed_nonce(self) -> int:
        """How many of the signer's transactions are in blocks: nonces below are spent."""
        address = self._signer.address
        return int(await self._rpc(self._w3.eth.get_transaction_count(address, "latest")))

    # -- writes --------------------------------------------------------------------------------

    async def sign_mint(self, creator: str, token_id: int) -> SignedTx:
        address = AsyncWeb3.to_checksum_address(creator)
        data = self._contract.encode_abi("mintAgent", args=[address, token_id])
        return await self._sign({"to": self.contract_address, "data": data})

    async def sign_record(self, record: SettlementRecord) -> SignedTx:
        creator = AsyncWeb3.to_checksum_address(record.creator)
        data = self._contract.encode_abi(
            "recordSettlement",
            args=[record.settlement_id, creator, record.period_start, record.period_end,
                  record.amount],
        )  # fmt: skip
        return await self._sign({"to": self.contract_address, "data": data})

    async def sign_payment(self, key: bytes, recipient: str, units: int) -> SignedTx:
        vault = self._payouts()
        address = AsyncWeb3.to_checksum_address(recipient)
        data = vault.encode_abi("pay", args=[key, address, units])
        return await self._sign({"to": vault.address, "data": data})

    async def _sign(self, call: dict[str, Any]) -> SignedTx:
        """`call` signed as the signer's next transaction (EIP-1559 fees from the last block)."""
        sender = self._signer.address
        call = {"from": sender, **call}
        # The estimate runs the call: a mint or record that would revert stops here.
        gas = int(await self._rpc(self._w3.eth.estimate_gas(call)))  # type: ignore[arg-type]
        nonce = int(await self._rpc(self._w3.eth.get_transaction_count(sender, "pending")))
        block = await self._rpc(self._w3.eth.get_block("latest"))
        priority = int(await self._rpc(self._w3.eth.max_priority_fee))
        transaction: dict[str, Any] = {
            **call,
            "nonce": nonce,
            "gas": int(gas * _GAS_HEADROOM),
            "maxPriorityFeePerGas": priority,
            "maxFeePerGas": 2 * int(block["baseFeePerGas"]) + priority,
            "chainId": await self.chain_id(),
            "value": 0,
            "type": 2,
        }
        signed = self._signer.sign_transaction(transaction)
        return SignedTx(_hex(signed.hash), nonce, bytes(signed.raw_transaction))

    async def broadcast(self, raw: bytes) -> None:
        await self._rpc(self._w3.eth.send_raw_transaction(raw))

    async def deploy(self, uri_template: str) -> str:
        """Deploy a registry owned by the signer; returns its address (waits for the block)."""
        return await self.deploy_contract(registry_artifact(), uri_template)

    async def deploy_contract(self, artifact: ContractArtifact, *args: Any) -> str:
        """Deploy `artifact` with constructor `args`, owned by the signer; returns its address."""
        factory = self._w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        receipt = await self._send_and_wait(
            {"data": factory.constructor(*args).data_in_transaction}
        )
        return str(receipt["contractAddress"])

    async def transact(
        self, address: str, artifact: ContractArtifact, function: str, *args: Any
    ) -> None:
        """Call `function(*args)` of the contract at `address` as the signer and wait for its
        block (set-up work: deployments and funding, never the outbox's jobs)."""
        contract = self._w3.eth.contract(
            address=AsyncWeb3.to_checksum_address(address), abi=artifact.abi
        )
        data = contract.encode_abi(function, args=list(args))
        receipt = await self._send_and_wait({"to": contract.address, "data": data})
        if int(receipt["status"]) != 1:
            raise ChainReverted(f"{function} reverted")

    async def _send_and_wait(self, call: dict[str, Any]) -> Any:
        signed = await self._sign(call)
        await self.broadcast(signed.raw)
        return await self._rpc(
            self._w3.eth.wait_for_transaction_receipt(
                signed.tx_hash,  # type: ignore[arg-type]
                timeout=self._timeout_s,
            )
        )
