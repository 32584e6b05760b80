"""The dashboard's settings (README.md "Dashboard" documents each variable).

- where the gateway is: DASHBOARD_GATEWAY_PUBLIC_URL (shown in the agents' code snippets) and
  DASHBOARD_GATEWAY_URL (how the control plane reaches it for the playground; defaults to the
  public URL);
- cookies: DASHBOARD_SECURE_COOKIES (`auto`: `Secure` when the request came over https),
  DASHBOARD_REFRESH_GRACE_S (a rotated refresh token still yields the pair it was rotated
  into for this long, for parallel tabs);
- the playground's session keys: DASHBOARD_PLAYGROUND_KEY_TTL_S (their lifetime) and
  DASHBOARD_PLAYGROUND_SWEEP_INTERVAL_S (how often the worker revokes expired ones);
- FREE_TRIAL_CALLS and RATE_LIMIT_FREE_PER_MIN / RATE_LIMIT_PAID_PER_MIN, the gateway's own
  settings, read to show developers their trials and rate tier.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal, cast
from urllib.parse import urlsplit

from common.settings import (
    Environ,
    SettingsError,
    env_float,
    env_free_trial_calls,
    env_int,
    env_str,
)

CookieSecurity = Literal["auto", "always", "never"]


def _base_url(env: Environ, name: str, default: str) -> str:
    url = env_str(env, name, default).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise SettingsError(f"{name} must be an http(s) base URL such as https://api.example.com")
    return url


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    gateway_public_url: str
    gateway_url: str
    secure_cookies: CookieSecurity
    refresh_grace_s: int
    playground_key_ttl_s: int
    playground_sweep_interval_s: float
    trial_calls: int
    rate_limit_free: int
    rate_limit_paid: int

    @classmethod
    def from_env(cls, env: Environ | None = None) -> DashboardSettings:
        env = os.environ if env is None else env
        public = _base_url(env, "DASHBOARD_GATEWAY_PUBLIC_URL", "http://127.0.0.1:8080")
        secure = env_str(env, "DASHBOARD_SECURE_COOKIES", "auto").lower()
        if secure not in ("auto", "always", "never"):
            raise SettingsError("DASHBOARD_SECURE_COOKIES must be auto, always or never")
        return cls(
            gateway_public_url=public,
            gateway_url=_base_url(env, "DASHBOARD_GATEWAY_URL", public),
            secure_cookies=cast(CookieSecurity, secure),
            refresh_grace_s=env_int(env, "DASHBOARD_REFRESH_GRACE_S", 30, minimum=0),
            playground_key_ttl_s=env_int(env, "DASHBOARD_PLAYGROUND_KEY_TTL_S", 3600, minimum=60),
            playground_sweep_interval_s=env_float(
                env, "DASHBOARD_PLAYGROUND_SWEEP_INTERVAL_S", 60.0, minimum=0.05
            ),
            trial_calls=env_free_trial_calls(env),
            rate_limit_free=env_int(env, "RATE_LIMIT_FREE_PER_MIN", 10, minimum=1),
            rate_limit_paid=env_int(env, "RATE_LIMIT_PAID_PER_MIN", 1000, minimum=1),
        )
