"""Agents: create drafts, update them into new versions, roll back, publish and unpublish.

Configs are encrypted with the key ring, each envelope bound to the agent id and the version
it was written for; every version row holds its own envelope, and the live row holds the
current version's. History is append-only: an update or a rollback adds version N+1 and
never touches version N, so any version can be shown and restored (seed property 9).

Field checks are in validation.py, config conversions and encryption in configs.py, ownership,
row locks and the gateway's record (written just before each commit) in access.py.

The plaintext config exists only in this process's memory for the length of a request and
in the owner's responses; it is never logged and never part of an error message.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import asyncpg
from msgspec import UNSET

from common.domain import AgentConfig, AgentStatus
from common.errors import ApiError, ErrorCode
from common.validation import invalid, money_text
from control_plane.agents import configs, repository, validation
from control_plane.agents.access import Locked, canonical_agent_id, locked_agent, owned, sync
from control_plane.agents.schemas import (
    AgentDetail,
    AgentList,
    AgentOut,
    CreateAgentRequest,
    ListAgentsQuery,
    UpdateAgentRequest,
    VersionDetail,
    VersionList,
    VersionOut,
)
from control_plane.auth.principal import Principal
from control_plane.rows import from_row
from control_plane.schema_types import PageQuery
from control_plane.state import ControlPlaneState
from control_plane.webhooks import events, outbox


def _agent_out(row: asyncpg.Record) -> AgentOut:
    return from_row(AgentOut, row, average_rating=_rating_text(row))


def _agent_detail(row: asyncpg.Record, config: AgentConfig) -> AgentDetail:
    return from_row(
        AgentDetail, row, average_rating=_rating_text(row), config=configs.to_body(config)
    )


def _rating_text(row: asyncpg.Record) -> str:
    """The stored two places ("4.50", "0.00"), not money_text's shortest form."""
    return format(row["average_rating"], "f")


async def create_agent(
    state: ControlPlaneState, principal: Principal, request: CreateAgentRequest
) -> AgentDetail:
    name = validation.name(request.name)
    description = validation.description(request.description)
    category = validation.category(request.category)
    price = validation.price(request.price_per_call, state.settings)
    config = configs.from_body(request.config)
    validation.check_config(config)
    if config.knowledge.file_ids:
        raise invalid(
            "config.knowledge.file_ids",
            "A new agent has no knowledge files yet; upload them, then update the agent.",
        )
    agent_id = str(uuid.uuid4())
    envelope = configs.encrypt(state, config, agent_id, 1)
    key_id = state.keyring.active_key_id
    # A draft needs no gateway record: with none, the gateway loads the agent from Postgres
    # on first sight, finds a draft and answers 404, exactly as it should.
    async with state.db.acquire() as connection, connection.transaction():
        row = await repository.insert_agent(
            connection, agent_id=agent_id, creator_id=principal.user_id, name=name,
            description=description, category=category, envelope=envelope, key_id=key_id,
            price=price,
        )  # fmt: skip
        first = repository.Version(1, envelope, key_id, price, name, description, category)
        await repository.insert_version(connection, agent_id, first)
    return _agent_detail(row, config)


async def list_agents(
    state: ControlPlaneState, principal: Principal, query: ListAgentsQuery
) -> AgentList:
    async with state.db.acquire() as connection:
        rows, total = await repository.agents_of(
            connection, principal.user_id, query.status, query.page_size, query.offset
        )
    return AgentList([_agent_out(row) for row in rows], total, query.page, query.page_size)


async def get_agent(state: ControlPlaneState, principal: Principal, raw_id: str) -> AgentDetail:
    agent_id = canonical_agent_id(raw_id)
    async with state.db.acquire() as connection:
        row = owned(await repository.agent(connection, agent_id), principal)
    config = configs.decrypt(state, row["config_encrypted"], agent_id, row["version"])
    return _agent_detail(row, config)


async def _new_version(
    state: ControlPlaneState,
    locked: Locked,
    config: AgentConfig,
    *,
    name: str,
    description: str | None,
    category: str | None,
    price: Decimal,
) -> asyncpg.Record:
    """Append version N+1 with `config` and make it current, then sync the gateway."""
    connection, agent_id = locked.connection, locked.agent_id
    number = locked.row["version"] + 1
    envelope = configs.encrypt(state, config, agent_id, number)
    version = repository.Version(
        number, envelope, state.keyring.active_key_id, price, name, description, category
    )
    await repository.insert_version(connection, agent_id, version)
    row = await repository.set_current_version(connection, agent_id, version)
    await outbox.enqueue_for_agent(
        connection, agent_id, str(row["creator_id"]), events.AGENT_UPDATED,
        _event_data(row), event_id=f"evt_agent_{agent_id}_v{number}",
    )  # fmt: skip
    await sync(state, locked, row)
    return row


def _event_data(row: asyncpg.Record) -> dict[str, object]:
    """What a webhook about an agent says: never its config."""
    return {
        "agent_id": str(row["id"]),
        "name": row["name"],
        "version": row["version"],
        "status": row["status"],
        "price_per_call": money_text(row["price_per_call"]),
    }


async def update_agent(
    state: ControlPlaneState, principal: Principal, raw_id: str, request: UpdateAgentRequest
) -> AgentDetail:
    if all(getattr(request, field) is UNSET for field in request.__struct_fields__):
        raise invalid("body", "Nothing to update.")
    name = None if request.name is UNSET else validation.name(request.name)
    description = (
        UNSET if request.description is UNSET else validation.description(request.description)
    )
    category = UNSET if request.category is UNSET else validation.category(request.category)
    price = None
    if request.price_per_call is not UNSET:
        price = validation.price(request.price_per_call, state.settings)
    async with locked_agent(state, principal, raw_id) as locked:
        current = locked.row
        config = configs.decrypt(
            state, current["config_encrypted"], locked.agent_id, current["version"]
        )
        if request.config is not UNSET:
            config = configs.apply_patch(config, request.config)
            validation.check_config(config)
            await validation.check_files(locked.connection, locked.agent_id, config)
        row = await _new_version(
            state, locked, config,
            name=current["name"] if name is None else name,
            description=current["description"] if description is UNSET else description,
            category=current["category"] if category is UNSET else category,
            price=current["price_per_call"] if price is None else price,
        )  # fmt: skip
    return _agent_detail(row, config)


async def list_versions(
    state: ControlPlaneState, principal: Principal, raw_id: str, query: PageQuery
) -> VersionList:
    agent_id = canonical_agent_id(raw_id)
    async with state.db.acquire() as connection:
        agent = owned(await repository.agent(connection, agent_id), principal)
        rows, total = await repository.versions(connection, agent_id, query.page_size, query.offset)
    items = [
        VersionOut(
            version=row["version"],
            name=row["name"],
            price_per_call=money_text(row["price_per_call"]),
            created_at=row["created_at"],
            current=row["version"] == agent["version"],
        )
        for row in rows
    ]
    return VersionList(items, total, query.page, query.page_size)


def _version_number(raw: str) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9 or int(raw) < 1:
        raise ApiError(ErrorCode.AGENT_NOT_FOUND, "The agent has no such version.")
    return int(raw)


async def get_version(
    state: ControlPlaneState, principal: Principal, raw_id: str, raw_version: str
) -> VersionDetail:
    agent_id = canonical_agent_id(raw_id)
    number = _version_number(raw_version)
    async with state.db.acquire() as connection:
        agent = owned(await repository.agent(connection, agent_id), principal)
        row = await repository.version(connection, agent_id, number)
    if row is None:
        raise ApiError(ErrorCode.AGENT_NOT_FOUND, "The agent has no such version.")
    config = configs.decrypt(state, row["config_encrypted"], agent_id, number)
    return VersionDetail(
        version=number,
        name=row["name"],
        price_per_call=money_text(row["price_per_call"]),
        created_at=row["created_at"],
        current=number == agent["version"],
        description=row["description"],
        category=row["category"],
        config=configs.to_body(config),
    )


async def rollback(
    state: ControlPlaneState, principal: Principal, raw_id: str, raw_version: str
) -> AgentDetail:
    """A new version whose config is version `raw_version`'s. Name, description, category and
    price stay as they are now: a rollback restores how the agent behaves, not its listing."""
    number = _version_number(raw_version)
    async with locked_agent(state, principal, raw_id) as locked:
        old = await repository.version(locked.connection, locked.agent_id, number)
        if old is None:
            raise ApiError(ErrorCode.AGENT_NOT_FOUND, "The agent has no such version.")
        config = configs.decrypt(state, old["config_encrypted"], locked.agent_id, number)
        # Files removed from the knowledge base since then cannot come back.
        await validation.check_files(locked.connection, locked.agent_id, config)
        current = locked.row
        row = await _new_version(
            state, locked, config, name=current["name"], description=current["description"],
            category=current["category"], price=current["price_per_call"],
        )  # fmt: skip
    return _agent_detail(row, config)


async def publish(state: ControlPlaneState, principal: Principal, raw_id: str) -> AgentOut:
    """Seed property 8: the agent becomes active and callable on the very next request."""
    async with locked_agent(state, principal, raw_id) as locked:
        if locked.row["status"] == AgentStatus.SUSPENDED:
            raise ApiError(ErrorCode.FORBIDDEN, "This agent was suspended by an administrator.")
        row = await repository.set_status(locked.connection, locked.agent_id, AgentStatus.ACTIVE)
        if locked.row["status"] != AgentStatus.ACTIVE:
            await outbox.enqueue_for_agent(
                locked.connection, locked.agent_id, str(row["creator_id"]),
                events.AGENT_PUBLISHED, _event_data(row),
            )  # fmt: skip
        await sync(state, locked, row)
    return _agent_out(row)


async def unpublish(state: ControlPlaneState, principal: Principal, raw_id: str) -> AgentOut:
    """The agent stops answering on the very next request. A draft stays a draft."""
    async with locked_agent(state, principal, raw_id) as locked:
        status = locked.row["status"]
        if status == AgentStatus.SUSPENDED:
            raise ApiError(ErrorCode.FORBIDDEN, "This agent was suspended by an administrator.")
        target = AgentStatus.DRAFT if status == AgentStatus.DRAFT else AgentStatus.INACTIVE
        row = await repository.set_status(locked.connection, locked.agent_id, target)
        await sync(state, locked, row)
    return _agent_out(row)
