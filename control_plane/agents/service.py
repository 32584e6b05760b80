"""Agents: create drafts, update them into new versions, roll back, publish and unpublish.

Configs are encrypted with the key ring, each envelope bound to the agent id and the version
it was written for; every version row holds its own envelope, and the live row holds the
current version's. History is append-only: an update or a rollback adds version N+1 and
never touches version N, so any version can be shown and restored (seed property 9).

Every change to what the gateway admits on (status, current version, price) writes the
gateway's Redis agent record inside the Postgres transaction, after the agent row was locked
and just before the commit (control_plane/gateway_sync.py): publish, unpublish and updates
hold on the very next gateway request. If Redis refuses, the transaction rolls back (503
`50302`). If the commit fails after Redis was written, the Redis record is deleted, so the
gateway reloads the truth from Postgres instead of serving what never committed.

The plaintext config exists only in this process's memory for the length of a request and
in the owner's responses; it is never logged and never part of an error message.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, cast

import asyncpg
from msgspec import UNSET
from redis.exceptions import RedisError

from common import keyspace
from common.db import DbConnection
from common.domain import AgentConfig, AgentStatus, KnowledgeSettings, ModelTarget
from common.errors import ApiError, ErrorCode
from common.validation import canonical_uuid, has_control_characters, invalid, money_text
from control_plane import gateway_sync
from control_plane.agents import repository
from control_plane.agents.schemas import (
    AgentConfigBody,
    AgentConfigPatch,
    AgentDetail,
    AgentList,
    AgentOut,
    CreateAgentRequest,
    Knowledge,
    ListAgentsQuery,
    PageQuery,
    Provider,
    UpdateAgentRequest,
    VersionDetail,
    VersionList,
    VersionOut,
)
from control_plane.agents.schemas import ModelTarget as ModelTargetBody
from control_plane.auth.principal import Principal
from control_plane.state import ControlPlaneState
from control_plane.webhooks import events, outbox

logger = logging.getLogger("agentlink.agents")

_MICRO = Decimal("0.000001")  # prices are stored with 6 decimals (exact micro-dollars)


# -- validation ----------------------------------------------------------------------------


def _name(raw: str) -> str:
    name = raw.strip()
    if not 1 <= len(name) <= 100:
        raise invalid("name", "Expected 1 to 100 characters besides surrounding spaces.")
    if has_control_characters(name):
        raise invalid("name", "Control characters are not allowed.")
    return name


def _description(raw: str | None) -> str | None:
    if raw is None or not raw.strip():
        return None
    if has_control_characters(raw, allow_newlines=True):
        raise invalid("description", "Control characters other than line breaks are not allowed.")
    return raw


def _category(raw: str | None) -> str | None:
    """Categories are matched exactly by the marketplace, so they are stored normalised:
    trimmed, lower case, single spaces."""
    if raw is None:
        return None
    category = " ".join(raw.split()).lower()
    if not 1 <= len(category) <= 50:
        raise invalid("category", "Expected 1 to 50 characters besides spaces.")
    if has_control_characters(category):
        raise invalid("category", "Control characters are not allowed.")
    return category


def validate_price(raw: Decimal, minimum: Decimal, maximum: Decimal) -> Decimal:
    """Seed property 11: a price is accepted exactly when it lies in [minimum, maximum]; it
    must also be a whole number of micro-dollars, what the database and Redis hold exactly."""
    if not raw.is_finite() or not minimum <= raw <= maximum:
        raise invalid("price_per_call", f"Expected a price from {minimum} to {maximum} USD.")
    if raw != raw.quantize(_MICRO):
        raise invalid("price_per_call", "Expected at most 6 decimal places.")
    return raw.quantize(_MICRO)


def _check_config(config: AgentConfig) -> None:
    if not config.system_prompt.strip():
        raise invalid("config.system_prompt", "The system prompt cannot be blank.")
    targets = [(config.provider, config.model)]
    for target in config.fallbacks:
        pair = (target.provider, target.model)
        if pair in targets:
            raise invalid(
                "config.fallbacks", "Each fallback must differ from the model and the others."
            )
        targets.append(pair)
    knowledge = config.knowledge
    if knowledge.chunk_overlap >= knowledge.chunk_size:
        raise invalid("config.knowledge.chunk_overlap", "Expected less than chunk_size.")
    if len(set(knowledge.file_ids)) != len(knowledge.file_ids):
        raise invalid("config.knowledge.file_ids", "A file is listed more than once.")


async def _check_files(connection: DbConnection, agent_id: str, config: AgentConfig) -> None:
    wanted = list(config.knowledge.file_ids)
    if not wanted:
        return
    known = await repository.knowledge_file_ids(connection, agent_id, wanted)
    if len(known) != len(wanted):
        raise invalid(
            "config.knowledge.file_ids", "Every file must belong to this agent's knowledge base."
        )


# -- config conversions --------------------------------------------------------------------


def _config_from_body(body: AgentConfigBody) -> AgentConfig:
    knowledge = body.knowledge
    return AgentConfig(
        system_prompt=body.system_prompt,
        provider=body.provider,
        model=body.model,
        temperature=body.temperature,
        max_tokens=body.max_tokens,
        top_p=body.top_p,
        knowledge=KnowledgeSettings(
            enabled=knowledge.enabled,
            file_ids=tuple(str(uuid.UUID(file_id)) for file_id in knowledge.file_ids),
            chunk_size=knowledge.chunk_size,
            chunk_overlap=knowledge.chunk_overlap,
            top_k=knowledge.top_k,
            leak_guard=knowledge.leak_guard,
        ),
        fallbacks=tuple(ModelTarget(item.provider, item.model) for item in body.fallbacks),
        leak_guard=body.leak_guard,
    )


def _body_from_config(config: AgentConfig) -> AgentConfigBody:
    knowledge = config.knowledge
    # Provider names were validated on the way in; stored configs only hold valid ones.
    return AgentConfigBody(
        system_prompt=config.system_prompt,
        provider=cast(Provider, config.provider),
        model=config.model,
        temperature=config.temperature,
        max_tokens=config.max_tokens,
        top_p=config.top_p,
        knowledge=Knowledge(
            enabled=knowledge.enabled,
            file_ids=list(knowledge.file_ids),
            chunk_size=knowledge.chunk_size,
            chunk_overlap=knowledge.chunk_overlap,
            top_k=knowledge.top_k,
            leak_guard=knowledge.leak_guard,
        ),
        fallbacks=[
            ModelTargetBody(cast(Provider, target.provider), target.model)
            for target in config.fallbacks
        ],
        leak_guard=config.leak_guard,
    )


_PLAIN_CONFIG_FIELDS = (
    "system_prompt",
    "provider",
    "model",
    "temperature",
    "max_tokens",
    "top_p",
    "leak_guard",
)


def _apply_patch(config: AgentConfig, patch: AgentConfigPatch) -> AgentConfig:
    changes: dict[str, Any] = {
        name: value for name in _PLAIN_CONFIG_FIELDS if (value := getattr(patch, name)) is not UNSET
    }
    if patch.fallbacks is not UNSET:
        changes["fallbacks"] = tuple(ModelTarget(t.provider, t.model) for t in patch.fallbacks)
    if patch.knowledge is not UNSET:
        knowledge: dict[str, Any] = {
            name: value
            for name in ("enabled", "chunk_size", "chunk_overlap", "top_k", "leak_guard")
            if (value := getattr(patch.knowledge, name)) is not UNSET
        }
        if patch.knowledge.file_ids is not UNSET:
            knowledge["file_ids"] = tuple(str(uuid.UUID(f)) for f in patch.knowledge.file_ids)
        changes["knowledge"] = replace(config.knowledge, **knowledge)
    return replace(config, **changes)


# -- rows to responses ---------------------------------------------------------------------


def _agent_fields(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "description": row["description"],
        "category": row["category"],
        "status": row["status"],
        "price_per_call": money_text(row["price_per_call"]),
        "version": row["version"],
        "total_calls": row["total_calls"],
        "average_rating": format(row["average_rating"], "f"),
        "review_count": row["review_count"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "published_at": row["published_at"],
    }


def _agent_out(row: asyncpg.Record) -> AgentOut:
    return AgentOut(**_agent_fields(row))


def _agent_detail(row: asyncpg.Record, config: AgentConfig) -> AgentDetail:
    return AgentDetail(**_agent_fields(row), config=_body_from_config(config))


# -- access ----------------------------------------------------------------------------------


def canonical_agent_id(raw: str) -> str:
    """The agent id in its one canonical spelling (lower-case hyphenated UUID): the form the
    envelopes' associated data and the Redis record key use. Not a UUID: no such agent."""
    agent_id = canonical_uuid(raw)
    if agent_id is None:
        raise ApiError(ErrorCode.AGENT_NOT_FOUND)
    return agent_id


def _owned(row: asyncpg.Record | None, principal: Principal) -> asyncpg.Record:
    if row is None:
        raise ApiError(ErrorCode.AGENT_NOT_FOUND, "The agent does not exist.")
    if str(row["creator_id"]) != principal.user_id:
        raise ApiError(ErrorCode.AGENT_NOT_OWNED)
    return row


def _decrypt(state: ControlPlaneState, envelope: bytes, agent_id: str, version: int) -> AgentConfig:
    plaintext = state.keyring.decrypt(envelope, agent_id=agent_id, version=version)
    return AgentConfig.from_json(plaintext)


def _encrypt(state: ControlPlaneState, config: AgentConfig, agent_id: str, version: int) -> bytes:
    return state.keyring.encrypt(config.to_json(), agent_id=agent_id, version=version)


@dataclass
class _Locked:
    connection: DbConnection
    row: asyncpg.Record
    agent_id: str
    synced: bool = False


@asynccontextmanager
async def _locked_agent(
    state: ControlPlaneState, principal: Principal, raw_agent_id: str
) -> AsyncIterator[_Locked]:
    """The caller's agent, its row locked for one transaction (concurrent changes to one
    agent run one after another, so none is lost and versions never collide)."""
    agent_id = canonical_agent_id(raw_agent_id)
    async with state.db.acquire() as connection:
        locked: _Locked | None = None
        try:
            async with connection.transaction():
                row = _owned(await repository.agent_for_update(connection, agent_id), principal)
                locked = _Locked(connection, row, agent_id)
                yield locked
        except BaseException:
            if locked is not None and locked.synced:
                await _forget(state, agent_id)
            raise


async def _sync(state: ControlPlaneState, locked: _Locked, row: asyncpg.Record) -> None:
    """Write the gateway's agent record from `row`; the last step before the commit."""
    await gateway_sync.hold_write_through(locked.connection)
    locked.synced = True  # set first: a write that timed out may still have been applied
    await gateway_sync.write_agent(
        state.redis,
        locked.agent_id,
        status=row["status"],
        version=row["version"],
        price_per_call=row["price_per_call"],
        unit_price=state.settings.unit_price,
        knowledge=row["knowledge_record"],
    )


async def _forget(state: ControlPlaneState, agent_id: str) -> None:
    """Drop the gateway's record of an agent whose change did not commit: the next gateway
    request reloads it from Postgres, which holds the truth."""
    try:
        await state.redis.delete(keyspace.agent_record(agent_id))
    except RedisError:
        logger.warning(
            "could not drop the gateway record of an agent after a failed commit",
            extra={"agent_id": agent_id, "event": "agent_record_stale"},
        )


# -- operations ------------------------------------------------------------------------------


async def create_agent(
    state: ControlPlaneState, principal: Principal, request: CreateAgentRequest
) -> AgentDetail:
    name = _name(request.name)
    description = _description(request.description)
    category = _category(request.category)
    settings = state.settings
    price = validate_price(request.price_per_call, settings.price_min, settings.price_max)
    config = _config_from_body(request.config)
    _check_config(config)
    if config.knowledge.file_ids:
        raise invalid(
            "config.knowledge.file_ids",
            "A new agent has no knowledge files yet; upload them, then update the agent.",
        )
    agent_id = str(uuid.uuid4())
    envelope = _encrypt(state, config, agent_id, 1)
    key_id = state.keyring.active_key_id
    # A draft needs no gateway record: with none, the gateway loads the agent from Postgres
    # on first sight, finds a draft and answers 404, exactly as it should.
    async with state.db.acquire() as connection, connection.transaction():
        row = await repository.insert_agent(
            connection, agent_id=agent_id, creator_id=principal.user_id, name=name,
            description=description, category=category, envelope=envelope, key_id=key_id,
            price=price,
        )  # fmt: skip
        await repository.insert_version(
            connection, agent_id=agent_id, version=1, envelope=envelope, key_id=key_id,
            price=price, name=name, description=description, category=category,
        )  # fmt: skip
    return _agent_detail(row, config)


async def list_agents(
    state: ControlPlaneState, principal: Principal, query: ListAgentsQuery
) -> AgentList:
    offset = (query.page - 1) * query.page_size
    async with state.db.acquire() as connection:
        rows, total = await repository.agents_of(
            connection, principal.user_id, query.status, query.page_size, offset
        )
    return AgentList([_agent_out(row) for row in rows], total, query.page, query.page_size)


async def get_agent(state: ControlPlaneState, principal: Principal, raw_id: str) -> AgentDetail:
    agent_id = canonical_agent_id(raw_id)
    async with state.db.acquire() as connection:
        row = _owned(await repository.agent(connection, agent_id), principal)
    config = _decrypt(state, row["config_encrypted"], agent_id, row["version"])
    return _agent_detail(row, config)


async def _new_version(
    state: ControlPlaneState,
    locked: _Locked,
    config: AgentConfig,
    *,
    name: str,
    description: str | None,
    category: str | None,
    price: Decimal,
) -> asyncpg.Record:
    """Append version N+1 with `config` and make it current, then sync the gateway."""
    connection, agent_id = locked.connection, locked.agent_id
    version = locked.row["version"] + 1
    envelope = _encrypt(state, config, agent_id, version)
    key_id = state.keyring.active_key_id
    await repository.insert_version(
        connection, agent_id=agent_id, version=version, envelope=envelope, key_id=key_id,
        price=price, name=name, description=description, category=category,
    )  # fmt: skip
    row = await repository.set_current_version(
        connection, agent_id, version=version, envelope=envelope, key_id=key_id, price=price,
        name=name, description=description, category=category,
    )  # fmt: skip
    await outbox.enqueue_for_agent(
        connection, agent_id, str(row["creator_id"]), events.AGENT_UPDATED,
        _event_data(row), event_id=f"evt_agent_{agent_id}_v{version}",
    )  # fmt: skip
    await _sync(state, locked, row)
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
    name = None if request.name is UNSET else _name(request.name)
    description = UNSET if request.description is UNSET else _description(request.description)
    category = UNSET if request.category is UNSET else _category(request.category)
    price = None
    if request.price_per_call is not UNSET:
        settings = state.settings
        price = validate_price(request.price_per_call, settings.price_min, settings.price_max)
    async with _locked_agent(state, principal, raw_id) as locked:
        current = locked.row
        config = _decrypt(state, current["config_encrypted"], locked.agent_id, current["version"])
        if request.config is not UNSET:
            config = _apply_patch(config, request.config)
            _check_config(config)
            await _check_files(locked.connection, locked.agent_id, config)
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
    offset = (query.page - 1) * query.page_size
    async with state.db.acquire() as connection:
        agent = _owned(await repository.agent(connection, agent_id), principal)
        rows, total = await repository.versions(connection, agent_id, query.page_size, offset)
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
        agent = _owned(await repository.agent(connection, agent_id), principal)
        row = await repository.version(connection, agent_id, number)
    if row is None:
        raise ApiError(ErrorCode.AGENT_NOT_FOUND, "The agent has no such version.")
    config = _decrypt(state, row["config_encrypted"], agent_id, number)
    return VersionDetail(
        version=number,
        name=row["name"],
        price_per_call=money_text(row["price_per_call"]),
        created_at=row["created_at"],
        current=number == agent["version"],
        description=row["description"],
        category=row["category"],
        config=_body_from_config(config),
    )


async def rollback(
    state: ControlPlaneState, principal: Principal, raw_id: str, raw_version: str
) -> AgentDetail:
    """A new version whose config is version `raw_version`'s. Name, description, category and
    price stay as they are now: a rollback restores how the agent behaves, not its listing."""
    number = _version_number(raw_version)
    async with _locked_agent(state, principal, raw_id) as locked:
        old = await repository.version(locked.connection, locked.agent_id, number)
        if old is None:
            raise ApiError(ErrorCode.AGENT_NOT_FOUND, "The agent has no such version.")
        config = _decrypt(state, old["config_encrypted"], locked.agent_id, number)
        # Files removed from the knowledge base since then cannot come back.
        await _check_files(locked.connection, locked.agent_id, config)
        current = locked.row
        row = await _new_version(
            state, locked, config, name=current["name"], description=current["description"],
            category=current["category"], price=current["price_per_call"],
        )  # fmt: skip
    return _agent_detail(row, config)


async def publish(state: ControlPlaneState, principal: Principal, raw_id: str) -> AgentOut:
    """Seed property 8: the agent becomes active and callable on the very next request."""
    async with _locked_agent(state, principal, raw_id) as locked:
        if locked.row["status"] == AgentStatus.SUSPENDED:
            raise ApiError(ErrorCode.FORBIDDEN, "This agent was suspended by an administrator.")
        row = await repository.set_status(locked.connection, locked.agent_id, AgentStatus.ACTIVE)
        if locked.row["status"] != AgentStatus.ACTIVE:
            await outbox.enqueue_for_agent(
                locked.connection, locked.agent_id, str(row["creator_id"]),
                events.AGENT_PUBLISHED, _event_data(row),
            )  # fmt: skip
        await _sync(state, locked, row)
    return _agent_out(row)


async def unpublish(state: ControlPlaneState, principal: Principal, raw_id: str) -> AgentOut:
    """The agent stops answering on the very next request. A draft stays a draft."""
    async with _locked_agent(state, principal, raw_id) as locked:
        status = locked.row["status"]
        if status == AgentStatus.SUSPENDED:
            raise ApiError(ErrorCode.FORBIDDEN, "This agent was suspended by an administrator.")
        target = AgentStatus.DRAFT if status == AgentStatus.DRAFT else AgentStatus.INACTIVE
        row = await repository.set_status(locked.connection, locked.agent_id, target)
        await _sync(state, locked, row)
    return _agent_out(row)
