"""How one admitted call ended: what the commit settles and the access log reports.

The billing rule (DESIGN.md) in one place: billable only when the provider answered 2xx and
the answer completed, or the client left after that; never a failure, never a withheld leak.
"""

from __future__ import annotations

from common.errors import HTTP_STATUS, ErrorCode
from common.usage_events import CallStatus
from gateway.call_record import hot_record
from gateway.providers.base import Usage
from gateway.providers.errors import ProviderError, ProviderTimeout


@hot_record
class CallResult:
    status: CallStatus
    billable: bool
    http_status: int
    error_code: str = ""
    usage: Usage | None = None

    @classmethod
    def answered(cls, usage: Usage) -> CallResult:
        return cls(CallStatus.SUCCESS, billable=True, http_status=200, usage=usage)

    def withheld(self) -> CallResult:
        """The answer repeated the creator's prompt and was withheld. Not billable: the
        developer got no answer (and a false positive must not cost an innocent caller)."""
        return CallResult(
            CallStatus.BLOCKED, False, self.http_status, "prompt_leak", usage=self.usage
        )

    @classmethod
    def failed(cls, error: ProviderError, *, status_sent: bool = False) -> CallResult:
        """The provider failed: before the answer began (the client gets the error's status)
        or, `status_sent`, in the middle of a stream that already answered 200."""
        return cls(
            CallStatus.TIMEOUT if isinstance(error, ProviderTimeout) else CallStatus.ERROR,
            billable=False,
            http_status=200 if status_sent else HTTP_STATUS[error.code],
            error_code=error.code.value,
        )

    @classmethod
    def cut_at_shutdown(cls, *, status_sent: bool) -> CallResult:
        """A stream still open at the drain deadline (gateway/drain.py): the answer did not
        complete, so, like a stream the provider broke off, it is not billable."""
        return cls(
            CallStatus.ERROR,
            billable=False,
            http_status=200 if status_sent else HTTP_STATUS[ErrorCode.MAINTENANCE],
            error_code=ErrorCode.MAINTENANCE.value,
        )

    @classmethod
    def client_left(cls, *, provider_answered: bool) -> CallResult:
        return cls(
            CallStatus.CANCELLED,
            billable=provider_answered,
            http_status=499,
            error_code="client_disconnected",
        )


# An admitted call that failed before any provider answered (the error says why).
NOT_ANSWERED = CallResult(CallStatus.ERROR, billable=False, http_status=500)
