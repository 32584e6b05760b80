"""Everything the control plane builds once at start-up and hands to its handlers."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from prometheus_client import CollectorRegistry

from common.feature_flags import FeatureFlags
from common.redis_store import RedisClient
from control_plane.chain.client import ChainClient
from control_plane.chain.job_metrics import ChainJobGauges
from control_plane.payments.services import PaymentServices
from control_plane.settings import ApiSettings
from crypto.envelope import KeyRing
from crypto.passwords import PasswordHashing


@dataclass(slots=True)
class ControlPlaneState:
    settings: ApiSettings
    db: asyncpg.Pool
    redis: RedisClient
    registry: CollectorRegistry
    keyring: KeyRing
    passwords: PasswordHashing
    # Verified against when an email is unknown, so login time does not reveal accounts.
    dummy_password_hash: str
    # Payment providers and the quota scripts; None where a process was built without them.
    payments: PaymentServices | None = None
    # The API's flag snapshot (the read-only gate in maintenance); None in other processes.
    flags: FeatureFlags | None = None
    # The chain's client when CHAIN_RPC_URL is set (control_plane/chain/proofs.py reads it).
    chain: ChainClient | None = None
    # The chain jobs' gauges, sampled when /metrics is read; None with the chain off.
    chain_job_gauges: ChainJobGauges | None = None

    @property
    def api(self) -> ApiSettings:
        """Deprecated: the same object as `settings`."""
        return self.settings
