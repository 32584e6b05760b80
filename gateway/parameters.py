"""What the gateway does with each top-level field of a chat request: one table, one rule each.

Nothing is dropped silently. A field is forwarded to the provider, capped by the agent's own
setting, decided by the agent when it sets one, read by the gateway itself, or refused with
400 `40002` naming it. A field not in the table is refused. `null` means "not sent", as in
OpenAI's API. README.md ("Request parameters") shows this table; a test keeps the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from common.errors import ApiError
from common.validation import invalid as common_invalid


class Treatment(StrEnum):
    FORWARDED = "forwarded"
    CAPPED = "capped by the agent"
    AGENT = "the agent's, if it sets one"
    GATEWAY = "read by the gateway"
    REPLACED = "replaced by the agent's"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    treatment: Treatment
    rule: str  # the README's wording


PARAMETERS: tuple[Parameter, ...] = (
    Parameter("messages", Treatment.GATEWAY, "required; after the agent's prompt and knowledge"),
    Parameter("model", Treatment.REPLACED, "any value; the answer's `model` names the agent's"),
    Parameter("stream", Treatment.GATEWAY, "boolean"),
    Parameter("stream_options", Treatment.GATEWAY,
              "only `include_usage`: the usage chunk (with the call's cost) is sent only then"),
    Parameter("max_tokens", Treatment.CAPPED,
              "a developer may lower the agent's cap, never raise it (higher: the cap applies)"),
    Parameter("max_completion_tokens", Treatment.CAPPED, "same as `max_tokens`"),
    Parameter("temperature", Treatment.AGENT,
              "forwarded when the agent sets none; a different value than the agent's: refused"),
    Parameter("top_p", Treatment.AGENT, "same as `temperature`"),
    Parameter("stop", Treatment.FORWARDED, ""),
    Parameter("seed", Treatment.FORWARDED, ""),
    Parameter("user", Treatment.FORWARDED, ""),
    Parameter("response_format", Treatment.FORWARDED, ""),
    Parameter("tools", Treatment.FORWARDED, ""),
    Parameter("tool_choice", Treatment.FORWARDED, ""),
    Parameter("parallel_tool_calls", Treatment.FORWARDED, ""),
    Parameter("presence_penalty", Treatment.FORWARDED, ""),
    Parameter("frequency_penalty", Treatment.FORWARDED, ""),
    Parameter("logit_bias", Treatment.FORWARDED, ""),
    Parameter("n", Treatment.REFUSED,
              "`1` accepted; more choices are refused (a call is priced as one answer)"),
    Parameter("logprobs", Treatment.REFUSED,
              "`false` accepted; `true` is refused: token alternatives bypass the leak guard"),
    Parameter("top_logprobs", Treatment.REFUSED, "refused, as `logprobs`"),
    Parameter("store", Treatment.REFUSED,
              "`false` accepted; `true` is refused: the provider would keep the agent's prompt"),
)  # fmt: skip
# Anything else (`functions`, `audio`, `modalities`, `prediction`, `service_tier`, ...): refused.

BY_NAME = {parameter.name: parameter for parameter in PARAMETERS}
FORWARDED = frozenset(p.name for p in PARAMETERS if p.treatment is Treatment.FORWARDED)
SAMPLING = ("temperature", "top_p")  # Treatment.AGENT
TOKEN_CAPS = ("max_tokens", "max_completion_tokens")
# Refused unless they hold the value that changes nothing.
_HARMLESS: dict[str, Any] = {"n": 1, "logprobs": False, "store": False}


def invalid(field: str, message: str) -> ApiError:
    """A body field's 400 `40002`, its summary naming the field (the gateway's clients read
    the message, not the details)."""
    return common_invalid(
        field, message, f"The request body failed validation: `{field}` {message}."
    )


def integral(value: object) -> int | None:
    """`value` as an int when JSON calls it an integer (`795` and `795.0` alike), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def check_refused(name: str, value: object) -> None:
    """Raise for a refused parameter unless it holds its harmless value."""
    harmless = _HARMLESS.get(name, _NO_VALUE)
    if isinstance(harmless, bool):
        if value is harmless:
            return
    elif harmless is not _NO_VALUE and integral(value) == harmless:
        return
    if name not in BY_NAME:
        raise invalid(name, "is not a supported parameter")
    raise invalid(name, "is refused: " + BY_NAME[name].rule)


def token_cap(name: str, value: object) -> int:
    cap = integral(value)
    if cap is None or cap < 1:
        raise invalid(name, "must be a positive integer")
    return cap


def sampling_value(name: str, value: object) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(name, "must be a number")
    return value


def include_usage_of(value: object) -> bool:
    """`stream_options`: an object whose only key we read is `include_usage` (a boolean)."""
    if not isinstance(value, dict):
        raise invalid("stream_options", "must be an object")
    for key in value:
        if key != "include_usage":
            raise invalid(f"stream_options.{key}", "is not supported")
    include = value.get("include_usage", False)
    if not isinstance(include, bool):
        raise invalid("stream_options.include_usage", "must be a boolean")
    return include


class _NoValue:
    pass


_NO_VALUE = _NoValue()
