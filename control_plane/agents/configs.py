"""An agent's config between its three forms: the API body, the domain value, the envelope.

The envelope is encrypted with the key ring and bound to the agent id and the version it was
written for; the plaintext exists only in this process's memory for one request.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any, cast

from msgspec import UNSET

from common.domain import AgentConfig, KnowledgeSettings, ModelTarget
from control_plane.agents.schemas import (
    AgentConfigBody,
    AgentConfigPatch,
    Knowledge,
    Provider,
)
from control_plane.agents.schemas import ModelTarget as ModelTargetBody
from control_plane.state import ControlPlaneState


def from_body(body: AgentConfigBody) -> AgentConfig:
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


def to_body(config: AgentConfig) -> AgentConfigBody:
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


def apply_patch(config: AgentConfig, patch: AgentConfigPatch) -> AgentConfig:
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


def decrypt(state: ControlPlaneState, envelope: bytes, agent_id: str, version: int) -> AgentConfig:
    plaintext = state.keyring.decrypt(envelope, agent_id=agent_id, version=version)
    return AgentConfig.from_json(plaintext)


def encrypt(state: ControlPlaneState, config: AgentConfig, agent_id: str, version: int) -> bytes:
    return state.keyring.encrypt(config.to_json(), agent_id=agent_id, version=version)
