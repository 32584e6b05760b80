"""Settings only the control plane's HTTP API needs (the worker reads none of these)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from common.settings import Environ, SettingsError, env_decimal, env_int, env_list, env_str


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """What the HTTP API needs and the worker does not (secrets among them)."""

    jwt_secret: str
    access_token_ttl_s: int
    refresh_token_ttl_s: int
    encryption_keys: str
    encryption_active_key_id: str
    free_quota: int
    unit_price: Decimal
    price_min: Decimal
    price_max: Decimal
    review_min_calls: int
    cors_origins: tuple[str, ...]
    login_account_limit: int
    login_ip_limit: int
    login_window_s: int

    @classmethod
    def from_env(cls, env: Environ) -> ApiSettings:
        jwt_secret = env_str(env, "JWT_SECRET")
        if len(jwt_secret) < 32:
            raise SettingsError("JWT_SECRET must be at least 32 characters")
        price_min = env_decimal(env, "AGENT_PRICE_MIN_USD", "0.001")
        price_max = env_decimal(env, "AGENT_PRICE_MAX_USD", "100")
        if not Decimal(0) < price_min <= price_max:
            raise SettingsError("AGENT_PRICE_MIN_USD must be > 0 and <= AGENT_PRICE_MAX_USD")
        return cls(
            jwt_secret=jwt_secret,
            access_token_ttl_s=env_int(env, "JWT_ACCESS_TTL_S", 900, minimum=1),
            refresh_token_ttl_s=env_int(env, "JWT_REFRESH_TTL_S", 7 * 24 * 3600, minimum=60),
            encryption_keys=env_str(env, "AGENTLINK_ENCRYPTION_KEYS"),
            encryption_active_key_id=env_str(env, "AGENTLINK_ENCRYPTION_ACTIVE_KEY_ID"),
            free_quota=env_int(env, "FREE_QUOTA_UNITS", 100, minimum=0),
            unit_price=env_decimal(env, "UNIT_PRICE_USD", "0.01"),
            price_min=price_min,
            price_max=price_max,
            review_min_calls=env_int(env, "REVIEW_MIN_CALLS", 10, minimum=0),
            cors_origins=env_list(
                env, "CORS_ALLOW_ORIGINS", ("https://agentlink.io", "https://app.agentlink.io")
            ),
            login_account_limit=env_int(env, "LOGIN_FAILURES_PER_ACCOUNT", 5, minimum=1),
            login_ip_limit=env_int(env, "LOGIN_FAILURES_PER_IP", 50, minimum=1),
            login_window_s=env_int(env, "LOGIN_FAILURE_WINDOW_S", 900, minimum=1),
        )
