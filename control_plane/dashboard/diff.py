"""What changed between two versions of an agent: listing fields, parameters, and a line
diff of the system prompt (shown only to the agent's owner, like the prompt itself)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Literal

from control_plane.agents.schemas import AgentConfigBody, VersionDetail

LineKind = Literal["add", "del", "same", "hunk"]


@dataclass(frozen=True, slots=True)
class FieldChange:
    name: str
    old: str
    new: str


@dataclass(frozen=True, slots=True)
class DiffLine:
    kind: LineKind
    text: str


@dataclass(frozen=True, slots=True)
class VersionDiff:
    old: VersionDetail
    new: VersionDetail
    fields: list[FieldChange]
    prompt: list[DiffLine]

    @property
    def identical(self) -> bool:
        return not self.fields and not self.prompt


def _shown(value: Any) -> str:
    if value is None or value == []:
        return "—"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ", ".join(_shown(item) for item in value)
    if hasattr(value, "provider") and hasattr(value, "model"):
        return f"{value.provider}/{value.model}"
    return str(value)


def _config_fields(config: AgentConfigBody) -> dict[str, Any]:
    knowledge = config.knowledge
    return {
        "provider": config.provider,
        "model": config.model,
        "temperature": config.temperature,
        "max tokens": config.max_tokens,
        "top p": config.top_p,
        "fallbacks": config.fallbacks,
        "leak guard": config.leak_guard,
        "prompt cache": config.prompt_cache,
        "knowledge": knowledge.enabled,
        "knowledge files": len(knowledge.file_ids),
        "chunk size": knowledge.chunk_size,
        "chunk overlap": knowledge.chunk_overlap,
        "top k": knowledge.top_k,
    }


def _listing_fields(version: VersionDetail) -> dict[str, Any]:
    return {
        "name": version.name,
        "price per call": version.price_per_call,
        "category": version.category,
        "description": version.description,
    }


def compare(old: VersionDetail, new: VersionDetail) -> VersionDiff:
    before = {**_listing_fields(old), **_config_fields(old.config)}
    after = {**_listing_fields(new), **_config_fields(new.config)}
    fields = [
        FieldChange(name, _shown(before[name]), _shown(after[name]))
        for name in before
        if _shown(before[name]) != _shown(after[name])
    ]
    lines: list[DiffLine] = []
    unified = difflib.unified_diff(
        old.config.system_prompt.splitlines(), new.config.system_prompt.splitlines(),
        lineterm="", n=2,
    )  # fmt: skip
    for line in unified:
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            lines.append(DiffLine("hunk", line))
        elif line.startswith("+"):
            lines.append(DiffLine("add", line[1:]))
        elif line.startswith("-"):
            lines.append(DiffLine("del", line[1:]))
        else:
            lines.append(DiffLine("same", line[1:]))
    return VersionDiff(old, new, fields, lines)
