"""Parse: a stream entry becomes a `UsageEvent` that `call_logs` will accept, or is refused.

Checking here, not in Postgres, keeps one bad entry from failing a whole batch: ids must be
UUIDs, status and charge known values, numbers in range, and a call that is not billable to
quota charges no units. A refused entry is dead-lettered (control_plane/usage_ingest/streams.py).
"""

from __future__ import annotations

from common.usage_events import BILLABLE_STATUSES, CallStatus, MalformedUsageEvent, UsageEvent
from common.validation import is_uuid

_STATUSES = frozenset(CallStatus)
_CHARGES = frozenset({"trial", "quota"})
INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1
# 2000-01-01 .. 2200-01-01 UTC in ms: anything outside is a broken clock or a forged entry.
_MIN_TS_MS = 946_684_800_000
_MAX_TS_MS = 7_258_118_400_000
MAX_TEXT = 128
_MAX_ERROR_CODE = 64


def _checked_text(name: str, value: str, max_length: int, *, allow_empty: bool) -> str:
    if (not value and not allow_empty) or len(value) > max_length or "\x00" in value:
        raise MalformedUsageEvent(f"field {name} is empty, too long or not text")
    return value


def parse_entry(fields: dict[bytes, bytes]) -> UsageEvent:
    """A stream entry as a `UsageEvent` that `call_logs` will accept, or MalformedUsageEvent."""
    try:
        event = UsageEvent.from_stream_fields(fields)
    except UnicodeDecodeError:
        raise MalformedUsageEvent("a field is not UTF-8") from None
    _checked_text("call_id", event.call_id, MAX_TEXT, allow_empty=False)
    _checked_text("status", event.status, MAX_TEXT, allow_empty=False)
    _checked_text("error_code", event.error_code, _MAX_ERROR_CODE, allow_empty=True)
    for name, value in (("user_id", event.user_id), ("key_id", event.key_id),
                        ("agent_id", event.agent_id)):  # fmt: skip
        if not is_uuid(value):
            raise MalformedUsageEvent(f"field {name} is not a UUID")
    if event.status not in _STATUSES:
        raise MalformedUsageEvent("unknown status")
    if event.charge not in _CHARGES:
        raise MalformedUsageEvent("unknown charge")
    if not 1 <= event.agent_version <= INT32_MAX:
        raise MalformedUsageEvent("agent_version out of range")
    if not 0 <= event.units <= _INT64_MAX:
        raise MalformedUsageEvent("units out of range")
    if event.units and (not event.billable or event.charge == "trial"):
        raise MalformedUsageEvent("units charged for a call that is not billable to quota")
    if event.billable and event.status not in BILLABLE_STATUSES:
        raise MalformedUsageEvent("a billable call must be a success or cancelled")
    for name, number in (("input_tokens", event.input_tokens),
                         ("output_tokens", event.output_tokens),
                         ("cached_input_tokens", event.cached_input_tokens)):  # fmt: skip
        if not 0 <= number <= INT32_MAX:
            raise MalformedUsageEvent(f"field {name} out of range")
    if not _MIN_TS_MS <= event.ts_ms < _MAX_TS_MS:
        raise MalformedUsageEvent("ts_ms out of range")
    return event
