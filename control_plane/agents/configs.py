"""An agent's config between its three forms: the API body, the domain value, the envelope.

The envelope is encrypted with the key ring and bound to the agent id and the version it was
written for; the plaintext exists only in this process's memory for one request.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import replace
from typing import Any, cast

import msgspec
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

_PLAIN_CONFIG_FIELDS = (
    "system_prompt",
    "provider",
    "model",
    "temperature",
    "max_tokens",
    "top_p",
    "leak_guard",
    "prompt_cache",
)


def from_body(body: AgentConfigBody) -> AgentConfig:
    file_ids = tuple(str(uuid.UUID(file_id)) for file_id in body.knowledge.file_ids)
    knowledge = msgspec.structs.asdict(body.knowledge) | {"file_ids": file_ids}
    return AgentConfig(
        **{name: getattr(body, name) for name in _PLAIN_CONFIG_FIELDS},
        knowledge=KnowledgeSettings(**knowledge),
        fallbacks=tuple(ModelTarget(item.provider, item.model) for item in body.fallbacks),
    )


def to_body(config: AgentConfig) -> AgentConfigBody:
    knowledge = dataclasses.asdict(config.knowledge) | {"file_ids": list(config.knowledge.file_ids)}
    # Provider names were validated on the way in; stored configs only hold valid ones.
    return AgentConfigBody(
        **{name: getattr(config, name) for name in _PLAIN_CONFIG_FIELDS},
        knowledge=Knowledge(**knowledge),
        fallbacks=[
            ModelTargetBody(cast(Provider, target.provider), target.model)
            for target in config.fallbacks
        ],
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
