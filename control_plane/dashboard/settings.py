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

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from common.settings import (
    Environ,
    EnvSettings,
    SettingsError,
    env,
    env_str,
    free_trial_calls,
)

CookieSecurity = Literal["auto", "always", "never"]
_PUBLIC_URL = "DASHBOARD_GATEWAY_PUBLIC_URL"


def _base_url(name: str, raw: str) -> str:
    url = raw.rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise SettingsError(f"{name} must be an http(s) base URL such as https://api.example.com")
    return url


@dataclass(frozen=True, slots=True)
class DashboardSettings(EnvSettings):
    gateway_public_url: str = env(_PUBLIC_URL, "http://127.0.0.1:8080", parse=_base_url)
    gateway_url: str = env("DASHBOARD_GATEWAY_URL", parse=_base_url)  # default: the public one
    secure_cookies: CookieSecurity = env("DASHBOARD_SECURE_COOKIES", "auto")  # noqa: RUF009 - env() declares the field
    refresh_grace_s: int = env("DASHBOARD_REFRESH_GRACE_S", 30, minimum=0)
    playground_key_ttl_s: int = env("DASHBOARD_PLAYGROUND_KEY_TTL_S", 3600, minimum=60)
    playground_sweep_interval_s: float = env(
        "DASHBOARD_PLAYGROUND_SWEEP_INTERVAL_S", 60.0, minimum=0.05
    )
    trial_calls: int = free_trial_calls()
    rate_limit_free: int = env("RATE_LIMIT_FREE_PER_MIN", 10, minimum=1)
    rate_limit_paid: int = env("RATE_LIMIT_PAID_PER_MIN", 1000, minimum=1)

    @classmethod
    def derived(cls, env: Environ) -> dict[str, Any]:
        public = _base_url(_PUBLIC_URL, env_str(env, _PUBLIC_URL, "http://127.0.0.1:8080"))
        gateway = _base_url("DASHBOARD_GATEWAY_URL", env_str(env, "DASHBOARD_GATEWAY_URL", public))
        return {"gateway_public_url": public, "gateway_url": gateway}
