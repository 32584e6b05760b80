"""The control plane in maintenance: while the `maintenance_mode` flag is on it is read-only
except for admins. A write (any method but GET, HEAD, OPTIONS) answers 503 `50303` with
`Retry-After`, unless it is

- an admin's route (`/api/v1/admin/...`, the dashboard's `/admin/...`): admins turn the flag
  back off, settle, suspend; their routes check their role as always;
- signing in, refreshing and signing out (API and dashboard), so admins can reach those;
- a payment provider's webhook: a purchase paid during maintenance is credited, not bounced.

A pure ASGI middleware reading the process' flag snapshot (common/feature_flags.py): one
attribute per request. Reads, the probes and /metrics are never refused.
"""

from __future__ import annotations

from common.asgi import ASGIApp, Receive, Scope, Send
from common.errors import ApiError, ErrorCode

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
WRITABLE_PREFIXES = ("/api/v1/admin/", "/admin/", "/api/v1/payments/webhook/")
WRITABLE_PATHS = frozenset(
    {
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/login",
        "/logout",
    }
)


def writable_in_maintenance(method: str, path: str) -> bool:
    return method in SAFE_METHODS or path in WRITABLE_PATHS or path.startswith(WRITABLE_PREFIXES)


class ReadOnlyGate:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            state = scope["state"]["control"]
            if (
                state.flags is not None
                and state.flags.current.maintenance_mode
                and not writable_in_maintenance(scope["method"], scope["path"])
            ):
                retry_after = state.settings.operations.maintenance_retry_after_s
                raise ApiError(ErrorCode.MAINTENANCE, headers={"Retry-After": str(retry_after)})
        await self.app(scope, receive, send)
