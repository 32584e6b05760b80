"""The audit trail: who did what to which resource, written with the change itself.

`record()` takes the connection of the transaction that makes the change, so the audit row
commits or rolls back with it: there is never an action without its row, nor a row for an
action that did not happen. `audit_log` is append-only (a trigger refuses UPDATE and DELETE).

What goes in `details`: what changed (before/after where it is cheap to know), counts, the
reason an admin gave. Never secrets or anything that could be one (passwords, tokens, API
keys or their hashes, agent configs or prompts), and no personal data that an action is
meant to erase (a deleted account's email). `details` must be JSON-serialisable; keys named
like a secret (`password`, `*_token`, `api_key`, `key_hash`, `*_prompt`, `*_secret`, ...) are
refused outright, so a careless caller fails in tests rather than leaking into the trail.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from common.db import DbConnection
from control_plane.auth.principal import Principal

# action: "<resource>.<verb>", e.g. "user.status", "agent.status", "feature_flag.update".
_ACTION = re.compile(r"^[a-z][a-z0-9_.:-]{0,99}$")
_SECRET_NAME = re.compile(
    r"(^|_)(password|password_hash|secret|token|api_key|key_hash|prompt|config_encrypted"
    r"|private_key|credentials?)$",
    re.IGNORECASE,
)


def _client_ip(ip: str | None) -> str | None:
    """An address Postgres's INET accepts, or None (a test client, a unix socket)."""
    if not ip:
        return None
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return None


def _check_details(details: Mapping[str, Any]) -> None:
    for name, value in details.items():
        if _SECRET_NAME.search(name):
            raise ValueError(f"audit details must not carry secrets ({name!r})")
        if isinstance(value, Mapping):
            _check_details(value)


async def record(
    connection: DbConnection,
    *,
    actor: Principal | None,
    action: str,
    target_type: str | None = None,
    target_id: str | None = None,
    details: Mapping[str, Any] | None = None,
    ip: str | None = None,
) -> int:
    """Append one audit row inside the caller's transaction; returns its id.

    `actor` is None only for actions the system takes by itself (a scheduled job).
    """
    if not _ACTION.fullmatch(action):
        raise ValueError(f"invalid audit action {action!r}")
    details = dict(details or {})
    _check_details(details)
    entry_id = await connection.fetchval(
        """INSERT INTO audit_log (actor_id, actor_role, action, target_type, target_id,
                                  details, ip)
           VALUES ($1, $2, $3, $4, $5, $6, $7::inet) RETURNING id""",
        actor.user_id if actor else None,
        _actor_role(actor),
        action,
        target_type,
        target_id,
        details,
        _client_ip(ip),
    )
    return int(entry_id)


async def record_change(
    connection: DbConnection,
    *,
    actor: Principal,
    action: str,
    target_type: str,
    target_id: str,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    reason: str | None,
    ip: str | None,
    **facts: Any,
) -> int:
    """`record` of an admin's change: what it was and became, other `facts` about it, and
    the reason given (if any)."""
    details: dict[str, Any] = {"before": before, "after": after, **facts}
    if reason:
        details["reason"] = reason
    return await record(
        connection, actor=actor, action=action, target_type=target_type,
        target_id=target_id, details=details, ip=ip,
    )  # fmt: skip


def _actor_role(actor: Principal | None) -> str | None:
    if actor is None:
        return "system"
    if actor.admin_role is not None:
        return actor.admin_role.value
    return actor.user_type.value
