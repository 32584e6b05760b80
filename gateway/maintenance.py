"""The maintenance gate: while the `maintenance_mode` flag is on, every call answers 503
`50303` with `Retry-After`, before anything else is read; the probes and /metrics stay up
(the pod is healthy and ready, so Kubernetes neither restarts nor drains it).

A pure ASGI middleware, so it covers every endpoint the route table has, present and future.
Per request it reads one attribute of the process' flag snapshot (common/feature_flags.py),
which a background task refreshes; calls admitted before the flag turned on finish normally.
"""

from __future__ import annotations

from common.asgi import ASGIApp, Receive, Scope, Send
from common.errors import ApiError, ErrorCode


class MaintenanceGate:
    def __init__(self, app: ASGIApp, *, open_paths: frozenset[str]) -> None:
        self.app = app
        self._open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in self._open_paths:
            state = scope["state"]["gateway"]
            if state.flags.current.maintenance_mode:
                retry_after = state.settings.operations.maintenance_retry_after_s
                raise ApiError(ErrorCode.MAINTENANCE, headers={"Retry-After": str(retry_after)})
        await self.app(scope, receive, send)
